"""detect_anomalies scored on the labelled scenario suite (arrays, no files): recall, false alarms, float32.

Targets (issue 8): recall >= 0.95 over every labelled anomaly (kind, metric and step right; a
lasting one dated at its onset within the label's tolerance), and at most 1 finding over all
healthy runs, whatever its severity. TensorBoard stores float32: the same data rounded to float32
must give the same findings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from runwise.analysis.anomalies import Anomaly, detect_anomalies
from tests.scenarios.suite import SCENARIOS, Label, Scenario

RECALL = 0.95
MAX_FALSE = 1


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, name) if isinstance(v, dict) else {name: v})
    return out


def _found(label: Label, findings: Iterable[Anomaly]) -> bool:
    """The suite's rule (tests/scenarios/score.py), restated so this test does not move with it."""
    for a in findings:
        if a.kind not in (label.kind, *label.also) or a.metric != label.metric:
            continue
        if label.lasting:
            if abs(a.step - label.step) <= label.tolerance:
                return True
            continue
        hi = label.step if label.end_step is None else label.end_step
        if any(label.step <= s <= hi for s in (a.steps or (a.step,))):
            return True
    return False


def _findings(sc: Scenario, *, float32: bool = False) -> tuple[Anomaly, ...]:
    metrics = sc.metrics
    if float32:
        metrics = {k: (s, v.astype(np.float32).astype(np.float64)) for k, (s, v) in metrics.items()}
    return detect_anomalies(metrics, config=_flat(sc.config), max_anomalies=200).anomalies


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[Anomaly, ...]]:
    return {sc.name: _findings(sc) for sc in SCENARIOS}


def test_recall_over_every_labelled_anomaly(results: dict[str, tuple[Anomaly, ...]]) -> None:
    labels = [(sc.name, lab) for sc in SCENARIOS for lab in sc.labels]
    missed = [f"{name}: {lab.kind} {lab.metric} @{lab.step}" for name, lab in labels if not _found(lab, results[name])]
    assert len(labels) >= 45
    assert 1 - len(missed) / len(labels) >= RECALL, missed


def test_healthy_runs_raise_at_most_one_finding(results: dict[str, tuple[Anomaly, ...]]) -> None:
    healthy = [sc for sc in SCENARIOS if sc.healthy]
    false = [f"{sc.name}: {a.message}" for sc in healthy for a in results[sc.name]]
    assert len(healthy) >= 15
    assert len(false) <= MAX_FALSE, false


@pytest.mark.parametrize("kind", ["spike", "nan", "divergence", "overfitting", "plateau", "vanishing_gradient",
                                  "exploding_gradient", "throughput_drop"])
def test_every_kind_of_the_detectors_is_found(results: dict[str, tuple[Anomaly, ...]], kind: str) -> None:
    """Each kind is found in all its scenarios but at most one (the overall recall bounds the rest).

    The hardest: plateau_mid_cosine, whose 'flat' stretch still falls about 2.5% with the decaying
    lr term, under 3% noise and a 1.5% wobble; it is found as a loss that stopped improving.
    """
    labels = [(sc.name, lab) for sc in SCENARIOS for lab in sc.labels if lab.kind == kind]
    assert labels, f"the suite has no {kind} label"
    missed = [f"{name}@{lab.step}" for name, lab in labels if not _found(lab, results[name])]
    assert len(missed) <= 1 and len(missed) < len(labels), missed


def test_float32_rounding_gives_the_same_findings(results: dict[str, tuple[Anomaly, ...]]) -> None:
    changed = []
    for sc in SCENARIOS:
        a = [(x.kind, x.metric, x.step, x.end_step, x.steps) for x in results[sc.name]]
        b = [(x.kind, x.metric, x.step, x.end_step, x.steps) for x in _findings(sc, float32=True)]
        if a != b:
            changed.append((sc.name, sorted(set(a) ^ set(b))))
    assert changed == []


def test_every_finding_carries_its_evidence(results: dict[str, tuple[Anomaly, ...]]) -> None:
    for sc in SCENARIOS:
        for a in results[sc.name]:
            assert a.window is not None and a.window[0] <= a.step <= a.window[1], (sc.name, a)
            assert a.keys and a.keys[0] == a.metric
            assert len(a.steps) <= 5 and "\n" not in a.message and len(a.message) <= 160
