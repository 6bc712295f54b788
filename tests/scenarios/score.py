"""Score anomaly findings against a scenario's labels.

A label is found when some finding has its kind (or one of `label.also`), names its metric, and
  - point / burst: one of the finding's steps (`.steps`, else `.step`) lies in [step, end_step or step];
  - lasting: |finding.step - label.step| <= label.tolerance.
Every finding on a healthy scenario is false, whatever its severity; findings on an anomalous
scenario that match no label are extra (reported, not failed).

`match` and `score_arrays` are pure (no I/O); `score_source` runs the detect_anomalies tool on a
written project (see write.py) and scores every scenario in it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.scenarios.suite import SCENARIOS, Label, Scenario, by_name

__all__ = [
    "Finding", "ScoreCard", "Totals", "findings_from_rows", "flatten", "format_cards", "match", "score_arrays",
    "score_source", "totals",
]


class FindingLike(Protocol):
    """What the matcher reads from a finding (Anomaly and Finding both have it)."""

    @property
    def kind(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def step(self) -> int: ...
    @property
    def end_step(self) -> int | None: ...
    @property
    def steps(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class Finding:
    """A finding as the matcher sees it (an Anomaly, or a row of the detect_anomalies tool)."""

    kind: str
    metric: str
    step: int
    end_step: int | None = None
    steps: tuple[int, ...] = ()
    severity: str = ""
    message: str = ""


@dataclass
class ScoreCard:
    """How one scenario's findings matched its labels."""

    scenario: str
    labels: list[Label]
    found: list[Label] = field(default_factory=list)
    missed: list[Label] = field(default_factory=list)
    false: list[Any] = field(default_factory=list)  # findings on a healthy scenario
    extra: list[Any] = field(default_factory=list)  # findings matching no label of an anomalous one
    omitted: int = 0  # findings the tool said it left out (none should be, at the largest budget)

    @property
    def healthy(self) -> bool:
        return not self.labels


def _steps_of(f: FindingLike) -> tuple[int, ...]:
    steps = tuple(getattr(f, "steps", ()) or ())
    return steps or (int(f.step),)


def matches(label: Label, f: FindingLike) -> bool:
    """True when finding `f` finds `label` (kind, metric and step, as the module docstring says)."""
    if f.kind not in (label.kind, *label.also) or f.metric != label.metric:
        return False
    if label.lasting:
        return abs(int(f.step) - label.step) <= label.tolerance
    hi = label.step if label.end_step is None else label.end_step
    return any(label.step <= int(s) <= hi for s in _steps_of(f))


def match(scenario: Scenario, findings: Iterable[FindingLike]) -> ScoreCard:
    """Score `findings` against the scenario's labels."""
    fs = list(findings)
    card = ScoreCard(scenario.name, list(scenario.labels))
    if not scenario.labels:
        card.false = fs
        return card
    for label in scenario.labels:
        (card.found if any(matches(label, f) for f in fs) else card.missed).append(label)
    card.extra = [f for f in fs if not any(matches(label, f) for label in scenario.labels)]
    return card


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys ({"scheduler": {"T_0": 5}} -> {"scheduler.T_0": 5})."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def score_arrays(scenario: Scenario, **kwargs: Any) -> ScoreCard:
    """Run runwise.analysis.anomalies.detect_anomalies on the scenario's arrays and score its findings.

    The flattened config goes in as `config=` when detect_anomalies takes it; `kwargs` pass through
    (max_anomalies defaults to 200 so nothing is cut).
    """
    from runwise.analysis.anomalies import detect_anomalies

    kwargs.setdefault("max_anomalies", 200)
    if "config" in inspect.signature(detect_anomalies).parameters:
        kwargs.setdefault("config", flatten(scenario.config))
    report = detect_anomalies(scenario.metrics, **kwargs)
    return match(scenario, report.anomalies)


# ---------------------------------------------------------------------------------------------
# findings from the detect_anomalies tool's table

_RANGE = re.compile(r"^\s*(-?[\d,_]+)\s*(?:\.\.|–|-|to)\s*(-?[\d,_]+)\s*$")


def _int(text: Any) -> int | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text
    if isinstance(text, float):
        return int(text) if text == text else None
    if isinstance(text, str):
        t = text.strip().replace(",", "").replace("_", "")
        if re.fullmatch(r"-?\d+", t):
            return int(t)
    return None


def _parse_steps(cell: Any) -> tuple[int | None, int | None, tuple[int, ...]]:
    """(step, end_step, steps) from a steps cell: 120, [120, 340], "120..340", "120, 340" or None."""
    if cell is None or cell == "":
        return None, None, ()
    if isinstance(cell, (list, tuple)):
        got = [i for i in (_int(c) for c in cell) if i is not None]
        return (got[0] if got else None), None, tuple(got)
    if isinstance(cell, str):
        m = _RANGE.match(cell)
        if m:
            a, b = _int(m.group(1)), _int(m.group(2))
            return a, b, ()
        # items are separated by ", " or ";" (a comma without a space is a thousands separator)
        parts = [i for i in (_int(p) for p in re.split(r",\s+|;\s*|\s+", cell.strip()) if p) if i is not None]
        if len(parts) > 1:
            return parts[0], None, tuple(parts)
    one = _int(cell)
    return one, None, ()


def findings_from_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[Finding]:
    """Turn the detect_anomalies tool's table (columns by name) into findings.

    Reads kind, metric, step (or `steps`: one step, a list, "a..b"), end_step when there is one,
    severity and message when there are.
    """
    col = {c: i for i, c in enumerate(columns)}
    if "kind" not in col or "metric" not in col:
        raise ValueError(f"detect_anomalies table lacks kind/metric columns: {list(columns)}")

    def cell(row: Sequence[Any], *names: str) -> Any:
        for n in names:
            if n in col and col[n] < len(row):
                return row[col[n]]
        return None

    out: list[Finding] = []
    for row in rows:
        step, end, steps = _parse_steps(cell(row, "steps"))
        first = _int(cell(row, "step", "start_step", "onset"))
        if first is not None:
            step = first
        last = _int(cell(row, "end_step", "end"))
        if last is not None:
            end = last
        if step is None:
            raise ValueError(f"detect_anomalies row without a step: {list(row)}")
        out.append(Finding(
            str(cell(row, "kind")), str(cell(row, "metric")), step, end, steps,
            str(cell(row, "severity") or ""), str(cell(row, "message") or ""),
        ))
    return out


def _tool_findings(out: Any) -> list[Finding]:
    """Findings from a DetectAnomaliesOutput: its `anomalies` table (columns + rows) or a list of rows."""
    table = out.anomalies
    if hasattr(table, "columns") and hasattr(table, "rows"):
        return findings_from_rows(list(table.columns), table.rows)
    rows = list(table)
    if rows and hasattr(rows[0], "model_dump"):
        rows = [r.model_dump() for r in rows]
    if rows and isinstance(rows[0], Mapping):
        columns = list(rows[0])
        return findings_from_rows(columns, [[r.get(c) for c in columns] for r in rows])
    return []


def score_source(project_dir: Path, source: str = "", *, names: Iterable[str] | None = None) -> dict[str, ScoreCard]:
    """Score every scenario written under `project_dir` (one source's project, see write.py).

    Calls the real detect_anomalies tool handler with the project's runwise.json, run by name,
    max_anomalies=200 and the largest token budget (so the answer leaves nothing out: every entry
    counts), and scores its rows. `source` is only used in error messages.
    """
    from runwise.config import RunwiseConfig
    from runwise.tools import TOOLS_BY_NAME
    from runwise.tools.anomalies import DetectAnomaliesInput

    project_dir = Path(project_dir)
    cache = project_dir.parent / "_cache" / project_dir.name
    cfg = RunwiseConfig.load(project_dir, env={"RUNWISE_CACHE_DIR": str(cache)})
    tool = TOOLS_BY_NAME["detect_anomalies"]
    extra: dict[str, Any] = {"max_anomalies": 200}
    budget = DetectAnomaliesInput.model_fields.get("budget")
    if budget is not None:  # the largest budget the tool accepts
        extra["budget"] = min((m.le for m in budget.metadata if getattr(m, "le", None) is not None), default=50_000)
    cards: dict[str, ScoreCard] = {}
    for name in names if names is not None else [s.name for s in SCENARIOS]:
        scenario = by_name(name)
        try:
            out = tool.run(DetectAnomaliesInput(run=name, **extra), cfg)
        except Exception as exc:  # a run that cannot be analysed is reported per scenario, not raised
            raise RuntimeError(f"{source or project_dir}: detect_anomalies failed on {name}: {exc}") from exc
        cards[name] = card = match(scenario, _tool_findings(out))
        card.omitted = int(getattr(out, "omitted", 0) or 0)
    return cards



# ---------------------------------------------------------------------------------------------
# totals and the table printed when a target is missed


@dataclass(frozen=True)
class Totals:
    labels: int
    found: int
    false: int
    extra: int
    healthy_runs: int
    healthy_flagged: int

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else 1.0


def totals(cards: Mapping[str, ScoreCard]) -> Totals:
    cs = list(cards.values())
    return Totals(
        labels=sum(len(c.labels) for c in cs),
        found=sum(len(c.found) for c in cs),
        false=sum(len(c.false) for c in cs),
        extra=sum(len(c.extra) for c in cs),
        healthy_runs=sum(1 for c in cs if c.healthy),
        healthy_flagged=sum(1 for c in cs if c.healthy and c.false),
    )


def _describe(f: Any) -> str:
    steps = _steps_of(f)
    where = ",".join(str(s) for s in steps) if len(steps) > 1 else str(f.step)
    if getattr(f, "end_step", None) is not None and len(steps) <= 1:
        where += f"..{f.end_step}"
    return f"{f.kind} {f.metric} @{where}"


def _label_text(label: Label) -> str:
    where = str(label.step) + (f"..{label.end_step}" if label.end_step is not None else "")
    tol = f" ±{label.tolerance}" if label.lasting else ""
    return f"{label.kind} {label.metric} @{where}{tol}"


def format_cards(cards: Mapping[str, ScoreCard], *, title: str = "", extra: bool = False) -> str:
    """A per-scenario table of what was missed or false (and extra findings when asked), with totals."""
    t = totals(cards)
    lines = [f"{title}recall {t.found}/{t.labels} = {t.recall:.3f}; false findings {t.false} on "
             f"{t.healthy_flagged}/{t.healthy_runs} healthy runs; extra {t.extra}"]
    cut = {name: c.omitted for name, c in cards.items() if c.omitted}
    if cut:
        lines.append("  findings left out by the tool (not scored): "
                     + ", ".join(f"{name} {n}" for name, n in cut.items()))
    for name, c in cards.items():
        if c.missed:
            lines.append(f"  MISSED {name}: " + "; ".join(_label_text(lab) for lab in c.missed))
            near = [f for f in c.extra if any(f.metric == lab.metric for lab in c.missed)]
            if near:
                lines.append("         findings on that metric: " + "; ".join(_describe(f) for f in near[:6]))
        if c.false:
            lines.append(f"  FALSE  {name}: " + "; ".join(_describe(f) for f in c.false[:8])
                         + (f" (+{len(c.false) - 8})" if len(c.false) > 8 else ""))
        if extra and c.extra:
            lines.append(f"  extra  {name}: " + "; ".join(_describe(f) for f in c.extra[:6]))
    return "\n".join(lines)
