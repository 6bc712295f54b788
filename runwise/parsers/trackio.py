"""Trackio projects: one SQLite file `<project>.db` per project, read without trackio.

Where: the directory `RUNWISE_TRACKIO_DIR`, else `TRACKIO_DIR` (the variable trackio itself reads),
else runwise.json's `trackio_dir` names (relative paths are relative to the project root), plus
`trackio/` under the project root. Trackio's own default (`$HF_HOME/trackio`, under the home
directory's cache) is never read unless one of these names it. Only files that hold trackio's
tables (`metrics` with `run_name`/`step`/`metrics` columns, and `configs`) are read: another
SQLite file in the same folder (an MLflow store, say) is left to its source.

A run's id is `PROJECT/RUN_NAME` (`trackio:PROJECT/RUN_NAME`; the bare run name resolves too); two
runs of one project with the same name (trackio allows it) get `-<run id[:8]>` appended, and
trackio's run id (or a prefix of it) resolves either. A resumed run is one run: trackio keeps its id.

- Metrics: each row of `metrics` is one step's JSON object; every numeric key becomes a series at
  that step (nested objects flattened with "/"; booleans count as 0/1, as in JSONL logs). Trackio
  writes NaN and ±inf as the strings "NaN", "Infinity", "-Infinity": they are read back as floats
  and kept. Strings, lists and media objects are not series (`Run.non_numeric`). A step logged
  twice keeps both points, as trackio's reader does.
- System metrics (`system_metrics`, rows with a timestamp and no step): series `system/<key>`
  whose step is the sample's number (0, 1, 2, ...) within the run.
- Config: the `configs` row's JSON, flattened with "."; trackio's own `_Username`, `_Group` and
  `_Created` keys are taken out (they become `Run.entity`, `Run.group`, and a candidate start time).
- Times: the earliest and latest timestamps of the run's rows give start time and runtime.

State: trackio records nothing when a run finishes (`trackio.finish()` writes no row), so, as for
JSONL logs, a run whose newest row is younger than LIVE_SECONDS is "running" and any other "unknown".

Reading never writes: the file is opened read-only (`mode=ro`). Trackio leaves its files in WAL
mode; a read-only SQLite connection to a WAL file would create `-wal`/`-shm` files next to it when
none exist, so when no `-wal` file is there (no writer has the file open) the file is opened as
immutable and its size and mtime are checked again after the read (changed: read again). While a
writer has it open, SQLite reads through the writer's own `-wal`/`-shm` files (and marks its read in
`-shm`, as every SQLite reader does). SQLite's rule is that the last connection to close folds the
`-wal` back and deletes it, and a read-only one cannot: if trackio closes while runwise reads, the two
files stay, holding trackio's committed rows, until trackio next writes. A locked file is retried
briefly, then a one-line SourceError; a damaged one is a one-line SourceError.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from runwise._flat import flatten, media_or_empty
from runwise.errors import SourceError, UnsupportedFormat
from runwise.model import LIVE_SECONDS, RUNNING, UNKNOWN, Run, RunEntry, make_series
from runwise.parsers import Progress, _sqlite
from runwise.parsers._walk import Skipped, files_stamp, list_dir

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig

DB_EXT = ".db"
SYSTEM_PREFIX = "system/"
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_META_KEYS = ("_Username", "_Group", "_Created")
T = TypeVar("T")


@dataclass
class _RunRow:
    """One run as the project file lists it."""

    run_id: str
    name: str
    first: float | None = None  # epoch seconds of its earliest / latest row
    last: float | None = None


@dataclass
class _RunData:
    run_id: str
    name: str
    project: str
    steps: list[int] = field(default_factory=list)
    rows: list[bytes] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)
    system: list[tuple[str, bytes]] = field(default_factory=list)
    config: bytes | None = None
    config_created: str | None = None


# ---------------------------------------------------------------- where the files are


def dirs(cfg: RunwiseConfig) -> list[Path]:
    """The directories searched for `<project>.db` files: the configured one and `trackio/` at the root."""
    return cfg.trackio_dirs


def _is_db(name: str) -> bool:
    return name.endswith(DB_EXT)


def project_files(
    cfg: RunwiseConfig, skipped: Skipped, notes: list[str] | None = None
) -> list[tuple[Path, list[_RunRow]]]:
    """Every `.db` file of the searched directories that holds trackio's tables, with its runs (one read of
    each file); one note per SQLite file that could not be read (damaged, locked)."""
    found: list[tuple[Path, list[_RunRow]]] = []
    seen: set[str] = set()
    for d in dirs(cfg):
        _, _, files = list_dir(d, cfg.roots, want=_is_db, skipped=skipped, show=cfg.relative)
        for name in files:
            p = d / name
            key = os.path.realpath(p)
            if key in seen or not _sqlite.is_sqlite(p):
                continue
            seen.add(key)
            try:
                runs = _read(p, _tables_runs)
            except SourceError as exc:
                if notes is not None:
                    notes.append(f"trackio runs of {cfg.relative(p)} not listed: {exc}")
                continue
            if runs is not None:
                found.append((p, runs))
    return found


def _tables_runs(con: sqlite3.Connection) -> list[_RunRow] | None:
    """The project's runs if the file holds trackio's tables, else None."""
    return _list_runs(con) if _has_tables(con) else None


def is_trackio_db(path: Path) -> bool:
    """Whether `path` is a SQLite file with trackio's `metrics` and `configs` tables."""
    if not _sqlite.is_sqlite(path):
        return False
    try:
        return _read(path, _has_tables)
    except SourceError:
        return False


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in con.execute(f"PRAGMA table_info({table})").fetchall()}


def _has_tables(con: sqlite3.Connection) -> bool:
    return {"run_name", "step", "metrics"} <= _columns(con, "metrics") and "config" in _columns(con, "configs")


# ---------------------------------------------------------------- Source


def discover(cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
    """Every run of every project file found; nothing of their metrics read."""
    skipped = Skipped()
    entries: list[RunEntry] = []
    for db, runs in project_files(cfg, skipped, notes):
        paths = (db, Path(str(db) + "-wal"))
        mtime, size = files_stamp(paths)
        project = db.name[: -len(DB_EXT)]
        counts: dict[str, int] = {}
        for r in runs:
            counts[r.name] = counts.get(r.name, 0) + 1
        for r in runs:
            run_id = f"{project}/{r.name}"
            if counts[r.name] > 1:
                run_id = f"{run_id}-{r.run_id[:8]}"
            extra = {"run_id": r.run_id, "aliases": (r.run_id,), "name_final": True}
            entries.append(RunEntry(run_id, "trackio", paths, name=r.name, mtime=r.last or mtime, size=size,
                                    extra=extra))
    if notes is not None:
        notes.extend(skipped.notes("trackio", "trackio_dir"))
    return entries


def display_name(entry: RunEntry, cfg: RunwiseConfig) -> str:
    return entry.name


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    db = entry.paths[0]
    run_id = str(entry.extra.get("run_id", ""))
    data = _read(db, lambda con: _run_data(con, db, run_id))
    run = _to_run(data, cfg.relative(db))
    run.id = entry.id
    return run


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """A project file holding a single run."""
    runs = _read(path, _tables_runs) if _sqlite.is_sqlite(path) else None  # a damaged file: its own one-line error
    if runs is None:
        raise UnsupportedFormat(f"{path.name}: not a trackio project file", path=str(path))
    if len(runs) != 1:
        project = path.name[: -len(DB_EXT)] if path.name.endswith(DB_EXT) else path.name
        raise UnsupportedFormat(f"{path.name} holds {len(runs)} trackio runs: name one as trackio:{project}/RUN_NAME",
                                path=str(path))
    data = _read(path, lambda con: _run_data(con, path, runs[0].run_id))
    return _to_run(data, cfg.relative(path))


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    return None  # a full read: the caller loads again when the file changed


# ---------------------------------------------------------------- the run model


def _to_run(data: _RunData, shown: str) -> Run:
    warnings: list[str] = []
    non_numeric: dict[str, str] = {}
    points: dict[str, tuple[list[int], list[float]]] = {}
    bad = 0
    for step, raw in zip(data.steps, data.rows, strict=True):
        row = _json_object(raw)
        if row is None:
            bad += 1
            continue
        _add_row(points, non_numeric, row, step, "")
    if bad:
        warnings.append(f"skipped {bad} metric row{'s' if bad > 1 else ''} that did not parse as a JSON object")
    bad = 0
    times = [t for t in map(_epoch, data.stamps) if t is not None]
    for i, (stamp, raw) in enumerate(data.system):
        row = _json_object(raw)
        if row is None:
            bad += 1
            continue
        _add_row(points, non_numeric, row, i, SYSTEM_PREFIX)
        t = _epoch(stamp)
        if t is not None:
            times.append(t)
    if bad:
        warnings.append(f"skipped {bad} system-metric row{'s' if bad > 1 else ''} that did not parse as a JSON object")
    history = {k: make_series(k, s, v) for k, (s, v) in sorted(points.items())}
    config: dict[str, Any] = {}
    entity = group = ""
    if data.config is not None:
        raw_config = _json_object(data.config)
        if raw_config is None:
            warnings.append("config: not a JSON object; not read")
        else:
            entity = str(raw_config.get("_Username") or "")
            group = str(raw_config.get("_Group") or "")
            created = raw_config.get("_Created")
            for t in (_epoch(created) if isinstance(created, str) else None, _epoch(data.config_created)):
                if t is not None:
                    times.append(t)
            config = flatten(_finite({k: v for k, v in raw_config.items() if k not in _META_KEYS}))
    start = min(times) if times else None
    last = max(times) if times else None
    runtime = last - start if start is not None and last is not None else None
    state = RUNNING if last is not None and time.time() - last < LIVE_SECONDS else UNKNOWN
    return Run(
        id=data.run_id,
        source="trackio",
        path=shown,
        name=data.name,
        state=state,
        project=data.project,
        entity=entity,
        group=group,
        config=config,
        summary={k: float(s.values[-1]) for k, s in history.items() if len(s) and not k.startswith(SYSTEM_PREFIX)},
        start_time=start,
        runtime=runtime,
        last_write=last,
        history=history,
        non_numeric=non_numeric,
        warnings=warnings,
    )


def _add_row(points: dict[str, tuple[list[int], list[float]]], non_numeric: dict[str, str],
             row: dict[str, Any], step: int, prefix: str) -> None:
    items = row.items() if not any(isinstance(v, dict) for v in row.values()) else (
        flatten(row, sep="/", whole=media_or_empty).items())
    for key, value in items:
        num = _number(value)
        name = prefix + key
        if num is None:
            if value is not None and name not in non_numeric:
                non_numeric[name] = _kind(value)
            continue
        steps, values = points.setdefault(name, ([], []))
        steps.append(step)
        values.append(num)


def _number(value: Any) -> float | None:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        return _NONFINITE.get(value)
    return None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("_type") or "object")
    return "string" if isinstance(value, str) else "list" if isinstance(value, list) else type(value).__name__


def _finite(value: Any) -> Any:
    """Trackio's "NaN"/"Infinity" strings back to floats, at every level (it writes them at every level)."""
    if isinstance(value, str):
        return _NONFINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _json_object(raw: Any) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def _epoch(stamp: str | None) -> float | None:
    """Trackio's ISO 8601 timestamps (UTC, with offset) as epoch seconds."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


# ---------------------------------------------------------------- SQLite


def _read(db: Path, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work` run on a read-only connection to `db` inside one read transaction (runwise.parsers._sqlite)."""
    return _sqlite.read(db, work, f"the trackio project file {db.name}")


def _id_column(cols: set[str]) -> str:
    """Of a table with columns `cols`: `run_id`, or `run_name` in files written before trackio kept run ids."""
    return "run_id" if "run_id" in cols else "run_name"


def _list_runs(con: sqlite3.Connection) -> list[_RunRow]:
    """The runs of the project: those with metrics, system metrics or a config, oldest first."""
    runs: dict[str, _RunRow] = {}
    for table, stamp in (("metrics", "timestamp"), ("system_metrics", "timestamp"), ("configs", "created_at")):
        cols = _columns(con, table)
        if not cols or "run_name" not in cols or stamp not in cols:
            continue
        idc = _id_column(cols)
        sql = f"SELECT {idc}, MAX(run_name), MIN({stamp}), MAX({stamp}) FROM {table} GROUP BY {idc}"
        for rid, name, first, last in con.execute(sql).fetchall():
            r = runs.setdefault(str(rid), _RunRow(str(rid), str(name)))
            for t in (_epoch(first), _epoch(last)):
                if t is not None:
                    r.first = t if r.first is None else min(r.first, t)
                    r.last = t if r.last is None else max(r.last, t)
    return sorted(runs.values(), key=lambda r: (r.first or 0.0, r.run_id))


def _run_data(con: sqlite3.Connection, db: Path, run_id: str) -> _RunData:
    project = db.name[: -len(DB_EXT)] if db.name.endswith(DB_EXT) else db.name
    idc = _id_column(_columns(con, "metrics"))
    rows = con.execute(f"SELECT step, metrics, timestamp, run_name FROM metrics WHERE {idc} = ? ORDER BY timestamp, id",
                       (run_id,)).fetchall()
    data = _RunData(run_id, "", project)
    for step, raw, stamp, name in rows:
        data.steps.append(int(step))
        data.rows.append(raw)
        data.stamps.append(str(stamp))
        data.name = data.name or str(name)
    system_cols = _columns(con, "system_metrics")
    if "metrics" in system_cols:
        sidc = _id_column(system_cols)
        for stamp, raw, name in con.execute(
                f"SELECT timestamp, metrics, run_name FROM system_metrics WHERE {sidc} = ? ORDER BY timestamp, id",
                (run_id,)):
            data.system.append((str(stamp), raw))
            data.name = data.name or str(name)
    cidc = _id_column(_columns(con, "configs"))
    for raw, created, name in con.execute(
            f"SELECT config, created_at, run_name FROM configs WHERE {cidc} = ? ORDER BY id DESC LIMIT 1", (run_id,)):
        data.config, data.config_created = raw, str(created)
        data.name = data.name or str(name)
    if not data.name:
        raise SourceError(f"the trackio project file {db.name} no longer holds run {run_id}", path=str(db))
    return data

