"""compare_runs: two or more runs side by side, at their ends or at the same step."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, Field

from runwise import runs
from runwise.analysis.aliases import group_prefix
from runwise.analysis.compare import config_diff, percent_change, value_at_step
from runwise.config import RunwiseConfig
from runwise.model import Run, Series
from runwise.parsers import Progress
from runwise.tools._common import In, Num, Out, Table, fmt, main_metrics, num, run_label, run_notes, short_value
from runwise.tools._fields import MAX_STEP, NAME_CHARS, REF_CHARS, check_ref


class CompareRunsInput(In):
    runs: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=REF_CHARS), AfterValidator(check_ref)]],
        Field(min_length=2, max_length=8, description="Run refs; 'ref@STEP' compares values at that step"),
    ]
    step: Annotated[int | None, Field(ge=0, le=MAX_STEP, description="Compare every run at this step")] = None
    prefix: Annotated[str, Field(description="Only metrics starting with this", max_length=NAME_CHARS)] = ""
    group: Annotated[bool, Field(description="Group metrics by prefix")] = False
    threshold_pct: Annotated[
        float, Field(ge=0, le=1e6, allow_inf_nan=False, description="Hide metrics changing less than this %")
    ] = 0.0
    config_diff: Annotated[bool, Field(description="Include config differences")] = True
    max_metrics: Annotated[int, Field(ge=1, le=200)] = 20


class CompareRunsOutput(Out):
    summary: str
    runs: list[str]
    at_steps: list[int | None]
    metrics: Table  # metric, <run values...>, delta_pct (last vs first run), [at step columns]
    groups: dict[str, list[str]] | None = None
    omitted: int
    config_diff: Table | None = None  # key, <run values...>
    config_omitted: int = 0
    notes: list[str]


def _value(s: Series, step: int | None) -> tuple[Num, int | None]:
    """Final finite value, or the value at `step` (or the last one before it)."""
    if step is None:
        finite = np.isfinite(s.values)
        if not finite.any():
            return (num(float(s.values[-1])) if len(s) else None), (int(s.steps[-1]) if len(s) else None)
        i = int(np.flatnonzero(finite)[-1])
        return num(float(s.values[i])), int(s.steps[i])
    found = value_at_step(s.steps, s.values, step)
    if found is None:
        return None, None
    return num(found[1]), found[0]


def compare_runs(req: CompareRunsInput, cfg: RunwiseConfig, progress: Progress | None = None) -> CompareRunsOutput:
    loaded: list[tuple[Run, int | None]] = []
    for ref in req.runs:
        run, step = runs.get_run(ref, cfg, progress)
        loaded.append((run, step if step is not None else req.step))
    first = loaded[0][0]
    keys = [k for k in main_metrics(first, cfg, 10_000) if k.startswith(req.prefix)]
    for run, _ in loaded[1:]:
        keys += sorted(k for k in run.history if k.startswith(req.prefix) and k not in keys)
    labels = [run_label(r) for r, _ in loaded]
    ids = [r.id for r, _ in loaded]
    stepped = any(step is not None for _, step in loaded)
    columns = ["metric", *ids, "delta_pct"] + ([f"step@{i}" for i in ids] if stepped else [])
    rows: list[list[Any]] = []
    notes: list[str] = []
    for k in keys:
        vals: list[Num] = []
        at: list[int | None] = []
        for run, step in loaded:
            s = run.history.get(k)
            v, st = _value(s, step) if s is not None and len(s) else (None, None)
            vals.append(v)
            at.append(st)
        a, b = vals[0], vals[-1]
        delta = percent_change(a, b) if isinstance(a, float) and isinstance(b, float) else None
        if req.threshold_pct and (delta is None or abs(delta) < req.threshold_pct):
            continue
        rows.append([k, *vals, num(delta, 3)] + (at if stepped else []))
    shown = rows[: req.max_metrics]
    omitted = len(rows) - len(shown)
    groups: dict[str, list[str]] | None = None
    if req.group:
        by_group: dict[str, list[str]] = {}
        for row in shown:
            by_group.setdefault(group_prefix(row[0]) or "(none)", []).append(row[0])
        order = {g: i for i, g in enumerate(by_group)}
        groups = by_group
        shown.sort(key=lambda r: order[group_prefix(r[0]) or "(none)"])
    cfg_table = None
    cfg_omitted = 0
    if req.config_diff:
        diffs: dict[str, list[Any]] = {}
        base = first.config
        for i, (run, _) in enumerate(loaded[1:], 1):
            for key, (va, vb) in config_diff(base, run.config).items():
                row = diffs.setdefault(key, [base.get(key, "<missing>")] + ["="] * (len(loaded) - 1))
                row[i] = vb
                row[0] = va
        items = sorted(diffs.items())
        cfg_omitted = max(0, len(items) - 30)
        cfg_table = Table(columns=["key", *ids], rows=[[k, *map(short_value, v)] for k, v in items[:30]])
    for run, step in loaded:
        notes += [f"{run.id}: {n}" for n in run_notes(run)[:2]]
        if step is not None:
            notes += _step_notes(run, step)
    summary = _summary(labels, shown, loaded, cfg_table)
    return CompareRunsOutput(
        summary=summary, runs=labels, at_steps=[s for _, s in loaded], metrics=Table(columns=columns, rows=shown),
        groups=groups, omitted=omitted, config_diff=cfg_table, config_omitted=cfg_omitted, notes=notes[:8],
    )


def _step_notes(run: Run, step: int) -> list[str]:
    """What comparing `run` at `step` cannot show: a step past its end, or before its first point."""
    last = run.last_step
    if last is None:
        return []
    if step > last:
        return [f"{run.id}: step {step:,} is past its last step {last:,}: its values are from its last steps"]
    first = min(int(s.steps[0]) for s in run.history.values() if len(s))
    if step < first:
        return [f"{run.id}: step {step:,} is before its first logged step {first:,}: it has no values there"]
    return []


def _summary(labels: list[str], rows: list[list[Any]], loaded: list[tuple[Run, int | None]], cfg: Table | None) -> str:
    head = " vs ".join(labels)
    parts = [head]
    if rows:
        k = rows[0][0]
        vals = rows[0][1 : 1 + len(labels)]
        delta = rows[0][1 + len(labels)]
        change = f" ({delta:+.3g}%)" if isinstance(delta, float) else ""
        parts.append(f"{k}: " + " vs ".join(str(fmt(v)) for v in vals) + change)
    if cfg is not None:
        changed = [str(r[0]) for r in cfg.rows[:5]]
        parts.append(f"{len(cfg.rows)} config keys differ" + (f" ({', '.join(changed)})" if changed else ""))
    return "; ".join(parts)
