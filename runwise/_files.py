"""Writing files safely, shared by the disk cache and the object-storage mirror: an exclusive advisory lock
(`locked`), and a file replaced in one step (`replacing`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) where the platform has flock; elsewhere (Windows)
    no lock: what it guards must survive two writers (a count may be lost, never a file)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with path.open("a+b") as fp:
        fcntl.flock(fp.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fp.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` in one step when the block ends without error.

    The temporary file has a name of its own per writer (pid and thread alike), in the same
    directory, so `os.replace` is a rename on one file system.
    """
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fp:
            yield fp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
