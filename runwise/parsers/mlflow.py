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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runwise.errors import SourceError, UnsupportedFormat
from runwise.model import CRASHED, FAILED, FINISHED, LIVE_SECONDS, RUNNING, UNKNOWN, Run, RunEntry, make_series
from runwise.parsers import Progress

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig

DB_NAME = "mlflow.db"
FILE_STORE = "mlruns"
LOCK_RETRIES = 5
LOCK_WAIT_S = 0.2
# the file store writes status as a number (mlflow.entities.RunStatus)
_STATUS_NUMBERS = {"1": "RUNNING", "2": "SCHEDULED", "3": "FINISHED", "4": "FAILED", "5": "KILLED"}
_STATES = {"FINISHED": FINISHED, "FAILED": FAILED, "KILLED": CRASHED}
NOTE_TAG, NAME_TAG = "mlflow.note.content", "mlflow.runName"
_HALF = "half-written last line"


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
    # key -> (steps, values, timestamps), in the store's order
    metrics: dict[str, tuple[list[int], list[float], list[int]]] = field(default_factory=dict)
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
        mtime, size = _stamp(paths)
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


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fp:
            return fp.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


# ---------------------------------------------------------------- the run model


def _to_run(data: _RunData, paths: tuple[Path, ...], shown: str) -> Run:
    mtime, _ = _tree_stamp(paths[0]) if paths[0].is_dir() else _stamp(paths)
    history = {}
    last_ts = 0
    for key, (steps, values, stamps) in data.metrics.items():
        history[key] = make_series(key, steps, values)
        if stamps:
            last_ts = max(last_ts, max(stamps))
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


def _stamp(paths: tuple[Path, ...]) -> tuple[float, int]:
    mtime, size = 0.0, 0
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        mtime, size = max(mtime, st.st_mtime), size + st.st_size
    return mtime, size


def _tree_stamp(path: Path) -> tuple[float, int]:
    mtime, size = 0.0, 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(dirpath, f))
            except OSError:
                continue
            mtime, size = max(mtime, st.st_mtime), size + st.st_size
    return mtime, size


# ---------------------------------------------------------------- SQLite


def _query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of one read-only query; a locked database is retried LOCK_RETRIES times, then a SourceError."""
    uri = "file:" + urllib.parse.quote(str(db)) + "?mode=ro"
    for attempt in range(LOCK_RETRIES + 1):
        try:
            con = sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT_S)
        except sqlite3.Error as exc:
            raise SourceError(f"cannot open the MLflow store {db.name}: {exc}", path=str(db)) from None
        try:
            return con.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                if attempt < LOCK_RETRIES:
                    time.sleep(LOCK_WAIT_S)
                    continue
                why = f"the MLflow store {db.name} stayed locked by a writer: try again"
                raise SourceError(why, path=str(db)) from None
            raise SourceError(f"cannot read the MLflow store {db.name}: {exc}", path=str(db)) from None
        except sqlite3.Error as exc:
            raise SourceError(f"cannot read the MLflow store {db.name}: {exc}", path=str(db)) from None
        finally:
            con.close()
    raise AssertionError("unreachable")


_RUNS_SQL = (
    "SELECT r.run_uuid, e.name, r.name, r.status, r.start_time, r.end_time FROM runs r"
    " JOIN experiments e ON e.experiment_id = r.experiment_id"
    " WHERE r.lifecycle_stage != 'deleted' AND e.lifecycle_stage != 'deleted'"
)


def _sqlite_runs(db: Path) -> list[_RunData]:
    rows = _query(db, _RUNS_SQL + " ORDER BY r.start_time, r.run_uuid")
    return [_RunData(str(u), str(e), str(n or u), str(s or ""), st, en) for u, e, n, s, st, en in rows]


def _sqlite_run(db: Path, run_id: str) -> _RunData:
    rows = _query(db, _RUNS_SQL + " AND r.run_uuid = ?", (run_id,))
    if not rows:
        raise SourceError(f"the MLflow store {db.name} no longer holds run {run_id}", path=str(db))
    u, e, n, s, st, en = rows[0]
    data = _RunData(str(u), str(e), str(n or u), str(s or ""), st, en)
    data.params = {str(k): str(v) for k, v in _query(db, "SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))}
    data.tags = {str(k): str(v) for k, v in _query(db, "SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))}
    points = _query(db, "SELECT key, step, value, is_nan, timestamp FROM metrics WHERE run_uuid = ?"
                        " ORDER BY key, step, timestamp, rowid", (run_id,))
    for key, step, value, is_nan, stamp in points:
        steps, values, stamps = data.metrics.setdefault(str(key), ([], [], []))
        steps.append(int(step))
        values.append(math.nan if is_nan else float(value))
        stamps.append(int(stamp))
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
        steps: list[int] = []
        values: list[float] = []
        stamps: list[int] = []
        try:
            raw = path.read_bytes()
        except OSError:
            data.skipped["unreadable file"] = data.skipped.get("unreadable file", 0) + 1
            continue
        lines = raw.split(b"\n")
        last = lines.pop()  # b"" when the file ends in a newline
        if last.strip():
            data.skipped[_HALF] = data.skipped.get(_HALF, 0) + 1
        for line in lines:
            parts = line.split()
            try:
                if len(parts) not in (2, 3):
                    raise ValueError
                stamp, value = int(parts[0]), float(parts[1])
                step = int(parts[2]) if len(parts) == 3 else 0
            except ValueError:
                if line.strip():
                    data.skipped["malformed line"] = data.skipped.get("malformed line", 0) + 1
                continue
            stamps.append(stamp)
            values.append(value)
            steps.append(step)
        if steps:
            data.metrics[key] = (steps, values, stamps)
    return data


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
    """The flat `key: value` fields of an MLflow meta.yaml (nested and list fields are left out);
    None when it cannot be read. No YAML library: MLflow writes these fields plainly."""
    text = _read_text(path)
    if text is None:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0] in " \t-#" or ":" not in line:
            continue
        key, _, value = line.partition(":")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = "" if value in ("null", "~", "[]", "{}") else value
    return out
