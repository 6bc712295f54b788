"""DVCLive run directories: `plots/metrics/**/*.tsv`, `metrics.json` and `params.yaml`.

A run directory is `dvclive/` under the project root, every directory named in `dvclive_dirs`
(runwise.json) or `RUNWISE_DVCLIVE_DIR`, and any directory under the root holding `plots/metrics/`
plus `metrics.json` or `params.yaml`. Its id is its path relative to the project root.

- Each `plots/metrics/<name>.tsv` is one series, header `timestamp\\tstep\\t<name>` (the
  timestamp column only when the script asked `log_metric(..., timestamp=True)`); folders make
  the metric name with "/" (`plots/metrics/train/loss.tsv` -> `train/loss`). Timestamps are
  milliseconds since the epoch, as DVCLive writes them; they give the start time and runtime
  (none without them).
  A last line without its newline (half-written) or a line that does not parse is skipped,
  counted, and reported in `Run.warnings`. NaN is kept.
- `metrics.json` holds the latest values (DVCLive rewrites it at every `next_step()` and at
  `end()`): the summary, nested keys flattened with "/".
- `params.yaml` is the config, read by `runwise._yaml` (PyYAML's safe loader: a value under a
  Python or other tag is read as plain data and nothing is constructed or executed; an alias bomb
  is refused with a warning).
- `dvc.yaml`, `report.*`, images and other plots are not read.

State: DVCLive writes nothing at `end()` that a killed run lacks (metrics.json is written at
every step too), so, as for JSONL logs, a run whose files changed in the last LIVE_SECONDS is
"running" and any other "unknown".
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runwise import _yaml
from runwise._flat import flatten, never
from runwise.errors import SourceError, why_unread
from runwise.model import LIVE_SECONDS, RUNNING, UNKNOWN, Run, RunEntry, Series, make_series
from runwise.parsers import Progress
from runwise.parsers._walk import Skipped, files_stamp, walk

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig

METRICS_JSON = "metrics.json"
PARAMS_YAML = "params.yaml"
MAX_PARAMS_BYTES = 1024 * 1024  # a larger params.yaml is not read


def _is_marker(name: str) -> bool:
    return name in (METRICS_JSON, PARAMS_YAML)


def _is_tsv(name: str) -> bool:
    return name.endswith(".tsv")


def is_run_dir(d: Path) -> bool:
    """Whether `d` looks like a DVCLive run directory (plots/metrics/ and metrics.json or params.yaml)."""
    return (d / "plots" / "metrics").is_dir() and ((d / METRICS_JSON).is_file() or (d / PARAMS_YAML).is_file())


def discover(cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
    """The configured or default run directories, and every run directory found under the project root."""
    skipped = Skipped()
    found: list[Path] = []
    seen: set[str] = set()

    def add(d: Path) -> None:
        key = os.path.realpath(d)
        if key not in seen:
            seen.add(key)
            found.append(d)

    for d in cfg.dvclive_dirs:
        if (d / "plots" / "metrics").is_dir():
            add(d)
    # the search of the whole root notes no links: those are the other sources' (or no source's) business
    for listed in walk([cfg.root], cfg.roots, want=_is_marker, skipped=Skipped(), show=cfg.relative):
        if listed.files and "plots" in listed.dirs and is_run_dir(listed.path):
            add(listed.path)
    entries = []
    for d in found:
        tsvs = _tsv_files(d, cfg, skipped)
        files = [p for _, p in tsvs] + [d / n for n in (METRICS_JSON, PARAMS_YAML) if (d / n).is_file()]
        mtime, size = files_stamp(files)
        run_id = cfg.relative(d)
        entries.append(RunEntry(run_id, "dvclive", (d, *(p for _, p in tsvs)), name=run_id, mtime=mtime, size=size,
                                extra={"name_final": True}))
    if notes is not None:
        notes.extend(skipped.notes("dvclive", "dvclive_dirs"))
    return entries


def _tsv_files(d: Path, cfg: RunwiseConfig, skipped: Skipped) -> list[tuple[str, Path]]:
    """(metric name, path) of every TSV under `d`/plots/metrics, links followed only inside the roots."""
    top = d / "plots" / "metrics"
    out = []
    for listed in walk([top], cfg.roots, want=_is_tsv, skipped=skipped, show=cfg.relative):
        for name in listed.files:
            path = listed.path / name
            rel = path.relative_to(top).with_suffix("")
            out.append((rel.as_posix(), path))
    return sorted(out)


def display_name(entry: RunEntry, cfg: RunwiseConfig) -> str:
    return entry.name


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    return None  # small files: always read in full


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    run = read_dvclive(entry.paths[0], cfg)
    run.id = entry.id
    return run


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    if path.is_file():  # a file inside the run directory: its run
        path = next((p for p in path.parents if is_run_dir(p)), path.parent)
    return read_dvclive(path, cfg)


def read_dvclive(d: Path, cfg: RunwiseConfig) -> Run:
    """Read one DVCLive run directory into a Run."""
    if not (d / "plots" / "metrics").is_dir() and not (d / METRICS_JSON).is_file():
        raise SourceError(f"{d.name}: not a DVCLive run directory (no plots/metrics/ or metrics.json)", path=str(d))
    warnings: list[str] = []
    history: dict[str, Series] = {}
    times: list[float] = []
    newest = 0.0
    truncated = False
    for name, path in _tsv_files(d, cfg, Skipped()):
        try:
            raw = path.read_bytes()
            newest = max(newest, path.stat().st_mtime)
        except OSError as exc:
            warnings.append(f"{name}: not read: {exc.strerror or exc}")
            continue
        series, ts, skipped, half = _read_tsv(name, raw)
        truncated = truncated or half
        if skipped:
            n = sum(skipped.values())
            warnings.append(f"{cfg.relative(path)}: skipped {n} line{'s' if n > 1 else ''}: "
                            + "; ".join(f"{n} {why}" for why, n in skipped.items()))
        if series is not None:
            history[name] = series
        times.extend(ts)
    summary: dict[str, Any] = {k: float(s.values[-1]) for k, s in history.items() if len(s)}
    mj = d / METRICS_JSON
    if mj.is_file():
        try:
            newest = max(newest, mj.stat().st_mtime)
            data = json.loads(mj.read_bytes())
            if isinstance(data, dict):
                summary.update(flatten(data, sep="/", whole=never))
            else:
                warnings.append(f"{METRICS_JSON}: not an object; not read")
        except (OSError, ValueError, RecursionError) as exc:
            warnings.append(f"{METRICS_JSON}: not read: {why_unread(exc)}")
    config: dict[str, Any] = {}
    py = d / PARAMS_YAML
    if py.is_file():
        try:
            newest = max(newest, py.stat().st_mtime)
            params = _yaml.load(py, max_bytes=MAX_PARAMS_BYTES)
            if isinstance(params, dict):
                config = flatten(params)
            elif params is not None:
                warnings.append(f"{PARAMS_YAML}: not a mapping; not read")
        except (OSError, _yaml.YamlError) as exc:
            warnings.append(f"{PARAMS_YAML}: not read: {why_unread(exc)}")
    start_time = runtime = None
    if times:
        start_time, runtime = min(times) / 1000.0, (max(times) - min(times)) / 1000.0
    last_write = newest or None
    state = RUNNING if newest and (time.time() - newest) < LIVE_SECONDS else UNKNOWN
    return Run(
        id=cfg.relative(d), source="dvclive", path=cfg.relative(d), name="", state=state,
        config=config, summary=summary, start_time=start_time, runtime=runtime, last_write=last_write,
        history=history, warnings=warnings, truncated=truncated,
    )




def _read_tsv(name: str, raw: bytes) -> tuple[Series | None, list[float], dict[str, int], bool]:
    """One metric file: its series, its timestamps (ms), the lines skipped by reason, and whether
    the last line was half-written."""
    lines = raw.split(b"\n")
    half = False
    skipped: dict[str, int] = {}
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:  # no newline after the last line: half-written
        lines.pop()
        half = True
        skipped["half-written last line"] = 1
    if not lines:
        return None, [], skipped, half
    header = lines[0].decode("utf-8", "replace").rstrip("\r").split("\t")
    if "step" not in header:
        skipped["lines under a header without a step column"] = len(lines)
        return None, [], skipped, half
    si = header.index("step")
    ti = header.index("timestamp") if "timestamp" in header else None
    vi = next((i for i, h in enumerate(header) if i not in (ti, si)), None)
    if vi is None:
        return None, [], skipped, half
    steps: list[int] = []
    values: list[float] = []
    ts: list[float] = []
    for line in lines[1:]:
        cells = line.decode("utf-8", "replace").rstrip("\r").split("\t")
        try:
            if len(cells) != len(header):
                raise ValueError
            step = int(cells[si])
            value = float(cells[vi])
            stamp = float(cells[ti]) if ti is not None else math.nan
        except ValueError:
            skipped["unreadable"] = skipped.get("unreadable", 0) + 1
            continue
        steps.append(step)
        values.append(value)
        if math.isfinite(stamp):
            ts.append(stamp)
    return make_series(name, steps, values), ts, skipped, half
