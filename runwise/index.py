"""A persistent index of each run's metadata, so listing a project of thousands of runs reads no log.

One sqlite3 file, `index.sqlite3`, beside the cache directory (runwise.cache; see `index_path`):
never inside run directories. A row per (project root, run key) holds what `list_runs`, `find_best_run` and run
references need: source, id, name, state, first and last step, runtime, a digest of the config,
tags, and per metric its point count, last and last finite value, lowest and highest finite value
(each with its step) and a 12-character sparkline. A run of over runs.LIST_LOAD_BYTES is indexed from
its log's first and last records only (runs._ends_run; a `partial` row): its state, steps and the
final values of the metrics its tail holds, no counts, extremes or sparklines.

A row is trusted only while the run's files are unchanged: it records their identity (path, size,
mtime of each log and side file; a W&B run directory's top level and its `files/` folder, never
`files/media` or other subfolders), and a lookup with another identity is a miss, so the run is
read again and its row replaced. A run taken to be running whose files stopped changing
(model.LIVE_SECONDS) is a miss too: its state is no longer what the row says.

Two processes may write at once: the file is in WAL mode, and each write is one transaction.
A file that is not a readable index of this VERSION (garbage, truncated, another layout) is
removed and rebuilt. With the disk cache turned off (`RUNWISE_NO_CACHE`, `"cache": false`) the
index lives in this process's memory only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from runwise.model import LIVE_SECONDS, RUNNING, Run, RunEntry

log = logging.getLogger("runwise.index")

INDEX_FILE = "index.sqlite3"


def index_path(cache_dir: Path) -> Path:
    """Where the index of a cache directory lives: beside it (`<cache dir>-index/index.sqlite3`).

    Not in it: `runwise cache clear` removes only the disk cache's own files, and would leave it.
    """
    return cache_dir.with_name(cache_dir.name + "-index") / INDEX_FILE

VERSION = 2  # sqlite's user_version: a file of another version is rebuilt
SPARK_WIDTH = 12
MAX_SPARKS = 64  # sparklines kept per run (the other metrics keep their values only)
_COLUMNS = ("files", "source", "id", "name", "state", "first_step", "last_step", "runtime", "config_digest",
            "tags", "metrics", "partial", "indexed")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    root TEXT NOT NULL, key TEXT NOT NULL, {", ".join(_COLUMNS)},
    PRIMARY KEY (root, key)
)"""
_lock = threading.Lock()
_memory: dict[tuple[str, str], tuple[Any, ...]] = {}  # (root, key) -> row values, when there is no file


@dataclass(frozen=True)
class MetricRow:
    """One metric of an indexed run. Steps go with the value before them; None when there is none."""

    count: int
    last: float  # the last value, NaN or inf included
    final_step: int | None  # the last finite value
    final: float | None
    min_step: int | None
    min: float | None
    max_step: int | None
    max: float | None
    spark: str | None  # None: not kept (more than MAX_SPARKS metrics)


@dataclass(frozen=True)
class Row:
    """What the index knows of one run."""

    key: str
    source: str
    id: str
    name: str
    state: str
    first_step: int | None
    last_step: int | None
    runtime: float | None
    config_digest: str
    tags: tuple[str, ...]
    metrics: dict[str, MetricRow] = field(default_factory=dict)
    # read from the log's ends only (see `partial_row`): final values, state and steps are the run's, but
    # counts, lowest and highest values and sparklines are not known (0 / None), and only the metrics
    # the log's last records hold are there
    partial: bool = False


# ---------------------------------------------------------------- rows from runs


def partial_row(run: Run, key: str, tail: Collection[str] | None = None) -> Row:
    """The row of a run read from its log's first and last records only: what those tell (see Row.partial).

    `tail`: the metrics the last records hold, the only ones whose final values the ends tell (one seen
    in the head only may have gone on in the middle); the others are left out. None: every metric.
    """
    full = row_of(run, key, sparks=False)
    metrics = {name: MetricRow(0, m.last, m.final_step, m.final, None, None, None, None, None)
               for name, m in full.metrics.items() if tail is None or name in tail}
    return dataclasses.replace(full, metrics=metrics, partial=True)


def row_of(run: Run, key: str, *, sparks: bool = True) -> Row:
    """The index row of a loaded run, stored under the run key `key` (its canonical entry's)."""
    metrics: dict[str, MetricRow] = {}
    firsts: list[int] = []
    for i, (name, s) in enumerate(sorted(run.history.items())):
        if not len(s):
            continue
        firsts.append(int(s.steps[0]))
        metrics[name] = _metric_row(s.steps, s.values, spark=sparks and i < MAX_SPARKS)
    config = orjson.dumps(run.config, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return Row(key=key, source=run.source, id=run.id, name=run.name, state=run.state,
               first_step=min(firsts) if firsts else None, last_step=run.last_step, runtime=run.runtime,
               config_digest=hashlib.sha1(config).hexdigest()[:12], tags=tuple(run.tags), metrics=metrics)


def _metric_row(steps: np.ndarray[Any, Any], values: np.ndarray[Any, Any], *, spark: bool) -> MetricRow:
    from runwise.analysis.sparkline import sparkline  # here: looking a run up needs no analysis modules

    finite = np.isfinite(values)
    line = sparkline(values, width=SPARK_WIDTH) if spark else None
    if not finite.all():
        steps, kept = steps[finite], values[finite]
    else:
        kept = values
    if not kept.size:
        return MetricRow(len(values), float(values[-1]), None, None, None, None, None, None, line)
    lo, hi = int(np.argmin(kept)), int(np.argmax(kept))
    return MetricRow(len(values), float(values[-1]), int(steps[-1]), float(kept[-1]), int(steps[lo]),
                     float(kept[lo]), int(steps[hi]), float(kept[hi]), line)


# ---------------------------------------------------------------- file identity


def file_stats(entry: RunEntry) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of each file a run's reading depends on: its logs and side files, never media.

    A file path is itself (size -1 when it is missing); a directory (a W&B run directory) is the files
    at its top level and in its `files/` folder, the only places its reader looks.
    """
    version = entry.extra.get("version") if entry.extra.get("remote") else None
    if version is not None:  # a W&B cloud run (runwise.parsers.wandb_cloud): its version stands for its files
        return [(str(version[0]), int(version[1]), int(version[2]))]
    parts: list[tuple[str, int, int]] = []
    for p in entry.paths:
        try:
            st = p.stat()
        except OSError:
            parts.append((str(p), -1, 0))
            continue
        if not stat.S_ISDIR(st.st_mode):  # the mode p.stat() gave: no second stat
            parts.append((str(p), st.st_size, st.st_mtime_ns))
            continue
        if entry.extra.get("deep"):  # a run whose files are in nested folders (an MLflow file-store run)
            for dirpath, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    with contextlib.suppress(OSError):
                        fst = os.stat(os.path.join(dirpath, name))
                        parts.append((os.path.join(dirpath, name), fst.st_size, fst.st_mtime_ns))
            continue
        for d in (p, p / "files"):
            with contextlib.suppress(OSError), os.scandir(d) as it:
                for f in sorted(it, key=lambda f: f.name):
                    with contextlib.suppress(OSError):
                        if f.is_file():
                            fst = f.stat()
                            parts.append((f.path, fst.st_size, fst.st_mtime_ns))
    return parts


def files_identity(entry: RunEntry) -> str:
    """The identity of the files a run depends on (`file_stats`), as one string."""
    return orjson.dumps(file_stats(entry)).decode()


# ---------------------------------------------------------------- the store


class RunIndex:
    """The index of one project (`root`) in the file `path`, or in this process's memory (`path` None)."""

    def __init__(self, path: Path | None, root: str) -> None:
        self.path = path
        self.root = root

    # -- reading

    def lookup(self, entries: Iterable[RunEntry]) -> dict[str, Row]:
        """The rows of those `entries` whose files are unchanged since they were indexed, by run key."""
        wanted = {e.key: e for e in entries}
        if not wanted:
            return {}
        stored = self._all()
        found: dict[str, Row] = {}
        now = time.time()
        for key, e in wanted.items():
            values = stored.get(key)
            if values is None or values[0] != files_identity(e):
                continue
            row = _decode(key, values)
            if row is None:
                continue
            if row.state == RUNNING and now - e.mtime > LIVE_SECONDS:
                continue  # it stopped writing since: a load tells how it ended
            found[key] = row
        return found

    def _all(self) -> dict[str, tuple[Any, ...]]:
        if self.path is None:
            with _lock:
                return {k: v for (root, k), v in _memory.items() if root == self.root}
        with self._connect() as db:
            cur = db.execute(f"SELECT key, {', '.join(_COLUMNS)} FROM runs WHERE root = ?", (self.root,))
            return {r[0]: tuple(r[1:]) for r in cur.fetchall()}

    def _keys(self) -> list[str]:
        """The run keys this project has rows for (no row read whole)."""
        if self.path is None:
            with _lock:
                return [k for root, k in _memory if root == self.root]
        with self._connect() as db:
            return [k for (k,) in db.execute("SELECT key FROM runs WHERE root = ?", (self.root,)).fetchall()]

    # -- writing

    def put(self, entry: RunEntry, files: str, run: Run) -> Row:
        """Index `run`, read from `entry`'s files, whose identity was `files` (files_identity) before the read."""
        row = row_of(run, entry.key)
        self.put_many([(files, row)])
        return row

    def put_many(self, items: Iterable[tuple[str, Row]]) -> None:
        """Store each (files, row) in one transaction: the row of a run read from files of identity `files`."""
        values = [(self.root, row.key, *_encode(files, row)) for files, row in items]
        if self.path is None:
            with _lock:
                for v in values:
                    _memory[(self.root, v[1])] = v[2:]
        else:
            with self._connect() as db:
                db.executemany(f"INSERT OR REPLACE INTO runs (root, key, {', '.join(_COLUMNS)}) "
                               f"VALUES (?, ?, {', '.join('?' * len(_COLUMNS))})", values)

    def prune(self, keep: Iterable[str]) -> int:
        """Remove the rows of this project's runs not in `keep`, and of projects whose root is gone.

        Returns how many rows of this project were removed.
        """
        kept = set(keep)
        gone = [k for k in self._keys() if k not in kept]
        if self.path is None:
            with _lock:
                for k in gone:
                    _memory.pop((self.root, k), None)
            return len(gone)
        with self._connect() as db:
            db.executemany("DELETE FROM runs WHERE root = ? AND key = ?", [(self.root, k) for k in gone])
            roots = [r for (r,) in db.execute("SELECT DISTINCT root FROM runs").fetchall()]
            db.executemany("DELETE FROM runs WHERE root = ?", [(r,) for r in roots if not Path(r).is_dir()])
        return len(gone)

    def forget(self, key: str) -> bool:
        """Remove the row of this project's run `key` (`runwise cache clear RUN`); True if there was one."""
        if self.path is None:
            with _lock:
                return _memory.pop((self.root, key), None) is not None
        if not self.path.exists():
            return False
        with self._connect() as db:
            return db.execute("DELETE FROM runs WHERE root = ? AND key = ?", (self.root, key)).rowcount > 0

    # -- the file

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction (committed when the block ends without error).

        A file sqlite cannot read, or of another VERSION, is removed and created again.
        """
        path = self.path
        if path is None:
            raise RuntimeError("the in-memory index has no file")
        try:
            db = _open(path)
        except sqlite3.DatabaseError as exc:
            log.debug("rebuilding the run index %s: %s", path, exc)
            remove(path)
            db = _open(path)
        try:
            with db:
                yield db
        finally:
            db.close()


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10.0)
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != VERSION:
            _create(db)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("SELECT count(*) FROM runs").fetchone()  # a damaged file fails here, not mid-listing
    except BaseException:
        db.close()
        raise
    return db


def _create(db: sqlite3.Connection) -> None:
    """Create the table in an empty file (once, however many processes try at the same time)."""
    db.execute("PRAGMA journal_mode=WAL")
    level = db.isolation_level
    db.isolation_level = None  # the transaction below is spelled out
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and not db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            db.execute(_SCHEMA)
            db.execute(f"PRAGMA user_version = {VERSION}")
        elif version != VERSION:
            raise sqlite3.DatabaseError(f"not a run index of version {VERSION} (version {version})")
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # none is open if BEGIN itself failed
            db.execute("ROLLBACK")
        raise
    finally:
        db.isolation_level = level


def clear(cache_dir: Path) -> bool:
    """Remove the index of `cache_dir` (`runwise cache clear`); True if there was one."""
    path = index_path(cache_dir)
    existed = path.exists()
    remove(path)
    return existed


def remove(path: Path) -> None:
    """Remove an index file and its WAL and shared-memory files."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            p.unlink()


def clear_memory() -> None:
    """Forget the in-memory index (the one used when the disk cache is off)."""
    with _lock:
        _memory.clear()


# ---------------------------------------------------------------- encoding


def _encode(files: str, row: Row) -> tuple[Any, ...]:
    metrics = {name: [m.count, _float_out(m.last), m.final_step, m.final, m.min_step, m.min, m.max_step, m.max,
                      m.spark] for name, m in row.metrics.items()}
    return (files, row.source, row.id, row.name, row.state, row.first_step, row.last_step, row.runtime,
            row.config_digest, orjson.dumps(list(row.tags)).decode(), orjson.dumps(metrics).decode(), int(row.partial),
            time.time())


def _decode(key: str, values: tuple[Any, ...]) -> Row | None:
    """The Row of stored `values`; None when they are not what `_encode` writes (a damaged row)."""
    try:
        _, source, run_id, name, state, first, last, runtime, digest, tags, metrics, partial, _ = values
        decoded = {n: MetricRow(int(c), float(la), fs, f, ns, mn, xs, mx, sp)
                   for n, (c, la, fs, f, ns, mn, xs, mx, sp) in orjson.loads(metrics).items()}
        return Row(key=key, source=str(source), id=str(run_id), name=str(name), state=str(state),
                   first_step=first, last_step=last, runtime=runtime, config_digest=str(digest),
                   tags=tuple(str(t) for t in orjson.loads(tags)), metrics=decoded, partial=bool(partial))
    except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        log.debug("ignoring a damaged index row %s: %s", key, exc)
        return None


def _float_out(x: float) -> float | str:
    return x if np.isfinite(x) else str(x)  # "nan", "inf", "-inf": JSON has no such numbers
