"""Healthy runs that earlier versions of the checks flagged: each must stay clean."""

from __future__ import annotations

import numpy as np

from runwise.analysis.anomalies import detect_anomalies


def _kinds(report: object) -> set[str]:
    return {a.kind for a in report.anomalies}  # type: ignore[attr-defined]


def test_steep_start_of_a_sparse_validation_curve_is_not_a_spike() -> None:
    steps = np.arange(0, 4000, 50)
    val = 2.0 * np.exp(-steps / 300) + 0.4  # falls fast between the first validation points
    report = detect_anomalies({"val/loss": (steps, val)})
    assert "spike" not in _kinds(report)


def test_noisy_but_falling_validation_is_not_overfitting() -> None:
    rng = np.random.default_rng(3)
    steps = np.arange(1_000_000)
    train = 2.5 * np.exp(-steps / 200_000) + 0.3 + 0.02 * rng.standard_normal(steps.size)
    vs = steps[::100]
    val = train[::100] + 0.05  # each validation point carries the step's noise
    report = detect_anomalies({"train/loss": (steps, train), "val/loss": (vs, val)})
    assert "overfitting" not in _kinds(report)
    assert "plateau" not in _kinds(report)  # still improving over its last tenth


def test_plateau_is_dated_where_the_loss_stopped_improving() -> None:
    steps = np.arange(100_000)
    loss = np.where(steps < 80_000, 2.0 - steps / 50_000, 2.0 - 80_000 / 50_000)
    found = [a for a in detect_anomalies({"loss": (steps, loss)}).anomalies if a.kind == "plateau"]
    assert len(found) == 1 and found[0].step == 80_000  # the onset, not the start of a window judged
