"""Tools over a run's metric series: get_history, get_stats, get_stability (detect_anomalies: tools/anomalies.py)."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from runwise.analysis.downsample import downsample
from runwise.analysis.stability import stability
from runwise.analysis.stats import series_stats
from runwise.config import RunwiseConfig
from runwise.model import Series
from runwise.parsers import Progress
from runwise.tools._bound import ANSWER_CHARS, answer_size
from runwise.tools._common import (
    In,
    Num,
    Out,
    Table,
    clip,
    fmt_step,
    num,
    one_run,
    run_label,
    run_notes,
    select_keys,
)
from runwise.tools._fields import MAX_STEP, Keys, RunRef, Step

HISTORY_BUDGET = 360  # points across all metrics by default: keeps the answer near 6k characters
HISTORY_POINTS = 2_000  # points across all metrics in one answer, whatever max_points asks
ANSWER_METRICS = 50  # metrics in one answer of get_history or get_stability


def _window(s: Series, start: int | None, end: int | None) -> Series:
    if start is None and end is None:
        return s
    lo = 0 if start is None else int(np.searchsorted(s.steps, start, side="left"))
    hi = len(s) if end is None else int(np.searchsorted(s.steps, end, side="right"))
    return Series(s.metric, s.steps[lo:hi], s.values[lo:hi])


def _empty_window_note(windows: dict[str, Series], full: dict[str, Series], start: int | None, end: int | None) -> str:
    """Which metrics have no point between `start` and `end`, and where their points are ('' if all have)."""
    empty = [k for k, w in windows.items() if not len(w) and len(full[k])]
    if not empty:
        return ""
    first = min(int(full[k].steps[0]) for k in empty)
    last = max(int(full[k].steps[-1]) for k in empty)
    which = "no metric has" if len(empty) == len(windows) else f"{len(empty)} of {len(windows)} metrics have"
    return (f"{which} points in steps {fmt_step(start) if start is not None else '0'}..{fmt_step(end)}"
            f" ({', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''}: steps {first:,}..{last:,})")


def _more_metrics(left_out: int) -> list[str]:
    """The note for metrics matched but left out of an answer (none if none were)."""
    return [f"{left_out} more metrics matched; at most {ANSWER_METRICS} per answer: narrow keys"] if left_out else []


# ---------------------------------------------------------------- get_history


class GetHistoryInput(In):
    run: RunRef = "latest"
    keys: Keys = None
    max_points: Annotated[
        int | None, Field(ge=4, le=5000, description="Points per metric (default: ~360 in all)")
    ] = None
    start_step: Step | None = None
    end_step: Step | None = None
    format: Annotated[Literal["columns", "csv"], Field(description="columns or one CSV per metric")] = "columns"

    @model_validator(mode="after")
    def _ordered_range(self) -> GetHistoryInput:
        if self.start_step is not None and self.end_step is not None and self.start_step > self.end_step:
            raise ValueError(f"start_step {self.start_step:,} is after end_step {self.end_step:,}")
        return self


class MetricHistory(Out):
    steps: list[int]
    values: list[Num]
    source_points: int
    method: str
    nan: int = 0
    inf: int = 0


class GetHistoryOutput(Out):
    run: str
    note: str
    metrics: dict[str, MetricHistory]
    csv: dict[str, str] | None = None
    notes: list[str]


def get_history(req: GetHistoryInput, cfg: RunwiseConfig, progress: Progress | None = None) -> GetHistoryOutput:
    run, unused = one_run(req.run, cfg, progress)
    keys, left_out = clip(select_keys(run, req.keys, cfg, default_limit=6), ANSWER_METRICS)
    notes = unused + run_notes(run) + _more_metrics(left_out)
    if req.max_points is None:
        per_metric = max(16, min(200, HISTORY_BUDGET // max(1, len(keys))))
    else:
        per_metric = min(req.max_points, max(4, HISTORY_POINTS // max(1, len(keys))))
        if per_metric < req.max_points:
            notes.append(f"max_points lowered to {per_metric} per metric: at most {HISTORY_POINTS:,} points per answer")
    windows = {k: _window(run.history[k], req.start_step, req.end_step) for k in keys}
    empty = _empty_window_note(windows, run.history, req.start_step, req.end_step)
    if empty:
        notes.append(empty)
    out = _history(req, run_label(run), windows, per_metric, notes)
    size = answer_size(out)
    if size > ANSWER_CHARS and per_metric > 4:  # long names or values: fewer points, not a cut-off curve
        per_metric = max(4, per_metric * ANSWER_CHARS * 9 // (10 * size))
        notes.append(f"points per metric lowered to {per_metric} to keep the answer under {ANSWER_CHARS:,} characters")
        out = _history(req, run_label(run), windows, per_metric, notes)
    return out


def _history(
    req: GetHistoryInput, label: str, windows: dict[str, Series], per_metric: int, notes: list[str]
) -> GetHistoryOutput:
    out: dict[str, MetricHistory] = {}
    csv: dict[str, str] = {}
    sampled = 0
    for k, s in windows.items():
        ds = downsample(s.steps, s.values, max_points=per_metric)
        if ds.method != "all":
            sampled += 1
        vals = [num(v) for v in ds.values.tolist()]
        steps = ds.steps.tolist()
        if req.format == "csv":
            lines = (f"{st},{'' if v is None else v}" for st, v in zip(steps, vals, strict=True))
            csv[k] = "step,value\n" + "\n".join(lines)
            out[k] = MetricHistory(steps=[], values=[], source_points=ds.source_points, method=ds.method,
                                   nan=ds.nan_count, inf=ds.inf_count)
        else:
            out[k] = MetricHistory(steps=steps, values=vals, source_points=ds.source_points, method=ds.method,
                                   nan=ds.nan_count, inf=ds.inf_count)
    note = (
        f"{len(windows)} metrics, up to {per_metric} points each; "
        + (f"{sampled} downsampled keeping each bucket's first/last/min/max (spikes survive)"
           if sampled else "all points returned")
    )
    if req.start_step is not None or req.end_step is not None:
        note += f"; steps {fmt_step(req.start_step)}..{fmt_step(req.end_step)}"
    return GetHistoryOutput(run=label, note=note, metrics=out, csv=csv or None, notes=notes[:10])


# ---------------------------------------------------------------- get_stats


class GetStatsInput(In):
    run: RunRef = "latest"
    keys: Keys = None
    max_metrics: Annotated[int, Field(ge=1, le=500)] = 30


STATS_COLUMNS = [
    "metric", "points", "final", "final_step", "min", "min_step", "max", "max_step", "mean", "std", "nan", "inf",
]


class GetStatsOutput(Out):
    run: str
    stats: Table
    omitted: int
    notes: list[str]


def get_stats(req: GetStatsInput, cfg: RunwiseConfig, progress: Progress | None = None) -> GetStatsOutput:
    run, unused = one_run(req.run, cfg, progress)
    keys = select_keys(run, req.keys, cfg, default_limit=len(run.history))
    shown, omitted = clip(keys, req.max_metrics)
    rows: list[list[str | int | float | bool | None]] = []
    for k in shown:
        s = run.history[k]
        st = series_stats(s.steps, s.values)
        rows.append([
            k, st.count, num(st.final), st.final_step, num(st.min), st.min_step, num(st.max), st.max_step,
            num(st.mean), num(st.std, 4), st.nan_count, st.inf_count,
        ])
    return GetStatsOutput(run=run_label(run), stats=Table(columns=STATS_COLUMNS, rows=rows), omitted=omitted,
                          notes=unused + run_notes(run))


# ---------------------------------------------------------------- get_stability


class GetStabilityInput(In):
    run: RunRef = "latest"
    keys: Keys = None
    window_steps: Annotated[
        int | None, Field(ge=2, le=MAX_STEP, description="Rolling window in steps (default span/20)")
    ] = None


STABILITY_COLUMNS = [
    "metric", "verdict", "trend", "slope_per_1k_steps", "cv_last", "rolling_std_last", "rolling_std_mean",
    "rolling_std_max", "rolling_std_max_step", "window_steps",
]


class GetStabilityOutput(Out):
    run: str
    stability: Table
    notes: list[str]


def get_stability(req: GetStabilityInput, cfg: RunwiseConfig, progress: Progress | None = None) -> GetStabilityOutput:
    run, unused = one_run(req.run, cfg, progress)
    keys, left_out = clip(select_keys(run, req.keys, cfg, default_limit=8), ANSWER_METRICS)
    rows: list[list[str | int | float | bool | None]] = []
    wide: list[str] = []
    for k in keys:
        s = run.history[k]
        st = stability(s.steps, s.values, window_steps=req.window_steps)
        rows.append([
            k, st.verdict, st.trend, num(st.slope_per_1k_steps, 4), num(st.cv_last, 3), num(st.rolling_std_last, 4),
            num(st.rolling_std_mean, 4), num(st.rolling_std_max, 4), st.rolling_std_max_step, st.window_steps,
        ])
        if req.window_steps is not None and len(s) and req.window_steps > int(s.steps[-1] - s.steps[0]):
            wide.append(k)
    notes = unused + run_notes(run) + _more_metrics(left_out)
    if wide:
        notes.append(f"window_steps {req.window_steps:,} is wider than the steps of {', '.join(wide[:5])}"
                     f"{', ...' if len(wide) > 5 else ''}: one window holds every point")
    return GetStabilityOutput(run=run_label(run), stability=Table(columns=STABILITY_COLUMNS, rows=rows), notes=notes)
