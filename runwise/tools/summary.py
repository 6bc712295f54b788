"""The summarize_run tool: is this run healthy? The verdict first, then what backs it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from runwise.analysis.sparkline import sparkline
from runwise.analysis.stats import series_stats
from runwise.config import RunwiseConfig
from runwise.parsers import Progress
from runwise.tools._common import (
    In,
    Out,
    Table,
    anomaly_report,
    clip,
    fmt,
    fmt_duration,
    fmt_step,
    num,
    one_run,
    roles,
    run_label,
    run_notes,
    select_keys,
)
from runwise.tools._fields import Keys, RunRef
from runwise.tools.run import RunHeader, ending, header

# ---------------------------------------------------------------- summarize_run


class SummarizeRunInput(In):
    run: RunRef = "latest"
    keys: Keys = None
    max_metrics: Annotated[int, Field(ge=1, le=50, description="Metrics to show")] = 8
    anomalies: Annotated[bool, Field(description="Run anomaly checks")] = True
    spark_width: Annotated[int, Field(ge=0, le=60, description="Sparkline width; 0 = none")] = 16


class SummarizeRunOutput(Out):
    summary: str
    run: RunHeader
    metrics: Table  # metric, final, min, min_step, max, max_step, points, spark
    more_metrics: int
    anomalies: list[str]
    checks_skipped: list[str]
    ending: str | None
    notes: list[str]


def summarize_run(req: SummarizeRunInput, cfg: RunwiseConfig, progress: Progress | None = None) -> SummarizeRunOutput:
    run, unused = one_run(req.run, cfg, progress)
    keys = select_keys(run, req.keys, cfg, default_limit=req.max_metrics)
    shown, more = clip(keys, req.max_metrics)
    if not req.keys:
        more = max(0, len(run.history) - len(shown))
    rows = []
    for k in shown:
        s = run.history[k]
        st = series_stats(s.steps, s.values)
        row = [k, num(st.final, 4), num(st.min, 4), st.min_step, num(st.max, 4), st.max_step, st.count]
        if req.spark_width:
            row.append(sparkline(s.values, width=req.spark_width))
        rows.append(row)
    columns = ["metric", "final", "min", "min_step", "max", "max_step", "points"]
    if req.spark_width:
        columns.append("spark")
    anomalies: list[str] = []
    skipped: list[str] = []
    if req.anomalies:
        rep = anomaly_report(run, cfg, max_anomalies=5)
        anomalies = [a.message for a in rep.anomalies]
        if rep.truncated:
            anomalies.append(f"+{rep.truncated} more (detect_anomalies)")
        skipped = [f"{c}: {why}" for c, why in rep.checks_skipped.items()][:4]
    r = roles(run.history, cfg)
    lead = []
    loss_key = r.get("loss")
    if loss_key:
        st = series_stats(run.history[loss_key].steps, run.history[loss_key].values)
        lead.append(f"{loss_key} {fmt(num(st.first, 4))}→{fmt(num(st.final, 4))} "
                    f"(min {fmt(num(st.min, 4))} @{fmt_step(st.min_step)})")
    verdict = (
        f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}" if anomalies
        else ("no anomalies found" if req.anomalies else "anomaly checks off")
    )
    summary = (
        f"{run_label(run)}: {run.state}, {fmt_step(run.last_step)} steps, {fmt_duration(run.runtime)}; "
        + "; ".join(lead + [verdict])
    )
    return SummarizeRunOutput(
        summary=summary, run=header(run), metrics=Table(columns=columns, rows=rows), more_metrics=more,
        anomalies=anomalies, checks_skipped=skipped, ending=ending(run), notes=unused + run_notes(run),
    )
