"""The detect_anomalies tool: every check on full-resolution history, each finding with its evidence.

The answer: a summary line, one table row per finding (worst first) with its steps, the evidence
in numbers (value, baseline), what other metrics did in the same window (related), which moved
first, the get_history call that shows the window (next) and its one-line message (the worst
finding's is in the summary line instead); observations that are not findings (a loss converging
under a decayed lr); which checks ran and which could not, and why. By default
the answer is shaped to ANSWER_TOKENS; `budget` sets another size, `max_anomalies` the row cap.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from runwise.analysis.anomalies import Anomaly
from runwise.config import RunwiseConfig
from runwise.formatting import fmt_step
from runwise.parsers import Progress
from runwise.tools._bound import answer_tokens
from runwise.tools._common import (
    In,
    Out,
    Table,
    anomaly_report,
    num,
    one_run,
    request_budget,
    run_label,
    run_notes,
    select_keys,
)
from runwise.tools._fields import Keys, RunRef

ANSWER_TOKENS = 400  # the default answer's size, in estimated tokens
SIZES = ("max_anomalies",)  # a request setting it asks for that many rows instead of the default budget
COLUMNS = ["kind", "severity", "metric", "step", "steps", "value", "baseline", "related", "first", "next", "message"]
_EVIDENCE = ("next", "first", "related", "message")  # dropped from the lowest rows first, in this order

# ---------------------------------------------------------------- detect_anomalies


class DetectAnomaliesInput(In):
    run: RunRef = "latest"
    keys: Keys = None
    max_anomalies: Annotated[int, Field(ge=1, le=200, description="Most findings listed (worst first)")] = 20


class DetectAnomaliesOutput(Out):
    summary: str
    anomalies: Table  # kind, severity, metric, step, steps, value, baseline, related, first, next, message
    omitted: int  # findings left out (max_anomalies or the token budget)
    observations: list[str]  # not findings: what helps judge them ("train/loss converging under a decayed lr")
    checks_run: list[str]
    checks_skipped: dict[str, str]
    notes: list[str]


def _steps_cell(a: Anomaly) -> str | None:
    """Every step of a few isolated points ("1,260; 2,880"), a range ("5,000..9,990"), or None for one point."""
    if a.steps:
        return "; ".join(fmt_step(s) for s in a.steps)
    if a.end_step is not None and a.end_step != a.step:
        return f"{fmt_step(a.step)}..{fmt_step(a.end_step)}"
    return None


def next_call(a: Anomaly, ref: str) -> str | None:
    """The get_history call that shows a finding's window and the metrics that moved with it."""
    if a.window is None:
        return None
    keys = ",".join(f"'{k}'" for k in (a.keys or (a.metric,)))
    return f"get_history(run='{ref}', keys=[{keys}], start_step={a.window[0]}, end_step={a.window[1]})"


def _row(a: Anomaly, ref: str, *, message: bool = True) -> list[str | int | float | bool | None]:
    """One finding's row; `message` False for the worst finding, whose message the summary line gives."""
    return [a.kind, a.severity, a.metric, a.step, _steps_cell(a), num(a.value, 4), num(a.baseline, 4),
            "; ".join(a.related) or None, a.first or None, next_call(a, ref), a.message if message else None]


def fit_budget(out: DetectAnomaliesOutput, budget: int, *, total: int) -> DetectAnomaliesOutput:
    """Shape `out` to `budget` estimated tokens, worst finding kept longest.

    In order: the lowest rows lose next, first and related; rows go from the bottom (a first note
    says how many and how to ask for them; `total` is how many findings there were); the worst row
    loses its evidence too; columns left empty go; other notes go; the summary drops the worst
    finding's message (its row says it).
    """
    if answer_tokens(out) <= budget:
        return out
    rows = out.anomalies.rows
    col = {c: i for i, c in enumerate(out.anomalies.columns)}
    for name in _EVIDENCE:
        for r in reversed(rows[1:]):
            r[col[name]] = None
            if answer_tokens(out) <= budget:
                return out
    noted = False
    while len(rows) > 1 and answer_tokens(out) > budget:
        rows.pop()
        out.omitted = total - len(rows)
        note = (f"{out.omitted} more finding{'s' if out.omitted > 1 else ''} left out to fit {budget} tokens: "
                f"ask with budget= (more tokens) or keys= (fewer metrics)")
        if noted:
            out.notes[0] = note
        else:
            out.notes.insert(0, note)
            noted = True
    for name in _EVIDENCE:  # the worst row's evidence too
        if answer_tokens(out) <= budget:
            return out
        _clear(rows, col[name])
    if answer_tokens(out) > budget:
        _drop_empty_columns(out)
    if answer_tokens(out) > budget:
        del out.notes[1 if noted else 0:]
    if answer_tokens(out) > budget:  # the worst finding's message goes last: its row keeps kind, steps and values
        out.summary = out.summary.split(", worst first:")[0]
    return out


def _clear(rows: list[list[str | int | float | bool | None]], i: int) -> None:
    for r in rows:
        r[i] = None


def _drop_empty_columns(out: DetectAnomaliesOutput) -> None:
    """Leave out the evidence columns no row fills any more (kind, metric and step always stay)."""
    keep = [i for i, c in enumerate(out.anomalies.columns)
            if c not in (*_EVIDENCE, "steps", "baseline", "value") or any(r[i] is not None for r in out.anomalies.rows)]
    out.anomalies.columns = [out.anomalies.columns[i] for i in keep]
    out.anomalies.rows = [[r[i] for i in keep] for r in out.anomalies.rows]


def detect_anomalies(
    req: DetectAnomaliesInput, cfg: RunwiseConfig, progress: Progress | None = None
) -> DetectAnomaliesOutput:
    run, unused = one_run(req.run, cfg, progress)
    keys = select_keys(run, req.keys, cfg, default_limit=len(run.history)) if req.keys else None
    rep = anomaly_report(run, cfg, keys=keys, max_anomalies=req.max_anomalies)
    ref = run.id if req.run.strip() in ("", "latest") else req.run.split("@")[0]
    rows = [_row(a, ref, message=i > 0) for i, a in enumerate(rep.anomalies)]
    n = len(rows) + rep.truncated
    if n:
        worst: Anomaly = rep.anomalies[0]
        counts = _severity_counts(rep.anomalies)
        summary = f"{run_label(run)}: {n} finding{'s' if n > 1 else ''} ({counts}), worst first: {worst.message}"
    elif rep.checks_run:
        summary = f"{run_label(run)}: no anomalies in {len(rep.checks_run)} checks"
    else:
        summary = f"{run_label(run)}: no check could run (no recognisable metrics)"
    notes = unused + run_notes(run)
    if rep.truncated:
        notes.insert(0, f"{rep.truncated} more finding{'s' if rep.truncated > 1 else ''} beyond max_anomalies="
                        f"{req.max_anomalies}: ask with a larger max_anomalies=")
    out = DetectAnomaliesOutput(
        summary=summary, anomalies=Table(columns=list(COLUMNS), rows=rows), omitted=rep.truncated,
        observations=list(rep.observations), checks_run=list(rep.checks_run),
        checks_skipped=dict(rep.checks_skipped), notes=notes,
    )
    budget = request_budget(req, ANSWER_TOKENS, SIZES)  # another max_anomalies asks for that many rows
    return fit_budget(out, budget, total=n) if budget is not None else out


def _severity_counts(found: tuple[Anomaly, ...]) -> str:
    order = ("critical", "warning", "info")
    counts = {s: sum(1 for a in found if a.severity == s) for s in order}
    return ", ".join(f"{c} {s}" for s, c in counts.items() if c)
