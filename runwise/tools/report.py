"""The report tool: one markdown document about 1 to 16 runs, for a GitHub issue or a lab notebook.

The document is made of the other tools' answers, laid out for people:

  # Training report: RUN (or: N runs)
  one run     the verdict and the summary line (summarize_run), then ## Findings (detect_anomalies'
              findings: severity, kind, metric, step(s), value, baseline, evidence) and
              ## Key metrics (summarize_run's table)
  N runs      a verdict per run (a table), ## Comparison (compare_runs: its summary line, final
              values, where the runs diverge) and ### Config diff; then a ## section per run
              as above (### Findings, ### Key metrics)

The answer is the markdown plus a few structured fields: the runs, their verdicts and the key
metrics (the ones `runwise report -o FILE` charts). It is shaped to a token budget (REPORT_BUDGET
by default, counted on the compact JSON the MCP server sends): the evidence beyond each finding's
message goes first, then findings, config and comparison rows, metric rows and whole run sections;
the document's last line and `notes` say what was left out. No charts here: the CLI draws them
(runwise.cli_report), next to the file it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from pydantic import AfterValidator, Field

from runwise._emit import Block, md_table
from runwise.analysis.anomalies import Anomaly
from runwise.config import RunwiseConfig
from runwise.formatting import Cell
from runwise.parsers import Progress
from runwise.tools._bound import answer_tokens
from runwise.tools._common import MAX_BUDGET, In, Out, anomaly_report, num, one_run, request_budget, run_label
from runwise.tools._fields import REF_CHARS, _no_default, check_ref
from runwise.tools.anomalies import _steps_cell
from runwise.tools.compare import MAX_RUNS, CompareRunsInput, CompareRunsOutput, compare_runs
from runwise.tools.summary import SummarizeRunInput, SummarizeRunOutput, summarize_run

REPORT_BUDGET = 3_000  # tokens of the default answer
KEY_METRICS = 8  # rows of a run's key metrics table
CHARTED = 4  # key metrics named in `key_metrics` (the ones the CLI charts)
FINDINGS = 10  # findings listed per run
COMPARED = 20  # metrics in the comparison table
CONFIG_KEYS = 30  # rows of the config diff


class ReportInput(In):
    # the tool's description says what `runs` is; its schema is kept to what a client must know
    runs: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=REF_CHARS), AfterValidator(check_ref)]],
        Field(max_length=MAX_RUNS, json_schema_extra=_no_default),  # none: the latest run
    ] = ["latest"]


class ReportOutput(Out):
    markdown: str  # the report
    runs: list[str]  # run labels, in the order given
    verdicts: list[str]  # one per run: "healthy" / "watch" / "broken" / "no verdict"
    key_metrics: list[str]  # the main metrics of the first run (charted by `runwise report -o FILE`)
    notes: list[str]


@dataclass(frozen=True)
class _Shape:
    """How much of the document is shown: the knobs a token budget turns down."""

    evidence: bool = True  # related metrics and which moved first, after each finding's message
    findings: int = FINDINGS
    metrics: int = KEY_METRICS
    compared: int = COMPARED
    config: int = CONFIG_KEYS
    sections: int = MAX_RUNS  # runs given a section of their own (findings, key metrics)


# The order in which a report over budget gives things up: details first, the verdicts never.
_CUTS: tuple[tuple[str, object], ...] = (
    ("evidence", False), ("findings", 5), ("config", 15), ("compared", 10), ("sections", 8), ("findings", 3),
    ("metrics", 5), ("config", 8), ("sections", 4), ("compared", 6), ("findings", 2), ("metrics", 3),
    ("sections", 2), ("config", 4), ("compared", 3), ("findings", 1), ("sections", 1), ("metrics", 2),
    ("config", 2), ("compared", 1), ("sections", 0), ("config", 0), ("compared", 0),
)


@dataclass(frozen=True)
class _RunPart:
    """One run's share of the report: its summary (verdict, summary line, key metrics) and its findings."""

    label: str
    summary: SummarizeRunOutput
    findings: list[Anomaly]
    more_findings: int  # beyond the FINDINGS checked

    @property
    def word(self) -> str:
        return "no verdict" if self.summary.verdict.startswith("no verdict") else self.summary.verdict.split(":")[0]


def report(req: ReportInput, cfg: RunwiseConfig, progress: Progress | None = None) -> ReportOutput:
    refs = req.runs or ["latest"]
    parts = [_run_part(ref, cfg, progress) for ref in refs]
    comparison = None
    if len(refs) > 1:
        comparison = compare_runs(CompareRunsInput(runs=refs, max_metrics=COMPARED, budget=MAX_BUDGET), cfg,
                                  progress)
    budget = request_budget(req, REPORT_BUDGET, ())
    shape = _Shape()
    out = _build(parts, comparison, shape, budget)
    if budget is None or answer_tokens(out) <= budget:
        return out
    for knob, value in _CUTS:
        if getattr(shape, knob) > value:  # a knob already at or below the value stays (False < True)
            shape = replace(shape, **{knob: value})  # type: ignore[arg-type]
            out = _build(parts, comparison, shape, budget)
            if answer_tokens(out) <= budget:
                break
    return out


def _run_part(ref: str, cfg: RunwiseConfig, progress: Progress | None) -> _RunPart:
    summary = summarize_run(
        SummarizeRunInput(run=ref, max_metrics=KEY_METRICS, spark_width=0, budget=MAX_BUDGET), cfg, progress)
    run, _ = one_run(ref, cfg, progress)
    rep = anomaly_report(run, cfg, max_anomalies=FINDINGS)
    return _RunPart(run_label(run), summary, list(rep.anomalies), rep.truncated)


def _build(parts: list[_RunPart], comparison: CompareRunsOutput | None, shape: _Shape, budget: int | None
           ) -> ReportOutput:
    """The report at one shape; its last line (and first note) say what the shape leaves out."""
    several = comparison is not None
    lines = [f"# Training report: {f'{len(parts)} runs' if several else parts[0].label}", ""]
    if several and comparison is not None:
        rows: list[list[Cell]] = [[p.label, p.word, p.summary.run.state, p.summary.run.last_step,
                                   _worst(p)] for p in parts]
        lines += _table(["run", "verdict", "state", "last step", "worst finding"], rows)
        lines += _comparison(comparison, shape)
    for i, p in enumerate(parts):
        if several and i >= shape.sections:
            break
        lines += _section(p, shape, level="###" if several else "##", heading=several)
    left = _left_out(parts, comparison, shape)
    notes = [p.label + ": " + n for p in parts for n in p.summary.notes[:2]] if several else list(
        parts[0].summary.notes)
    if comparison is not None:
        notes += [n for n in comparison.notes if not n.startswith("shown for the")]
    if left:
        said = f"left out for the {budget:,}-token budget: {', '.join(left)}; ask with a larger budget or fewer runs"
        lines += [f"_{said}_", ""]
        notes.insert(0, said)
    if notes:
        lines += ["## Notes", "", *[f"- {_line(n)}" for n in notes[:8]], ""]
    key = [str(r[0]) for r in parts[0].summary.metrics.rows[:CHARTED]]
    return ReportOutput(markdown="\n".join(lines).rstrip() + "\n", runs=[p.label for p in parts],
                        verdicts=[p.word for p in parts], key_metrics=key, notes=notes[:8])


def _worst(p: _RunPart) -> str:
    if not p.findings:
        return "-"
    a = p.findings[0]
    return f"{a.kind} on {a.metric} at step {a.step:,}"


def _comparison(c: CompareRunsOutput, shape: _Shape) -> list[str]:
    lines = ["## Comparison", "", _line(c.summary), ""]
    if shape.compared and c.metrics.rows:
        cols = ["Δ %" if col == "delta_pct" else col for col in c.metrics.columns]
        lines += _table(cols, c.metrics.rows[:shape.compared])
    if c.divergence is not None and shape.compared:
        split = [r for r in c.divergence.rows if r[1] is not None][:shape.compared]
        if split:
            lines += ["### Where the runs diverge", ""]
            lines += _table(["metric", "from step", "split off", "gap", "noise"], split)
    if c.config_diff is not None and c.config_diff.rows and shape.config:
        lines += ["### Config diff", ""]
        if any(cell == "=" for row in c.config_diff.rows for cell in row[2:]):
            lines += ["_`=`: as in the first run_", ""]
        lines += _table(c.config_diff.columns, c.config_diff.rows[:shape.config], raw=True)
    elif c.config_diff is None and c.config_omitted == 0:
        lines += ["### Config diff", "", "The configs are the same.", ""]
    return lines


def _section(p: _RunPart, shape: _Shape, *, level: str, heading: bool) -> list[str]:
    s = p.summary
    lines = [f"## {p.label}", ""] if heading else []
    why = s.verdict[len(p.word):].lstrip(": ")
    lines += [f"**Verdict: {p.word}.**" + (f" {_line(why)}" if why else ""), "", _line(s.summary), ""]
    if s.ending:
        lines += [f"Ending: {_line(s.ending)}", ""]
    lines += [f"{level} Findings", ""]
    if p.findings and shape.findings:
        rows: list[list[Cell]] = []
        for a in p.findings[:shape.findings]:
            evidence = a.message
            if shape.evidence:
                evidence += "".join(f"; {r}" for r in a.related) + (f"; {a.first}" if a.first else "")
            rows.append([a.severity, a.kind, a.metric, a.step, _steps_cell(a), num(a.value, 4), num(a.baseline, 4),
                         evidence])
        lines += _table(["severity", "kind", "metric", "step", "steps", "value", "baseline", "evidence"], rows)
        more = len(p.findings) - len(rows) + p.more_findings
        if more:
            lines += [f"+{more} more (`runwise anomalies`, or the detect_anomalies tool)", ""]
    elif not p.findings:
        lines += ["None found." if s.verdict.startswith("healthy") else "No findings listed.", ""]
    if s.metrics.rows and shape.metrics:
        lines += [f"{level} Key metrics", ""]
        cols = [c.replace("_", " ") for c in s.metrics.columns]
        lines += _table(cols, s.metrics.rows[:shape.metrics])
    return lines


def _left_out(parts: list[_RunPart], c: CompareRunsOutput | None, shape: _Shape) -> list[str]:
    """What `shape` leaves out of the full report, as 'what shown/there'."""
    left: list[str] = []
    shown = parts[:shape.sections] if c is not None else parts
    if c is not None and shape.sections < len(parts):
        left.append(f"run sections {shape.sections}/{len(parts)}")
    most = max((len(p.findings) for p in shown), default=0)
    if shape.findings < most:
        left.append(f"findings {shape.findings}/{most} per run")
    elif not shape.evidence and any(a.related or a.first for p in shown for a in p.findings):
        left.append("related metrics in the evidence")
    rows = max((len(p.summary.metrics.rows) for p in shown), default=0)
    if shape.metrics < rows:
        left.append(f"key metrics {shape.metrics}/{rows}")
    if c is not None and shape.compared < len(c.metrics.rows):
        left.append(f"compared metrics {shape.compared}/{len(c.metrics.rows)}")
    if c is not None and c.config_diff is not None and shape.config < len(c.config_diff.rows):
        left.append(f"config keys {shape.config}/{len(c.config_diff.rows)}")
    return left


def _table(columns: list[str], rows: list[list[Cell]], *, raw: bool = False) -> list[str]:
    """A markdown table (header, separator, rows) and the blank line after it."""
    if not rows:
        return []
    return [*md_table(Block("table", "", columns=columns, rows=[list(r) for r in rows], raw=raw)), ""]


def _line(text: str) -> str:
    """Text for one markdown line: no line breaks, and no characters that would start markup by chance."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


__all__ = ["REPORT_BUDGET", "ReportInput", "ReportOutput", "report"]
