"""An exclusive advisory lock on a file, shared by the disk cache's counts and the object-storage mirror."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


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
