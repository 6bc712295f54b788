"""Telling a log that only grew from one that was replaced or rewritten (for the sources' refresh).

A read that may be resumed leaves a `FileMark`: the file's identity (device, inode), how many
bytes it read, where the next read starts, and a digest of the file's first MARK_BYTES and of the
MARK_BYTES before that point. `grown` says whether the file open now is that file, no shorter
and unchanged there; only then may a refresh read on from the mark's offset.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import BinaryIO

MARK_BYTES = 4096


@dataclass(frozen=True, slots=True)
class FileMark:
    """Where a read of one file stopped, and enough of the file to recognise it later."""

    dev: int
    ino: int
    size: int  # bytes the read covered: the file must have at least these now
    offset: int  # where a later read starts (after the last complete record or line)
    digest: bytes  # of the first and of the last MARK_BYTES before `offset`


def take(fp: BinaryIO, *, size: int, offset: int) -> FileMark:
    """The mark of the file open as `fp`, read through `size` bytes, to be read on from `offset`."""
    st = os.fstat(fp.fileno())
    return FileMark(st.st_dev, st.st_ino, size, offset, _digest(fp, offset))


def grown(mark: FileMark, fp: BinaryIO) -> os.stat_result | None:
    """The stat of `fp` if it is the marked file, no shorter and unchanged up to the mark; else None."""
    st = os.fstat(fp.fileno())
    if (st.st_dev, st.st_ino) != (mark.dev, mark.ino) or st.st_size < mark.size:
        return None  # replaced or shortened
    return st if _digest(fp, mark.offset) == mark.digest else None


def _digest(fp: BinaryIO, offset: int) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    fp.seek(0)
    h.update(fp.read(min(MARK_BYTES, offset)))
    start = max(0, offset - MARK_BYTES)
    fp.seek(start)
    h.update(fp.read(offset - start))
    return h.digest()
