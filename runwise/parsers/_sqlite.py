"""Read-only SQLite reads shared by the SQLite sources (MLflow's `mlflow.db`, Trackio's `<project>.db`).

- Opened `mode=ro` (a URI), one read transaction per `read` (one snapshot of the store), never a write lock.
- A file in WAL mode that no writer has open (no `-wal` beside it) is opened as immutable, so SQLite
  creates no `-wal`/`-shm` files next to it; if the file changed or a writer appeared meanwhile, the read
  is done again. While a writer has it open, SQLite reads through the writer's own `-wal`/`-shm`.
- A locked file is retried LOCK_RETRIES times, LOCK_WAIT_S apart, then a one-line SourceError; any other
  SQLite error is a one-line SourceError naming the file as `what` calls it.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from runwise.errors import SourceError

LOCK_RETRIES = 5
LOCK_WAIT_S = 0.2

T = TypeVar("T")
MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def is_sqlite(path: Path) -> bool:
    """Whether `path` is a SQLite database file (its header); False if it cannot be read."""
    try:
        with path.open("rb") as fp:
            return fp.read(16) == MAGIC
    except OSError:
        return False


def _uri(db: Path, immutable: bool) -> str:
    return "file:" + urllib.parse.quote(str(db)) + ("?mode=ro&immutable=1" if immutable else "?mode=ro")


def _signature(db: Path) -> tuple[int, int] | None:
    try:
        st = db.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _wal_mode(db: Path) -> bool:
    """Whether the file header says WAL (bytes 18 and 19 are 2)."""
    try:
        with db.open("rb") as fp:
            head = fp.read(20)
    except OSError:
        return False
    return len(head) == 20 and head[18] == 2 and head[19] == 2


def read(db: Path, work: Callable[[sqlite3.Connection], T], what: str) -> T:
    """`work(con)` on a read-only connection to `db` inside one read transaction (rules: module docstring);
    `what` names the file in errors ("the MLflow store mlflow.db")."""
    wal = Path(str(db) + "-wal")
    for attempt in range(LOCK_RETRIES + 1):
        before = _signature(db)
        if before is None:
            raise SourceError(f"cannot open {what}: it is gone", path=str(db))
        immutable = _wal_mode(db) and not wal.exists()
        try:
            con = sqlite3.connect(_uri(db, immutable), uri=True, timeout=LOCK_WAIT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise SourceError(f"cannot open {what}: {exc}", path=str(db)) from None
        try:
            con.execute("BEGIN")
            result = work(con)
            if immutable and (wal.exists() or _signature(db) != before) and attempt < LOCK_RETRIES:
                continue  # a writer came in while the file was read without locks: read again
            return result
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                if attempt < LOCK_RETRIES:
                    time.sleep(LOCK_WAIT_S)
                    continue
                raise SourceError(f"{what} stayed locked by a writer: try again", path=str(db)) from None
            if immutable and _signature(db) != before and attempt < LOCK_RETRIES:
                continue
            raise SourceError(f"cannot read {what}: {exc}", path=str(db)) from None
        except sqlite3.Error as exc:
            if immutable and _signature(db) != before and attempt < LOCK_RETRIES:
                continue
            raise SourceError(f"cannot read {what}: {exc}", path=str(db)) from None
        finally:
            con.close()
    raise SourceError(f"{what} kept changing while read: try again", path=str(db))
