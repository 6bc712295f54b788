"""Tools about one run: summarize_run, get_run_context, get_config, list_keys, live_status."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from runwise.config import RunwiseConfig
from runwise.model import CRASHED, FAILED, FINISHED, RUNNING, Run
from runwise.parsers import Progress
from runwise.tools._common import (
    In,
    Num,
    Out,
    Table,
    age,
    anomaly_report,
    clip,
    fmt,
    fmt_duration,
    fmt_step,
    iso,
    num,
    one_run,
    run_label,
    run_notes,
    select_keys,
    short_value,
)
from runwise.tools._fields import Keys, Prefix, RunRef


class RunHeader(Out):
    id: str
    name: str
    source: str
    state: str
    last_step: int | None
    runtime_s: Num
    started: str | None


def header(run: Run) -> RunHeader:
    return RunHeader(
        id=run.id, name=run.name, source=run.source, state=run.state, last_step=run.last_step,
        runtime_s=num(run.runtime, 4), started=iso(run.start_time),
    )


def ending(run: Run) -> str | None:
    """How a run ended, for crashed/failed/running runs: last step, exit code, last output line."""
    if run.state == FINISHED:
        return None
    parts = [f"{run.state} at step {fmt_step(run.last_step)}"]
    if run.exit_code is not None:
        parts.append(f"exit code {run.exit_code}")
    if run.state == RUNNING and run.last_write is not None:
        parts.append(f"last write {fmt_duration(age(run.last_write))} ago")
    if run.truncated:
        parts.append("log cut off mid-record")
    if run.output_tail and run.state in (CRASHED, FAILED):
        parts.append("last output: " + " | ".join(line[-160:] for line in run.output_tail[-3:]))
    return "; ".join(parts)


# ---------------------------------------------------------------- get_run_context


class RunContextInput(In):
    run: RunRef = "latest"


class RunContextOutput(Out):
    run: RunHeader
    path: str
    project: str
    entity: str
    group: str
    job_type: str
    tags: list[str]
    notes: str
    segments: list[str]
    exit_code: int | None


def get_run_context(req: RunContextInput, cfg: RunwiseConfig, progress: Progress | None = None) -> RunContextOutput:
    run, unused = one_run(req.run, cfg, progress)
    return RunContextOutput(
        run=header(run), path=_cut(run.path, 1000), project=_cut(run.project), entity=_cut(run.entity),
        group=_cut(run.group), job_type=_cut(run.job_type), tags=[_cut(t) for t in run.tags[:50]],
        notes=_cut(run.notes, 2000), segments=[_cut(p, 1000) for p in run.segments[:20]], exit_code=run.exit_code,
    )


def _cut(text: str, limit: int = 200) -> str:
    """`text`, or its first `limit` characters and how many more there are."""
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit:,} chars)"


# ---------------------------------------------------------------- get_config


class GetConfigInput(In):
    run: RunRef = "latest"
    prefix: Prefix = ""
    max_keys: Annotated[int, Field(ge=1, le=2000)] = 100


class GetConfigOutput(Out):
    run: str
    config: dict[str, str | int | float | bool | None | list[object] | dict[str, object]]
    total_keys: int
    omitted: int
    notes: list[str] = []


def get_config(req: GetConfigInput, cfg: RunwiseConfig, progress: Progress | None = None) -> GetConfigOutput:
    run, unused = one_run(req.run, cfg, progress)
    items = sorted((k, v) for k, v in run.config.items() if k.startswith(req.prefix))
    shown, omitted = clip(items, req.max_keys)
    return GetConfigOutput(
        run=run_label(run), config={k: short_value(v) for k, v in shown}, total_keys=len(run.config), omitted=omitted,
        notes=unused,
    )




# ---------------------------------------------------------------- list_keys


class ListKeysInput(In):
    run: RunRef = "latest"
    prefix: Prefix = ""
    max_keys: Annotated[int, Field(ge=1, le=5000)] = 200


class ListKeysOutput(Out):
    run: str
    metrics: Table  # key, points, first_step, last_step
    omitted: int
    non_numeric: dict[str, str]
    notes: list[str] = []


def list_keys(req: ListKeysInput, cfg: RunwiseConfig, progress: Progress | None = None) -> ListKeysOutput:
    run, unused = one_run(req.run, cfg, progress)
    keys = sorted(k for k in run.history if k.startswith(req.prefix))
    shown, omitted = clip(keys, req.max_keys)
    rows: list[list[str | int | float | bool | None]] = []
    for k in shown:
        s = run.history[k]
        rows.append([k, len(s), int(s.steps[0]) if len(s) else None, int(s.steps[-1]) if len(s) else None])
    nn = dict(list(sorted((k, v) for k, v in run.non_numeric.items() if k.startswith(req.prefix)))[:50])
    return ListKeysOutput(
        run=run_label(run), metrics=Table(columns=["key", "points", "first_step", "last_step"], rows=rows),
        omitted=omitted, non_numeric=nn, notes=unused,
    )


# ---------------------------------------------------------------- live_status


class LiveStatusInput(In):
    run: RunRef = "latest"
    keys: Keys = None
    output_lines: Annotated[int, Field(ge=0, le=50, description="Console lines")] = 5


class LiveStatusOutput(Out):
    summary: str
    run: RunHeader
    last_write_age_s: Num
    steps_per_s: Num
    latest: Table  # metric, step, value, trend (change over the last 10% of points)
    recent_anomalies: list[str]
    output_tail: list[str]
    notes: list[str]


def live_status(req: LiveStatusInput, cfg: RunwiseConfig, progress: Progress | None = None) -> LiveStatusOutput:
    run, unused = one_run(req.run, cfg, progress)
    keys, left_out = clip(select_keys(run, req.keys, cfg, default_limit=6), 50)
    rows: list[list[str | int | float | bool | None]] = []
    for k in keys:
        s = run.history[k]
        if not len(s):
            continue
        tail = s.values[-max(2, len(s) // 10):]
        fin = tail[np.isfinite(tail)]
        trend = num(float(fin[-1] - fin[0]), 3) if fin.size >= 2 else None
        rows.append([k, int(s.steps[-1]), num(float(s.values[-1]), 5), trend])
    rate = _steps_per_second(run)
    since = age(run.last_write)
    recent: list[str] = []
    last = run.last_step
    if last is not None:
        rep = anomaly_report(run, cfg, max_anomalies=20)
        window = max(1, int(last * 0.1))
        recent = [a.message for a in rep.anomalies if a.step >= last - window][:5]
    eta = ""
    total = _total_steps(run)
    if total and rate and last is not None and last < total and run.state == RUNNING:
        eta = f", ETA {fmt_duration((total - last) / float(rate))} to step {total:,}"
    summary = (
        f"{run_label(run)}: {run.state}, step {fmt_step(last)}"
        + (f", {fmt(rate)} steps/s" if rate else "")
        + (f", last write {fmt_duration(since)} ago" if since is not None else "")
        + eta
    )
    return LiveStatusOutput(
        summary=summary, run=header(run), last_write_age_s=num(since, 4), steps_per_s=rate,
        latest=Table(columns=["metric", "step", "value", "trend"], rows=rows), recent_anomalies=recent,
        output_tail=[line[-300:] for line in run.output_tail[-req.output_lines:]] if req.output_lines else [],
        notes=unused + run_notes(run) + ([f"{left_out} more metrics matched; at most 50 per answer"] * bool(left_out)),
    )


def _steps_per_second(run: Run) -> Num:
    if isinstance(run.summary.get("_steps_per_sec"), (int, float)):
        return num(float(run.summary["_steps_per_sec"]), 4)
    if run.runtime and run.runtime > 0 and run.last_step:
        return num(run.last_step / run.runtime, 4)
    return None


_TOTAL_KEYS = ("max_steps", "total_steps", "num_steps", "train_steps", "trainer.max_steps", "training.max_steps")


def _total_steps(run: Run) -> int | None:
    for k in _TOTAL_KEYS:
        v = run.config.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return int(v)
    return None
