"""compare_runs: 2 to 16 runs side by side: final and best values, checkpoints, where they diverge, which
config keys explain the difference, and seed groups; shaped to a token budget.

The analysis (one metric across runs, config ranking, groups) is `runwise.analysis.compare`; this
module loads the runs, picks the metrics, builds the tables and cuts them to the budget, saying
what it left out.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, Field

from runwise import results, runs
from runwise.analysis.aliases import group_prefix, higher_is_better
from runwise.analysis.compare import (
    KeyRank,
    MetricComparison,
    compare_series,
    flatten_config,
    group_runs,
    percent_change,
    rank_config_keys,
    spread,
    value_at_step,
)
from runwise.config import RunwiseConfig
from runwise.errors import RunwiseError
from runwise.model import Run, Series
from runwise.parsers import Progress
from runwise.tools._bound import answer_tokens
from runwise.tools._common import (
    In,
    Num,
    Out,
    Table,
    fmt,
    main_metrics,
    num,
    request_budget,
    roles,
    run_label,
    run_notes,
    short_value,
)
from runwise.tools._fields import MAX_STEP, NAME_CHARS, REF_CHARS, check_ref

MAX_RUNS = 16
DEFAULT_BUDGET = 2_000  # tokens of the compact JSON answer when the request names no budget
SIZES = ("max_metrics",)  # a request setting it asks for that many metrics instead of the default budget
ANALYSED = 6  # metrics given best values and a point of divergence by default
CHECKED = 3  # metrics given values at the common checkpoints by default
GROUP_METRICS = 3  # metrics given group statistics by default
CONFIG_ROWS = 30


class UnknownConfigKey(RunwiseError):
    """No run has the config key a request groups by."""

    def __init__(self, key: str, available: Iterable[str]) -> None:
        names = sorted(available)
        close = difflib.get_close_matches(key, names, n=5, cutoff=0.4)
        hint = f"closest: {', '.join(close)}; " if close else ""
        shown = ", ".join(names[:20]) + (f" (+{len(names) - 20} more)" if len(names) > 20 else "")
        super().__init__(f"no run has config key {key!r}; {hint}keys: {shown or 'none'}; or group_by='seed'")
        self.key = key


class CompareRunsInput(In):
    runs: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=REF_CHARS), AfterValidator(check_ref)]],
        Field(min_length=2, max_length=MAX_RUNS, description="Run refs; 'ref@STEP' for values at a step"),
    ]
    step: Annotated[int | None, Field(ge=0, le=MAX_STEP, description="Compare every run at this step")] = None
    prefix: Annotated[str, Field(description="Only metrics starting with this", max_length=NAME_CHARS)] = ""
    group: Annotated[bool, Field(description="Group metrics by prefix")] = False
    threshold_pct: Annotated[
        float, Field(ge=0, le=1e6, allow_inf_nan=False, description="Hide metrics changing < this %")
    ] = 0.0
    config_diff: Annotated[bool, Field(description="Include config differences")] = True
    max_metrics: Annotated[int, Field(ge=1, le=200)] = 20
    group_by: Annotated[
        str | None,
        Field(min_length=1, max_length=NAME_CHARS,
              description="'seed': pool runs differing only in seeds; or a config key"),
    ] = None


class CompareRunsOutput(Out):
    summary: str
    runs: list[str]
    at_steps: list[int | None]
    metrics: Table  # metric, <final (or at-step) value per run>, delta_pct (last vs first run), [step@<run>]
    best: Table | None = None  # metric, mode, <best value per run>, <its step per run>
    checkpoints: Table | None = None  # metric, step, <value at or before it per run>
    divergence: Table | None = None  # metric, step (None: never), split_off, gap, noise
    groups: dict[str, list[str]] | None = None  # metric groups by prefix (group=True)
    run_groups: dict[str, list[str]] | None = None  # group_by: group -> run ids
    group_stats: Table | None = None  # metric, group, n, mean/std/min/max of final, of best
    omitted: int
    config_diff: Table | None = None  # key, <value per run ('=': as the first run)>, [share]
    config_omitted: int = 0
    notes: list[str]


@dataclass
class _Shape:
    """How much of each table an answer shows; cut step by step until the answer fits its budget."""

    rows: int
    best: int
    check: int
    div: int
    cfg: int
    gstats: int
    notes: int = 8


# The order in which an answer over budget gives things up: details first, the final values last.
_CUTS: tuple[tuple[str, int], ...] = (
    ("cfg", 15), ("check", 2), ("best", 4), ("rows", 10), ("check", 1), ("div", 4), ("cfg", 8), ("gstats", 2),
    ("rows", 6), ("best", 2), ("div", 2), ("cfg", 4), ("check", 0), ("gstats", 1), ("notes", 3), ("rows", 3),
    ("best", 1), ("div", 1), ("cfg", 2), ("best", 0), ("rows", 1), ("div", 0), ("cfg", 0), ("gstats", 0),
    ("notes", 1),
)


_REFILL = ("rows", "div", "best", "cfg", "gstats", "check", "notes")


def _truncated(s: Series, step: int | None) -> tuple[Any, Any]:
    if step is None:
        return s.steps, s.values
    j = int(np.searchsorted(s.steps, step, side="right"))
    return s.steps[:j], s.values[:j]


def _value(s: Series, step: int | None) -> tuple[Num, int | None]:
    """Final finite value, or the value at `step` (or the last one before it)."""
    if step is None:
        i = _last_finite(s.values)
        if i is None:
            return (num(float(s.values[-1])) if len(s) else None), (int(s.steps[-1]) if len(s) else None)
        return num(float(s.values[i])), int(s.steps[i])
    found = value_at_step(s.steps, s.values, step)
    if found is None:
        return None, None
    return num(found[1]), found[0]


def _last_finite(values: Any, chunk: int = 4096) -> int | None:
    """Index of the last finite value, looking back a chunk at a time (a series rarely ends in NaN)."""
    end = int(values.shape[0])
    while end > 0:
        start = max(0, end - chunk)
        found = np.flatnonzero(np.isfinite(values[start:end]))
        if found.size:
            return start + int(found[-1])
        end, chunk = start, chunk * 4
    return None


def compare_runs(req: CompareRunsInput, cfg: RunwiseConfig, progress: Progress | None = None) -> CompareRunsOutput:
    loaded: list[tuple[Run, int | None]] = []
    for ref in req.runs:
        run, step = runs.get_run(ref, cfg, progress)
        loaded.append((run, step if step is not None else req.step))
    first = loaded[0][0]
    keys = [k for k in main_metrics(first, cfg, 10_000) if k.startswith(req.prefix)]
    for run, _ in loaded[1:]:
        keys += sorted(k for k in run.history if k.startswith(req.prefix) and k not in keys)
    ids = [r.id for r, _ in loaded]
    stepped = any(step is not None for _, step in loaded)
    rows: list[list[Any]] = []
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
    shown_keys = [r[0] for r in rows[: req.max_metrics]]
    outcome = _outcome_metric(loaded, keys, cfg)
    wanted = list(dict.fromkeys(([outcome] if outcome else []) + shown_keys[:ANALYSED]))
    analysed = {k: _compare(loaded, k) for k in wanted}
    configs = [run.config for run, _ in loaded]
    finals = _finals(analysed.get(outcome) if outcome else None, len(loaded))
    ranked = rank_config_keys(configs, finals) if req.config_diff else []
    grouped = _groups(configs, req.group_by) if req.group_by else None
    notes: list[str] = []
    for run, step in loaded:
        notes += [f"{run.id}: {n}" for n in run_notes(run)[:2]]
        if step is not None:
            notes += _step_notes(run, step)
    schedule = {roles(run.history, cfg).get("lr") or "" for run, _ in loaded}  # its minimum is no 'best'
    parts = _Parts(req, loaded, ids, rows, shown_keys, analysed, outcome, ranked, grouped, notes, stepped, schedule)
    budget = request_budget(req, DEFAULT_BUDGET, SIZES)  # a request setting max_metrics asks for that size
    shape = _Shape(rows=min(len(rows), req.max_metrics), best=ANALYSED, check=CHECKED, div=ANALYSED,
                   cfg=CONFIG_ROWS, gstats=GROUP_METRICS)
    out = parts.build(shape, budget or 0)
    if budget is None or answer_tokens(out) <= budget:
        return out
    full = shape
    for knob, value in _CUTS:  # cut in order until it fits ...
        if getattr(shape, knob) > value:
            shape = replace(shape, **{knob: value})
            out = parts.build(shape, budget)
            if answer_tokens(out) <= budget:
                break
    for knob in _REFILL:  # ... then give back what still fits, the most useful part first
        for value in sorted({getattr(full, knob), *(v for k, v in _CUTS if k == knob)}, reverse=True):
            if value <= getattr(shape, knob):
                break
            bigger = parts.build(replace(shape, **{knob: value}), budget)
            if answer_tokens(bigger) <= budget:
                shape, out = replace(shape, **{knob: value}), bigger
                break
    return out




def _compare(loaded: list[tuple[Run, int | None]], key: str) -> MetricComparison:
    empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
    series = [_truncated(run.history[key], step) if key in run.history else empty for run, step in loaded]
    up = higher_is_better(key)
    if any(step is not None for _, step in loaded):  # cut at a step: new views on every call, nothing to reuse
        return compare_series(series, higher_is_better=up)
    # whole series: once per version of the runs' columns (a run without the metric counts by its place)
    present = [i for i, (run, _) in enumerate(loaded) if key in run.history]
    arrays = [a for i in present for a in series[i]]
    return results.memo("compare", arrays, (tuple(present), len(loaded), up),
                        lambda: compare_series(series, higher_is_better=up))


def _outcome_metric(loaded: list[tuple[Run, int | None]], keys: list[str], cfg: RunwiseConfig) -> str | None:
    """The metric that tells the best run: the primary metric, else validation loss, else loss (one all runs have)."""
    have = {k: sum(1 for run, _ in loaded if k in run.history and len(run.history[k])) for k in keys}
    most = max(have.values(), default=0)
    if most < 2:
        return None
    common = [k for k in keys if have[k] == most]  # the metrics the most runs have (all, usually)
    r = roles(common, cfg)
    for k in (cfg.schema.primary_metric, r.get("val_loss"), r.get("loss"), r.get("val_accuracy"), r.get("accuracy")):
        if k and k in common:
            return k
    return common[0]


def _finals(c: MetricComparison | None, n: int) -> list[float]:
    if c is None:
        return [float("nan")] * n
    return [f[0] if f is not None else float("nan") for f in c.final]


def _groups(configs: list[dict[str, Any]], by: str) -> dict[str, list[int]]:
    if by != "seed":
        flat = [flatten_config(c) for c in configs]
        if not any(by in f for f in flat):
            raise UnknownConfigKey(by, set().union(*flat))
    return group_runs(configs, by)


@dataclass
class _Parts:
    """Everything an answer is made of, computed once; `build` lays it out at one shape."""

    req: CompareRunsInput
    loaded: list[tuple[Run, int | None]]
    ids: list[str]
    rows: list[list[Any]]
    shown_keys: list[str]
    analysed: dict[str, MetricComparison]
    outcome: str | None
    ranked: list[KeyRank]
    grouped: dict[str, list[int]] | None
    notes: list[str]
    stepped: bool
    schedule: set[str]  # learning-rate keys: no best value, no group statistics

    def build(self, shape: _Shape, budget: int) -> CompareRunsOutput:
        ids = self.ids
        columns = ["metric", *ids, "delta_pct"] + ([f"step@{i}" for i in ids] if self.stepped else [])
        shown = self.rows[: shape.rows]
        metric_keys = [k for k in self.shown_keys[: shape.rows] if k in self.analysed]
        if self.outcome and self.outcome not in metric_keys:
            metric_keys.insert(0, self.outcome)
        groups: dict[str, list[str]] | None = None
        if self.req.group:
            groups = {}
            for row in shown:
                groups.setdefault(group_prefix(row[0]) or "(none)", []).append(row[0])
            order = {g: i for i, g in enumerate(groups)}
            shown = sorted(shown, key=lambda r: order[group_prefix(r[0]) or "(none)"])
        valued = [k for k in metric_keys if k not in self.schedule]
        left = self._left_out(shape, len(metric_keys), len(valued), budget)
        return CompareRunsOutput(
            summary=self._summary(),
            runs=[run_label(r) for r, _ in self.loaded],
            at_steps=[s for _, s in self.loaded],
            metrics=Table(columns=columns, rows=shown),
            best=self._best(valued[: shape.best]),
            checkpoints=self._checkpoints(metric_keys[: shape.check]),
            divergence=self._divergence(metric_keys[: shape.div]),
            groups=groups,
            run_groups=self._run_groups(),
            group_stats=self._group_stats(valued[: shape.gstats]),
            omitted=len(self.rows) - len(shown),
            config_diff=self._config(shape.cfg) if self.req.config_diff and shape.cfg and self.ranked else None,
            config_omitted=max(0, len(self.ranked) - shape.cfg) if self.req.config_diff else 0,
            notes=(left + self.notes)[: shape.notes],
        )

    def _left_out(self, shape: _Shape, analysed: int, valued: int, budget: int) -> list[str]:
        """The note on what the shape leaves out of the full answer, as 'shown/possible' per part; `analysed` /
        `valued` count the metrics that could have divergence and checkpoints / best values and group statistics."""
        full = _Shape(rows=min(len(self.rows), self.req.max_metrics), best=ANALYSED, check=CHECKED, div=ANALYSED,
                      cfg=CONFIG_ROWS, gstats=GROUP_METRICS)
        parts = [("metrics", shape.rows, full.rows)]
        named = (("best", "best"), ("check", "checkpoints"), ("div", "divergence"), ("gstats", "group stats"))
        for knob, what in named:
            n = valued if knob in ("best", "gstats") else analysed
            if knob != "gstats" or self.grouped is not None:
                parts.append((what, min(getattr(shape, knob), n), min(getattr(full, knob), n)))
        if self.req.config_diff:
            parts.append(("config keys", min(shape.cfg, len(self.ranked)), min(full.cfg, len(self.ranked))))
        cut = [f"{what} {have}/{want}" for what, have, want in parts if have < want]
        if not cut:
            return []
        return [f"shown for the {budget:,}-token budget: {', '.join(cut)}; ask with budget=, prefix= or fewer runs"]

    def _best(self, keys: list[str]) -> Table | None:
        if not keys:
            return None
        rows: list[list[Any]] = []
        for k in keys:
            c = self.analysed[k]
            vals = [num(b[0], 4) if b else None for b in c.best]
            steps = [b[1] if b else None for b in c.best]
            rows.append([k, "max" if higher_is_better(k) else "min", *vals, *steps])
        return Table(columns=["metric", "mode", *self.ids, *[f"step@{i}" for i in self.ids]], rows=rows)

    def _checkpoints(self, keys: list[str]) -> Table | None:
        rows: list[list[Any]] = []
        for k in keys:
            c = self.analysed[k]
            for step, vals in zip(c.checkpoints, c.at_checkpoints, strict=True):
                rows.append([k, step, *[None if np.isnan(v) else num(float(v), 4) for v in vals]])
        return Table(columns=["metric", "step", *self.ids], rows=rows) if rows else None

    def _divergence(self, keys: list[str]) -> Table | None:
        rows: list[list[Any]] = []
        for k in keys:
            d = self.analysed[k].divergence
            if d is None:
                continue
            split = ",".join(self.ids[i] for i in d.split) if d.step is not None else None
            rows.append([k, d.step, split, num(d.gap, 3) if d.step is not None else None,
                         num(d.noise, 3) if d.step is not None else None])
        return Table(columns=["metric", "step", "split_off", "gap", "noise"], rows=rows) if rows else None

    def _config(self, limit: int) -> Table:
        scored = len(self.loaded) > 2 and any(r.share is not None for r in self.ranked)
        rows: list[list[Any]] = []
        for r in self.ranked[:limit]:
            base = r.values[0]
            cells = [short_value(base)] + ["=" if _same_value(v, base) else short_value(v) for v in r.values[1:]]
            rows.append([r.key, *cells] + ([num(r.share, 2) if r.share is not None else None] if scored else []))
        return Table(columns=["key", *self.ids] + (["share"] if scored else []), rows=rows)

    def _run_groups(self) -> dict[str, list[str]] | None:
        if self.grouped is None:
            return None
        return {label: [self.ids[i] for i in members] for label, members in self.grouped.items()}

    def _group_stats(self, keys: list[str]) -> Table | None:
        if self.grouped is None or not keys:
            return None
        rows: list[list[Any]] = []
        for k in keys:
            c = self.analysed[k]
            for label, members in self.grouped.items():
                fin = spread(_values(c.final, members))
                best = spread(_values(c.best, members))
                rows.append([k, label, len(members), *_stats_cells(fin), *_stats_cells(best)])
        columns = ["metric", "group", "n", "mean", "std", "min", "max", "best_mean", "best_std", "best_min",
                   "best_max"]
        return Table(columns=columns, rows=rows)

    def _summary(self) -> str:
        ids = self.ids
        parts: list[str] = []
        k = self.outcome
        c = self.analysed.get(k) if k else None
        if k and c is not None:
            up = higher_is_better(k)
            finals = [(f[0], i) for i, f in enumerate(c.final) if f is not None]
            finals.sort(key=lambda t: -t[0] if up else t[0])
            at = " at the compared steps" if self.stepped else ""
            if finals:
                v, i = finals[0]
                which = ("highest " if up else "lowest ") + ("" if self.stepped else "final ")
                text = f"{which}{k}{at}: {ids[i]} {fmt(num(v, 4))}"
                if len(finals) > 1:
                    v2, j = finals[1]
                    pct = percent_change(v2, v)
                    how = f" ({pct:+.3g}%)" if pct is not None else ""
                    text += f" vs {ids[j]} {fmt(num(v2, 4))}{how}"
                    if len(finals) > 2:
                        text += f", worst {ids[finals[-1][1]]} {fmt(num(finals[-1][0], 4))}"
                parts.append(text)
            d = c.divergence
            if d is not None and d.step is not None:
                who = f" ({','.join(ids[x] for x in d.split)} split off)" if len(self.loaded) > 2 else ""
                parts.append(f"runs diverge on {k} from step {d.step:,}{who}")
            elif d is None:
                parts.append(f"the runs share too few steps of {k} to date a divergence")
            else:
                other = self._earliest_divergence(k)
                parts.append(f"no lasting divergence on {k} beyond noise" + (f" ({other})" if other else ""))
        if self.ranked:
            tops = [r for r in self.ranked if not r.identity or all(x.identity for x in self.ranked)]
            if len(self.loaded) == 2 or all(r.share is None for r in tops):
                names = ", ".join(r.key for r in self.ranked[:4])
                differ = "1 config key differs" if len(self.ranked) == 1 else f"{len(self.ranked)} config keys differ"
                parts.append(f"{differ} ({names}; unranked)")
            else:
                best = [r for r in tops if r.share is not None][:2]
                said = ", ".join(f"{r.key} explains {r.share or 0:.0%}" for r in best)
                if (best[0].share or 0) < 0.1:
                    said = f"no config key explains the spread of {k or 'the outcome'} ({said})"
                parts.append("config: " + said if not said.startswith("no ") else said)
        elif self.req.config_diff:
            parts.append("configs are the same")
        if self.grouped is not None:
            parts.append(self._group_line(self.grouped))
        if not parts:
            parts.append(" vs ".join(ids))
        return "; ".join(parts)

    def _earliest_divergence(self, skip: str) -> str:
        """'train/loss diverges from step N' for the metric (other than `skip`) that diverges first, or ''."""
        found = [(c.divergence.step, k) for k, c in self.analysed.items()
                 if k != skip and c.divergence is not None and c.divergence.step is not None]
        if not found:
            return ""
        step, k = min(found)
        return f"{k} diverges from step {step:,}"

    def _group_line(self, grouped: dict[str, list[int]]) -> str:
        sizes = [len(m) for m in grouped.values()]
        text = f"{len(sizes)} groups by {self.req.group_by} (n={','.join(map(str, sizes))})"
        k = self.outcome
        c = self.analysed.get(k) if k else None
        if k and c is not None and len(sizes) > 1:
            up = higher_is_better(k)
            means = []
            for label, members in grouped.items():
                s = spread(_values(c.final, members))
                if s is not None:
                    means.append((s[1], s[2], label))
            if means:
                mean, std, label = (max if up else min)(means, key=lambda t: t[0])
                pm = f"±{fmt(num(std, 2))}" if std is not None else " (1 run)"
                text += f"; best group {label}: {k} {fmt(num(mean, 4))}{pm}"
        singles = [label for label, m in grouped.items() if len(m) == 1]
        if singles:
            text += f"; {len(singles)} group(s) of one run"
        return text


def _values(found: list[tuple[float, int] | None], members: list[int]) -> list[float]:
    """The values (of (value, step) pairs) of the runs `members`, leaving out runs without one."""
    return [f[0] for f in (found[i] for i in members) if f is not None]


def _stats_cells(s: tuple[int, float, float | None, float, float] | None) -> list[Num]:
    if s is None:
        return [None] * 4
    _, mean, std, lo, hi = s
    return [num(mean, 4), num(std, 3) if std is not None else None, num(lo, 4), num(hi, 4)]


def _same_value(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)
    except (ValueError, TypeError):
        return repr(a) == repr(b)


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
