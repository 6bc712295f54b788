"""CSV training logs: Lightning's CSVLogger, Ultralytics, Stable-Baselines3 / RLlib, Keras' CSVLogger.

Which files are runs (discovery reads no more than one header line of any file):

- `<name>/version_<N>/metrics.csv` anywhere under the project root: Lightning's CSVLogger (also
  a `metrics.csv` beside an `hparams.yaml`, for a version given as a string). Id
  `<name>/version_<N>` (`lightning_logs/version_0`); the directory relative to the root when two
  runs would share that id.
- `results.csv` (Ultralytics) and `progress.csv` (Stable-Baselines3, RLlib) anywhere under the
  root: id is the directory relative to the root (`runs/detect/train2`).
- Any other `*.csv` (Keras' CSVLogger takes any name): every one under a directory named in
  `csv_dirs` (runwise.json) or `RUNWISE_CSV_DIR`, plus `*.log` files there whose header line
  names a step column (Keras' `CSVLogger("training.log")`); and, in the project root itself and
  under `logs/` (`logs_dir`), a `*.csv` whose header line has an `epoch` column. Id: the file's
  path relative to the root.
- Not searched: hidden directories and `node_modules`, `wandb`, `mlruns`, `site-packages`,
  `venv`, `__pycache__`. Links are followed only inside the roots (`parsers._walk`).

Reading (in chunks of rows, each column converted by numpy; a file without a `"` is split with
`str.split`, several times faster than the standard library's `csv` module, which reads the others):

- Names and cells are stripped of spaces (Ultralytics pads both). The step column is the first of
  `step`, `global_step`, `_step`, `iteration`, `time/total_timesteps`, `epoch` present; the
  other candidates stay series. Without any, the row number (from 0) is the step. A row whose
  step cell is empty or not an integer is skipped and counted (Lightning always fills `step`).
- Wide and sparse: every other column whose non-empty cells all read as numbers is one series,
  with a point only at the rows where its cell is not empty (`NA`, Keras' cell for a key missing
  at that epoch, counts as empty). `nan`, `inf` are kept as NaN/inf. Other columns are not series
  (`Run.non_numeric`). Lightning's CSVLogger and SB3 rewrite the whole file with a wider header
  when a new key appears, so a file has one header.
- A last line without its newline (a killed run, or one being written) and a row with the wrong
  number of cells are skipped, counted, and reported in `Run.warnings`.
- Config: `hparams.yaml` (Lightning) or `args.yaml` (Ultralytics) beside the CSV, through
  `runwise._yaml` (Python tags read as plain data, never constructed; alias bombs refused: then
  no config and a one-line warning); RLlib's `params.json`. SB3 and Keras write none.
- Summary: the last point of every series.
- Times: runtime is the last value of an elapsed-seconds column (`time/time_elapsed` SB3,
  `time_total_s` RLlib, `time` Ultralytics); start time is the first `timestamp` (RLlib, epoch
  seconds), else the newest write minus the runtime. Without a time column: start is the
  modification time of the config file when there is one (Lightning writes hparams.yaml when
  training starts) and runtime the newest write minus it; else neither is known.
- State: a CSV log has no end marker: "running" if a file changed in the last LIVE_SECONDS, else
  "unknown".
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from runwise import _yaml
from runwise._flat import flatten
from runwise.errors import SourceError, why_unread
from runwise.model import LIVE_SECONDS, RUNNING, UNKNOWN, Run, RunEntry, Series, make_series
from runwise.parsers import Progress
from runwise.parsers._walk import Skipped, files_stamp, is_inside, walk
from runwise.parsers.filetypes import CSV_RUN_FILES

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig

LIGHTNING, ULTRALYTICS, PROGRESS = CSV_RUN_FILES
OTHER = ""
STEP_COLUMNS = ("step", "global_step", "_step", "iteration", "time/total_timesteps", "epoch")
ELAPSED_COLUMNS = ("time/time_elapsed", "time_total_s", "time")
MISSING = ("", "NA")  # cells that mean "not logged at this row"
PRUNED = frozenset({"node_modules", "wandb", "mlruns", "site-packages", "venv", "__pycache__"})
VERSION_DIR = re.compile(r"^version_\d+$")
CONFIG_FILES = ("hparams.yaml", "args.yaml", "params.json")
CHUNK_ROWS = 65_536
HEADER_BYTES = 64 * 1024  # of a file read at discovery, for its header line


def _is_candidate(name: str) -> bool:
    return name.endswith((".csv", ".log"))


def _kind(path: Path) -> str:
    """Which writer's file `path` is, by its name."""
    if path.name == LIGHTNING and (VERSION_DIR.match(path.parent.name) or (path.parent / CONFIG_FILES[0]).is_file()):
        return LIGHTNING
    if path.name in (ULTRALYTICS, PROGRESS):
        return path.name
    return OTHER


def header_of(path: Path) -> list[str]:
    """The stripped column names of the file's first line ([] when it has none or cannot be read)."""
    try:
        with path.open("rb") as f:
            head = f.read(HEADER_BYTES)
    except OSError:
        return []
    line = head.split(b"\n", 1)[0].decode("utf-8-sig", "replace").rstrip("\r")
    if not line:
        return []
    try:
        return [c.strip() for c in next(csv.reader([line]))]
    except (csv.Error, StopIteration):
        return []


def discover(cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
    """Lightning, Ultralytics and SB3/RLlib logs under the root; other CSV logs where the module docstring says."""
    skipped = Skipped()
    configured = [d for d in cfg.csv_dirs if d.is_dir()]
    conventional = (os.path.realpath(cfg.root), os.path.realpath(cfg.logs_dir))
    found: list[tuple[Path, str, bool]] = []  # (file, kind, under a configured directory)
    seen: set[str] = set()
    for top_list, is_configured in ((configured, True), ([cfg.root], False)):
        for listed in walk(top_list, cfg.roots, want=_is_candidate, skipped=skipped if is_configured else Skipped(),
                           show=cfg.relative, prune=PRUNED):
            for name in listed.files:
                path = listed.path / name
                key = os.path.realpath(path)
                if key in seen:
                    continue
                kind = _kind(path)
                if kind == OTHER and not _other_is_run(path, is_configured, listed.path, conventional):
                    continue
                if kind != OTHER and not name.endswith(".csv"):
                    continue
                seen.add(key)
                found.append((path, kind, is_configured))
    ids = [_run_id(p, k, cfg) for p, k, _ in found]
    counts = Counter(ids)
    entries = []
    for (path, kind, _), run_id in zip(found, ids, strict=True):
        if counts[run_id] > 1:  # two Lightning runs with one name/version_N: their directories
            run_id = cfg.relative(path.parent)
        mtime, size = _stat(path, kind)
        entries.append(RunEntry(run_id, "csv", (path,), name=run_id, mtime=mtime, size=size,
                                extra={"name_final": True}))
    if notes is not None:
        notes.extend(skipped.notes("csv", "csv_dirs"))
    return entries


def _other_is_run(path: Path, is_configured: bool, directory: Path, conventional: tuple[str, str]) -> bool:
    """Whether a CSV file of no known writer's name is a run (rules: module docstring); `conventional` is the
    real path of the root and of the logs directory."""
    if is_configured:
        return path.name.endswith(".csv") or any(c in STEP_COLUMNS for c in header_of(path))
    if not path.name.endswith(".csv"):
        return False
    d = os.path.realpath(directory)
    root, logs = conventional
    if d != root and d != logs and not d.startswith(logs.rstrip(os.sep) + os.sep):
        return False
    return "epoch" in header_of(path)


def _run_id(path: Path, kind: str, cfg: RunwiseConfig) -> str:
    if kind == LIGHTNING:
        return f"{path.parent.parent.name}/{path.parent.name}"
    if kind in (ULTRALYTICS, PROGRESS):
        rel = cfg.relative(path.parent)
        return rel if rel not in (".", "") else cfg.relative(path)
    return cfg.relative(path)


def _stat(path: Path, kind: str) -> tuple[float, int]:
    # a config file beside an arbitrary CSV (`kind` OTHER) is not its config
    configs = [path.parent / n for n in CONFIG_FILES] if kind != OTHER else []
    return files_stamp([path, *configs])


def display_name(entry: RunEntry, cfg: RunwiseConfig) -> str:
    return entry.name


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    return None  # read in full (a rewritten header changes every row)


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    run = read_csv_log(entry.paths[0], cfg, progress)
    run.id = entry.id
    return run


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    if path.is_dir():
        found = run_file_in(path)
        if found is None:
            raise SourceError(f"{path.name}: no metrics.csv, results.csv or progress.csv in it", path=str(path))
        path = found
    return read_csv_log(path, cfg, progress)


def run_file_in(d: Path) -> Path | None:
    """The CSV log a run directory holds (Lightning's, Ultralytics', SB3's or RLlib's), if any."""
    for name in (LIGHTNING, ULTRALYTICS, PROGRESS):
        if (d / name).is_file():
            return d / name
    return None


# ---------------------------------------------------------------- reading


def read_csv_log(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Read one CSV log (and the config beside it) into a Run."""
    try:
        raw = path.read_bytes()
        newest = path.stat().st_mtime
    except OSError as exc:
        raise SourceError(f"{path.name}: not read: {exc.strerror or exc}", path=str(path)) from None
    table = parse_csv(raw, progress)
    if table.header is None:
        raise SourceError(f"{path.name}: no header line; not a CSV log", path=str(path))
    warnings = [f"{cfg.relative(path)}: {w}" for w in table.warnings]
    config: dict[str, Any] = {}
    config_mtime: float | None = None
    if _kind(path) != OTHER:
        config, config_mtime, note = _read_config(path.parent, cfg.roots)
        if note:
            warnings.append(note)
    newest = max(newest, config_mtime or 0.0)
    history = table.series
    summary: dict[str, Any] = {k: float(s.values[-1]) for k, s in history.items() if len(s)}
    start_time, runtime = _times(history, newest, config_mtime)
    state = RUNNING if (time.time() - newest) < LIVE_SECONDS else UNKNOWN
    return Run(
        id=cfg.relative(path), source="csv", path=cfg.relative(path), name="", state=state,
        config=config, summary=summary, start_time=start_time, runtime=runtime, last_write=newest,
        history=history, non_numeric=table.non_numeric, warnings=warnings, truncated=table.truncated,
    )


def _read_config(d: Path, roots: list[Path]) -> tuple[dict[str, Any], float | None, str]:
    """(flattened config, its file's mtime, a one-line warning or "") from the config file beside the log."""
    for name in CONFIG_FILES:
        p = d / name
        if not p.is_file():
            continue
        if not is_inside(p, roots):
            return {}, None, f"{name}: not read: a link to outside the project roots"
        try:
            st = p.stat()
            mtime = st.st_mtime
            if name.endswith(".json"):
                if st.st_size > _yaml.MAX_BYTES:
                    raise _yaml.YamlError(f"larger than {_yaml.MAX_BYTES:,} bytes")
                data = json.loads(p.read_bytes())
            else:
                data = _yaml.load(p)
        except (OSError, ValueError, RecursionError) as exc:  # YamlError and JSON's errors are ValueErrors
            return {}, None, f"{name}: not read: {why_unread(exc) or type(exc).__name__}"
        if isinstance(data, dict):
            return flatten(data), mtime, ""
        if data is None:
            return {}, mtime, ""
        return {}, mtime, f"{name}: not a mapping; not read"
    return {}, None, ""


def _last_finite(s: Series | None) -> float | None:
    if s is None:
        return None
    finite = s.values[np.isfinite(s.values)]
    return float(finite[-1]) if finite.size else None


def _times(history: dict[str, Series], newest: float, config_mtime: float | None) -> tuple[float | None, float | None]:
    runtime = next((r for r in (_last_finite(history.get(c)) for c in ELAPSED_COLUMNS) if r is not None), None)
    stamps = history.get("timestamp")
    if stamps is not None:
        finite = stamps.values[np.isfinite(stamps.values)]
        if finite.size and finite.min() > 1e9:  # epoch seconds
            return float(finite.min()), runtime
    if runtime is not None:
        return newest - runtime, runtime
    if config_mtime is not None:
        return config_mtime, max(0.0, newest - config_mtime)
    return None, None


class Table:
    """What `parse_csv` read: the header, the series, non-numeric columns, and what was skipped."""

    __slots__ = ("header", "non_numeric", "series", "step_column", "truncated", "warnings")

    def __init__(self) -> None:
        self.header: list[str] | None = None
        self.step_column: str | None = None
        self.series: dict[str, Series] = {}
        self.non_numeric: dict[str, str] = {}
        self.warnings: list[str] = []
        self.truncated = False


def parse_csv(raw: bytes, progress: Progress | None = None) -> Table:
    """A wide, sparse CSV log's series (rules: module docstring)."""
    table = Table()
    skipped: dict[str, int] = {}
    end = raw.rfind(b"\n") + 1
    if end < len(raw):  # no newline after the last line: half-written
        if raw[end:].strip():
            skipped["half-written last line"] = 1
            table.truncated = True
        raw = raw[:end]
    text = raw.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    first, _, body = text.partition("\n")
    if not first.strip():
        return table
    try:
        header = next(csv.reader([first.rstrip("\r")]))
    except (StopIteration, csv.Error):
        return table
    names = [h.strip() for h in header]
    table.header = names
    width = len(names)
    step_at = next((names.index(c) for c in STEP_COLUMNS if c in names), None)
    table.step_column = names[step_at] if step_at is not None else None
    value_cols = [i for i, n in enumerate(names) if i != step_at and n and names.index(n) == i]
    parts: dict[int, list[tuple[NDArray[Any], NDArray[Any]]]] = {i: [] for i in value_cols}
    non_numeric: set[int] = set()
    row_no = 0
    total = float(len(raw)) or 1.0
    chunks = _plain_chunks(body, width) if '"' not in body else _quoted_chunks(body, width, table.warnings)
    for cols, n_good, bad, done in chunks:
        if bad:
            _count(skipped, "with the wrong number of cells", bad)
        if not n_good:
            continue
        if step_at is None:
            steps = np.arange(row_no, row_no + n_good, dtype=np.int64)
            keep = None
        else:
            steps, keep = _steps(cols[step_at])
            if keep is not None:
                _count(skipped, "without an integer step", int((~keep).sum()))
        row_no += n_good
        for i in value_cols:
            if i in non_numeric:
                continue
            col = cols[i] if keep is None else [c for c, k in zip(cols[i], keep, strict=True) if k]
            got = _values(col)
            if got is None:
                non_numeric.add(i)
                parts[i] = []
                continue
            at, vals = got
            if at.size:
                parts[i].append((steps[at], vals))
        if progress is not None:
            progress(total * done, total)
    for i in value_cols:
        if i in non_numeric:
            table.non_numeric[names[i]] = "string"
        elif parts[i]:
            s = np.concatenate([p[0] for p in parts[i]])
            v = np.concatenate([p[1] for p in parts[i]])
            table.series[names[i]] = make_series(names[i], s, v)
    if skipped:
        n = sum(skipped.values())
        table.warnings.append(f"skipped {n} row{'s' if n > 1 else ''}: "
                              + "; ".join(f"{k} {why}" for why, k in skipped.items()))
    return table


Chunk = tuple[list[Sequence[str]], int, int, float]  # (columns, rows in them, rows skipped, share of the text done)


def _plain_chunks(body: str, width: int) -> Iterator[Chunk]:
    """Rows of a CSV body without quotes, split by str.split (several times faster than the csv module)."""
    if "\r" in body:
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    lines = body.split("\n")
    commas = width - 1
    for at in range(0, len(lines), CHUNK_ROWS):
        chunk = lines[at : at + CHUNK_ROWS]
        good = [line for line in chunk if line and line.count(",") == commas]
        bad = 0 if len(good) == len(chunk) else sum(1 for line in chunk if line and line.count(",") != commas)
        flat = ",".join(good).split(",") if good else []
        yield [flat[j::width] for j in range(width)], len(good), bad, min(1.0, (at + len(chunk)) / len(lines))


def _quoted_chunks(body: str, width: int, warnings: list[str]) -> Iterator[Chunk]:
    """Rows of a CSV body with quoted cells, through the csv module."""
    buf = io.StringIO(body, newline="")
    reader = csv.reader(buf)
    while True:
        try:
            chunk = list(itertools.islice(reader, CHUNK_ROWS))
        except csv.Error as exc:  # a quote left open, a NUL byte: the rest is not read
            warnings.append(f"rows from line {reader.line_num + 1} on not read: {exc}")
            return
        if not chunk:
            return
        good = [r for r in chunk if len(r) == width]
        bad = sum(1 for r in chunk if r and len(r) != width)
        cols: list[Sequence[str]] = list(zip(*good, strict=True)) if good else [() for _ in range(width)]
        yield cols, len(good), bad, buf.tell() / (len(body) or 1)


def _count(skipped: dict[str, int], why: str, n: int) -> None:
    skipped[why] = skipped.get(why, 0) + n


def _steps(col: Sequence[str]) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """The step column's integers, and which rows have one (None: all)."""
    try:
        f = np.array(col, dtype=np.float64)
        if bool(np.all(np.isfinite(f))) and bool(np.all(f == np.floor(f))):
            return f.astype(np.int64), None
    except ValueError:
        pass
    keep = np.zeros(len(col), dtype=bool)
    out: list[int] = []
    for j, c in enumerate(col):
        try:
            x = float(c)
        except ValueError:
            continue
        if math.isfinite(x) and x == int(x):
            keep[j] = True
            out.append(int(x))
    return np.array(out, dtype=np.int64), keep


def _values(col: Sequence[str]) -> tuple[NDArray[Any], NDArray[Any]] | None:
    """(row indices with a value, the values) of one column of a chunk; None when a cell is not a number."""
    n = len(col)
    empty = col.count("")  # C loops all: list.count, filter, map, fromiter
    if empty == n:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    try:
        values = np.array(list(filter(None, col)) if empty else col, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None:
        if not empty:  # a dense column
            return np.arange(n, dtype=np.int64), values
        return np.flatnonzero(np.fromiter(map(bool, col), dtype=bool, count=n)), values
    # cells padded with spaces, or Keras' NA: strip, drop the empty ones, and try again
    at = [j for j, c in enumerate(col) if c.strip() not in MISSING]
    try:
        return np.array(at, dtype=np.int64), np.array([col[j] for j in at], dtype=np.float64)
    except ValueError:
        return None
