"""Answers kept on disk per run version, so the next process answers a repeated question at once.

A tool's answer about some runs depends only on the request, the runs' files, the project's
configuration and runwise's own code. So an answer is stored under a key made of all four: the
tool and its request (or the CLI command's fields, format and budget), the identity of every run
the request names (resolved as the tool resolves it: its run key and the size and mtime of each
file its reading depends on, never media; runs.file identity), a digest of runwise.json and the
directories the configuration names, and a digest of runwise's own source files (an edited or
upgraded runwise never answers with an older one's text).

Two forms are kept. A handler's output model as JSON (`MODEL`, table `answers`): the server, the
API and the CLI answer from it without loading the run. And the text a CLI command printed (table
`quick`), found before the configuration is even read: under a key of the command itself (tool,
fields, format, budget, project root, working directory, RUNWISE_* variables, runwise.json's bytes,
runwise's code), with the *proof* that the answer still holds: the stat of every directory the
run listing looked at (parsers._walk.recording) and of every file of every run it found. While no
directory and no file changed, a listing would find the same runs with the same names, and a
reference would resolve to the same run, unchanged. So a fresh `runwise stats` answers with
neither pydantic nor numpy imported, and no run listed or read.

Only the tools about named runs are kept (`TOOL_REFS`); `live_status` is not (its "seconds since
the last write" moves with the clock), nor `list_runs` and `find_best_run` (the run index answers
those). An answer is stored only when every file it depends on was last written over LIVE_SECONDS
ago (a run written to since may be shown as running, a state that changes with the clock alone),
and only when the files did not change while it was computed.

The store is one SQLite file beside the disk cache (`<cache dir>-index/answers.sqlite3`), never in
a run directory, off when the cache is off. It holds at most MAX_ROWS answers and MAX_BYTES of
text, the least recently used go first. An unreadable file is removed and started again; any
failure to read or write it is a miss, never an error: the tool then computes its answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig
    from runwise.model import RunEntry

log = logging.getLogger("runwise.answers")

FORMAT = 2
FILE = "answers.sqlite3"
MODEL = "model"
MAX_ROWS = 5_000
MAX_BYTES = 64 * 1024 * 1024
SETTLE_SECONDS = 5.0  # beyond LIVE_SECONDS: a file written this recently may still be a live run's
# tool -> the request fields that name runs (a str field, or a list of them)
TOOL_REFS: dict[str, str] = {
    "summarize_run": "run", "get_run_context": "run", "get_config": "run", "list_keys": "run",
    "get_stats": "run", "get_history": "run", "get_stability": "run", "detect_anomalies": "run",
    "compare_runs": "runs",
}
_LOCAL = ("wandb", "tensorboard", "jsonl")  # the sources whose runs are files on disk
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    runs TEXT NOT NULL,
    body TEXT NOT NULL,
    used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_used ON answers(used);
CREATE TABLE IF NOT EXISTS quick (
    key TEXT PRIMARY KEY,
    runs TEXT NOT NULL,
    body TEXT NOT NULL,
    proof TEXT NOT NULL,
    used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS quick_used ON quick(used);
"""
_TABLES = ("answers", "quick")


@dataclass(frozen=True)
class Ticket:
    """What an answer is stored under: its key, and the runs (and their files' identity) it is about."""

    key: str
    runs: tuple[str, ...]  # the canonical run keys (for `cache clear RUN`)
    entries: tuple[RunEntry, ...]
    files: tuple[tuple[tuple[str, int, int], ...], ...]  # per run: (path, size, mtime_ns) of its files
    proof: tuple[tuple[str, str, int, int], ...] = ()  # see `ticket(proof=True)`


def store_path(cache_dir: Path) -> Path:
    """Where the answers of a cache directory are kept: beside the run index, outside the cache's own files."""
    return cache_dir.with_name(cache_dir.name + "-index") / FILE


# ---------------------------------------------------------------- keys


_code: str | None = None


def code_version() -> str:
    """A digest of runwise's source files' names, sizes and mtimes (computed once per process): an
    edited, upgraded or reinstalled runwise has another."""
    global _code
    if _code is None:
        pkg = Path(__file__).parent
        h = hashlib.sha1(str(pkg).encode())
        for p in sorted(pkg.rglob("*.py")):
            try:
                st = p.stat()
            except OSError:
                continue
            h.update(f"{p.relative_to(pkg)}:{st.st_size}:{st.st_mtime_ns};".encode())
        _code = h.hexdigest()
    return _code


def config_digest(cfg: RunwiseConfig) -> str:
    """The configuration an answer depends on: runwise.json's values as the configuration holds them
    now (its schema, thresholds and intervals, which a caller may have changed) and the directories read."""
    dirs = [str(cfg.root), str(cfg.wandb_dir), str(cfg.logs_dir), *map(str, cfg.tensorboard_dirs)]
    used = [cfg.project_name, cfg.schema.model_dump(mode="json"), cfg.anomaly.model_dump(mode="json"),
            cfg.downsample_interval]
    return hashlib.sha1(orjson.dumps([cfg.file.model_dump(mode="json"), used, dirs])).hexdigest()


def refs(tool: str, request: Mapping[str, Any]) -> list[str] | None:
    """The run references a request names (a missing one is "latest"); None for a tool whose answers are not kept."""
    field = TOOL_REFS.get(tool)
    if field is None:
        return None
    value = request.get(field)
    if field == "runs":
        return [str(r) for r in value] if isinstance(value, list | tuple) and value else None
    return [str(value) if value else "latest"]


def ticket(
    cfg: RunwiseConfig, tool: str, form: str, request: Mapping[str, Any], *, proof: bool = False
) -> Ticket | None:
    """The key `tool`'s answer to `request` in `form` is kept under; None when it is not kept (the cache is
    off, the tool's answers are not kept, or a reference does not resolve: the tool then says why).

    With `proof`, the ticket also holds what a `quick` answer is checked against: ("d", path, 0,
    mtime_ns) of every directory the listing looked at, of each run directory and its `files/`
    (-1 for one that is missing), and ("f", path, size, mtime_ns) of every file of every run found.
    """
    if not cfg.cache_enabled:
        return None
    names = refs(tool, request)
    if names is None:
        return None
    from runwise import index, runs
    from runwise.errors import RunwiseError
    from runwise.parsers._walk import dir_stat, recording

    try:
        with recording() as listed:
            entries, _ = runs.discover(cfg)
            found = tuple(runs.canonical_entry(runs.resolve(runs.split_step(r)[0], cfg, entries)) for r in names)
    except (RunwiseError, OSError):
        return None
    files = tuple(tuple(index.file_stats(e)) for e in found)
    if not all(files) or any(e.source not in _LOCAL for e in found):
        return None  # a run without files on disk (a cloud run): nothing tells its version
    seen: dict[tuple[str, str], tuple[str, str, int, int]] = {}
    if proof:
        for path, size, mtime in listed:
            seen["d", path] = ("d", path, size, mtime)
        for e in (*entries, *found):
            for p in e.paths:
                for d in (p, p / "files"):
                    if ("d", str(d)) not in seen and d.is_dir():
                        seen["d", str(d)] = ("d", *dir_stat(str(d)))
            for path, size, mtime in index.file_stats(e):
                seen["f", path] = ("f", path, size, mtime)
    try:
        body = orjson.dumps(
            [FORMAT, code_version(), config_digest(cfg), tool, form, request, [e.key for e in found], files],
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        )
    except TypeError:  # a request value orjson cannot write: not kept
        return None
    return Ticket(hashlib.sha256(body).hexdigest(), tuple(e.key for e in found), found, files, tuple(seen.values()))


def settled(t: Ticket, now: float | None = None) -> bool:
    """Whether the runs' files are as they were when `t` was made, and none was written in the last
    LIVE_SECONDS (+ SETTLE_SECONDS): only then is an answer the same whenever it is asked."""
    from runwise import index
    from runwise.model import LIVE_SECONDS

    if tuple(tuple(index.file_stats(e)) for e in t.entries) != t.files:
        return False
    cutoff = ((time.time() if now is None else now) - LIVE_SECONDS - SETTLE_SECONDS) * 1e9
    return all(run for run in t.files) and all(
        size >= 0 and mtime_ns < cutoff for run in t.files for _, size, mtime_ns in run)


# ---------------------------------------------------------------- the store


@contextlib.contextmanager
def _connect(cache_dir: Path, *, create: bool) -> Iterator[sqlite3.Connection | None]:
    """The store, or None when it does not exist and `create` is false. A file that is not a store of
    this FORMAT is removed and started again."""
    path = store_path(cache_dir)
    if not create and not path.is_file():
        yield None
        return
    for attempt in (1, 2):
        con: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version != FORMAT:
                con.executescript("DROP TABLE IF EXISTS answers; DROP TABLE IF EXISTS quick;"
                                  + _SCHEMA + f"PRAGMA user_version={FORMAT};")
            break
        except sqlite3.DatabaseError as exc:  # not a database, or damaged: start again
            if con is not None:
                con.close()
            if attempt == 2:
                raise
            log.debug("answer store %s unusable (%s): removed", path, exc)
            for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                with contextlib.suppress(OSError):
                    p.unlink()
    assert con is not None
    try:
        yield con
    finally:
        con.close()


def get(cfg: RunwiseConfig, t: Ticket) -> str | None:
    """The answer kept under `t`, or None; a hit becomes the most recently used."""
    try:
        with _connect(cfg.cache_dir, create=False) as con:
            if con is None:
                return None
            row = con.execute("SELECT body FROM answers WHERE key = ?", (t.key,)).fetchone()
            if row is None or not isinstance(row[0], str):
                return None
            con.execute("UPDATE answers SET used = ? WHERE key = ?", (time.time(), t.key))
            return row[0]
    except (sqlite3.Error, OSError) as exc:
        log.debug("answer not read: %s", exc)
        return None


def put(cfg: RunwiseConfig, t: Ticket, body: str) -> bool:
    """Keep `body` under `t` if the runs' files are settled (see `settled`); True if it was kept."""
    if not settled(t):
        return False
    try:
        with _connect(cfg.cache_dir, create=True) as con:
            assert con is not None
            con.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                        (t.key, orjson.dumps(list(t.runs)).decode(), body, time.time()))
            _prune(con)
        return True
    except (sqlite3.Error, OSError) as exc:
        log.debug("answer not kept: %s", exc)
        return False


def forget(cfg: RunwiseConfig, t: Ticket) -> None:
    """Remove the answer kept under `t` (it could not be used)."""
    with contextlib.suppress(sqlite3.Error, OSError), _connect(cfg.cache_dir, create=False) as con:
        if con is not None:
            con.execute("DELETE FROM answers WHERE key = ?", (t.key,))


def _prune(con: sqlite3.Connection) -> None:
    """Hold the store to MAX_ROWS answers and MAX_BYTES of text, least recently used first (both tables together)."""
    count, size = con.execute(
        "SELECT sum(n), sum(b) FROM (SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b FROM answers "
        "UNION ALL SELECT count(*), coalesce(sum(length(body) + length(proof)), 0) FROM quick)").fetchone()
    if count <= MAX_ROWS and size <= MAX_BYTES:
        return
    rows = con.execute("SELECT 'answers', key, length(body), used FROM answers UNION ALL "
                       "SELECT 'quick', key, length(body) + length(proof), used FROM quick ORDER BY 4").fetchall()
    for table, key, n, _ in rows:
        if count <= MAX_ROWS and size <= MAX_BYTES:
            break
        con.execute(f"DELETE FROM {table} WHERE key = ?", (key,))  # noqa: S608 - table is one of _TABLES
        count, size = count - 1, size - n


def clear(cache_dir: Path, run_key: str | None = None) -> int:
    """Remove every answer kept (or those about run `run_key`); how many were removed."""
    removed = 0
    try:
        with _connect(cache_dir, create=False) as con:
            if con is None:
                return 0
            for table in _TABLES:
                if run_key is None:
                    removed += con.execute(f"DELETE FROM {table}").rowcount  # noqa: S608
                    continue
                rows = [k for k, r in con.execute(f"SELECT key, runs FROM {table}")  # noqa: S608
                        if run_key in _run_keys(r)]
                con.executemany(f"DELETE FROM {table} WHERE key = ?", [(k,) for k in rows])  # noqa: S608
                removed += len(rows)
    except (sqlite3.Error, OSError) as exc:
        log.debug("answers not cleared: %s", exc)
    return removed


def _run_keys(stored: str) -> list[str]:
    try:
        keys = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return []
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def count(cache_dir: Path) -> int:
    """How many answers are kept (both forms)."""
    try:
        with _connect(cache_dir, create=False) as con:
            if con is None:
                return 0
            return sum(int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in _TABLES)  # noqa: S608
    except (sqlite3.Error, OSError):
        return 0


# ---------------------------------------------------------------- the CLI's quick answers


@dataclass(frozen=True)
class Quick:
    """Where a CLI command's text is kept: the key of the command, and the store's directory."""

    key: str
    cache_dir: Path


_ENV = ("CLAUDE_PROJECT_DIR", "HOME")


def quick(tool: str, form: str, fields: Mapping[str, Any], root: str | None) -> Quick | None:
    """The key a CLI command's text is kept under, made without reading the configuration: None when
    the tool's answers are not kept or the cache is off (RUNWISE_NO_CACHE, runwise.json's `cache`
    or `cache_max_bytes`), or anything about it is unclear (the command then runs as usual)."""
    import json
    import os

    from runwise._root import cache_dir_of, project_root_dir
    from runwise.errors import RunwiseError

    if tool not in TOOL_REFS or os.environ.get("RUNWISE_NO_CACHE", "") not in ("", "0"):
        return None
    try:
        project = project_root_dir(root, os.environ).resolve()
        config_file = project / "runwise.json"
        raw = config_file.read_bytes() if config_file.is_file() else None
        settings = json.loads(raw) if raw is not None else {}
        if not isinstance(settings, dict) or settings.get("cache") is False or settings.get("cache_max_bytes") == 0:
            return None
        if "://" in str(settings.get("tensorboard_dirs")):  # on object storage: the mirror is synced with the config
            return None
        env = sorted((k, v) for k, v in os.environ.items() if k.startswith("RUNWISE_") or k in _ENV)
        body = orjson.dumps(
            [FORMAT, code_version(), tool, form, fields, str(project), os.getcwd(), env,
             hashlib.sha1(raw).hexdigest() if raw is not None else None],
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        )
    except (OSError, ValueError, TypeError, RunwiseError):  # a root that is no directory, a runwise.json that is
        return None  # no JSON, a field orjson cannot write: the command runs as usual and says what is wrong
    return Quick(hashlib.sha256(body).hexdigest(), cache_dir_of(os.environ))


def quick_get(q: Quick) -> str | None:
    """The text kept under `q` if its proof still holds (every directory and file as it was); else None."""
    try:
        with _connect(q.cache_dir, create=False) as con:
            if con is None:
                return None
            row = con.execute("SELECT body, proof FROM quick WHERE key = ?", (q.key,)).fetchone()
            if row is None or not _holds(row[1]):
                return None
            con.execute("UPDATE quick SET used = ? WHERE key = ?", (time.time(), q.key))
            return str(row[0])
    except (sqlite3.Error, OSError, orjson.JSONDecodeError) as exc:
        log.debug("quick answer not read: %s", exc)
        return None


def _holds(stored: str) -> bool:
    """Whether every directory and file of a proof is as it was (see `ticket(proof=True)`)."""
    import os

    from runwise.parsers._walk import dir_stat

    proof = orjson.loads(stored)
    if not isinstance(proof, list) or not proof:
        return False
    for item in proof:
        kind, path, size, mtime = item
        if kind == "d":
            if tuple(dir_stat(path)) != (path, size, mtime):
                return False
            continue
        try:
            st = os.stat(path)
        except OSError:
            if size != -1:
                return False
            continue
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            return False
    return True


def quick_put(q: Quick, t: Ticket, text: str) -> bool:
    """Keep a command's `text` under `q`, with `t`'s proof, if the runs are settled; True if kept."""
    if not t.proof or not settled(t):
        return False
    try:
        with _connect(q.cache_dir, create=True) as con:
            assert con is not None
            con.execute("INSERT OR REPLACE INTO quick VALUES (?, ?, ?, ?, ?)",
                        (q.key, orjson.dumps(list(t.runs)).decode(), text, orjson.dumps(list(t.proof)).decode(),
                         time.time()))
            _prune(con)
        return True
    except (sqlite3.Error, OSError) as exc:
        log.debug("quick answer not kept: %s", exc)
        return False
