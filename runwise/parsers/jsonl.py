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
    """Read only the lines appended since `previous` was read; None unless the file only grew."""
    state = previous.resume
    if not isinstance(state, _Resume) or str(entry.paths[0]) != state.path:
        return None
    path = Path(state.path)
    try:
        with path.open("rb") as fp:
            st = grown(state.mark, fp)
        if st is None:
            return None  # replaced, shortened or rewritten: not an append
        new = read_part(str(path), state.mark.offset, st.st_size)
    except OSError:
        return None
    run = _finish(path, st, merge([state.part, new]), _step_key(cfg))
    run.id, run.name, run.path = previous.id, run.name or entry.name, previous.path
    return run


@dataclass(frozen=True)
class _Resume:
    """Where a read stopped: the complete lines before `mark.offset`, as columns."""

    path: str
    mark: FileMark  # mark.offset: the end of the last complete line read
    part: Part  # the columns of every complete line before it


Merged = tuple[Columns, dict[str, int], dict[str, int], int]  # columns, skipped, first bad line, lines


def _finish(path: Path, st: Any, merged: Merged, step_key: str | None) -> Run:
    """The Run from merged columns, with the state a later refresh resumes from."""
    cols, skipped, first_bad, total = merged
    run = _build_run(path, st, cols, skipped, first_bad, total, step_key)
    run.resume = _resume_state(path, st, cols, skipped, first_bad, total)
    return run


def _resume_state(
    path: Path, st: Any, cols: Columns, skipped: dict[str, int], first_bad: dict[str, int], total: int
) -> _Resume | None:
    """Keep the complete lines: a last line without its newline is read again next time."""
    size = st.st_size
    base = max(0, size - MAX_LINE)
    try:
        with path.open("rb") as fp:
            fp.seek(base)
            window = fp.read(size - base)
    except OSError:
        return None
    if len(window) != size - base:
        return None
    complete = total
    offset = size
    if window and not window.endswith(b"\n"):
        cut = window.rfind(b"\n")
        if cut < 0 and base > 0:
            return None  # a last line longer than MAX_LINE: read in full next time
        offset = base + cut + 1
        complete = total - 1
    part = Part()
    part.lines = complete
    for key, arrays in cols.rows.items():
        rows, vals = list(arrays), list(cols.vals[key])  # the arrays are shared, never changed
        for i, r in enumerate(rows):  # each chunk is ascending: its last row says if it holds the line
            if complete < total and r.size and r[-1] >= complete:
                keep = r < complete
                rows[i], vals[i] = r[keep], vals[i][keep]
        if sum(map(len, rows)):
            part.cols.rows[key], part.cols.vals[key] = rows, vals
    part.cols.non_numeric = dict(cols.non_numeric)
    part.cols.config, part.cols.meta = dict(cols.config), dict(cols.meta)
    for reason, n in skipped.items():
        if reason != "half-written last line":  # the only line that can be, and it is read again
            part.skipped[reason], part.first_bad[reason] = n, first_bad[reason]
    try:
        with path.open("rb") as fp:
            mark = take(fp, size=offset, offset=offset)  # the partial last line is not counted as read
    except OSError:
        return None
    return _Resume(str(path), mark, part)


def _build_run(
    path: Path,
    st: Any,
    cols: Columns,
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
        config=flatten(cols.config, unwrap=True),  # W&B-style {"value": x} wrappers too
        summary=summary,
        start_time=start_time,
        runtime=runtime,
        last_write=st.st_mtime,
        history=history,
        non_numeric=dict(cols.non_numeric),
        warnings=warnings,
        truncated=skipped.get("half-written last line", 0) > 0,
    )

