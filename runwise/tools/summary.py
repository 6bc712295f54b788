"""The summarize_run tool: is this run healthy? The verdict first, then what backs it.

The answer starts with the verdict (healthy / watch / broken) and its findings, worst first, in
one line; then the summary line says where the run stands: its state and length, the LR
schedule's phase, whether validation still improves, and the best checkpoint by the validation
metric. Then the key metrics as a table. The answer is shaped to a token budget (400 by default): sparklines get
fewer, then none, then metrics and texts are cut, and a note says what was left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated

from pydantic import Field

from runwise import results
from runwise.analysis.schedule import lr_phase
from runwise.analysis.sparkline import sparkline
from runwise.analysis.verdict import val_trend, verdict
from runwise.config import RunwiseConfig
from runwise.model import Run
from runwise.parsers import Progress
from runwise.tools._bound import answer_tokens
from runwise.tools._common import (
    In,
    Out,
    Table,
    anomaly_report,
    clip,
    config_key,
    fmt,
    fmt_duration,
    fmt_step,
    num,
    one_run,
    request_budget,
    roles,
    run_label,
    run_notes,
    select_keys,
    stats_of,
)
from runwise.tools._fields import Keys, RunRef
from runwise.tools.run import RunHeader, ending, header

SUMMARY_BUDGET = 400  # tokens of the default answer (the compact JSON the MCP server sends)
SIZES = ("max_metrics", "spark_width")  # a request setting one asks for the table's size itself, not a budget
MAX_FINDINGS = 5  # finding messages listed; the verdict line counts them all
MIN_METRICS = 2  # a budget never cuts the table below this many metrics
SHORT_MESSAGE = 90  # characters a finding message is cut to when the budget is tight

# ---------------------------------------------------------------- summarize_run


class SummarizeRunInput(In):
    run: RunRef = "latest"
    keys: Keys = None
    max_metrics: Annotated[int, Field(ge=1, le=50, description="Metrics to show")] = 8
    anomalies: Annotated[bool, Field(description="Run anomaly checks")] = True
    spark_width: Annotated[int, Field(ge=0, le=60, description="Sparkline width; 0 = none")] = 8


class SummarizeRunOutput(Out):
    verdict: str  # "healthy" / "watch" / "broken": why, the findings named worst first
    summary: str  # run, state, steps, runtime; LR phase; validation trend and best checkpoint
    run: RunHeader
    metrics: Table  # metric, final, min, min_step, max, max_step, points[, spark]
    more_metrics: int
    anomalies: list[str]
    checks_skipped: list[str]
    ending: str | None
    notes: list[str]


@dataclass(frozen=True)
class _Shape:
    """How much of the answer is shown: the knobs a token budget turns down, in order."""

    metrics: int
    spark_width: int
    spark_rows: int
    findings: int = MAX_FINDINGS
    message_chars: int | None = None
    skipped_reasons: bool = True
    terse: bool = False  # the summary line cut to the run's state, the verdict to its first finding


def summarize_run(req: SummarizeRunInput, cfg: RunwiseConfig, progress: Progress | None = None) -> SummarizeRunOutput:
    run, unused = one_run(req.run, cfg, progress)
    selected = select_keys(run, req.keys, cfg, default_limit=req.max_metrics)
    keys = selected[:req.max_metrics]
    more = (len(selected) if req.keys else len(run.history)) - len(keys)
    budget = request_budget(req, SUMMARY_BUDGET, SIZES)
    parts = _Parts.of(run, cfg, keys, more, req.anomalies, unused)
    shape = _Shape(len(keys), req.spark_width, len(keys))
    out = parts.answer(shape)
    if budget is None:
        return out
    for smaller in _smaller(shape):
        if answer_tokens(out) <= budget:
            break
        shape = smaller
        out = parts.answer(shape, note=_cut_note(parts, shape, req, budget))
    return out


def _smaller(shape: _Shape) -> list[_Shape]:
    """The shapes a budget tries, each smaller than the one before.

    Sparklines go first (they cost about 2 tokens a character), down to the first metric's (the
    loss); then the reasons of skipped checks, the longer finding messages and the last metrics
    down to 4; then the last sparkline; then metrics down to MIN_METRICS and findings down to one;
    for a very small budget, the rest of the table and the finding messages (the verdict line still
    names the worst three).
    """
    out: list[_Shape] = []
    s = shape

    def add(**change: object) -> None:
        nonlocal s
        s = replace(s, **change)  # type: ignore[arg-type]
        out.append(s)

    for rows in (3, 2, 1):
        if s.spark_width and rows < s.spark_rows:
            add(spark_rows=rows)
    add(skipped_reasons=False)
    if s.findings > 3:
        add(findings=3, message_chars=SHORT_MESSAGE)
    while s.metrics > 4:
        add(metrics=s.metrics - 1)
    if s.spark_width:
        add(spark_width=0, spark_rows=0)
    while s.metrics > MIN_METRICS:
        add(metrics=s.metrics - 1)
    if s.findings > 1:
        add(findings=1, message_chars=SHORT_MESSAGE)
    # a very small budget: the verdict, the summary line and the run header are what is left
    add(findings=0)
    while s.metrics > 0:
        add(metrics=s.metrics - 1)
    add(terse=True)
    return out


def _cut_note(parts: _Parts, shape: _Shape, req: SummarizeRunInput, budget: int) -> str:
    """What the shape leaves out of the full answer, and how to ask for it."""
    n = len(parts.rows)
    left = []
    if req.spark_width and shape.spark_rows < min(n, shape.metrics):
        left.append("sparklines" if shape.spark_rows == 0 else f"sparklines after row {shape.spark_rows}")
    if shape.metrics < n:
        left.append(f"{n - shape.metrics} of {n} metrics")
    if shape.findings < len(parts.findings):
        left.append(f"{len(parts.findings) - shape.findings} of {len(parts.findings)} finding messages")
    elif shape.message_chars and any(len(m) > shape.message_chars for m in parts.findings):
        left.append("the end of long finding messages")
    if not shape.skipped_reasons and parts.skipped:
        left.append("why checks were skipped")
    if shape.terse:
        left.append("LR phase, validation trend, later findings")
    if not left:
        return ""
    if shape.terse:
        return f"budget {budget:,}: cut to the verdict (ask: budget=, keys=, detect_anomalies)"
    return f"budget {budget:,} left out: {', '.join(left)} (ask: budget=, keys=, detect_anomalies)"


@dataclass(frozen=True)
class _Parts:
    """Everything the answer may show, computed once; `answer` lays out as much as a shape allows."""

    run: Run
    verdict_line: str
    context_line: str
    rows: list[list[str | int | float | None]]  # metric, final, min, min_step, max, max_step, points
    more: int
    findings: list[str]
    skipped: dict[str, str]
    notes: list[str]
    sparks: dict[tuple[str, int], str] = field(default_factory=dict)  # drawn once per metric and width

    @staticmethod
    def of(run: Run, cfg: RunwiseConfig, keys: list[str], more: int, checks: bool, unused: list[str]) -> _Parts:
        rows: list[list[str | int | float | None]] = []
        for k in keys:
            st = stats_of(run.history[k])
            rows.append([k, num(st.final, 4), num(st.min, 4), st.min_step, num(st.max, 4), st.max_step, st.count])
        findings: list[str] = []
        skipped: dict[str, str] = {}
        if checks:
            rep = anomaly_report(run, cfg, max_anomalies=MAX_FINDINGS)
            word, reason = verdict(rep)
            findings = [a.message for a in rep.anomalies]
            skipped = dict(rep.checks_skipped)
            verdict_line = f"{word}: {reason}"
        else:
            verdict_line = "no verdict: anomaly checks off"
        context = _context(run, cfg) + ("" if checks else "; anomaly checks off")
        return _Parts(run, verdict_line, context, rows, more, findings, skipped, unused + run_notes(run))

    def _spark(self, key: str, width: int) -> str:
        if (key, width) not in self.sparks:
            values = self.run.history[key].values
            self.sparks[key, width] = results.memo(
                "sparkline", (values,), width, lambda: sparkline(values, width=width))
        return self.sparks[key, width]

    def answer(self, shape: _Shape, *, note: str = "") -> SummarizeRunOutput:
        shown = self.rows[:shape.metrics]
        spark = shape.spark_width > 0 and shape.spark_rows > 0
        table_rows = []
        for i, cells in enumerate(shown):
            row = list(cells)
            if spark:
                row.append(self._spark(str(cells[0]), shape.spark_width) if i < shape.spark_rows else "")
            table_rows.append(row)
        columns = ["metric", "final", "min", "min_step", "max", "max_step", "points"] + (["spark"] if spark else [])
        if not shown:
            columns = []
        findings, extra = clip(self.findings, shape.findings)
        if shape.message_chars:
            findings = [m if len(m) <= shape.message_chars else m[:shape.message_chars - 1] + "…" for m in findings]
        if extra and findings:
            findings.append(f"+{extra} more (detect_anomalies)")
        skipped = [f"{c}: {why}" for c, why in self.skipped.items()][:4] if shape.skipped_reasons else list(
            self.skipped)[:4]
        return SummarizeRunOutput(
            verdict=_first_part(self.verdict_line) if shape.terse else self.verdict_line,
            summary=_first_part(self.context_line) if shape.terse else self.context_line, run=header(self.run),
            metrics=Table(columns=columns, rows=table_rows),
            more_metrics=self.more + len(self.rows) - len(shown), anomalies=findings, checks_skipped=skipped,
            ending=ending(self.run), notes=[note, *self.notes] if note else self.notes,
        )


def _first_part(line: str) -> str:
    """A line's text up to its first "; " (with "; …" saying more was cut)."""
    head, sep, _ = line.partition("; ")
    return head + ("; …" if sep else "")


def _context(run: Run, cfg: RunwiseConfig) -> str:
    """The summary line: run, state, length; the LR schedule's phase; the validation trend and best checkpoint."""
    parts = [f"{run_label(run)}: {run.state}, {fmt_step(run.last_step)} steps, {fmt_duration(run.runtime)}"]
    r = roles(run.history, cfg)
    lr = r.get("lr")
    if lr:
        s = run.history[lr]
        params = (lr, config_key(run.config))
        parts.append(results.memo("lr_phase", (s.steps, s.values), params,
                                  lambda: lr_phase(s.steps, s.values, run.config, key=lr).text))
    else:
        parts.append("no lr logged")
    val = r.get("val_loss") or r.get("val_accuracy")
    if val:
        v = run.history[val]
        parts.append(results.memo("val_trend", (v.steps, v.values), val,
                                  lambda: val_trend(val, v.steps, v.values).text))
    else:
        parts.append("no validation metric")
    parts += [b for b in [_declared_best(run)] if b]
    return "; ".join(parts)


def _declared_best(run: Run) -> str:
    """The best checkpoint the writer itself recorded (a Trainer's best_metric, best_global_step and
    best_model_checkpoint in the summary), or ""."""
    value, step, where = (run.summary.get(k) for k in ("best_metric", "best_global_step", "best_model_checkpoint"))
    if value is None and where is None:
        return ""
    text = "writer's best checkpoint" + (f": best_metric {fmt(value)}" if isinstance(value, (int, float)) else "")
    text += f" at step {fmt_step(step)}" if isinstance(step, int) else ""
    return text + (f" ({str(where)[-120:]})" if where else "")
