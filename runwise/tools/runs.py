"""Tools over many runs: list_runs, find_best_run."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from runwise import runs
from runwise.analysis.aliases import ROLES, find_metric, higher_is_better
from runwise.analysis.sparkline import sparkline
from runwise.config import RunwiseConfig
from runwise.errors import RunwiseError
from runwise.model import Run, RunEntry
from runwise.parsers import Progress
from runwise.tools._common import In, Out, Table, fmt, fmt_duration, num, roles, unknown_metric
from runwise.tools._fields import MetricName

Source = Literal["all", "wandb", "tensorboard", "jsonl"]


def _entries(cfg: RunwiseConfig, source: str) -> tuple[list[RunEntry], list[str]]:
    entries, warnings = runs.discover(cfg)
    if source != "all":
        entries = [e for e in entries if e.source == source]
    return entries, warnings


def _try_load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None) -> Run | str:
    try:
        return runs.load(entry, cfg, progress)
    except RunwiseError as exc:
        return f"unreadable: {exc}"


# ---------------------------------------------------------------- list_runs


class ListRunsInput(In):
    source: Source = "all"
    limit: Annotated[int, Field(ge=1, le=runs.LIST_MAX_RUNS, description="Newest runs to show")] = 15
    metric: Annotated[MetricName | None, Field(description="Metric per run (default: the loss)")] = None
    sparklines: bool = True


class ListRunsOutput(Out):
    summary: str
    runs: Table  # id, name, source, state, last_step, runtime, <metric>, spark
    total: int
    omitted: int
    notes: list[str]


def list_runs(req: ListRunsInput, cfg: RunwiseConfig, progress: Progress | None = None) -> ListRunsOutput:
    entries, warnings = _entries(cfg, req.source)
    shown = entries[: req.limit]
    columns = ["id", "name", "source", "state", "last_step", "runtime", "metric", "final"]
    if req.sparklines:
        columns.append("spark")
    rows: list[list[str | int | float | bool | None]] = []
    notes = list(warnings)
    skipped_big = 0
    for e in shown:
        # a run larger than runs.LIST_LOAD_BYTES is listed from its metadata unless cached: a listing stays
        # fast with many 600 MB logs around (and run names are looked up within the same reads)
        if e.size > runs.LIST_LOAD_BYTES and not runs.is_cached(e):
            skipped_big += 1
            row: list[str | int | float | bool | None] = [e.id, e.name, e.source, "?", None, None, None, None]
            rows.append(row + ([""] if req.sparklines else []))
            continue
        run = _try_load(e, cfg, progress)
        if isinstance(run, str):
            bad: list[str | int | float | bool | None] = [e.id, e.name, e.source, "unreadable", None, None, None, None]
            rows.append(bad + ([""] if req.sparklines else []))
            notes.append(f"{e.key}: {run}")
            continue
        key = req.metric if req.metric in run.history else roles(run.history, cfg).get("loss")
        s = run.history.get(key) if key else None
        final = None
        if s is not None and len(s):
            fin = s.values[np.isfinite(s.values)]
            final = num(float(fin[-1]), 4) if fin.size else num(float(s.values[-1]))
        row = [run.id, run.name, run.source, run.state, run.last_step, fmt_duration(run.runtime), key, final]
        if req.sparklines:
            row.append(sparkline(s.values, width=12) if s is not None else "")
        rows.append(row)
    if skipped_big:
        plural = "" if skipped_big == 1 else "s"
        notes.append(f"{skipped_big} large run{plural} listed unread (state '?'): ask about one to read it")
    by_source: dict[str, int] = {}
    for e in entries:
        by_source[e.source] = by_source.get(e.source, 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(by_source.items())) or "none"
    summary = f"{len(entries)} run{'' if len(entries) == 1 else 's'} ({counts}); newest first"
    if req.metric and not any(r[6] == req.metric for r in rows):
        notes.append(f"no listed run has metric {req.metric!r}; showing the loss where there is one")
    return ListRunsOutput(summary=summary, runs=Table(columns=columns, rows=rows), total=len(entries),
                          omitted=max(0, len(entries) - len(shown)), notes=notes[:8])


# ---------------------------------------------------------------- find_best_run


class FindBestRunInput(In):
    metric: Annotated[MetricName, Field(description="e.g. 'val/loss'")]
    mode: Annotated[Literal["auto", "min", "max"], Field(description="auto: max for accuracy-like names")] = "auto"
    use: Annotated[Literal["best", "final"], Field(description="Each run's best or final value")] = "best"
    top_n: Annotated[int, Field(ge=1, le=50)] = 5
    source: Source = "all"
    max_runs: Annotated[int, Field(ge=1, le=1000, description="Newest runs to consider")] = 100


class FindBestRunOutput(Out):
    summary: str
    ranking: Table  # rank, id, name, source, value, step, final, state
    considered: int
    without_metric: int
    notes: list[str]


def find_best_run(req: FindBestRunInput, cfg: RunwiseConfig, progress: Progress | None = None) -> FindBestRunOutput:
    entries, warnings = _entries(cfg, req.source)
    entries = entries[: req.max_runs]
    maximize = higher_is_better(req.metric) if req.mode == "auto" else req.mode == "max"
    hib = cfg.schema.higher_is_better(req.metric)
    if req.mode == "auto" and hib is not None:
        maximize = hib
    scored: list[tuple[float, list[str | int | float | bool | None]]] = []
    missing = 0
    notes = list(warnings)
    all_keys: set[str] = set()
    aliased: dict[str, None] = {}  # keys a role name ('val_loss') was read as, in order
    for e in entries:
        run = _try_load(e, cfg, progress)
        if isinstance(run, str):
            notes.append(f"{e.key}: {run}")
            continue
        all_keys.update(run.history)
        key = _metric_key(run, req.metric)
        if key is not None and key != req.metric:
            aliased.setdefault(key, None)
        s = run.history.get(key) if key is not None else None
        finite = np.isfinite(s.values) if s is not None else None
        if s is None or finite is None or not finite.any():
            missing += 1
            continue
        steps, vals = s.steps[finite], s.values[finite]
        if req.use == "final":
            i = len(vals) - 1
        else:
            i = int(np.argmax(vals) if maximize else np.argmin(vals))
        value = float(vals[i])
        row: list[str | int | float | bool | None] = [
            0, run.id, run.name, run.source, num(value), int(steps[i]), num(float(vals[-1])), run.state,
        ]
        scored.append((value, row))
    if not scored and entries:
        raise unknown_metric(req.metric, all_keys)
    if aliased:
        notes.insert(0, f"{req.metric!r} read as the run's {', '.join(aliased)} (a role name, not a logged key)")
    scored.sort(key=lambda t: -t[0] if maximize else t[0])
    rows = []
    for rank, (_, row) in enumerate(scored[: req.top_n], 1):
        row[0] = rank
        rows.append(row)
    direction = "highest" if maximize else "lowest"
    if rows:
        best = rows[0]
        summary = (
            f"best by {req.use} {req.metric} ({direction}): {best[3]}:{best[1]} = {fmt(best[4])} at step {best[5]:,}"
            f" of {len(scored)} runs with the metric"
        )
    else:
        summary = "no runs found"
    return FindBestRunOutput(
        summary=summary,
        ranking=Table(columns=["rank", "id", "name", "source", req.use, "step", "final", "state"], rows=rows),
        considered=len(entries), without_metric=missing, notes=notes[:8],
    )


def _metric_key(run: Run, metric: str) -> str | None:
    """The run's key for `metric`: the key itself, else the key playing that role ('val_loss' -> 'val/loss')."""
    if metric in run.history:
        return metric
    return find_metric(run.history, metric) if metric in ROLES else None
