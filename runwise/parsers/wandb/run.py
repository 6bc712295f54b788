"""W&B local runs: find run directories under the wandb dir and load them into the run model.

Layout: `<wandb_dir>/{run|offline-run|dryrun}-YYYYMMDD_HHMMSS-<id>[-N]/`, with `latest-run` a link
to the newest. The run id is the stem of the directory's `run-<id>.wandb` (exact, so ids that share
a prefix never mix), else the directory name after the timestamp. Several directories with one id
are the segments of a resumed run: they are merged in time order, and for a step that several
segments logged, the later segment's value wins.

State: an exit record means finished (exit code 0) or failed; without one, a run whose files
changed within LIVE_SECONDS seconds is running, otherwise it crashed or was killed.
Reading never writes anywhere; parsed segments are cached in memory per process, keyed by
(path, size, mtime), so a second read of an unchanged run is instant.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from runwise._bounded import Bounded
from runwise.config import RunwiseConfig
from runwise.errors import SourceError, UnsupportedFormat
from runwise.model import CRASHED, FAILED, FINISHED, LIVE_SECONDS, RUNNING, UNKNOWN, Run, RunEntry, make_series
from runwise.parsers import Progress
from runwise.parsers._walk import Skipped, list_dir, outside_roots
from runwise.parsers.filetypes import WANDB_RUN_DIR
from runwise.parsers.wandb import records as rec
from runwise.parsers.wandb.columns import Columns, decode_window
from runwise.parsers.wandb.legacy import read_side_files, side_name, side_size
from runwise.parsers.wandb.log import BLOCK, Damage, iter_windows
from runwise.parsers.wandb.segment import Segment, log_file, newest_mtime, read_log, read_on

CACHE_SIZE = 16
_CACHE: Bounded[tuple[str, int, float], Segment] = Bounded(CACHE_SIZE, lru=True)
NAMES_SIZE = 4096
_NAMES: Bounded[tuple[str, int, int], str] = Bounded(NAMES_SIZE)  # (log, size, mtime_ns) -> display name


def _run_dirs(base: Path, cfg: RunwiseConfig, skipped: Skipped) -> list[Path]:
    """The run directories in `base`, each once: real ones, and links to directories inside the roots.

    A directory whose log or side files resolve outside the roots is skipped (and noted) whole.
    """
    plain, linked, _ = list_dir(base, cfg.roots, want=lambda name: False, skipped=skipped, show=cfg.relative)
    out: list[Path] = []
    seen: set[Path] = set()
    for d in [base / n for n in plain + linked if WANDB_RUN_DIR.match(n)]:  # real ones first
        real = d.resolve()
        if real in seen:  # a link to a run directory that is listed already
            continue
        seen.add(real)
        bad = outside_roots([d], cfg.roots)
        if bad is not None:
            skipped.outside.append(cfg.relative(bad))
            continue
        out.append(d)
    return out


def _dir_id(d: Path) -> str:
    log = log_file(d)
    if log is not None:
        return log.stem[len("run-"):]
    m = WANDB_RUN_DIR.match(d.name)
    return m.group(2) if m else d.name


def _head_name(log: Path) -> str:
    """The display name from the run record in the first block (one 32 KiB read, once per log version)."""
    try:
        st = log.stat()
    except OSError:
        return ""
    key = (str(log), st.st_size, st.st_mtime_ns)
    name = _NAMES.get(key)
    if name is None:
        name = _read_head_name(log)
        _NAMES.put(key, name)
    return name


def _read_head_name(log: Path) -> str:
    cols = Columns()
    try:
        with log.open("rb") as fp:
            for win in iter_windows(fp, path=str(log), damage=Damage(), limit=BLOCK):
                decode_window(win, cols)
    except (OSError, SourceError, ValueError):
        return ""
    for _, kind, body in cols.others:
        if kind == rec.RUN:
            try:
                return str(rec.run_info(body).get("name", ""))
            except rec.BAD_ITEM:
                return ""
    return ""


def _sort_key(d: Path) -> tuple[str, str]:
    m = WANDB_RUN_DIR.match(d.name)
    return (m.group(1) if m else "", d.name)


def discover(cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
    """Every W&B run under the wandb dir, one entry per run id (segments in time order).

    Links are followed only inside the project roots (parsers._walk); `notes` gets one line about
    the links skipped. `latest-run` is not a run directory's name, so it never lists a run twice.
    """
    base = cfg.wandb_dir
    skipped = Skipped()
    dirs = _run_dirs(base, cfg, skipped)
    if not dirs and (base / "wandb").is_dir():  # WANDB_DIR=<x> puts runs in <x>/wandb
        base = base / "wandb"
        skipped = Skipped()
        dirs = _run_dirs(base, cfg, skipped)
    if notes is not None:
        notes.extend(skipped.notes("wandb", "wandb_dir"))
    latest = (base / "latest-run").resolve() if (base / "latest-run").exists() else None
    by_id: dict[str, list[Path]] = {}
    for d in dirs:
        by_id.setdefault(_dir_id(d), []).append(d)
    entries = []
    for run_id, segs in by_id.items():
        segs.sort(key=_sort_key)
        size, mtime = 0, 0.0
        for d in segs:
            log = log_file(d)
            size += log.stat().st_size if log is not None else side_size(d)
            mtime = max(mtime, newest_mtime(d, log))
        name = ""
        for d in reversed(segs):  # the newest segment that names the run
            log = log_file(d)
            name = _head_name(log) if log is not None else side_name(d)
            if name:
                break
        extra: dict[str, Any] = {"latest": latest is not None and any(d.resolve() == latest for d in segs)}
        entries.append(RunEntry(id=run_id, source="wandb", paths=tuple(segs), name=name, mtime=mtime,
                                size=size, extra=extra))
    return entries


def display_name(entry: RunEntry, cfg: RunwiseConfig) -> str:
    """The name a load gives the run: a later run record may rename it, so this is a load."""
    return load(entry, cfg).name


def _segment(d: Path, run_id: str, progress: Progress | None, done: float, total: float) -> Segment:
    log = log_file(d)
    if log is None:
        seg = read_side_files(d, run_id)
        seg.warnings.insert(0, f"{d.name}: no .wandb log; read from its side files")
        return seg
    st = log.stat()
    key = (str(log.resolve()), st.st_size, st.st_mtime)
    cached = _CACHE.get(key)
    if cached is None:
        seg = read_log(d, log, progress=progress, done=done, total=total)
        _CACHE.put(key, seg)
    else:
        seg = cached
        seg.mtime = newest_mtime(d, log)  # output.log may have changed
        if progress is not None:
            progress(done + st.st_size, total)
    return seg


def _state(seg: Segment, now: float) -> str:
    if seg.exit_code is not None:
        return FINISHED if seg.exit_code == 0 else FAILED
    if seg.state in ("finished", "failed", "crashed", "killed"):
        return {"finished": FINISHED, "failed": FAILED}.get(seg.state, CRASHED)
    if seg.mtime and now - seg.mtime < LIVE_SECONDS:
        return RUNNING
    return CRASHED if seg.mtime else UNKNOWN


def merge(segs: list[Segment], cfg: RunwiseConfig, *, now: float | None = None) -> Run:
    """Merge the segments of one run (time order) into a Run."""
    last = segs[-1]
    info: dict[str, Any] = {}
    for s in segs:
        info.update({k: v for k, v in s.info.items() if v not in ("", None, [])})
    run = Run(id=last.id or str(info.get("id", "")), source="wandb", path=cfg.relative(last.dir))
    run.name = str(info.get("name", ""))
    run.project, run.entity = str(info.get("project", "")), str(info.get("entity", ""))
    run.group, run.job_type = str(info.get("group", "")), str(info.get("job_type", ""))
    run.notes, run.tags = str(info.get("notes", "")), list(info.get("tags", []))
    steps: dict[str, list[np.ndarray]] = {}
    values: dict[str, list[np.ndarray]] = {}
    for s in segs:
        run.config.update(s.config)
        run.summary.update(s.summary)
        run.non_numeric.update(s.non_numeric)
        for key, (st, va) in s.history.items():
            steps.setdefault(key, []).append(st)
            values.setdefault(key, []).append(va)
        prefix = f"{s.dir.name}: " if len(segs) > 1 else ""
        run.warnings.extend(prefix + w for w in s.warnings)
    for key in sorted(steps):  # one order however the log was read (windows group keys their own way)
        st, va = steps[key][0], values[key][0]
        if len(steps[key]) > 1:
            st, va = np.concatenate(steps[key]), np.concatenate(values[key])
        run.history[key] = make_series(key, st, va, dedupe=True)  # stable: later segments win
    run.start_time = next((s.start_time for s in segs if s.start_time is not None), None)
    runtimes = [s.runtime for s in segs if s.runtime is not None]
    run.runtime = float(sum(runtimes)) if runtimes else None
    run.last_write = max((s.mtime for s in segs), default=0.0) or None
    run.exit_code = last.exit_code
    run.state = _state(last, time.time() if now is None else now)
    run.truncated = last.damage.truncated
    run.output_tail = last.output[-20:] if last.output else [ln for s in segs for ln in s.output][-20:]
    if len(segs) > 1:
        run.segments = [cfg.relative(s.dir) for s in segs]
    if all(s.resume is not None for s in segs):
        run.resume = tuple(segs)  # read on from each segment's state (see refresh)
    return run


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Parse a discovered run (all its segments) into the run model."""
    total = float(entry.size or sum((lf.stat().st_size if (lf := log_file(d)) else 0) for d in entry.paths))
    segs: list[Segment] = []
    done = 0.0
    for d in entry.paths:
        segs.append(_segment(d, entry.id, progress, done, total))
        done += segs[-1].size
    if not segs:
        raise SourceError(f"run {entry.id!r} has no directories", path=str(cfg.wandb_dir))
    return merge(segs, cfg)


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Load one `.wandb` file or one run directory (a single segment)."""
    p = cfg.check_inside(path)
    d = p.parent if p.is_file() else p
    if p.is_file() and p.suffix != ".wandb":
        raise UnsupportedFormat(f"{p.name!r} is not a .wandb log", path=str(p))
    if not d.is_dir():
        raise SourceError(f"{path} does not exist", path=str(path))
    if p.is_file():
        seg = read_log(d, p, progress=progress, total=float(p.stat().st_size))
    else:
        seg = _segment(d, _dir_id(d), progress, 0.0, 0.0)
    return merge([seg], cfg)


def _logs(entry: RunEntry, cfg: RunwiseConfig) -> list[tuple[Path, Path | None]]:
    """(run directory, its .wandb log) of each segment, as `load` / `load_file` read them."""
    if entry.extra.get("file") and entry.paths:
        p = cfg.check_inside(entry.paths[0])
        return [(p.parent, p)] if p.is_file() else [(p, log_file(p))]
    return [(d, log_file(d)) for d in entry.paths]


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    """`previous` brought up to date by reading only what was appended to its logs since.

    None (the caller then loads in full) unless every segment is the same `.wandb` log as before,
    grown by appending only: a segment added or removed, a log replaced, shortened or rewritten,
    or a segment read from side files all need a full load. `previous` is not modified.
    """
    old = previous.resume
    if not isinstance(old, tuple) or not all(isinstance(s, Segment) and s.resume is not None for s in old):
        return None
    logs = _logs(entry, cfg)
    if len(logs) != len(old):
        return None
    segs: list[Segment] = []
    done = 0.0
    for (d, log), seg in zip(logs, old, strict=True):
        state = seg.resume
        if log is None or state is None or d != seg.dir or log != state.log:
            return None
        wrapped = None if progress is None else (lambda a, b, at=done: progress(at + a, at + b))
        new = read_on(d, state, wrapped)
        if new is None:
            return None
        segs.append(new)
        done += new.size
    return merge(segs, cfg)
