"""The detect_anomalies tool: evidence columns, the follow-up call, observations, and the token budget."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from runwise.config import RunwiseConfig
from runwise.tokens import estimate_tokens
from runwise.tools import TOOLS_BY_NAME
from runwise.tools.anomalies import ANSWER_TOKENS, DetectAnomaliesInput, DetectAnomaliesOutput
from tests.conftest import write_jsonl

N = 3000
SPIKE, DIPS, NANS = 900, (2000, 2004, 2008), (400, 1300, 2500)


def _rows(*, metrics: int = 0, decayed: bool = False) -> list[dict[str, Any]]:
    """A run with a loss spike (grad norm jumps with it), a burst of three dips, NaN at three steps
    and a throughput drop from step 2,200; `metrics` extra metrics each NaN at one step."""
    rng = random.Random(0)
    rows = []
    for s in range(N):
        loss = (0.5 + 2.0 * math.exp(-s / 600)) * (1 + 0.01 * rng.gauss(0, 1))
        grad = 1 + 0.03 * rng.gauss(0, 1)
        if s == SPIKE:
            loss, grad = loss * 4, 9.0
        if s in DIPS:
            loss *= 0.4
        row: dict[str, Any] = {
            "step": s, "train/loss": None if s in NANS else round(loss, 6), "grad_norm": round(grad, 5),
            "lr": 1e-3 * (0.5 * (1 + math.cos(math.pi * s / N)) if decayed else 1.0),
            "samples_per_sec": round((400 if s >= 2200 else 1000) * (1 + 0.01 * rng.gauss(0, 1)), 2),
        }
        row.update({f"aux/m{i:02d}": (None if s == 100 + 10 * i else 1.0) for i in range(metrics)})
        rows.append(row)
    return rows


def _project(tmp_path: Path, rows: list[dict[str, Any]]) -> RunwiseConfig:
    # json.dumps writes a JSON null for a NaN logged as None: the way a script logs float('nan') safely
    write_jsonl(tmp_path / "logs" / "run.jsonl", [{k: (math.nan if v is None else v) for k, v in r.items()}
                                                  for r in rows])
    return RunwiseConfig.load(tmp_path)


def _ask(cfg: RunwiseConfig, **kwargs: Any) -> DetectAnomaliesOutput:
    out: DetectAnomaliesOutput = TOOLS_BY_NAME["detect_anomalies"].run(DetectAnomaliesInput(run="run", **kwargs), cfg)
    return out


def _tokens(out: DetectAnomaliesOutput) -> int:
    return estimate_tokens(json.dumps(out.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False))


def _table(out: DetectAnomaliesOutput) -> list[dict[str, Any]]:
    return [dict(zip(out.anomalies.columns, r, strict=True)) for r in out.anomalies.rows]


def test_every_finding_with_its_steps_evidence_and_next_call(tmp_path: Path) -> None:
    out = _ask(_project(tmp_path, _rows()), max_anomalies=50)
    rows = {(r["kind"], r["metric"]): r for r in _table(out)}
    nan = rows[("nan", "train/loss")]
    assert (nan["step"], nan["steps"]) == (400, "400; 1,300; 2,500")  # every step of a few isolated points
    spikes = [r for r in _table(out) if r["kind"] == "spike"]
    assert [(r["step"], r["severity"], r["steps"]) for r in spikes] == [
        (SPIKE, "warning", None), (2000, "info", "2,000; 2,004; 2,008")]
    up = spikes[0]
    assert up["related"].startswith("grad_norm ") and "->9 at the same step" in up["related"]
    assert "lr unchanged" in up["related"] and up["baseline"] < up["value"]
    assert up["next"] == ("get_history(run='run', keys=['train/loss','grad_norm'], "
                          f"start_step={SPIKE - 25}, end_step={SPIKE + 25})")
    drop = rows[("throughput_drop", "samples_per_sec")]
    assert abs(drop["step"] - 2200) <= 2 and drop["steps"].endswith("..2,999") and drop["baseline"] > 900
    assert ("exploding_gradient", "grad_norm") not in rows  # the grad jump is the spike's evidence
    assert out.summary.startswith("jsonl:run: ") and "worst first: train/loss NaN" in out.summary
    # each row says what it found in words; the worst one's words are the summary's, not repeated
    table = _table(out)
    assert table[0]["message"] is None and table[0]["kind"] == "nan"
    assert spikes[1]["message"].startswith("train/loss 3 dips from step 2,000")
    assert drop["message"].startswith("samples_per_sec ")


def test_default_answer_fits_400_tokens_and_says_what_it_left_out(tmp_path: Path) -> None:
    cfg = _project(tmp_path, _rows(metrics=30))
    out = _ask(cfg)
    assert _tokens(out) <= ANSWER_TOKENS
    total = len(_ask(cfg, max_anomalies=200).anomalies.rows)
    assert total > 30 and out.omitted == total - len(out.anomalies.rows) > 0
    assert out.notes[0].startswith(f"{out.omitted} more findings left out") and "budget=" in out.notes[0]
    worst = _table(out)[0]
    assert worst["severity"] == "critical" and worst["next"] is not None  # the worst keeps its evidence


@pytest.mark.parametrize("budget", [200, 300, 1000])
def test_budget_is_honoured_dropping_evidence_of_lower_rows_first(tmp_path: Path, budget: int) -> None:
    cfg = _project(tmp_path, _rows())
    out = _ask(cfg, budget=budget)
    assert _tokens(out) <= budget
    rows = _table(out)
    assert rows and rows[0]["kind"] == "nan"  # worst first, kept whatever the budget
    full = _ask(cfg, max_anomalies=200)
    if budget >= 1000:
        assert out.anomalies.rows == full.anomalies.rows and out.omitted == 0
    else:
        kept_next = [r.get("next") is not None for r in rows]
        assert kept_next == sorted(kept_next, reverse=True)  # evidence goes from the bottom up


def test_observations_are_not_findings(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k in ("step", "train/loss", "lr")} for r in _rows(decayed=True)]
    for r in rows:
        r["train/loss"] = round(0.5 + 2.0 * math.exp(-r["step"] / 600), 6)  # improving until the lr is low
    out = _ask(_project(tmp_path, rows))
    assert out.anomalies.rows == []
    assert out.observations == ["train/loss converging under a decayed lr (1% of its peak)"]
