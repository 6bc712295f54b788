"""One W&B run directory (a *segment*; a resumed run has several) read into plain columns.

`read_log` reads `run-<id>.wandb` through the framing (`wandb_log`) and the bulk decoder
(`wandb_columns`); `wandb_legacy.read_side_files` fills the same `Segment` from the JSON/YAML side
files of wandb 0.9 runs or of directories without a log. Nothing is ever written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runwise.errors import CorruptRecord, SourceError
from runwise.parsers import wandb_records as rec
from runwise.parsers.wandb_columns import Columns, decode_window
from runwise.parsers.wandb_log import Damage, iter_windows

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


def log_file(d: Path) -> Path | None:
    """The `run-<id>.wandb` file of a run directory, if any."""
    logs = sorted(p for p in d.glob("run-*.wandb") if p.is_file())
    return logs[-1] if logs else None


def newest_mtime(d: Path, log: Path | None) -> float:
    """Newest modification time among the files that grow while a run is live."""
    times = []
    for p in (log, d / "files" / "output.log", d / "output.log", d / "wandb-history.jsonl",
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


def _finish_columns(seg: Segment, cols: Columns) -> None:
    """Concatenate the per-window chunks; drop media sub-keys; keep the internals aside."""
    media = cols.media
    for key, chunks in cols.steps.items():
        steps = np.concatenate(chunks)
        values = np.concatenate(cols.values[key])
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


def _apply_others(seg: Segment, cols: Columns) -> None:
    """Run, config, exit and console records, in file order."""
    config: dict[tuple[str, ...], Any] = {}
    output: list[str] = []
    for _, kind, body in sorted(cols.others, key=lambda x: x[0]):
        try:
            if kind == rec.RUN and not seg.info:
                seg.info = rec.run_info(body)
                for path, value, _ in seg.info.pop("config"):
                    config[path] = value
                seg.start_time = seg.info.get("start_time")
            elif kind == rec.CONFIG:
                for path, value, removed in rec.config_updates(body):
                    if removed:
                        config.pop(path, None)
                    else:
                        config[path] = value
            elif kind == rec.EXIT:
                seg.exit_code, runtime = rec.exit_info(body)
                if runtime:
                    seg.runtime = max(seg.runtime or 0.0, runtime)
            elif kind in (rec.OUTPUT_RAW, rec.OUTPUT):
                text, ts = rec.output_line(body)
                output.append(text)
                if len(output) > 400:
                    del output[:200]
                if ts is not None:
                    seg.last_time = max(seg.last_time or ts, ts)
        except rec.BAD_ITEM:
            cols.undecodable += 1
    for path, value in config.items():
        if path and path[0] != "_wandb":
            rec.flatten(value, ".".join(path), seg.config)
    seg.output = rec.console_tail(output)


def read_log(
    d: Path, log: Path, *, progress: Callable[[float, float], None] | None = None,
    done: float = 0.0, total: float = 0.0,
) -> Segment:
    """Read one run directory's `.wandb` log. Damage goes to `warnings`; nothing readable -> SourceError."""
    seg = Segment(dir=d, id=log.stem[len("run-"):])
    cols = Columns()
    st = log.stat()
    seg.size, seg.mtime = st.st_size, newest_mtime(d, log)
    wrapped = None if progress is None else (lambda a, b: progress(done + a, total or b))
    try:
        with log.open("rb") as fp:
            for win in iter_windows(fp, path=str(log), damage=seg.damage, progress=wrapped, total=st.st_size):
                decode_window(win, cols)
    except OSError as exc:
        raise SourceError(f"cannot read {log.name}: {exc}", path=str(log)) from exc
    except CorruptRecord as exc:
        raise SourceError(f"{log.name}: {exc}", path=str(log), offset=exc.offset) from exc
    _finish_columns(seg, cols)
    _apply_others(seg, cols)
    summary = {p: v for p, (off, v) in cols.summary.items() if cols.removed.get(p, -1) < off}
    seg.summary = flat_summary(summary)
    if not seg.summary:  # no summary record: the last value of each series
        seg.summary = {k: float(v[-1]) for k, (s, v) in seg.history.items() if v.size}
    if seg.start_time is not None and seg.last_time is not None:
        seg.runtime = max(seg.runtime or 0.0, seg.last_time - seg.start_time)
    seg.warnings.extend(seg.damage.messages())
    if cols.undecodable:
        seg.warnings.append(f"{cols.undecodable} record(s) or item(s) could not be decoded and were skipped")
    return seg
