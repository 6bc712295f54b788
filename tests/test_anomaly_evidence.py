"""Known answers for the evidence on each finding: related metrics, which moved first, window and keys."""

from __future__ import annotations

import re

import numpy as np

from runwise.analysis.anomalies import Anomaly, detect_anomalies

N = 3000
SPIKE = 2000


def _run(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    s = np.arange(N, dtype=np.int64)
    loss = 2.0 * np.exp(-s / 800.0) + 0.5 + rng.normal(0, 0.005, N)
    loss[SPIKE] *= 4.0
    grad = 1.0 + rng.normal(0, 0.03, N)
    return {"train/loss": (s, loss), "grad_norm": (s, grad), "lr": (s, np.full(N, 1e-4))}


def _spike(history: dict[str, tuple[np.ndarray, np.ndarray]]) -> Anomaly:
    found = [a for a in detect_anomalies(history).anomalies if a.kind == "spike"]
    assert [a.step for a in found] == [SPIKE]
    return found[0]


def test_a_metric_that_moved_at_the_same_step_is_related() -> None:
    history = _run()
    history["grad_norm"][1][SPIKE] = 9.0
    spike = _spike(history)
    grad = spike.related[0]
    assert grad.startswith("grad_norm 0.9") or grad.startswith("grad_norm 1"), grad  # its level before: ~1
    assert grad.endswith("->9 at the same step")
    assert "lr unchanged" in spike.related
    assert spike.first == ""  # nothing moved before the spike
    assert spike.keys == ("train/loss", "grad_norm")
    assert spike.baseline is not None and 0.5 < spike.baseline < 0.7 and spike.value is not None
    assert spike.value > 3 * spike.baseline


def test_which_moved_first_grad_norm_30_steps_before() -> None:
    history = _run()
    history["grad_norm"][1][SPIKE - 30:SPIKE + 1] = 5.0  # rises 30 steps before and stays up to the spike
    spike = _spike(history)
    assert spike.first == "grad_norm rose 30 steps before the train/loss spike"
    assert any(r.startswith("grad_norm ") and "->5 at the same step" in r for r in spike.related)


def test_an_lr_jump_before_a_spike_is_named_first() -> None:
    history = _run()
    history["lr"][1][SPIKE - 12:] = 1e-3
    spike = _spike(history)
    assert "lr 0.0001->0.001 at step 1,988" in spike.related
    assert spike.first == "lr jumped 12 steps before the train/loss spike"
    assert spike.keys == ("train/loss", "lr")


def test_a_scheduled_lr_decay_is_said_but_not_taken_for_a_cause() -> None:
    history = _run()
    history["lr"] = (history["lr"][0], 1e-3 * np.exp(-history["lr"][0] / 1000.0))  # 10% lower every 105 steps
    spike = _spike(history)
    assert [r for r in spike.related if r.startswith("lr ")] == ["lr as scheduled (no jump)"]
    assert spike.first == "" and spike.keys == ("train/loss",)


def test_nothing_moved_says_so_only_for_the_lr() -> None:
    spike = _spike(_run())
    assert spike.related == ("lr unchanged",)
    assert spike.keys == ("train/loss",)
    assert spike.window is not None and spike.window[0] < SPIKE < spike.window[1]


def test_a_lasting_finding_names_what_moved_from_its_onset() -> None:
    history = _run()
    s, loss = history["train/loss"]
    loss[SPIKE] /= 4.0
    loss[1500:] += np.linspace(0.0, 3.0, N - 1500)  # diverges from step 1,500
    history["grad_norm"][1][1500:] += np.linspace(0.0, 4.0, N - 1500)
    (div,) = [a for a in detect_anomalies(history).anomalies if a.kind == "divergence"]
    assert abs(div.step - 1500) <= 30
    # grad norm ~1 before; over the first quarter of the climb it averages 1 + 4 x 1/8 = 1.5
    assert any(re.fullmatch(rf"grad_norm (0\.99\d*|1(\.00\d*)?)->1\.5\d* from step {div.step:,}", r)
               for r in div.related), div.related
    assert "grad_norm" in div.keys and div.window is not None and div.window[1] == N - 1


def test_an_lr_jump_well_before_a_lasting_finding_is_what_came_first() -> None:
    s = np.arange(100_000, dtype=np.int64)
    loss = 2.0 * np.exp(-s / 10_000.0) + 0.5 + np.random.default_rng(5).normal(0, 0.01, s.size)
    loss[60_000:] += np.linspace(0.0, 3.0, 40_000)  # diverges from step 60,000 ...
    lr = np.full(s.size, 3e-4)
    lr[59_000:] = 3e-3  # ... a thousand steps after the lr jumped 10x
    (div,) = [a for a in detect_anomalies({"loss": (s, loss), "lr": (s, lr)}).anomalies if a.kind == "divergence"]
    assert abs(div.step - 60_000) <= 500
    assert "lr 0.0003->0.003 at step 59,000" in div.related
    assert div.first == f"lr jumped {div.step - 59_000:,} steps before the loss divergence"
