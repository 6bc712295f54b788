"""MLflow tracking stores on disk, read without MLflow: the SQLite store and the `mlruns/` file store.

Where: `mlflow.db` and `mlruns/` under the project root, plus the store that `RUNWISE_MLFLOW_TRACKING_URI`,
`MLFLOW_TRACKING_URI` or runwise.json's `mlflow_tracking_uri` names (`sqlite:///path.db`, `file:path`
or a path: a `.db` file or a directory; relative paths are relative to the project root).

- SQLite: read with the standard library, read-only (`mode=ro`: never a write lock), so it works
  while MLflow writes; a locked database is retried briefly, then a one-line SourceError.
- File store: `mlruns/<experiment_id>/<run_id>/{meta.yaml, metrics/<key>, params/<key>, tags/<key>}`;
  a key with '/' is nested folders; a metric file is lines `timestamp value step`. A malformed line
  or a last line without its newline (half-written) is skipped and counted in `Run.warnings`.

A run's id is `EXPERIMENT/RUN_NAME` (`mlflow:EXPERIMENT/RUN_NAME`); its MLflow run id and any prefix of
it also resolve (`RunEntry.extra["aliases"]`). Status RUNNING/FINISHED/FAILED/KILLED maps to running,
finished, failed, crashed; a RUNNING run whose store has not changed in LIVE_SECONDS crashed.
Params are the config (numbers parsed), `mlflow.note.content` the notes, `mlflow.runName` the
name, other tags not starting with `mlflow.` the tags (`key=value`). NaN stays NaN.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from runwise import _yaml
from runwise.errors import SourceError, UnsupportedFormat
from runwise.model import CRASHED, FAILED, FINISHED, LIVE_SECONDS, RUNNING, UNKNOWN, Run, RunEntry, make_series
from runwise.parsers import Progress, _sqlite
from runwise.parsers._walk import files_stamp

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig

DB_NAME = "mlflow.db"
FILE_STORE = "mlruns"
# the file store writes status as a number (mlflow.entities.RunStatus)
_STATUS_NUMBERS = {"1": "RUNNING", "2": "SCHEDULED", "3": "FINISHED", "4": "FAILED", "5": "KILLED"}
_STATES = {"FINISHED": FINISHED, "FAILED": FAILED, "KILLED": CRASHED}
NOTE_TAG, NAME_TAG = "mlflow.note.content", "mlflow.runName"
_HALF = "half-written last line"
_T = TypeVar("_T")


@dataclass
class _RunData:
    """One run as either store holds it; times in ms since the epoch, as MLflow keeps them."""

    run_id: str
    experiment: str
    name: str
    status: str
    start_ms: float | None
    end_ms: float | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # key -> (steps int64, values float64), in the store's order (make_series sorts by step, stably)
    metrics: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    last_ms: int = 0  # the newest metric timestamp
    skipped: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- where the stores are


def stores(cfg: RunwiseConfig) -> tuple[list[Path], list[Path]]:
    """The SQLite files and file-store directories to read (those that exist)."""
    dbs, dirs = [cfg.root / DB_NAME], [cfg.root / FILE_STORE]
    uri = getattr(cfg, "mlflow_tracking_uri", None)
    if uri:
        kind, path = parse_uri(uri, cfg.root)
        if kind == "sqlite":
            dbs.append(path)
        elif kind == "file":
            dirs.append(path)
    return _existing(dbs, Path.is_file), _existing(dirs, Path.is_dir)


def parse_uri(uri: str, root: Path) -> tuple[str, Path]:
    """`sqlite:///rel.db` / `sqlite:////abs.db` -> ("sqlite", path); `file:...` or a path -> ("file", path);
    anything else (a tracking server) -> ("", root)."""
    if uri.startswith("sqlite:"):
        rest = uri[len("sqlite:"):]
        path = rest[3:] if rest.startswith("///") else rest.lstrip("/")
        return "sqlite", _under(root, urllib.parse.unquote(path))
    if uri.startswith("file:"):
        parsed = urllib.parse.urlparse(uri)
        return "file", _under(root, urllib.parse.unquote(parsed.path or uri[len("file:"):]))
    if "://" in uri:
        return "", root
    return ("sqlite" if uri.endswith(".db") else "file"), _under(root, uri)


def _under(root: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return (p if p.is_absolute() else root / p).resolve()


def _existing(paths: list[Path], test: Any) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        try:
            r = p.resolve()
        except (OSError, RuntimeError):
            continue
        if test(r) and r not in out:
            out.append(r)
    return out


# ---------------------------------------------------------------- Source


def discover(cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
    """Every run of every store found (deleted runs and experiments left out); nothing of their metrics read."""
    dbs, dirs = stores(cfg)
    found: list[tuple[_RunData, tuple[Path, ...], float, int, str]] = []
    for db in dbs:
        try:
            runs = _sqlite_runs(db)
        except SourceError as exc:
            if notes is not None:
                notes.append(f"mlflow runs of {cfg.relative(db)} not listed: {exc}")
            continue
        paths: tuple[Path, ...] = (db, Path(str(db) + "-wal"))
        mtime, size = files_stamp(paths)
        found.extend((r, paths, mtime, size, "sqlite") for r in runs)
    for d in dirs:
        for r, run_dir in _file_runs(d):
            mtime, size = _tree_stamp(run_dir)
            found.extend([(r, (run_dir,), mtime, size, "file")])
    counts: dict[str, int] = {}
    for r, *_ in found:
        counts[f"{r.experiment}/{r.name}"] = counts.get(f"{r.experiment}/{r.name}", 0) + 1
    entries = []
    for r, paths, mtime, size, store in found:
        run_id = f"{r.experiment}/{r.name}"
        if counts[run_id] > 1:  # MLflow allows one name twice: the run id tells them apart
            run_id = f"{run_id}-{r.run_id[:8]}"
        extra = {"run_id": r.run_id, "store": store, "aliases": (r.run_id,), "name_final": True,
                 "deep": store == "file"}
        entries.append(RunEntry(run_id, "mlflow", paths, name=r.name, mtime=mtime, size=size, extra=extra))
    return entries


def display_name(entry: RunEntry, cfg: RunwiseConfig) -> str:
    return entry.name


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    run_id = str(entry.extra.get("run_id", ""))
    if entry.extra.get("store") == "sqlite":
        data = _sqlite_run(entry.paths[0], run_id)
    else:
        data = _file_run(entry.paths[0])
    run = _to_run(data, entry.paths, cfg.relative(entry.paths[0]))
    run.id = entry.id
    return run


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """A file-store run directory, or a SQLite store holding a single run."""
    if path.is_dir():
        return _to_run(_file_run(path), (path,), cfg.relative(path))
    runs = _sqlite_runs(path)
    if len(runs) != 1:
        raise UnsupportedFormat(f"{path.name} holds {len(runs)} MLflow runs: name one as mlflow:EXPERIMENT/RUN_NAME",
                                path=str(path))
    run = _to_run(_sqlite_run(path, runs[0].run_id), (path, Path(str(path) + "-wal")), cfg.relative(path))
    return run


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    return None  # a full read: the caller loads again when the store changed


def is_run_dir(path: Path) -> bool:
    """A file-store run directory: `meta.yaml` next to a `metrics` folder."""
    return (path / "meta.yaml").is_file() and (path / "metrics").is_dir()


# ---------------------------------------------------------------- the run model


def _to_run(data: _RunData, paths: tuple[Path, ...], shown: str) -> Run:
    mtime, _ = _tree_stamp(paths[0]) if paths[0].is_dir() else files_stamp(paths)
    history = {key: make_series(key, steps, values) for key, (steps, values) in data.metrics.items()}
    last_ts = data.last_ms
    status = data.status
    if status == "RUNNING":
        state = RUNNING if time.time() - mtime < LIVE_SECONDS else CRASHED
    else:
        state = _STATES.get(status, UNKNOWN)
    start = data.start_ms / 1000 if data.start_ms else None
    end_ms = data.end_ms or last_ts or None  # a run not ended: its last metric point
    runtime = (end_ms - data.start_ms) / 1000 if data.start_ms and end_ms and end_ms >= data.start_ms else None
    warnings = []
    if data.skipped:
        parts = [f"{n} {why}" for why, n in sorted(data.skipped.items())]
        warnings.append(f"skipped {sum(data.skipped.values())} metric lines: " + "; ".join(parts))
    tags = sorted(f"{k}={v}" if v else k for k, v in data.tags.items() if not k.startswith("mlflow."))
    return Run(
        id=data.run_id,
        source="mlflow",
        path=shown,
        name=data.tags.get(NAME_TAG) or data.name,
        state=state,
        project=data.experiment,
        notes=data.tags.get(NOTE_TAG, ""),
        tags=tags,
        config={k: _param(v) for k, v in sorted(data.params.items())},
        summary={k: float(s.values[-1]) for k, s in history.items() if len(s)},
        start_time=start,
        runtime=runtime,
        last_write=mtime,
        history=history,
        warnings=warnings,
        truncated=data.skipped.get(_HALF, 0) > 0,
    )


def _param(text: str) -> Any:
    """MLflow keeps params as strings: numbers and booleans become values again."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if not (isinstance(value, float) and math.isinf(value) and "inf" not in text.lower()) else text
    return text


def _tree_stamp(path: Path) -> tuple[float, int]:
    return files_stamp(os.path.join(dirpath, f) for dirpath, _, files in os.walk(path) for f in files)


# ---------------------------------------------------------------- SQLite


def _query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of one read-only query (a locked database is retried: runwise.parsers._sqlite)."""
    return _read(db, lambda con: con.execute(sql, args).fetchall())


def _read(db: Path, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """`work(con)` on a read-only connection in one read transaction (one snapshot of the store)."""
    return _sqlite.read(db, work, f"the MLflow store {db.name}")


_RUNS_SQL = (
    "SELECT r.run_uuid, e.name, r.name, r.status, r.start_time, r.end_time FROM runs r"
    " JOIN experiments e ON e.experiment_id = r.experiment_id"
    " WHERE r.lifecycle_stage != 'deleted' AND e.lifecycle_stage != 'deleted'"
)


def _sqlite_runs(db: Path) -> list[_RunData]:
    rows = _query(db, _RUNS_SQL + " ORDER BY r.start_time, r.run_uuid")
    return [_RunData(str(u), str(e), str(n or u), str(s or ""), st, en) for u, e, n, s, st, en in rows]


def _sqlite_run(db: Path, run_id: str) -> _RunData:
    return _read(db, lambda con: _sqlite_run_in(con, db, run_id))


# the metric keys of a run, one index seek each (MLflow's index on run, key, step) instead of a scan of every point
_KEYS_SQL = (
    "WITH RECURSIVE k(key) AS (SELECT MIN(key) FROM metrics WHERE run_uuid = ?1"
    " UNION ALL SELECT (SELECT MIN(key) FROM metrics WHERE run_uuid = ?1 AND key > k.key) FROM k"
    " WHERE k.key IS NOT NULL) SELECT key FROM k WHERE key IS NOT NULL"
)
# in the index's order (step, then the order written): no sort; NaN as NULL
_POINTS_SQL = ("SELECT step, CASE WHEN is_nan THEN NULL ELSE value END, timestamp FROM metrics"
               " WHERE run_uuid = ? AND key = ? ORDER BY step, rowid")


def _sqlite_run_in(con: sqlite3.Connection, db: Path, run_id: str) -> _RunData:
    """The run, its params, tags and every metric point, read in one transaction: each key in one query
    (in the order of MLflow's index on run, key, step), its rows made into arrays by numpy. Points at one
    step keep MLflow's order: by timestamp, then as written."""
    rows = con.execute(_RUNS_SQL + " AND r.run_uuid = ?", (run_id,)).fetchall()
    if not rows:
        raise SourceError(f"the MLflow store {db.name} no longer holds run {run_id}", path=str(db))
    u, e, n, s, st, en = rows[0]
    data = _RunData(str(u), str(e), str(n or u), str(s or ""), st, en)
    data.params = {str(k): str(v) for k, v in con.execute("SELECT key, value FROM params WHERE run_uuid = ?",
                                                          (run_id,))}
    data.tags = {str(k): str(v) for k, v in con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))}
    for (key,) in con.execute(_KEYS_SQL, (run_id,)).fetchall():
        points = con.execute(_POINTS_SQL, (run_id, key)).fetchall()
        if not points:
            continue
        step_list, value_list, stamp_list = zip(*points, strict=True)
        steps = np.array(step_list, dtype=np.int64)
        values = np.array(value_list, dtype=np.float64)  # NULL (None) is NaN
        stamps = np.array(stamp_list, dtype=np.int64)
        if steps.size > 1 and bool(np.any(steps[1:] == steps[:-1])):
            order = np.lexsort((stamps, steps))  # stable: equal (step, timestamp) stay in the order written
            steps, values, stamps = steps[order], values[order], stamps[order]
        data.metrics[str(key)] = (steps, values)
        data.last_ms = max(data.last_ms, int(stamps.max()))
    return data


# ---------------------------------------------------------------- file store


def _file_runs(store: Path) -> list[tuple[_RunData, Path]]:
    """(run without params/metrics, its directory) for each live run of each live experiment."""
    out = []
    try:
        exps = sorted(p for p in store.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for exp_dir in exps:
        meta = _meta(exp_dir / "meta.yaml")
        if meta is None or meta.get("lifecycle_stage") == "deleted":
            continue
        exp_name = meta.get("name") or exp_dir.name
        try:
            run_dirs = sorted(p for p in exp_dir.iterdir() if is_run_dir(p))
        except OSError:
            continue
        for run_dir in run_dirs:
            data = _file_meta(run_dir, exp_name)
            if data is not None:
                out.append((data, run_dir))
    return out


def _file_meta(run_dir: Path, exp_name: str | None = None) -> _RunData | None:
    meta = _meta(run_dir / "meta.yaml")
    if meta is None or meta.get("lifecycle_stage") == "deleted":
        return None
    if exp_name is None:
        exp_meta = _meta(run_dir.parent / "meta.yaml") or {}
        exp_name = exp_meta.get("name") or run_dir.parent.name
    run_id = meta.get("run_id") or meta.get("run_uuid") or run_dir.name
    status = meta.get("status", "")
    status = _STATUS_NUMBERS.get(status, status)
    name = meta.get("run_name") or _read_text(run_dir / "tags" / NAME_TAG) or run_id
    return _RunData(run_id, exp_name, name, status, _ms(meta.get("start_time")), _ms(meta.get("end_time")))


def _file_run(run_dir: Path) -> _RunData:
    data = _file_meta(run_dir)
    if data is None:
        raise SourceError(f"{run_dir.name}: no readable meta.yaml (not an MLflow run directory)", path=str(run_dir))
    data.params = _key_files(run_dir / "params")
    data.tags = _key_files(run_dir / "tags")
    metrics_dir = run_dir / "metrics"
    for key, path in sorted(_walk_keys(metrics_dir)):
        try:
            raw = path.read_bytes()
        except OSError:
            data.skipped["unreadable file"] = data.skipped.get("unreadable file", 0) + 1
            continue
        end = raw.rfind(b"\n") + 1
        if raw[end:].strip():  # the writer's last line, not finished
            data.skipped[_HALF] = data.skipped.get(_HALF, 0) + 1
        raw = raw[:end]
        got = _metric_lines_fast(raw)
        if got is None:
            got = _metric_lines(raw, data.skipped)
        steps, values, stamps = got
        if len(steps):
            data.metrics[key] = (steps, values)
            data.last_ms = max(data.last_ms, int(stamps.max()))
    return data


_OTHER_SPACE = (b"\t", b"\r", b"\x0b", b"\x0c")


def _metric_lines_fast(raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(steps, values, timestamps) of complete lines when every line is MLflow's `timestamp value step`
    (two single spaces, no empty field, no other whitespace) and every field parses as Python's int / float
    would; None otherwise (the line-by-line reader then says which lines it skipped)."""
    if not raw or any(w in raw for w in _OTHER_SPACE):
        return None
    b = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(b == 10)
    found = np.flatnonzero(b == 32)
    n = len(ends)
    if len(found) != 2 * n:
        return None
    spaces = found.reshape(n, 2)
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    # the i-th pair of spaces lies inside line i with a field on each side: every line has exactly two
    if not (np.all(spaces[:, 0] > starts) and np.all(spaces[:, 1] > spaces[:, 0] + 1)
            and np.all(ends > spaces[:, 1] + 1)):
        return None
    fields = raw.split()
    try:  # numpy parses bytes as int() / float() do
        stamps = np.array(fields[0::3], dtype=np.int64)
        values = np.array(fields[1::3], dtype=np.float64)
        steps = np.array(fields[2::3], dtype=np.int64)
    except (ValueError, OverflowError):
        return None
    return steps, values, stamps


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _metric_lines(raw: bytes, skipped: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line by line: `timestamp value [step]` (no step: 0); a malformed line is skipped and counted."""
    steps: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    for line in raw.split(b"\n"):
        parts = line.split()
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            stamp, value = int(parts[0]), float(parts[1])
            step = int(parts[2]) if len(parts) == 3 else 0
            if not (_I64_MIN <= stamp <= _I64_MAX and _I64_MIN <= step <= _I64_MAX):
                raise ValueError  # MLflow's steps and timestamps are 64-bit
        except ValueError:
            if line.strip():
                skipped["malformed line"] = skipped.get("malformed line", 0) + 1
            continue
        stamps.append(stamp)
        values.append(value)
        steps.append(step)
    return (np.array(steps, dtype=np.int64), np.array(values, dtype=np.float64),
            np.array(stamps, dtype=np.int64))


def _walk_keys(top: Path) -> list[tuple[str, Path]]:
    out = []
    for dirpath, _, files in os.walk(top):
        for f in files:
            p = Path(dirpath) / f
            out.append((p.relative_to(top).as_posix(), p))
    return out


def _key_files(top: Path) -> dict[str, str]:
    out = {}
    for key, p in _walk_keys(top):
        text = _read_text(p)
        if text is not None:
            out[key] = text
    return out


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _ms(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "null") else None
    except ValueError:
        return None


def _meta(path: Path) -> dict[str, str] | None:
    """The top-level scalar fields of an MLflow meta.yaml as text (null as ""; nested and list fields are
    left out), read by PyYAML's safe loader (runwise._yaml); None when it cannot be read, is not valid YAML
    (or an alias bomb) or is not a mapping."""
    try:
        meta = _yaml.load(path)
    except (OSError, _yaml.YamlError):
        return None
    if not isinstance(meta, dict):
        return None
    return {str(k): "" if v is None else str(v) for k, v in meta.items() if not isinstance(v, dict | list)}
