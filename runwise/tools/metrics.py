"""Tools over a run's metric series: get_history, get_stats, get_stability (detect_anomalies: tools/anomalies.py)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from runwise import results
from runwise.analysis.stability import Stability, stability
from runwise.analysis.stats import SeriesStats
from runwise.config import RunwiseConfig
from runwise.model import Series
from runwise.parsers import Progress
from runwise.tools._bound import ANSWER_CHARS, answer_size, answer_tokens
from runwise.tools._common import (
    In,
    Out,
    Table,
    clip,
    fmt_step,
    num,
    one_run,
    request_budget,
    run_label,
    run_notes,
    select_keys,
    stats_of,
)
from runwise.tools._fields import MAX_STEP, Keys, RunRef, Step

HISTORY_BUDGET = 360  # points across all metrics by default when max_points is given without a budget
HISTORY_POINTS = 2_000  # points across all metrics in one answer, whatever max_points asks
HISTORY_TOKENS = 2_000  # get_history's default token budget (ToolSpec.budget)
HISTORY_SIZES = ("max_points",)  # a request setting it asks for that many points instead of the default budget
ANSWER_METRICS = 50  # metrics in one answer of get_history or get_stability
POINT_TOKENS = 9  # about what one step/value pair costs: a first guess of the points a budget holds
MAX_BUDGET_POINTS = 500  # points per metric a budget alone asks for (max_points can ask up to 5,000)
MIN_POINTS = 12  # a budget drops metrics before it shows any with fewer points than this (5 buckets)


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
    max_points: Annotated[int | None, Field(ge=4, le=5000, description="Points per metric (default: budget)")] = None
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
    values: list[int | float | str | None]  # 4 significant digits; whole numbers without '.0'; "nan", "inf"
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
    """Each metric's curve in as many points as the budget holds (or max_points), every bucket's min and max kept.

    The budget (`req.budget`, else HISTORY_TOKENS unless max_points is given) is met on the
    estimated tokens of the answer's text: points per metric start from a guess and shrink until it
    fits. At 4 points per metric, ToolSpec.run's cut drops trailing metrics, saying so.
    """
    run, unused = one_run(req.run, cfg, progress)
    keys, left_out = clip(select_keys(run, req.keys, cfg, default_limit=6), ANSWER_METRICS)
    notes = unused + run_notes(run) + _more_metrics(left_out)
    budget = request_budget(req, HISTORY_TOKENS, HISTORY_SIZES)
    most = min(req.max_points or MAX_BUDGET_POINTS, max(4, HISTORY_POINTS // max(1, len(keys))))
    if req.max_points is not None and most < req.max_points:
        notes.append(f"max_points lowered to {most} per metric: at most {HISTORY_POINTS:,} points per answer")
    windows = {k: _window(run.history[k], req.start_step, req.end_step) for k in keys}
    empty = _empty_window_note(windows, run.history, req.start_step, req.end_step)
    if empty:
        notes.append(empty)
    label = run_label(run)
    if budget is None:
        out = _history(req, label, windows, most, notes)
        size = answer_size(out)
        if size > ANSWER_CHARS and most > 4:  # long names or values: fewer points, not a cut-off curve
            most = max(4, most * ANSWER_CHARS * 9 // (10 * size))
            notes.append(f"points per metric lowered to {most} to keep the answer under {ANSWER_CHARS:,} characters")
            out = _history(req, label, windows, most, notes)
        return out
    return _fit_history(req, label, windows, min(most, MAX_BUDGET_POINTS), notes, budget)


def _fit_history(
    req: GetHistoryInput, label: str, windows: dict[str, Series], most: int, notes: list[str], budget: int
) -> GetHistoryOutput:
    """The history answer within `budget` estimated tokens: fewer points per metric, down to MIN_POINTS, then
    fewer metrics (the last ones go, and a note names them), then fewer points again, down to 4."""
    shown = dict(windows)
    left: list[str] = []

    def guess() -> int:  # below MIN_POINTS only for a single metric
        return max(4 if len(shown) == 1 else MIN_POINTS, min(most, budget // (POINT_TOKENS * len(shown))))

    per_metric = guess()
    for _ in range(20):  # each round scales the points, or the metrics, by how far over the budget it is
        extra = [] if not left else [
            f"{len(left)} metrics left out to fit the budget: {', '.join(left[:3])}{', ...' if len(left) > 3 else ''}"
            "; ask for them with keys= or a larger budget="]
        out = _history(req, label, shown, per_metric, notes + extra, budget)
        used = answer_tokens(out)
        if used <= budget:
            break
        if per_metric > MIN_POINTS:
            per_metric = max(MIN_POINTS, min(per_metric - 1, per_metric * budget * 19 // (20 * used)))
        elif len(shown) > 1:
            keep = max(1, min(len(shown) - 1, len(shown) * budget // used))
            names = list(shown)
            left = names[keep:] + left
            shown = {k: shown[k] for k in names[:keep]}
            per_metric = guess()
        elif per_metric > 4:
            per_metric = max(4, min(per_metric - 1, per_metric * budget * 19 // (20 * used)))
        else:
            break  # one metric at 4 points: ToolSpec.run's cut says what is still over
    return out


def _history(
    req: GetHistoryInput, label: str, windows: dict[str, Series], per_metric: int, notes: list[str],
    budget: int | None = None,
) -> GetHistoryOutput:
    out: dict[str, MetricHistory] = {}
    csv: dict[str, str] = {}
    sampled = 0
    whole = req.start_step is None and req.end_step is None  # a window's views are new arrays on every call
    for k, s in windows.items():
        steps, vals, method = _sampled(s, per_metric) if whole else _extremes(s, per_metric)
        nan, inf = _nonfinite(stats_of(s)) if whole else _nonfinite(s)
        if method != "all":
            sampled += 1
        if req.format == "csv":
            lines = (f"{st},{'' if v is None else v}" for st, v in zip(steps, vals, strict=True))
            csv[k] = "step,value\n" + "\n".join(lines)
            out[k] = MetricHistory(steps=[], values=[], source_points=len(s), method=method, nan=nan, inf=inf)
        else:
            out[k] = MetricHistory(steps=steps, values=vals, source_points=len(s), method=method, nan=nan, inf=inf)
    note = f"{len(windows)} metric{'s' if len(windows) != 1 else ''}, up to {per_metric} points each"
    if sampled:
        more = "budget=" if budget is not None else "max_points="
        note += (f"; {sampled} sampled: first, last, each bucket's min and max (one-step spikes kept);"
                 f" more: {more}, keys=, start_step/end_step")
    else:
        note += "; all points returned"
    if req.start_step is not None or req.end_step is not None:
        note += f"; steps {fmt_step(req.start_step)}..{fmt_step(req.end_step)}"
    return GetHistoryOutput(run=label, note=note, metrics=out, csv=csv or None, notes=notes[:10])


def _sampled(s: Series, max_points: int) -> tuple[list[int], list[int | float | str | None], str]:
    """`_extremes`, once per version of the series' columns and `max_points` (copies: answers are edited)."""
    steps, vals, method = results.memo("extremes", (s.steps, s.values), max_points, lambda: _frozen(s, max_points),
                                       weight=lambda r: len(r[0]))
    return list(steps), list(vals), method


def _frozen(s: Series, max_points: int) -> tuple[tuple[int, ...], tuple[int | float | str | None, ...], str]:
    steps, vals, method = _extremes(s, max_points)
    return tuple(steps), tuple(vals), method


def _nonfinite(s: Series | SeriesStats) -> tuple[int, int]:
    """How many NaN and how many ±inf values the series (or the series its statistics are of) has."""
    if isinstance(s, SeriesStats):
        return s.nan_count, s.inf_count
    return int(np.count_nonzero(np.isnan(s.values))), int(np.count_nonzero(np.isinf(s.values)))


def _extremes(s: Series, max_points: int) -> tuple[list[int], list[int | float | str | None], str]:
    """At most `max_points` points of `s`: its first and last, and each bucket's min, max and first NaN.

    Series that fit come back whole ("all"). Otherwise the points are split by index into
    (max_points - 2) // 2 buckets, or // 3 when the series has NaN ("minmax"). ±inf count as
    extremes, so a one-step spike or dip always survives. Vectorised: O(n).
    """
    n = len(s)
    if n <= max_points:
        return s.steps.tolist(), [_value(v) for v in s.values.tolist()], "all"
    v = s.values
    isnan = np.isnan(v)
    has_nan = bool(isnan.any())
    buckets = max(1, (max_points - 2) // (3 if has_nan else 2))
    starts = (np.arange(buckets, dtype=np.int64) * n) // buckets
    sizes = np.diff(np.append(starts, n))
    pos = np.arange(n, dtype=np.int64)
    low = np.where(isnan, np.inf, v)
    high = np.where(isnan, -np.inf, v)
    # first position in each bucket that attains the bucket's extreme (n where none: all NaN)
    at_min = np.minimum.reduceat(np.where(low == np.repeat(np.minimum.reduceat(low, starts), sizes), pos, n), starts)
    at_max = np.minimum.reduceat(np.where(high == np.repeat(np.maximum.reduceat(high, starts), sizes), pos, n), starts)
    parts = [np.array([0, n - 1]), at_min, at_max]
    if has_nan:
        parts.append(np.minimum.reduceat(np.where(isnan, pos, n), starts))
    idx = np.unique(np.concatenate(parts))
    idx = idx[idx < n]
    return s.steps[idx].tolist(), [_value(x) for x in v[idx].tolist()], "minmax"


def _value(x: float) -> int | float | str | None:
    """A history value in few tokens: 4 significant digits, a whole number without '.0', non-finite as text."""
    if not math.isfinite(x):
        return num(x)
    r = float(f"{x:.4g}")
    return int(r) if r.is_integer() and abs(r) < 1e15 else r


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
        st = stats_of(run.history[k])
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
        st = _stability(s, req.window_steps)
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


def _stability(s: Series, window_steps: int | None) -> Stability:
    """`stability` of a series, once per version of its columns and window."""
    return results.memo("stability", (s.steps, s.values), window_steps,
                        lambda: stability(s.steps, s.values, window_steps=window_steps))
