"""One W&B run directory (a *segment*; a resumed run has several) read into plain columns.

`read_log` reads `run-<id>.wandb` through the framing (`wandb.log`) and the bulk decoder
(`wandb.columns`), a big log in several processes (`wandb.workers`, same result);
`wandb.legacy.read_side_files` fills the same `Segment` from the JSON/YAML side files of wandb 0.9
runs or of directories without a log. Nothing is ever written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from runwise.errors import CorruptRecord, SourceError, UnsupportedFormat
from runwise.parsers._growth import grown, take
from runwise.parsers.filetypes import WANDB_HISTORY, is_wandb_log
from runwise.parsers.wandb import records as rec
from runwise.parsers.wandb import workers
from runwise.parsers.wandb.columns import Columns, decode_window
from runwise.parsers.wandb.live import LogState, without_tail
from runwise.parsers.wandb.log import Cursor, Damage, iter_windows

Progress = Callable[[float, float], None]

HIDDEN = ("_runtime", "_timestamp", "_step")


@dataclass(slots=True)
class Segment:
    """What one run directory holds, before segments are merged into a Run."""

    dir: Path
    id: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # name, project, entity, group, tags, ...
    config: dict[str, Any] = field(default_factory=dict)  # flattened
    summary: dict[str, Any] = field(default_factory=dict)  # flattened
    history: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]] = field(default_factory=dict)
    non_numeric: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)  # last console lines
    start_time: float | None = None
    last_time: float | None = None  # epoch s of the newest record that carries a time
    runtime: float | None = None
    exit_code: int | None = None  # None: no exit record
    state: str | None = None  # only from side files that say it (wandb 0.9 metadata)
    damage: Damage = field(default_factory=Damage)
    warnings: list[str] = field(default_factory=list)
    size: int = 0
    mtime: float = 0.0
    resume: LogState | None = field(default=None, repr=False, compare=False)  # see read_on


def log_file(d: Path) -> Path | None:
    """The `run-<id>.wandb` file of a run directory, if any."""
    logs = sorted(p for p in d.glob("run-*") if is_wandb_log(p.name) and p.is_file())
    return logs[-1] if logs else None


def newest_mtime(d: Path, log: Path | None) -> float:
    """Newest modification time among the files that grow while a run is live."""
    times = []
    for p in (log, d / "files" / "output.log", d / "output.log", d / WANDB_HISTORY,
              d / "files" / "wandb-summary.json"):
        if p is not None:
            try:
                times.append(os.stat(p).st_mtime)
            except OSError:
                pass
    return max(times, default=0.0)


def flat_summary(items: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """Flatten summary paths into "a.b" keys; media objects become "<kind>"; `_wandb` is hidden."""
    out: dict[str, Any] = {}
    for path, value in items.items():
        if path and path[0] == "_wandb":
            continue
        rec.flatten(value, ".".join(path), out)
    media = {k[: -len("._type")]: v for k, v in out.items() if k.endswith("._type")}
    for k in list(out):
        if isinstance(out[k], dict) and "_type" in out[k]:
            out[k] = f"<{out[k]['_type']}>"
        elif any(k == m or k.startswith(m + ".") for m in media):
            del out[k]
    for m, kind in media.items():
        out[m] = f"<{kind}>"
    return out


def finish_columns(seg: Segment, cols: Columns) -> None:
    """Concatenate the per-window chunks; drop media sub-keys; keep the internals aside."""
    media = cols.media
    for key, chunks in cols.steps.items():
        vchunks = cols.values[key]
        steps = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        values = vchunks[0] if len(vchunks) == 1 else np.concatenate(vchunks)
        cols.steps[key], cols.values[key] = [steps], [values]  # joined once; the arrays are shared
        if key in HIDDEN:
            if key == "_runtime" and values.size:
                seg.runtime = float(np.nanmax(values))
            elif key == "_timestamp" and values.size:
                seg.last_time = float(np.nanmax(values))
            continue
        if any(key.startswith(m + ".") for m in media):
            continue
        seg.history[key] = (steps, values)
    for key, kind in cols.kinds.items():
        if not any(key == m or key.startswith(m + ".") for m in media):
            seg.non_numeric[key] = kind
    for m, kind in media.items():
        seg.non_numeric[m] = str(kind)


def _build(d: Path, log: Path, state: LogState, damage: Damage, size: int) -> Segment:
    """The Segment of everything `state` holds (its column chunks are joined in place)."""
    seg = Segment(dir=d, id=log.stem[len("run-"):], damage=damage, size=size, mtime=newest_mtime(d, log))
    cols, others = state.cols, state.others
    finish_columns(seg, cols)
    seg.info = {k: (list(v) if isinstance(v, list) else v) for k, v in others.info.items()}
    seg.start_time, seg.exit_code = others.start_time, others.exit_code
    if others.exit_runtime:
        seg.runtime = max(seg.runtime or 0.0, others.exit_runtime)
    if others.output_time is not None:
        seg.last_time = max(seg.last_time or others.output_time, others.output_time)
    for path, value in others.config.items():
        if path and path[0] != "_wandb":
            rec.flatten(value, ".".join(path), seg.config)
    seg.output = rec.console_tail(others.output)
    summary = {p: v for p, (off, v) in cols.summary.items() if cols.removed.get(p, -1) < off}
    seg.summary = flat_summary(summary)
    if not seg.summary:  # no summary record: the last value of each series
        seg.summary = {k: float(v[-1]) for k, (s, v) in seg.history.items() if v.size}
    if seg.start_time is not None and seg.last_time is not None:
        seg.runtime = max(seg.runtime or 0.0, seg.last_time - seg.start_time)
    seg.warnings.extend(damage.messages())
    if cols.undecodable:
        seg.warnings.append(f"{cols.undecodable} record(s) or item(s) could not be decoded and were skipped")
    return seg


def _scan(fp: BinaryIO, d: Path, log: Path, state: LogState, progress: Progress | None, total: float) -> Segment:
    """Read on from `state.cursor` to the end of the file into `state`; the Segment of it all."""
    damage = state.damage
    end = Cursor()
    start = state.cursor if state.cursor.pos > 0 else None
    for win in iter_windows(fp, path=str(log), damage=damage, progress=progress, total=int(total),
                            start=start, end=end):
        decode_window(win, state.cols)
        state.others.apply(state.cols)
    return _finish(fp, d, log, state, damage, end)


def _finish(fp: BinaryIO, d: Path, log: Path, state: LogState, damage: Damage, end: Cursor) -> Segment:
    """Leave in `state` where the read stopped; the Segment of it all."""
    state.cursor, state.damage = end, without_tail(damage)
    state.mark = take(fp, size=end.end, offset=end.pos) if end.pos >= 0 else None
    seg = _build(d, log, state, damage, os.fstat(fp.fileno()).st_size)
    seg.resume = state if end.pos >= 0 else None
    return seg


def _scan_parts(fp: BinaryIO, d: Path, log: Path, cuts: list[int], progress: Progress | None,
                total: float) -> Segment:
    """A first read of the whole log in several processes (`wandb.workers`): the same Segment and state."""
    cols, damage, end = workers.read_parts(str(log), cuts, progress=progress, total=int(total))
    state = LogState(log, cols)
    state.others.apply(cols, ordered=True)
    return _finish(fp, d, log, state, damage, end)


def read_log(
    d: Path, log: Path, *, progress: Progress | None = None, done: float = 0.0, total: float = 0.0,
) -> Segment:
    """Read one run directory's `.wandb` log. Damage goes to `warnings`; nothing readable -> SourceError.

    The Segment keeps in `resume` what `read_on` needs to read only what is appended later.
    """
    wrapped = None if progress is None else (lambda a, b: progress(done + a, total or b))
    try:
        with log.open("rb") as fp:
            size = os.fstat(fp.fileno()).st_size
            cuts = workers.split(size)
            if len(cuts) > 1:
                return _scan_parts(fp, d, log, cuts, wrapped, size)
            return _scan(fp, d, log, LogState(log), wrapped, size)
    except OSError as exc:
        raise SourceError(f"cannot read {log.name}: {exc}", path=str(log)) from exc
    except CorruptRecord as exc:
        raise SourceError(f"{log.name}: {exc}", path=str(log), offset=exc.offset) from exc


def read_on(d: Path, previous: LogState, progress: Progress | None = None) -> Segment | None:
    """The Segment of the grown log `previous` was read from, reading only the appended bytes.

    None if the file is not the same one grown by appending (replaced, shorter, rewritten before
    where the last read stopped) or cannot be read: read it in full then.
    """
    log = previous.log
    try:
        with log.open("rb") as fp:
            st = grown(previous.mark, fp) if previous.mark is not None else None
            if st is None:
                return None
            return _scan(fp, d, log, previous.fork(), progress, st.st_size)
    except (OSError, CorruptRecord, UnsupportedFormat):
        return None
