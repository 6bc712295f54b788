"""LR schedule checks: planted faults found at their onset, healthy schedules raise nothing, the phase."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from runwise.analysis.aliases import find_metric
from runwise.analysis.schedule import check_lr_schedule, lr_phase, read_schedule
from runwise.thresholds import Thresholds
from tests.scenarios.score import flatten, matches
from tests.scenarios.suite import SCENARIOS

TH = Thresholds()
PEAK = 3e-4


def cosine(steps: np.ndarray, *, total: int, warmup: int = 0, peak: float = PEAK, floor: float = 0.0) -> np.ndarray:
    """Linear warmup, then cosine decay from `peak` to `floor` x peak at `total` (the HF / torch shape)."""
    t = steps.astype(float)
    frac = np.clip((t - warmup) / max(total - warmup, 1), 0.0, 1.0)
    decay = peak * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * frac)))
    return np.where(t < warmup, peak * t / max(warmup, 1), decay)


def check(steps: np.ndarray, values: np.ndarray, config: dict[str, Any]) -> list[Any]:
    found = check_lr_schedule("lr", steps.astype(np.int64), np.asarray(values, dtype=float), config=config,
                              thresholds=TH)
    assert not isinstance(found, str), found
    return found


HF_COSINE = {"learning_rate": PEAK, "lr_scheduler_type": "cosine", "warmup_steps": 500, "max_steps": 10_000}
S10 = np.arange(0, 10_000, 10)


# ---------------------------------------------------------------- planted faults, dated at their onset


def test_no_warmup_where_the_config_declares_one() -> None:
    lr = np.where(S10 < 500, PEAK, cosine(S10, total=10_000, warmup=500))
    (a,) = check(S10, lr, HF_COSINE)
    assert (a.kind, a.metric, a.step, a.value) == ("lr_schedule", "lr", 0, PEAK)
    assert a.baseline is not None and a.baseline < 0.01 * PEAK  # linear warmup would start near 0
    assert "500-step warmup" in a.message


def test_warmup_ratio_of_a_nested_config_counts_as_declared() -> None:
    s = np.arange(0, 50_000, 25)
    config = flatten({"optimizer": {"lr": 1e-3}, "scheduler": {"name": "cosine", "warmup_ratio": 0.05}})
    (a,) = check(s, cosine(s, total=50_000, peak=1e-3), config)
    assert a.step == 0 and "warmup" in a.message


def test_decay_that_never_happens_is_dated_where_it_should_have_started() -> None:
    lr = np.where(S10 < 500, PEAK * S10 / 500, PEAK)
    (a,) = check(S10, lr, HF_COSINE)
    assert a.step == 500 and a.end_step == 9_990
    assert a.value == pytest.approx(PEAK) and a.baseline == pytest.approx(PEAK)
    assert "never decays" in a.message and "cosine" in a.message


def test_step_decay_in_epochs_that_never_happens() -> None:
    s = np.arange(0, 90_000, 100)
    config = {"optimizer.lr": 0.1, "scheduler": "MultiStepLR", "milestones": [30, 60], "gamma": 0.1,
              "max_epochs": 90, "max_steps": 90_000}
    (a,) = check(s, np.full(s.size, 0.1), config)
    assert a.step == 30_000  # 30 epochs of 1,000 steps


def test_lr_stuck_at_zero_after_it_was_positive() -> None:
    lr = cosine(S10, total=10_000, warmup=500)
    lr[S10 >= 4_000] = 0.0
    (a,) = check(S10, lr, HF_COSINE)
    assert (a.step, a.end_step, a.value, a.severity) == (4_000, 9_990, 0.0, "critical")
    assert a.baseline == pytest.approx(float(lr[S10 == 3_990][0]))


def test_a_zero_stretch_the_lr_comes_back_from_is_one_finding() -> None:
    lr = cosine(S10, total=10_000, warmup=500)
    lr[(S10 >= 4_000) & (S10 < 6_000)] = 0.0
    (a,) = check(S10, lr, HF_COSINE)  # not a second "jump" at 6,000: the stuck finding says until when
    assert (a.step, a.end_step, a.severity) == (4_000, 5_990, "warning") and "until step 6,000" in a.message


def test_lr_zero_from_the_start_while_the_config_sets_it() -> None:
    s = np.arange(5, 5_000, 5)
    (a,) = check(s, np.zeros(s.size), {"learning_rate": 1e-4, "lr_scheduler_type": "constant"})
    assert (a.step, a.baseline, a.severity) == (5, 1e-4, "critical")


def test_jump_that_no_schedule_explains() -> None:
    s = np.arange(0, 5_000, 5)
    (a,) = check(s, np.where(s < 2_000, PEAK, 10 * PEAK), {"lr": PEAK})
    assert (a.step, a.baseline, a.value) == (2_000, pytest.approx(PEAK), pytest.approx(10 * PEAK))


def test_restart_with_its_own_warmup_is_dated_where_the_lr_rises_again() -> None:
    lr = cosine(S10, total=10_000, warmup=500)
    again = cosine(np.clip(S10 - 6_000, 0, None), total=4_000, warmup=500)
    (a,) = check(S10, np.where(S10 >= 6_000, again, lr), HF_COSINE)
    assert 6_000 <= a.step <= 6_010 and a.value == pytest.approx(PEAK, rel=0.05)


def test_undeclared_restarts_are_one_finding_listing_each() -> None:
    s = np.arange(0, 12_000, 10)
    lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * (s % 3_000) / 3_000))
    (a,) = check(s, lr, {"lr": 1e-3, "lr_scheduler_type": "cosine", "max_steps": 12_000})
    assert a.step == 3_000 and a.steps == (3_000, 6_000, 9_000)


def test_a_noisy_jump_is_dated_at_the_jump_not_at_the_noise_before_it() -> None:
    rng = np.random.default_rng(3)
    s = np.arange(20_000)
    lr = cosine(s, total=20_000) * (1 + 0.01 * rng.standard_normal(s.size))
    lr[s >= 10_000] *= 10
    (a,) = check(s, lr, {"lr": PEAK, "lr_scheduler_type": "cosine", "max_steps": 20_000})
    assert a.step == 10_000


def test_declared_restarts_that_overshoot_the_peak_are_flagged() -> None:
    s = np.arange(0, 12_000, 10)
    lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * (s % 3_000) / 3_000))
    lr[s >= 9_000] *= 5
    (a,) = check(s, lr, {"lr": 1e-3, "scheduler": "CosineAnnealingWarmRestarts", "T_0": 3_000})
    assert a.step == 9_000 and "declared restarts" in a.message


# ---------------------------------------------------------------- healthy schedules raise nothing


def _healthy() -> dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    rng = np.random.default_rng(0)
    s = np.arange(0, 20_000, 10)
    cos_w = cosine(s, total=20_000, warmup=1_000, peak=1e-3)
    sgdr = 1e-3 * 0.5 * (1 + np.cos(np.pi * (s % 5_000) / 5_000))
    step_decay = 0.1 * 0.1 ** np.searchsorted([6_000, 12_000], s, side="right")
    up = s < 6_000
    one_cycle = np.where(up, 4e-5 + (1e-3 - 4e-5) * 0.5 * (1 - np.cos(np.pi * s / 6_000)),
                         1e-3 * 0.5 * (1 + np.cos(np.pi * (s - 6_000) / 14_000)))
    s1 = np.arange(10, 20_000, 10)
    lin = np.where(s1 < 500, 1e-3 * s1 / 500, 1e-3 * (20_000 - s1) / 19_500)
    inv = 1e-3 * np.minimum((s + 1) / 4_000, np.sqrt(4_000 / np.maximum(s, 1)))
    stairs = np.where(s < 5_000, 4e-3 * (1 + s // 1_000) / 5, 4e-3)
    return {
        "cosine with warmup": (s, cos_w, {"lr": 1e-3, "scheduler": "cosine", "warmup_steps": 1_000,
                                          "max_steps": 20_000}),
        "noisy logged cosine": (s, cos_w * (1 + 0.1 * rng.standard_normal(s.size)),
                                {"lr": 1e-3, "scheduler": "cosine", "warmup_steps": 1_000, "max_steps": 20_000}),
        "HF linear, first log at step 10": (s1, lin, {"learning_rate": 1e-3, "lr_scheduler_type": "linear",
                                                      "warmup_steps": 500, "max_steps": 20_000}),
        "constant": (s, np.full(s.size, 1e-3), {"lr": 1e-3}),
        "noisy constant": (s, 1e-3 * (1 + 0.05 * rng.standard_normal(s.size)), {"lr": 1e-3}),
        "step decay, milestones in steps": (s, step_decay, {"optimizer.lr": 0.1, "scheduler": "MultiStepLR",
                                                            "milestones": [6_000, 12_000], "gamma": 0.1}),
        "step decay, milestones in epochs": (s, step_decay, {"optimizer.lr": 0.1, "scheduler.name": "MultiStepLR",
                                                             "scheduler.milestones": "[30, 60]", "max_epochs": 100,
                                                             "max_steps": 20_000}),
        "SGDR declared (torch)": (s, sgdr, {"optimizer.lr": 1e-3, "scheduler.name": "CosineAnnealingWarmRestarts",
                                            "scheduler.T_0": 5_000}),
        "SGDR declared (HF)": (s, sgdr, {"learning_rate": 1e-3, "lr_scheduler_type": "cosine_with_restarts",
                                         "max_steps": 20_000}),
        "one-cycle": (s, one_cycle, {"max_lr": 1e-3, "scheduler": "OneCycleLR", "total_steps": 20_000}),
        "inverse sqrt": (s, inv, {"lr": 1e-3, "lr_scheduler_type": "inverse_sqrt", "warmup_steps": 4_000}),
        "LinearLR warmup then cosine": (s, cos_w, {"optimizer.lr": 1e-3, "scheduler.schedulers.0": "LinearLR",
                                                   "scheduler.schedulers.1": "CosineAnnealingLR",
                                                   "scheduler.T_max": 19_000}),
        "ReduceLROnPlateau drops": (s, 1e-3 * 0.5 ** np.searchsorted([5_000, 9_000], s, side="right"),
                                    {"lr": 1e-3, "scheduler": "ReduceLROnPlateau"}),
        "staircase warmup on a scaled lr": (s, stairs, {"lr": 1e-3, "warmup_epochs": 5}),
        "cosine to zero, logged to the end": (s, cosine(s, total=19_990, peak=1e-3),
                                              {"lr": 1e-3, "lr_scheduler_type": "cosine", "max_steps": 19_990}),
        "no config at all": (s, cos_w, {}),
        "a 50-step run": (np.arange(50), np.linspace(1e-3, 0, 50), {"lr": 1e-3, "lr_scheduler_type": "linear",
                                                                    "max_steps": 50}),
    }


@pytest.mark.parametrize("name", sorted(_healthy()))
def test_healthy_schedule_raises_nothing(name: str) -> None:
    s, v, config = _healthy()[name]
    assert check(s, v, config) == []


def test_the_scenario_suite_every_lr_label_found_no_finding_on_healthy_runs() -> None:
    missed, false = [], []
    for sc in SCENARIOS:
        key = find_metric(sc.metrics, "lr")
        labels = [label for label in sc.labels if label.kind == "lr_schedule"]
        if key is None:
            missed += labels
            continue
        found = check_lr_schedule(key, *sc.metrics[key], config=flatten(sc.config), thresholds=TH)
        findings = [] if isinstance(found, str) else found
        missed += [(sc.name, label.step) for label in labels if not any(matches(label, f) for f in findings)]
        if sc.healthy:
            false += [(sc.name, f.message) for f in findings]
    assert sum(1 for sc in SCENARIOS for label in sc.labels if label.kind == "lr_schedule") >= 8
    assert missed == [] and false == []


# ---------------------------------------------------------------- config reading


def test_read_schedule_understands_hf_lightning_timm_and_custom_keys() -> None:
    hf = read_schedule({"learning_rate": 5e-5, "lr_scheduler_type": "linear", "warmup_ratio": 0.1,
                        "max_steps": 1_000})
    assert (hf.peak, hf.warmup, hf.warmup_steps, hf.total_steps, hf.continuous_decay) == (5e-5, True, 100, 1_000,
                                                                                           True)
    assert read_schedule({"learning_rate": 5e-5, "lr_scheduler_type": "constant_with_warmup",
                          "warmup_steps": 0}).warmup is False  # an explicit 0 wins over the name
    lightning = read_schedule({"optimizer.lr": 1e-3, "lr_scheduler.scheduler": "CosineAnnealingLR",
                               "lr_scheduler.T_max": 40, "lr_scheduler.interval": "epoch", "trainer.max_epochs": 40})
    assert lightning.total_steps is None and lightning.continuous_decay  # T_max counts epochs here
    timm = read_schedule({"lr": 5e-4, "sched": "cosine", "warmup_epochs": 5, "epochs": 300, "min_lr": 1e-5})
    assert (timm.warmup, timm.warmup_steps, timm.floor) == (True, None, 1e-5)
    assert read_schedule({"scheduler.name": "LinearLR", "scheduler.start_factor": 1.0,
                          "scheduler.end_factor": 0.0, "scheduler.total_iters": 900}).continuous_decay
    assert read_schedule({"lr_schedule": "cosine_with_restarts"}).restarts
    assert read_schedule({"scheduler.T_0": 10, "scheduler.T_mult": 2}).restarts
    assert read_schedule({"decay": "cosine", "warmup": 0.05, "max_iters": 2_000}).warmup_steps == 100
    assert read_schedule({"lr": "3e-4"}).peak == 3e-4  # numbers written as text (TensorBoard hparams)


# ---------------------------------------------------------------- the phase at the end


@pytest.mark.parametrize(
    ("end", "name", "text"),
    [
        (300, "warmup", "lr in warmup"),
        (5_000, "decay", "lr in decay, at 54% of peak 0.0003"),
        (8_000, "decay", "lr in decay, at 11% of peak 0.0003"),
        (10_000, "finished", "lr schedule finished"),
    ],
)
def test_phase_along_a_cosine_schedule(end: int, name: str, text: str) -> None:
    s = np.arange(0, end + 1, 10)
    phase = lr_phase(s.astype(np.int64), cosine(s, total=10_000, warmup=500), HF_COSINE)
    assert phase.name == name and phase.text.startswith(text)


def test_phase_constant_finished_at_the_declared_floor_and_unknown() -> None:
    s = np.arange(0, 2_000, 10).astype(np.int64)
    rng = np.random.default_rng(1)
    noisy = 1e-3 * (1 + 0.05 * rng.standard_normal(s.size))
    assert lr_phase(s, noisy, {}).name == "constant"  # noise is not a decay
    floor = cosine(s, total=1_000, floor=0.1)
    assert lr_phase(s, floor, {"lr": PEAK, "min_lr": 0.1 * PEAK}).name == "finished"
    assert lr_phase(s, floor, {}).name == "decay"  # at 10% of its peak, no floor declared
    assert lr_phase(s[:2], floor[:2]).name == "unknown"
    stuck = np.where(s >= 1_500, 0.0, 1e-3)
    assert lr_phase(s, stuck).text == "lr at 0 from step 1,500, dropped from 0.001"
    assert lr_phase(s, floor, key="learning_rate").text.startswith("learning_rate in decay")


# ---------------------------------------------------------------- bad input, speed


def test_what_the_check_cannot_judge_is_said_not_raised() -> None:
    s = np.arange(4, dtype=np.int64)
    assert check_lr_schedule("lr", s, np.full(4, 1e-3), config={}, thresholds=TH) == "lr has fewer than 5 finite points"
    neg = check_lr_schedule("lr", np.arange(10), -np.ones(10), config={}, thresholds=TH)
    assert isinstance(neg, str) and "negative" in neg
    with pytest.raises(ValueError, match="1-D"):
        check_lr_schedule("lr", np.arange(10), np.ones((10, 1)), config={}, thresholds=TH)


def test_a_million_points_in_well_under_a_second() -> None:
    n = 1_000_000
    s = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(2)
    lr = cosine(s, total=n, warmup=10_000) * (1 + 0.01 * rng.standard_normal(n))
    lr[600_000:] *= 10
    config = {"lr": PEAK, "lr_scheduler_type": "cosine", "warmup_steps": 10_000, "max_steps": n}
    t0 = time.perf_counter()
    found = check(s, lr, config)
    phase = lr_phase(s, lr, config)
    took = time.perf_counter() - t0
    assert [a.step for a in found] == [600_000] and phase.name in ("decay", "finished")
    assert took < 1.0, f"{took:.2f} s"
