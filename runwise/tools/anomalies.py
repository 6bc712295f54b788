"""The detect_anomalies tool: every check on full-resolution history, each finding with its evidence."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from runwise.config import RunwiseConfig
from runwise.parsers import Progress
from runwise.tools._common import In, Out, Table, anomaly_report, num, one_run, run_label, run_notes, select_keys
from runwise.tools._fields import Keys, RunRef

# ---------------------------------------------------------------- detect_anomalies


class DetectAnomaliesInput(In):
    run: RunRef = "latest"
    keys: Keys = None
    max_anomalies: Annotated[int, Field(ge=1, le=200)] = 20


class DetectAnomaliesOutput(Out):
    summary: str
    anomalies: Table  # kind, severity, metric, step, end_step, value, message
    omitted: int
    checks_run: list[str]
    checks_skipped: dict[str, str]
    notes: list[str]


def detect_anomalies(
    req: DetectAnomaliesInput, cfg: RunwiseConfig, progress: Progress | None = None
) -> DetectAnomaliesOutput:
    run, unused = one_run(req.run, cfg, progress)
    keys = select_keys(run, req.keys, cfg, default_limit=len(run.history)) if req.keys else None
    rep = anomaly_report(run, cfg, keys=keys, max_anomalies=req.max_anomalies)
    rows: list[list[str | int | float | bool | None]] = [
        [a.kind, a.severity, a.metric, a.step, a.end_step, num(a.value), a.message] for a in rep.anomalies
    ]
    n = len(rows) + rep.truncated
    if n:
        worst = rep.anomalies[0]
        summary = f"{run_label(run)}: {n} anomal{'y' if n == 1 else 'ies'}; first to look at: {worst.message}"
    elif rep.checks_run:
        summary = f"{run_label(run)}: no anomalies in {len(rep.checks_run)} checks"
    else:
        summary = f"{run_label(run)}: no check could run (no recognisable metrics)"
    return DetectAnomaliesOutput(
        summary=summary,
        anomalies=Table(columns=["kind", "severity", "metric", "step", "end_step", "value", "message"], rows=rows),
        omitted=rep.truncated, checks_run=list(rep.checks_run), checks_skipped=dict(rep.checks_skipped),
        notes=unused + run_notes(run),
    )
