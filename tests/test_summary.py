"""summarize_run: the verdict first, the LR phase, the validation trend and best checkpoint, a token budget.

Runs are JSONL logs written with json.dumps, as training scripts write them; the verdict and
validation helpers are also checked on arrays with known answers.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runwise import runs
from runwise.analysis.anomalies import Anomaly, AnomalyReport
from runwise.analysis.verdict import best_checkpoint, finding_label, val_trend, verdict
from runwise.config import RunwiseConfig
from runwise.tokens import estimate_tokens
from runwise.tools import TOOLS_BY_NAME
from runwise.tools.summary import SUMMARY_BUDGET, SummarizeRunInput, SummarizeRunOutput
from tests.conftest import write_jsonl

STEPS = 3_000
PEAK = 6e-4
CONFIG = {"learning_rate": PEAK, "lr_scheduler_type": "cosine", "warmup_steps": 200, "max_steps": STEPS,
          "seed": 1}


def lr_at(step: int) -> float:
    if step < 200:
        return PEAK * step / 200
    return PEAK * 0.5 * (1 + math.cos(math.pi * (step - 200) / (STEPS - 200)))


def rows(*, steps: int = STEPS, seed: int = 0, nan_from: int | None = None, spike_at: int | None = None,
         val_min_at: int | None = None, extra: int = 0) -> list[dict[str, Any]]:
    """A run logged every 10 steps: train/loss, lr, grad_norm, throughput; val/loss every 100 steps.

    `nan_from`: train/loss NaN from that step on; `spike_at`: train/loss x6 there; `val_min_at`:
    validation falls to that step, then climbs 30% by the end (overfitting); `extra` more metrics.
    """
    rng = random.Random(seed)
    out: list[dict[str, Any]] = [{"step": 0, "config": CONFIG, "_meta": {"name": "r"}}]
    for step in range(0, steps + 1, 10):
        clean = 0.4 + 2.0 * math.exp(-step / (steps / 5))
        loss = clean * (1 + 0.01 * rng.gauss(0, 1))
        if spike_at == step:
            loss *= 6
        row: dict[str, Any] = {
            "step": step, "train/loss": float("nan") if nan_from is not None and step >= nan_from else loss,
            "lr": lr_at(step), "grad_norm": (0.5 + math.exp(-step / 500)) * (1 + 0.05 * rng.gauss(0, 1)),
            "samples_per_sec": 1000 * (1 + 0.02 * rng.gauss(0, 1)), "_runtime": step * 0.1,
        }
        for i in range(extra):
            row[f"aux/metric_{i}"] = i + step / steps + 0.01 * rng.gauss(0, 1)
        if step % 100 == 0:
            val = clean * 1.1
            if val_min_at is not None and step > val_min_at:
                val = (0.4 + 2.0 * math.exp(-val_min_at / (steps / 5))) * 1.1 * (1 + 0.3 * (step - val_min_at)
                                                                                  / (steps - val_min_at))
            row["val/loss"] = val * (1 + 0.002 * rng.gauss(0, 1))
        out.append(row)
    out.append({"_meta": {"exit_code": 0}})
    return out


def project(tmp_path: Path, run_rows: list[dict[str, Any]]) -> RunwiseConfig:
    write_jsonl(tmp_path / "logs" / "r.jsonl", run_rows, age_s=3600)
    (tmp_path / "runwise.json").write_text(json.dumps({"project_name": "t", "logs_dir": "logs"}))
    runs.clear_cache()
    return RunwiseConfig.load(tmp_path, env={})


def summarize(cfg: RunwiseConfig, **args: Any) -> SummarizeRunOutput:
    spec = TOOLS_BY_NAME["summarize_run"]
    out = spec.run(spec.input(run="r", **args), cfg)
    assert isinstance(out, SummarizeRunOutput)
    return out


def tokens(out: SummarizeRunOutput) -> int:
    return estimate_tokens(json.dumps(out.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False))


# ---------------------------------------------------------------- the verdict leads


def test_the_answer_starts_with_the_verdict(tmp_path: Path) -> None:
    out = summarize(project(tmp_path, rows()))
    assert next(iter(out.model_dump())) == "verdict"  # the first thing the agent reads
    assert "\n" not in out.verdict


def test_healthy_run_says_healthy_with_the_lr_phase_and_validation(tmp_path: Path) -> None:
    out = summarize(project(tmp_path, rows()))
    assert out.verdict.startswith("healthy: no findings in ")
    assert out.summary.startswith("jsonl:r: finished, 3,000 steps")
    assert "lr schedule finished" in out.summary
    assert "val/loss improving" in out.summary and "best" in out.summary and "@3,000" in out.summary


def test_nan_loss_makes_the_run_broken(tmp_path: Path) -> None:
    out = summarize(project(tmp_path, rows(nan_from=2_000)))
    assert out.verdict.startswith("broken: ")
    assert "train/loss" in out.verdict and "2,000" in out.verdict
    assert any("NaN" in m for m in out.anomalies)


def test_a_loss_spike_is_watch_and_names_its_step(tmp_path: Path) -> None:
    out = summarize(project(tmp_path, rows(spike_at=2_500)))
    assert out.verdict.startswith("watch: ")
    assert "train/loss spike at step 2,500" in out.verdict


def test_too_short_a_run_is_not_called_healthy(tmp_path: Path) -> None:
    out = summarize(project(tmp_path, rows(steps=100)))  # 11 points: the divergence check cannot run
    assert out.verdict.startswith("watch: no findings, but ")
    assert "divergence" in out.verdict and "fewer than" in out.verdict
    assert any(s.startswith("divergence") for s in out.checks_skipped)


def test_overfitting_shows_worsening_validation_and_the_best_checkpoint(tmp_path: Path) -> None:
    out = summarize(project(tmp_path, rows(val_min_at=1_200)))
    assert "val/loss worsening" in out.summary
    assert "@1,200" in out.summary  # the best checkpoint: the lowest validation loss


def test_anomaly_checks_off_gives_no_verdict(tmp_path: Path) -> None:
    out = summarize(project(tmp_path, rows()), anomalies=False)
    assert out.verdict == "no verdict: anomaly checks off" and out.anomalies == []
    assert "anomaly checks off" in out.summary


# ---------------------------------------------------------------- the token budget


def test_default_answer_fits_400_tokens_and_says_what_it_left_out(tmp_path: Path) -> None:
    cfg = project(tmp_path, rows(spike_at=2_500, extra=6))  # 11 metrics
    out = summarize(cfg)
    assert tokens(out) <= SUMMARY_BUDGET
    assert out.notes and out.notes[0].startswith("budget 400 left out:") and "budget=" in out.notes[0]
    assert out.metrics.rows and out.metrics.rows[0][0] == "train/loss"
    assert out.more_metrics == 11 - len(out.metrics.rows)
    assert out.metrics.columns[-1] == "spark" and out.metrics.rows[0][-1]  # the loss keeps its sparkline


def test_a_larger_budget_shows_everything_a_smaller_one_less(tmp_path: Path) -> None:
    cfg = project(tmp_path, rows(spike_at=2_500, extra=3))  # 8 metrics
    big = summarize(cfg, budget=5_000)
    assert len(big.metrics.rows) == 8 and all(len(str(r[-1])) == 8 for r in big.metrics.rows)
    assert big.notes == []
    small = summarize(cfg, budget=300)
    assert tokens(small) <= 300 < tokens(big)
    assert len(small.metrics.rows) < 8 and "metrics" in small.notes[0]
    assert small.verdict == big.verdict  # the verdict is never cut


def test_a_tight_budget_keeps_the_verdict_and_the_run(tmp_path: Path) -> None:
    out = summarize(project(tmp_path, rows(spike_at=2_500, extra=3)), budget=180)
    assert tokens(out) <= 180
    assert out.verdict == "watch: 1 finding: train/loss spike at step 2,500"
    assert out.summary.startswith("jsonl:r: finished, 3,000 steps") and out.run.id == "r"
    assert out.notes[0].startswith("budget 180")


def test_asking_for_a_size_turns_the_default_budget_off(tmp_path: Path) -> None:
    cfg = project(tmp_path, rows(extra=6))
    out = summarize(cfg, max_metrics=11, spark_width=16)
    assert len(out.metrics.rows) == 11 and all(len(str(r[-1])) == 16 for r in out.metrics.rows)


def test_named_keys_are_capped_by_max_metrics_and_the_rest_counted(tmp_path: Path) -> None:
    out = summarize(project(tmp_path, rows(extra=6)), keys=["aux/"], max_metrics=4)
    assert [r[0] for r in out.metrics.rows] == [f"aux/metric_{i}" for i in range(4)]
    assert out.more_metrics == 2  # of the 6 metrics the keys named


def test_real_tokenizers_agree_with_the_budget(tmp_path: Path) -> None:
    from tests.tokenizers import answer_text, claude_tokenizer_file, count_claude, count_o200k

    if claude_tokenizer_file() is None:
        pytest.skip("the Claude tokenizer file is not available")
    out = summarize(project(tmp_path, rows(spike_at=2_500, extra=6)))
    text = answer_text(out)
    assert count_o200k(text) <= SUMMARY_BUDGET and count_claude(text) <= SUMMARY_BUDGET


def test_budget_below_the_minimum_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="budget"):
        SummarizeRunInput(budget=5)


# ---------------------------------------------------------------- verdict and validation, known answers


def _report(*found: Anomaly, run: tuple[str, ...] = ("nan_inf", "spikes", "divergence", "plateau"),
            skipped: dict[str, str] | None = None, truncated: int = 0) -> AnomalyReport:
    return AnomalyReport(tuple(found), run, skipped or {}, truncated)


def test_verdict_words_and_the_worst_finding_first() -> None:
    spike = Anomaly("spike", "loss", 700, None, "warning", 5.0, "loss spike 5 at step 700")
    nan = Anomaly("nan", "loss", 900, 990, "critical", None, "loss NaN from step 900")
    assert verdict(_report()) == ("healthy", "no findings in 4 checks")
    assert verdict(_report(spike)) == ("watch", "1 finding: loss spike at step 700")
    word, why = verdict(_report(spike, nan, truncated=3))
    assert word == "broken"
    assert why == "5 findings, worst first: loss NaN from step 900; loss spike at step 700; +3 more"


def test_verdict_is_not_healthy_when_a_core_check_could_not_run() -> None:
    word, why = verdict(_report(run=("nan_inf", "spikes"), skipped={"divergence": "loss has fewer than 30 points"}))
    assert word == "watch" and why == "no findings, but divergence could not run (loss has fewer than 30 points)"
    word, why = verdict(_report(skipped={"overfitting": "no validation loss metric"}))
    assert word == "healthy" and "1 could not run" in why  # an optional check: said, not held against the run


def test_finding_labels_are_short() -> None:
    dip = Anomaly("spike", "loss", 5, None, "info", 0.1, "loss dip 0.1 at step 5", baseline=1.0)
    lr = Anomaly("lr_schedule", "lr", 2000, None, "warning", 3e-3,
                 "lr jumps 0.0003 -> 0.003 at step 2,000, unexplained by the config's schedule")
    div = Anomaly("divergence", "loss", 5000, 6000, "critical", 9.0, "long message")
    assert [finding_label(a) for a in (dip, lr, div)] == [
        "loss dip at step 5", "lr jumps 0.0003 -> 0.003 at step 2,000", "loss diverged from step 5,000"]
    # isolated points name their steps: "from step" would read as NaN to the end
    nans = Anomaly("nan", "loss", 1260, 4980, "critical", None, "m", steps=(1260, 2880, 4980))
    burst = Anomaly("spike", "loss", 10, 40, "warning", 9.0, "m", steps=(10, 20, 30, 40), baseline=1.0)
    assert [finding_label(a) for a in (nans, burst)] == [
        "loss NaN at steps 1,260, 2,880, 4,980", "loss spike at steps 10, 20, 30 (+1 more)"]


STEPS_V = np.arange(100, 4_100, 100, dtype=np.int64)  # 40 evaluations


def test_val_trend_improving_flat_worsening() -> None:
    rng = np.random.default_rng(0)
    noise = 0.01 * rng.standard_normal(STEPS_V.size)
    falling = 1.0 + np.exp(-STEPS_V / 3_000) + noise
    assert val_trend("val/loss", STEPS_V, falling).state == "improving"
    flat = 1.0 + noise
    assert val_trend("val/loss", STEPS_V, flat).state == "flat"
    rising = np.where(STEPS_V < 2_500, 1.0 + np.exp(-STEPS_V / 500), 1.0 + (STEPS_V - 2_500) / 5_000) + noise
    t = val_trend("val/loss", STEPS_V, rising)
    assert t.state == "worsening" and t.text.startswith("val/loss worsening")
    one_bad = falling.copy()
    one_bad[-1] *= 1.2  # a single bad evaluation is not a trend
    assert val_trend("val/loss", STEPS_V, one_bad).state != "worsening"


def test_val_trend_reads_accuracy_upwards_and_needs_four_evals() -> None:
    acc = 0.9 - 0.5 * np.exp(-STEPS_V / 1_000)
    t = val_trend("val/acc", STEPS_V, acc)
    assert t.state == "improving" and t.best_step == 4_000
    assert val_trend("val/acc", STEPS_V[:3], acc[:3]).state == "unknown"


def test_best_checkpoint_by_direction() -> None:
    v = np.array([3.0, 1.0, np.nan, 2.0, 1.0])
    s = np.array([10, 20, 30, 40, 50], dtype=np.int64)
    assert best_checkpoint("val/loss", s, v) == (20, 1.0)  # the earliest of equal bests
    assert best_checkpoint("val/acc", s, v) == (10, 3.0)
    assert best_checkpoint("val/loss", s[:1], np.array([np.nan])) is None


def test_sparkline_buckets_are_means_also_when_their_sizes_differ() -> None:
    from runwise.analysis.sparkline import sparkline

    # 10 points in 4 buckets of 2, 3, 2, 3 points: the means alternate 1.0 / 0.8, the sums the other way
    v = np.array([1, 1, 0.8, 0.8, 0.8, 1, 1, 0.8, 0.8, 0.8])
    assert sparkline(v, width=4) == "█▁█▁"
    v[0] = np.nan  # the masked path agrees
    assert sparkline(v, width=4) == "█▁█▁"
