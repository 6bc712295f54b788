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

Parsing lines into columns is `jsonl_rows`; spreading a big file over several processes is
`jsonl_workers`; this module finds runs and turns columns into the run model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runwise._bounded import Bounded
from runwise._flat import flatten
from runwise.errors import SourceError
from runwise.model import CRASHED, FAILED, FINISHED, LIVE_SECONDS, RUNNING, UNKNOWN, Run, RunEntry, Series, make_series
from runwise.parsers import Progress, jsonl_workers
from runwise.parsers._growth import FileMark, grown, take
from runwise.parsers._walk import Skipped, walk
from runwise.parsers.filetypes import is_jsonl
from runwise.parsers.jsonl_rows import MAX_LINE, Columns, Part, merge, read_part

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig

log = logging.getLogger("runwise.jsonl")

STEP_KEYS = ("step", "_step")
NAME_SCAN_BYTES = 16 * 1024  # read from each end of a log at discovery, for its `_meta` name
NAMES_SIZE = 4096
SCAN_CHUNK = 8 * 1024 * 1024  # bytes per read of display_name's search
# (path, size, mtime_ns) -> (name, whole file)
_NAMES: Bounded[tuple[str, int, int], tuple[str, bool]] = Bounded(NAMES_SIZE)
TIME_KEYS = ("_runtime", "_timestamp")


def discover(cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
    """Every JSONL log under the logs dir, its id the path relative to that dir without suffix.

    Hidden files and directories are left out. Links are followed only inside the project roots
    (parsers._walk); `notes` gets one line about the links skipped.
    """
    root: Path = cfg.logs_dir
    skipped = Skipped()
    entries = []
    ids: set[str] = set()
    for d in walk([root], cfg.roots, want=is_jsonl, skipped=skipped, show=cfg.relative):
        for name in d.files:
            path = d.path / name
            try:
                st = path.stat()
            except OSError:  # removed while listing
                continue
            rel = path.relative_to(root)
            run_id = rel.with_suffix("").as_posix()
            if run_id in ids:  # `a.jsonl` and `a.ndjson`: the second keeps its suffix
                run_id = rel.as_posix()
            ids.add(run_id)
            name, final = _meta_name(path, st)
            entries.append(RunEntry(run_id, "jsonl", (path,), name=name or run_id, mtime=st.st_mtime, size=st.st_size,
                                    extra={"name_final": final}))
    if notes is not None:
        notes.extend(skipped.notes("jsonl", "logs_dir"))
    return entries


def display_name(entry: RunEntry, cfg: RunwiseConfig) -> str:
    """The name a load gives the run, from every `_meta` row of its log (found with a byte search,
    so far cheaper than a load)."""
    path = entry.paths[0]
    name, skipping, rest = "", False, b""
    with path.open("rb") as fp:
        while chunk := fp.read(SCAN_CHUNK):
            buf = rest + chunk
            cut = buf.rfind(b"\n") + 1
            body, rest = buf[:cut], buf[cut:]
            if skipping:  # the end of a line too long to be a row
                body, skipping = body.partition(b"\n")[2], not cut
            name = _last_name(body, name)
            if len(rest) > MAX_LINE:
                rest, skipping = b"", True
    if not skipping:
        name = _last_name(rest, name)  # a last line without its newline, as a load reads it
    return name or entry.name  # as a load falls back to the name discovery found


def _last_name(chunk: bytes, name: str) -> str:
    """`name`, replaced by the name of each `_meta` row in the lines of `chunk` (later rows win, as in a load)."""
    at = chunk.find(b'"_meta"')
    while at >= 0:
        start = chunk.rfind(b"\n", 0, at) + 1
        end = chunk.find(b"\n", at)
        end = len(chunk) if end < 0 else end
        line = chunk[start:end]
        at = chunk.find(b'"_meta"', end)
        if len(line) > MAX_LINE:
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            continue
        meta = row.get("_meta") if isinstance(row, dict) else None
        if isinstance(meta, dict) and "name" in meta:
            name = str(meta["name"] or "")
    return name


def _meta_name(path: Path, st: os.stat_result) -> tuple[str, bool]:
    """The `_meta` name in the complete lines among a log's first and last NAME_SCAN_BYTES (the
    whole log when it is no bigger than both), and whether that was the whole log (then the name
    is the one a load gives). Remembered per (path, size, mtime), so a listing reads each log once."""
    key = (str(path), st.st_size, st.st_mtime_ns)
    known = _NAMES.get(key)
    if known is not None:
        return known
    whole = st.st_size <= 2 * NAME_SCAN_BYTES
    try:
        with path.open("rb") as fp:
            if whole:
                chunks = [fp.read()]
            else:
                head = fp.read(NAME_SCAN_BYTES)
                fp.seek(st.st_size - NAME_SCAN_BYTES)
                chunks = [head.rpartition(b"\n")[0], fp.read(NAME_SCAN_BYTES).partition(b"\n")[2]]
    except OSError:
        return "", False
    name = ""
    for chunk in chunks:
        name = _last_name(chunk, name)
    _NAMES.put(key, (name, whole))
    return name, whole


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    run = read_jsonl(entry.paths[0], progress=progress, step_key=_step_key(cfg))
    run.id = entry.id
    run.name = run.name or entry.name
    run.path = cfg.relative(entry.paths[0])
    return run


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    run = read_jsonl(path, progress=progress, step_key=_step_key(cfg))
    run.path = cfg.relative(path)
    return run


def _step_key(cfg: RunwiseConfig) -> str | None:
    return cfg.schema.step_key or None


def read_jsonl(path: Path, *, progress: Progress | None = None, step_key: str | None = None) -> Run:
    """Read one JSONL log into a Run (history, config, meta, warnings).

    A file of `jsonl_workers.PARALLEL_BYTES` or more is split at line boundaries and its later
    parts are parsed in worker processes while this one parses the first (`jsonl_workers`
    decides, and reads here whatever a worker does not deliver).
    """
    try:
        st = path.stat()
        parts = jsonl_workers.read_parts(str(path), st.st_size, progress=progress)
    except OSError as exc:
        raise SourceError(f"cannot read {path.name}: {exc.strerror or exc}", path=str(path)) from exc
    if progress is not None:
        progress(float(st.st_size), float(st.st_size))
    return _finish(path, st, merge(parts), step_key)


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    """Read only the lines appended since `previous` was read; None unless the file only grew.

    The run is the earlier one's series with the new lines' values appended (`_extend`): what a
    full read gives now. None, so the caller reads in full, when the new lines change how earlier
    lines get their steps (a step key of higher priority appears).
    """
    state = previous.resume
    if not isinstance(state, _Resume) or str(entry.paths[0]) != state.path:
        return None
    path = Path(state.path)
    step_key = _step_key(cfg)
    try:
        with path.open("rb") as fp:
            st = grown(state.mark, fp)
        if st is None:
            return None  # replaced, shortened or rewritten: not an append
        new = read_part(str(path), state.mark.offset, st.st_size)
    except OSError:
        return None
    built = _extend(state.built, new, step_key)
    if built is None:
        return None
    run = _assemble(path, st, built)
    run.resume = _resume_after(path, st, state, built, step_key)
    run.id, run.name, run.path = previous.id, run.name or entry.name, previous.path
    return run


@dataclass(frozen=True)
class _Built:
    """What a run is made of, kept to append to: its series and what its other fields come from.

    `series` holds the very arrays of the run's history (sorted by step, and a step written more
    than once in line order), so keeping it costs no memory; the rest are small. Line numbers are
    0-based and global.
    """

    cfg_step_key: str | None  # runwise.json's step key when built
    step_key: str | None  # the step key used (None: line numbers)
    lines: int
    series: dict[str, tuple[np.ndarray, np.ndarray]]  # key -> (steps, values)
    times: dict[str, tuple[float, float]]  # _timestamp/_runtime -> (min, max) of its finite values
    missing: int  # lines with a metric but no step
    skipped: dict[str, int]
    first_bad: dict[str, int]
    meta: dict[str, Any]
    config: dict[str, Any]
    non_numeric: dict[str, str]


@dataclass(frozen=True)
class _Resume:
    """Where a read stopped: the run made of the complete lines before `mark.offset`."""

    path: str
    mark: FileMark  # mark.offset: the end of the last complete line read
    built: _Built


Merged = tuple[Columns, dict[str, int], dict[str, int], int]  # columns, skipped, first bad line, lines


def _finish(path: Path, st: Any, merged: Merged, step_key: str | None) -> Run:
    """The Run from merged columns, with the state a later refresh resumes from."""
    cols, skipped, first_bad, total = merged
    built = _build(cols, skipped, first_bad, total, step_key)
    run = _assemble(path, st, built)
    run.resume = _resume_state(path, st, cols, built)
    return run


def _column(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _step_order(step_key: str | None) -> tuple[str, ...]:
    return ((step_key,) if step_key else ()) + STEP_KEYS


def _line_steps(cols: Columns, used: str | None, first: int, lines: int) -> tuple[np.ndarray, np.ndarray]:
    """The step of each of `lines` lines from line `first` on (the `used` key, else the line number),
    and which lines have one."""
    line_steps = np.arange(first, first + lines, dtype=np.int64)
    has_step = np.zeros(lines, dtype=bool)
    if used is not None and used in cols.vals:
        rows, vals = _column(cols.rows[used]), _column(cols.vals[used])
        ok = np.isfinite(vals)
        line_steps[rows[ok]] = vals[ok].astype(np.int64)
        has_step[rows[ok]] = True
    return line_steps, has_step


def _build(
    cols: Columns, skipped: dict[str, int], first_bad: dict[str, int], total_lines: int, step_key: str | None
) -> _Built:
    """The series and the rest of a run from the columns of all its lines."""
    used = next((k for k in _step_order(step_key) if k in cols.vals), None)
    empty = _Built(step_key, used, 0, {}, {}, 0, {}, {}, {}, {}, {})
    part = Part()
    part.cols, part.lines, part.skipped, part.first_bad = cols, total_lines, skipped, first_bad
    return _append(empty, part)


def _extend(b: _Built, part: Part, step_key: str | None) -> _Built | None:
    """`b` with the lines of `part` (read right after b's lines) added; None when they would change
    how b's lines get their steps: another configured step key, or a step key of higher priority."""
    if step_key != b.cfg_step_key:
        return None
    order = _step_order(step_key)
    rank = order.index(b.step_key) if b.step_key is not None else len(order)
    if any(order.index(k) < rank for k in order if k in part.cols.vals):
        return None
    return _append(b, part)


def _append(b: _Built, part: Part) -> _Built:
    cols, base, n = part.cols, b.lines, part.lines
    line_steps, has_step = _line_steps(cols, b.step_key, base, n)
    series = dict(b.series)
    times = dict(b.times)
    has_metric = np.zeros(n, dtype=bool)
    for key in cols.vals:
        if key in STEP_KEYS or key == b.step_key:
            continue
        rows, vals = _column(cols.rows[key]), _column(cols.vals[key])
        if rows.size > 1 and not bool(np.all(rows[1:] > rows[:-1])):  # chunks of several row shapes: line order
            order = np.argsort(rows, kind="stable")  # each chunk ascends: a merge of few runs
            rows, vals = rows[order], vals[order]
        if key in TIME_KEYS:
            fin = vals[np.isfinite(vals)]
            if fin.size:
                lo, hi = float(fin.min()), float(fin.max())
                old = times.get(key)
                times[key] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)
            continue
        has_metric[rows] = True
        steps = line_steps[rows]
        if key in series:  # the earlier values first: a stable sort keeps them ahead of equal steps
            old_s, old_v = series[key]
            steps, vals = steps.astype(np.int64, copy=False), vals.astype(np.float64, copy=False)
            if not steps.size or ((not old_s.size or steps[0] >= old_s[-1]) and bool(np.all(steps[1:] >= steps[:-1]))):
                series[key] = (np.concatenate([old_s, steps]), np.concatenate([old_v, vals]))  # sorted already
                continue
            steps, vals = np.concatenate([old_s, steps]), np.concatenate([old_v, vals])
        made = make_series(key, steps, vals)
        series[key] = (made.steps, made.values)
    skipped, first_bad = dict(b.skipped), dict(b.first_bad)
    for reason, count in part.skipped.items():
        skipped[reason] = skipped.get(reason, 0) + count
        first_bad.setdefault(reason, part.first_bad[reason] + base)
    non_numeric = dict(b.non_numeric)
    for key, kind in cols.non_numeric.items():
        non_numeric.setdefault(key, kind)
    return _Built(
        cfg_step_key=b.cfg_step_key, step_key=b.step_key, lines=base + n, series=series, times=times,
        missing=b.missing + int((has_metric & ~has_step).sum()), skipped=skipped, first_bad=first_bad,
        meta={**b.meta, **cols.meta}, config={**b.config, **cols.config}, non_numeric=non_numeric,
    )


_HALF = "half-written last line"


def _resume_state(path: Path, st: Any, cols: Columns, built: _Built) -> _Resume | None:
    """Keep the complete lines: a last line without its newline is read again next time."""
    ends = _complete_end(path, st.st_size)
    if ends is None:
        return None
    offset = ends
    if offset < st.st_size:  # a last line without its newline: the run read without it
        complete = built.lines - 1
        if any(r.size and r[-1] >= complete for arrays in cols.rows.values() for r in arrays[-1:]):
            built = _build(_without_line(cols, complete), _drop_half(built.skipped), _drop_half(built.first_bad),
                           complete, built.cfg_step_key)
        else:  # it held no value (half-written, skipped): only the counts change
            built = dataclasses.replace(built, lines=complete, skipped=_drop_half(built.skipped),
                                        first_bad=_drop_half(built.first_bad))
    return _marked(path, offset, built)


def _resume_after(path: Path, st: Any, state: _Resume, built: _Built, step_key: str | None) -> _Resume | None:
    """The state after a refresh: as `_resume_state`, with the appended lines read again to leave out a partial one."""
    ends = _complete_end(path, st.st_size)
    if ends is None:
        return None
    if ends < st.st_size:
        try:
            complete = read_part(str(path), state.mark.offset, ends) if ends > state.mark.offset else Part()
        except OSError:
            return None
        again = _extend(state.built, complete, step_key)
        if again is None:
            return None
        built = again
    return _marked(path, ends, built)


def _complete_end(path: Path, size: int) -> int | None:
    """Where the last complete line of a file of `size` bytes ends; None when it cannot be told."""
    base = max(0, size - MAX_LINE)
    try:
        with path.open("rb") as fp:
            fp.seek(base)
            window = fp.read(size - base)
    except OSError:
        return None
    if len(window) != size - base:
        return None
    if not window or window.endswith(b"\n"):
        return size
    cut = window.rfind(b"\n")
    if cut < 0 and base > 0:
        return None  # a last line longer than MAX_LINE: read in full next time
    return base + cut + 1


def _marked(path: Path, offset: int, built: _Built) -> _Resume | None:
    try:
        with path.open("rb") as fp:
            mark = take(fp, size=offset, offset=offset)  # a partial last line is not counted as read
    except OSError:
        return None
    return _Resume(str(path), mark, built)


def _drop_half(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k != _HALF}


def _without_line(cols: Columns, line: int) -> Columns:
    """The columns without the values of line `line` and those after it (the arrays are shared, never changed)."""
    out = Columns()
    for key, arrays in cols.rows.items():
        rows, vals = list(arrays), list(cols.vals[key])
        for i, r in enumerate(rows):  # each chunk is ascending: its last row says if it holds the line
            if r.size and r[-1] >= line:
                keep = r < line
                rows[i], vals[i] = r[keep], vals[i][keep]
        if sum(map(len, rows)):
            out.rows[key], out.vals[key] = rows, vals
    out.non_numeric = dict(cols.non_numeric)
    out.config, out.meta = dict(cols.config), dict(cols.meta)
    return out


def _assemble(path: Path, st: Any, b: _Built) -> Run:
    """The Run of `b`: its series, and its warnings, times, state and metadata."""
    first_bad = {reason: line + 1 for reason, line in b.first_bad.items()}  # 1-based, as editors count
    history = {k: Series(k, s, v) for k, (s, v) in b.series.items()}
    warnings = []
    if b.skipped:
        parts = [f"{n} {reason} (first at line {first_bad[reason]})" for reason, n in b.skipped.items()]
        warnings.append(f"skipped {sum(b.skipped.values())} of {b.lines} lines: " + "; ".join(parts))
    if b.step_key is not None and b.missing:
        warnings.append(f"{b.missing} rows have no {b.step_key!r}: their line number was used as the step")
    elif b.step_key is None and b.lines:
        warnings.append("no 'step' or '_step' key: line numbers (from 0) are the steps")

    meta = b.meta
    start_time = runtime = None
    if "_timestamp" in b.times:
        lo, hi = b.times["_timestamp"]
        start_time, runtime = lo, hi - lo
    if "_runtime" in b.times:
        runtime = b.times["_runtime"][1]
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
        config=flatten(b.config, unwrap=True),  # W&B-style {"value": x} wrappers too
        summary=summary,
        start_time=start_time,
        runtime=runtime,
        last_write=st.st_mtime,
        history=history,
        non_numeric=dict(b.non_numeric),
        warnings=warnings,
        truncated=b.skipped.get(_HALF, 0) > 0,
    )
