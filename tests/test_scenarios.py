"""The labelled scenario suite: its shape, the matcher, and detect_anomalies scored per source.

The suite (tests/scenarios/suite.py) is written once per session by the real writers (JSONL,
tensorboardX, wandb offline) into a temporary directory; set RUNWISE_SCENARIO_DIR to write it
there instead and reuse it on the next run (a source is written again when its runwise.json is
missing; delete the folder after changing the suite).
Per source, every scenario goes through the real detect_anomalies tool handler and is scored:
recall over the labels >= 0.95, and at most 1 finding over all healthy runs.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runwise.analysis.aliases import find_metric
from runwise.analysis.anomalies import KINDS
from tests.scenarios import score, suite, write
from tests.scenarios.score import Finding, ScoreCard, findings_from_rows, match
from tests.scenarios.suite import Label, Scenario

RECALL_TARGET = 0.95
MAX_FALSE_ON_HEALTHY = 1
SOURCES = write.SOURCES


# ---------------------------------------------------------------------------------------------
# the suite's shape


def test_suite_size_and_names() -> None:
    names = [s.name for s in suite.SCENARIOS]
    assert len(names) >= 45 and len(set(names)) == len(names)
    assert len(suite.healthy()) >= 15
    assert all(n.replace("_", "").isalnum() and n.islower() for n in names)  # file-name safe
    assert suite.by_name("healthy_short_50").length == 50
    with pytest.raises(KeyError, match="no scenario 'nope'"):
        suite.by_name("nope")


def test_every_kind_is_labelled_and_lengths_span_the_range() -> None:
    kinds = Counter(lab.kind for s in suite.SCENARIOS for lab in s.labels)
    assert set(kinds) == set(KINDS), set(KINDS) - set(kinds)
    lengths = [s.length for s in suite.SCENARIOS]
    assert min(lengths) == 50 and max(lengths) == 200_000
    assert any(s.length <= 300 for s in suite.healthy())
    # both directions: upward spikes and downward dips, single and in bursts
    spikes = [(s, lab) for s in suite.SCENARIOS for lab in s.labels if lab.kind == "spike"]
    direction = {(s.name, lab.step): _spike_sign(s, lab) for s, lab in spikes}
    bursts = {k: v for k, v in direction.items() if any(lab.end_step for s, lab in spikes if (s.name, lab.step) == k)}
    assert set(direction.values()) == {1, -1} and set(bursts.values()) == {1, -1}


def _spike_sign(sc: Scenario, lab: Label) -> int:
    steps, values = sc.metrics[lab.metric]
    i = int(np.searchsorted(steps, lab.step))
    around = np.r_[values[max(i - 50, 0): max(i - 5, 0)], values[i + 10: i + 50]]
    return 1 if values[i] > np.nanmedian(around) else -1


def test_metric_names_vary_as_in_real_projects() -> None:
    logged = {k for s in suite.SCENARIOS for k in s.metrics}
    wanted = {"loss", "train/loss", "training_loss", "train_loss_step", "val/loss", "eval/loss", "validation_loss",
              "val_loss_epoch", "grad_norm", "gradient_norm", "train/grad_norm", "lr", "learning_rate", "lr-AdamW",
              "samples_per_sec", "tokens_per_s", "throughput"}
    assert wanted <= logged, wanted - logged


@pytest.mark.parametrize("sc", suite.SCENARIOS, ids=lambda s: s.name)
def test_scenario_is_well_formed(sc: Scenario) -> None:
    for key, (steps, values) in sc.metrics.items():
        assert steps.dtype == np.int64 and values.dtype == np.float64 and steps.shape == values.shape
        assert np.all(np.diff(steps) > 0) and steps[0] >= 0 and steps[-1] <= sc.length
        assert 1 <= steps.size <= 5000, key
    for lab in sc.labels:
        assert lab.kind in KINDS and lab.metric in sc.metrics
        steps = sc.metrics[lab.metric][0]
        if lab.lasting:
            assert lab.tolerance > 0 and 0 <= lab.step <= sc.length
        else:  # a point or burst label names logged steps
            assert lab.step in steps and (lab.end_step is None or lab.end_step in steps)
    # the label's metric is the one a detector would take for that role
    keys = list(sc.metrics)
    for lab in sc.labels:
        if lab.kind in ("overfitting",):
            assert find_metric(keys, "val_loss") == lab.metric
        elif lab.kind in ("divergence", "plateau"):
            assert find_metric(keys, "loss") == lab.metric
        elif lab.kind in ("vanishing_gradient", "exploding_gradient"):
            assert find_metric(keys, "grad_norm") == lab.metric
        elif lab.kind == "throughput_drop":
            assert find_metric(keys, "throughput") == lab.metric
        elif lab.kind == "lr_schedule":
            assert find_metric(keys, "lr") == lab.metric


def test_suite_is_deterministic() -> None:
    again = {s.name: s for s in suite._build()}
    for sc in suite.SCENARIOS:
        other = again[sc.name]
        assert other.labels == sc.labels and other.config == sc.config
        for key, (steps, values) in sc.metrics.items():
            np.testing.assert_array_equal(other.metrics[key][0], steps)
            np.testing.assert_array_equal(other.metrics[key][1], values)


# ---------------------------------------------------------------------------------------------
# the matcher

_BURST = Scenario("b", 1000, {}, {"loss": (np.arange(10, dtype=np.int64), np.ones(10))},
                  (Label("spike", "loss", 400, 430),), "burst")
_LASTING = Scenario("l", 1000, {}, {"loss": (np.arange(10, dtype=np.int64), np.ones(10))},
                    (Label("divergence", "loss", 500, None, lasting=True, tolerance=20),
                     Label("nan", "loss", 800, None, lasting=True, tolerance=10, also=("divergence",))), "lasting")
_HEALTHY = Scenario("h", 1000, {}, {"loss": (np.arange(10, dtype=np.int64), np.ones(10))}, (), "healthy")


def test_burst_matches_inside_its_steps_only() -> None:
    assert match(_BURST, [Finding("spike", "loss", 430)]).found
    assert match(_BURST, [Finding("spike", "loss", 400)]).found
    outside = match(_BURST, [Finding("spike", "loss", 431), Finding("spike", "loss", 399)])
    assert not outside.found and len(outside.missed) == 1 and len(outside.extra) == 2
    # a finding listing its steps matches when any of them is inside, whatever its first step
    assert match(_BURST, [Finding("spike", "loss", 100, steps=(100, 410))]).found
    assert not match(_BURST, [Finding("spike", "loss", 100, steps=(100, 399, 431))]).found


def test_wrong_metric_or_kind_does_not_match() -> None:
    assert not match(_BURST, [Finding("spike", "val/loss", 410)]).found
    assert not match(_BURST, [Finding("divergence", "loss", 410)]).found


def test_lasting_matches_within_tolerance_and_also_kinds() -> None:
    card = match(_LASTING, [Finding("divergence", "loss", 520, 999)])
    assert [lab.kind for lab in card.found] == ["divergence"]
    assert not match(_LASTING, [Finding("divergence", "loss", 521)]).found
    assert not match(_LASTING, [Finding("divergence", "loss", 479)]).found
    # NaN from step 800 may be reported as divergence; only within its own tolerance
    card = match(_LASTING, [Finding("divergence", "loss", 805)])
    assert [lab.kind for lab in card.found] == ["nan"]


def test_every_finding_on_a_healthy_run_is_false() -> None:
    card = match(_HEALTHY, [Finding("plateau", "loss", 900, severity="info"), Finding("spike", "loss", 3)])
    assert len(card.false) == 2 and not card.extra and not card.missed
    t = score.totals({"h": card, "b": match(_BURST, [])})
    assert (t.labels, t.found, t.false, t.healthy_runs, t.healthy_flagged) == (1, 0, 2, 1, 1)
    assert "FALSE  h: plateau loss @900" in score.format_cards({"h": card})


def test_findings_from_tool_rows_read_columns_by_name() -> None:
    cols = ["severity", "kind", "metric", "steps", "value"]
    rows: list[list[Any]] = [
        ["warning", "spike", "loss", "1,260, 2,880", 3.0], ["info", "plateau", "loss", "1,500..3,499", 1.0],
        ["warning", "nan", "loss", [10, 20, 30], None], ["critical", "divergence", "loss", 6080, 9.0]]
    fs = findings_from_rows(cols, rows)
    assert [(f.kind, f.step, f.end_step, f.steps) for f in fs] == [
        ("spike", 1260, None, (1260, 2880)), ("plateau", 1500, 3499, ()), ("nan", 10, None, (10, 20, 30)),
        ("divergence", 6080, None, ())]
    old = findings_from_rows(["kind", "severity", "metric", "step", "end_step", "value", "message"],
                             [["divergence", "critical", "loss", 5000, 6000, 2.0, "m"]])
    assert (old[0].step, old[0].end_step, old[0].message) == (5000, 6000, "m")
    with pytest.raises(ValueError, match="kind/metric"):
        findings_from_rows(["what"], [["x"]])


# ---------------------------------------------------------------------------------------------
# written through the real writers, scored per source


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """source -> project dir of the suite as that source's writer wrote it (all three, once per session)."""
    env_dir = os.environ.get("RUNWISE_SCENARIO_DIR")
    root = Path(env_dir) if env_dir else tmp_path_factory.mktemp("scenarios")
    missing = [s for s in SOURCES if not (root / s / "runwise.json").is_file()]
    if missing:
        timings: dict[str, float] = {}
        write.write_suite(root, missing, timings=timings)
        print("suite written:", ", ".join(f"{s} {t:.0f} s" for s, t in timings.items()))
    return {s: root / s for s in SOURCES}


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_written_runs_load_as_the_scenarios(source: str, written: dict[str, Path]) -> None:
    problems = write.check_written(written[source], source)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_detect_anomalies_finds_the_labels_and_nothing_on_healthy_runs(
    source: str, written: dict[str, Path]
) -> None:
    cards: dict[str, ScoreCard] = score.score_source(written[source], source)
    t = score.totals(cards)
    report = score.format_cards(cards, title=f"{source}: ")
    hidden = sum(c.omitted for c in cards.values() if c.healthy)  # findings left out still count as findings
    assert t.recall >= RECALL_TARGET and t.false + hidden <= MAX_FALSE_ON_HEALTHY, report
