"""JSONL training logs: every `*.jsonl` under the logs dir is a run, one JSON object per line.

A row's step is `step` or `_step` (else its line number, from 0). Values may be numbers,
booleans, NaN/Infinity (bare tokens, as Python's json writes them), null (no value at that
step) or anything else (strings, lists: listed in `Run.non_numeric`, kept out of series).
Nested objects are flattened with "/" (`{"train": {"loss": 1}}` -> `train/loss`).
Reserved rows or keys: `config` / `_config` (an object: the run's config), `_meta` (an object with
name, notes, tags, group, job_type, and state / exit_code, which a script may write as its last
row), `_runtime` / `_timestamp` (seconds; not series). Without a state in `_meta`, a file written
in the last LIVE_SECONDS is "running", else "unknown" (a log alone cannot tell finished from killed).

Damage never stops a read: a line that is not JSON, not an object, not UTF-8, longer than
`MAX_LINE` bytes, or half-written at the end of the file is skipped, counted, and reported in
`Run.warnings`.

Speed: lines are parsed by orjson in blocks of `BLOCK` lines as one JSON array (one call per
block instead of one per line); a block that fails is re-parsed line by line, so only damaged
or NaN-bearing blocks pay the per-line price. Columns are built per key with one list pass and
one numpy conversion.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from runwise.analysis.compare import flatten_config
from runwise.errors import SourceError
from runwise.model import CRASHED, FAILED, FINISHED, RUNNING, UNKNOWN, Run, RunEntry, Series, make_series
from runwise.parsers import Progress

log = logging.getLogger("runwise.jsonl")

BLOCK = 20_000
PARALLEL_BYTES = 32 * 1024 * 1024  # files this big are parsed by several processes at once
MAX_WORKERS = 3
FIRST_SHARE = 0.6  # of a file split in two, the part this process reads itself
MAX_SHAPES = 8  # distinct key sets per block handled by the fast path
MAX_LINE = 8 * 1024 * 1024
LIVE_SECONDS = 120.0  # a file written this recently belongs to a run that is probably still going
STEP_KEYS = ("step", "_step")
META_KEYS = ("_meta",)
CONFIG_KEYS = ("config", "_config")
TIME_KEYS = ("_runtime", "_timestamp")
_NONFINITE = (b"NaN", b"Infinity")


def discover(cfg: Any) -> list[RunEntry]:
    """Every *.jsonl file under the logs dir, its id the path relative to that dir without suffix."""
    root: Path = cfg.logs_dir
    if not root.is_dir():
        return []
    entries = []
    for path in sorted(root.rglob("*.jsonl")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        st = path.stat()
        run_id = path.relative_to(root).with_suffix("").as_posix()
        entries.append(RunEntry(run_id, "jsonl", (path,), name=run_id, mtime=st.st_mtime, size=st.st_size))
    return entries


def load(entry: RunEntry, cfg: Any, progress: Progress | None = None) -> Run:
    run = read_jsonl(entry.paths[0], progress=progress, step_key=_step_key(cfg))
    run.id = entry.id
    run.name = run.name or entry.name
    run.path = _relative(entry.paths[0], cfg)
    return run


def load_file(path: Path, cfg: Any, progress: Progress | None = None) -> Run:
    run = read_jsonl(path, progress=progress, step_key=_step_key(cfg))
    run.path = _relative(path, cfg)
    return run


def _step_key(cfg: Any) -> str | None:
    key = getattr(getattr(cfg, "schema", None), "step_key", None)
    return key if isinstance(key, str) and key else None


def _relative(path: Path, cfg: Any) -> str:
    try:
        return path.resolve().relative_to(cfg.root).as_posix()
    except ValueError:
        return str(path)


class _Columns:
    """Accumulates per-key (row index, value) columns block by block."""

    def __init__(self) -> None:
        self.rows: dict[str, list[np.ndarray]] = {}
        self.vals: dict[str, list[np.ndarray]] = {}
        self.non_numeric: dict[str, str] = {}
        self.config: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}

    def add_block(self, objs: list[dict[str, Any]], line_numbers: np.ndarray) -> None:
        """Columns from parsed rows: rows sharing a key set go through one C-level pass."""
        lens = np.fromiter(map(len, objs), dtype=np.int64, count=len(objs))
        todo = np.arange(len(objs))
        for _ in range(MAX_SHAPES):
            if not todo.size:
                return
            ref = tuple(objs[todo[0]])
            cand = todo[lens[todo] == len(ref)]
            rows = [objs[i] for i in cand.tolist()]
            values = _numeric_rows(rows, ref)
            if values is None:  # a missing key, null, string or nested value: key by key instead
                break
            for j, key in enumerate(ref):
                self._add_numeric(key, values[:, j], line_numbers[cand])
            todo = todo[lens[todo] != len(ref)]
        if todo.size:
            rows = [objs[i] for i in todo.tolist()]
            keys: dict[str, None] = {}
            for obj in rows:
                keys.update(dict.fromkeys(obj))
            for key in keys:
                self._add_column(key, [o.get(key) for o in rows], line_numbers[todo])

    def _add_numeric(self, key: str, values: np.ndarray, rows: np.ndarray) -> None:
        if key in CONFIG_KEYS or key in META_KEYS:
            self._note(key, 0.0)
            return
        self.rows.setdefault(key, []).append(rows)
        self.vals.setdefault(key, []).append(values)

    def _add_column(self, key: str, col: list[Any], line_numbers: np.ndarray) -> None:
        if key in CONFIG_KEYS or key in META_KEYS:
            for v in col:
                if isinstance(v, dict):
                    (self.config if key in CONFIG_KEYS else self.meta).update(v)
                elif v is not None:
                    self._note(key, v)
            return
        if any(isinstance(v, str) for v in col):  # numpy would silently turn "2.5" into 2.5
            self._add_mixed(key, col, line_numbers)
            return
        try:
            values = np.array(col, dtype=np.float64)
        except (ValueError, TypeError):
            self._add_mixed(key, col, line_numbers)
            return
        if values.ndim != 1:  # lists of equal length become 2-D
            self._add_mixed(key, col, line_numbers)
            return
        present = np.fromiter((v is not None for v in col), dtype=bool, count=len(col))
        if not present.all():
            values = values[present]
            rows = line_numbers[present]
        else:
            rows = line_numbers
        if values.size:
            self.rows.setdefault(key, []).append(rows)
            self.vals.setdefault(key, []).append(values)

    def _add_mixed(self, key: str, col: list[Any], line_numbers: np.ndarray) -> None:
        """Slow path for a column holding strings, lists or nested objects."""
        per_key: dict[str, tuple[list[int], list[float]]] = {}
        for row, v in zip(line_numbers.tolist(), col, strict=True):
            for k, x in _flatten(key, v):
                num = _as_number(x)
                if num is None:
                    if x is not None:
                        self._note(k, x)
                    continue
                rows, vals = per_key.setdefault(k, ([], []))
                rows.append(row)
                vals.append(num)
        for k, (rows, vals) in per_key.items():
            self.rows.setdefault(k, []).append(np.asarray(rows, dtype=np.int64))
            self.vals.setdefault(k, []).append(np.asarray(vals, dtype=np.float64))

    def _note(self, key: str, value: Any) -> None:
        if key not in self.non_numeric:
            kind = "string" if isinstance(value, str) else "list" if isinstance(value, list) else type(value).__name__
            self.non_numeric[key] = kind


def _numeric_rows(rows: list[dict[str, Any]], ref: tuple[str, ...]) -> np.ndarray | None:
    """A (rows, keys) float array if every row has exactly the keys `ref` with numeric values, else None.

    Rows were chosen with len(row) == len(ref), so a row that has every key of `ref` has no other.
    """
    if not ref:
        return np.empty((len(rows), 0))
    get = itemgetter(*ref)
    flat = chain.from_iterable(map(get, rows)) if len(ref) > 1 else map(get, rows)
    try:
        values = np.fromiter(flat, dtype=np.float64, count=len(rows) * len(ref))
    except (KeyError, TypeError, ValueError):
        return None
    if any(type(rows[0][k]) is str for k in ref):  # fromiter parses numeric strings; they are not numbers
        return None
    return values.reshape(len(rows), len(ref))


def _flatten(key: str, value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(f"{key}/{k}", v)
    else:
        yield key, value


def _as_number(x: Any) -> float | None:
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)):
        return float(x)
    return None


def _loads_line(line: bytes) -> Any:
    """Parse one line; bare NaN/Infinity tokens go through the stdlib parser, which accepts them."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        if not any(tok in line for tok in _NONFINITE):
            raise
    import json

    return json.loads(line.decode("utf-8"), parse_constant=lambda c: float(c.replace("Infinity", "inf")))


def read_jsonl(path: Path, *, progress: Progress | None = None, step_key: str | None = None) -> Run:
    """Read one JSONL log into a Run (history, config, meta, warnings).

    A file of PARALLEL_BYTES or more is split at line boundaries and its later parts are parsed
    in worker processes while this one parses the first; if workers cannot be had, this process
    reads every part itself.
    """
    try:
        st = path.stat()
        with path.open("rb") as fp:
            bounds = _split(fp, st.st_size)
    except OSError as exc:
        raise SourceError(f"cannot read {path.name}: {exc.strerror or exc}", path=str(path)) from exc
    futures = _submit(str(path), bounds[1:])
    first = _read_part(str(path), *bounds[0], progress=progress, total_size=st.st_size)
    parts = [first]
    for (lo, hi), worker in zip(bounds[1:], futures, strict=True):
        part = None
        if worker is not None:
            try:
                part = worker.result()
            except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:  # read the part here
                log.debug("worker failed on %s: %s", path.name, exc)
        parts.append(part if part is not None else _read_part(str(path), lo, hi))
    if progress is not None:
        progress(float(st.st_size), float(st.st_size))
    return _build_run(path, st, *_merge(parts), step_key)


class _Part:
    """What one stretch of lines gave; line numbers are relative to its first line."""

    def __init__(self) -> None:
        self.cols = _Columns()
        self.lines = 0
        self.skipped: dict[str, int] = {}
        self.first_bad: dict[str, int] = {}

    def skip(self, reason: str, line_no: int) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.first_bad.setdefault(reason, line_no)


def _split(fp: Any, size: int) -> list[tuple[int, int | None]]:
    """Byte ranges (start, end) that begin at line starts; one range unless the file is big."""
    n = min(os.cpu_count() or 1, MAX_WORKERS + 1, size // PARALLEL_BYTES + 1)
    # this process starts at once; a worker first pays its interpreter start-up (~0.15 s) and
    # the trip of its columns back, so the first part is larger than the others
    first = FIRST_SHARE if n == 2 else 1 / n
    cuts = [0]
    for i in range(1, n):
        target = first + (1 - first) * (i - 1) / (n - 1)
        fp.seek(max(int(size * target), cuts[-1]))
        fp.readline()  # to the start of the next line
        pos = fp.tell()
        if pos >= size:
            break
        if pos > cuts[-1]:
            cuts.append(pos)
    ends: list[int | None] = [*cuts[1:], None]
    return list(zip(cuts, ends, strict=True))


def _read_part(
    path: str, start: int, end: int | None, *, progress: Progress | None = None, total_size: int = 0
) -> _Part:
    """Parse the lines in bytes [start, end) of `path` (to the end of the file if `end` is None)."""
    part = _Part()
    done_bytes = 0
    with open(path, "rb") as fp:
        fp.seek(start)
        source: Any = fp if end is None else io.BytesIO(fp.read(end - start))
        while block := list(islice(source, BLOCK)):
            first = part.lines
            part.lines += len(block)
            objs: list[Any] | None = None
            size = sum(map(len, block))
            done_bytes += size
            if size <= MAX_LINE or max(map(len, block)) <= MAX_LINE:
                try:
                    objs = list(map(orjson.loads, block))
                    if set(map(type, objs)) != {dict}:
                        objs = None
                except orjson.JSONDecodeError:
                    objs = None
            if objs is not None:
                part.cols.add_block(objs, np.arange(first, first + len(block), dtype=np.int64))
            else:
                good, numbers = _parse_slowly(block, first, part.skip)
                if good:
                    part.cols.add_block(good, np.asarray(numbers, dtype=np.int64))
            if progress is not None and total_size:
                # the first part reports for all: the others run alongside at the same pace
                share = (end - start) / total_size if end is not None else 1.0
                progress(float(min(done_bytes / share, total_size)), float(total_size))
    return part


def _merge(parts: list[_Part]) -> tuple[_Columns, dict[str, int], dict[str, int], int]:
    """One set of columns from consecutive parts, line numbers made global."""
    if len(parts) == 1:
        p = parts[0]
        return p.cols, p.skipped, p.first_bad, p.lines
    cols = _Columns()
    skipped: dict[str, int] = {}
    first_bad: dict[str, int] = {}
    offset = 0
    for p in parts:
        for key, arrays in p.cols.rows.items():
            cols.rows.setdefault(key, []).extend(a + offset for a in arrays)
            cols.vals.setdefault(key, []).extend(p.cols.vals[key])
        for key, kind in p.cols.non_numeric.items():
            cols.non_numeric.setdefault(key, kind)
        cols.config.update(p.cols.config)
        cols.meta.update(p.cols.meta)
        for reason, n in p.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
            first_bad.setdefault(reason, p.first_bad[reason] + offset)
        offset += p.lines
    return cols, skipped, first_bad, offset


_WORKER = "import sys; from runwise.parsers.jsonl import _worker_main; sys.exit(_worker_main(sys.argv[1:]))"


class _Worker:
    """A child interpreter parsing one byte range of the file (see _WORKER).

    A fresh interpreter, not fork() (unsafe in the MCP server's threads) nor multiprocessing's
    spawn (which re-runs the caller's main script). It writes the pickled _Part to its stdout pipe.
    """

    def __init__(self, path: str, start: int, end: int | None) -> None:
        package_parent = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, path, str(start), "" if end is None else str(end)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )

    def result(self) -> _Part:
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            raise RuntimeError(f"worker exited with {self.proc.returncode}: {err.decode(errors='replace')[-300:]}")
        part = pickle.loads(out)  # our own child's output
        if not isinstance(part, _Part):
            raise RuntimeError("worker returned something else")
        return part


def _submit(path: str, bounds: list[tuple[int, int | None]]) -> list[_Worker | None]:
    """Start parsing `bounds` in worker processes; None where no worker could be started."""
    workers: list[_Worker | None] = []
    for lo, hi in bounds:
        try:
            workers.append(_Worker(path, lo, hi))
        except OSError as exc:  # no processes here (sandbox, limits): this process reads the part
            log.debug("no worker process: %s", exc)
            workers.append(None)
    return workers


def _worker_main(argv: list[str]) -> int:
    path, start, end = argv
    part = _read_part(path, int(start), int(end) if end else None)
    sys.stdout.buffer.write(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


def _parse_slowly(
    block: list[bytes], start: int, skip: Callable[[str, int], None]
) -> tuple[list[dict[str, Any]], list[int]]:
    """Line by line, for a block with a damaged, blank, NaN-bearing or non-object line."""
    good: list[dict[str, Any]] = []
    numbers: list[int] = []
    for i, raw in enumerate(block, start):
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE:
            skip("line too long", i)
            continue
        try:
            obj = _loads_line(raw)
        except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError):
            if not raw.endswith(b"\n") and i == start + len(block) - 1:
                skip("half-written last line", i)
            elif _is_utf8(raw):
                skip("not JSON", i)
            else:
                skip("not UTF-8", i)
            continue
        if not isinstance(obj, dict):
            skip("not a JSON object", i)
            continue
        good.append(obj)
        numbers.append(i)
    return good, numbers


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _build_run(
    path: Path,
    st: Any,
    cols: _Columns,
    skipped: dict[str, int],
    first_bad: dict[str, int],
    total_lines: int,
    step_key: str | None,
) -> Run:
    first_bad = {reason: line + 1 for reason, line in first_bad.items()}  # 1-based, as editors count
    def column(key: str) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(cols.rows[key]), np.concatenate(cols.vals[key])

    # the step of each line: configured key, else step / _step, else the line number
    line_steps = np.arange(total_lines, dtype=np.int64)
    used_step_key = None
    for key in ((step_key,) if step_key else ()) + STEP_KEYS:
        if key in cols.vals:
            rows, vals = column(key)
            ok = np.isfinite(vals)
            line_steps[rows[ok]] = vals[ok].astype(np.int64)
            used_step_key = key
            break
    has_step = np.zeros(total_lines, dtype=bool)
    if used_step_key is not None:
        rows, vals = column(used_step_key)
        has_step[rows[np.isfinite(vals)]] = True

    history: dict[str, Series] = {}
    times: dict[str, np.ndarray] = {}
    has_metric = np.zeros(total_lines, dtype=bool)
    for key in cols.vals:
        if key in STEP_KEYS or key == used_step_key:
            continue
        rows, vals = column(key)
        if key in TIME_KEYS:
            times[key] = vals
            continue
        has_metric[rows] = True
        history[key] = make_series(key, line_steps[rows], vals)

    warnings = []
    if skipped:
        parts = [f"{n} {reason} (first at line {first_bad[reason]})" for reason, n in skipped.items()]
        warnings.append(f"skipped {sum(skipped.values())} of {total_lines} lines: " + "; ".join(parts))
    missing = int((has_metric & ~has_step).sum())
    if used_step_key is not None and missing:
        warnings.append(f"{missing} rows have no {used_step_key!r}: their line number was used as the step")
    elif used_step_key is None and total_lines:
        warnings.append("no 'step' or '_step' key: line numbers (from 0) are the steps")

    meta = cols.meta
    start_time = runtime = None
    if "_timestamp" in times and times["_timestamp"].size:
        ts = times["_timestamp"][np.isfinite(times["_timestamp"])]
        if ts.size:
            start_time, runtime = float(ts.min()), float(ts.max() - ts.min())
    if "_runtime" in times and times["_runtime"].size:
        rt = times["_runtime"][np.isfinite(times["_runtime"])]
        if rt.size:
            runtime = float(rt.max())
    live = (time.time() - st.st_mtime) < LIVE_SECONDS
    state = RUNNING if live else UNKNOWN
    exit_code = meta.get("exit_code")
    exit_code = int(exit_code) if isinstance(exit_code, (int, float)) and not isinstance(exit_code, bool) else None
    if meta.get("state") in (FINISHED, FAILED, CRASHED, RUNNING):
        state = str(meta["state"])
    elif exit_code is not None:
        state = FINISHED if exit_code == 0 else FAILED
    summary = {k: float(s.values[-1]) for k, s in history.items() if len(s)}
    tags = meta.get("tags")
    return Run(
        id=path.stem,
        source="jsonl",
        path=str(path),
        name=str(meta.get("name") or ""),
        state=state,
        exit_code=exit_code,
        group=str(meta.get("group") or ""),
        job_type=str(meta.get("job_type") or ""),
        notes=str(meta.get("notes") or ""),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        config=flatten_config(cols.config),
        summary=summary,
        start_time=start_time,
        runtime=runtime,
        last_write=st.st_mtime,
        history=history,
        non_numeric=cols.non_numeric,
        warnings=warnings,
        truncated=skipped.get("half-written last line", 0) > 0,
    )

