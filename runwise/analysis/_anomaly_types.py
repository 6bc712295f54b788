"""The small value types of anomaly detection (re-exported by runwise.analysis.anomalies).

Thresholds live in runwise.thresholds (standard library only), so that the config derives its
validation from the same fields without importing the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

from runwise.thresholds import Thresholds

__all__ = ["KINDS", "SEVERITIES", "Anomaly", "Thresholds"]

SEVERITIES = ("critical", "warning", "info")  # most severe first
KINDS = (
    "nan", "inf", "spike", "divergence", "overfitting", "plateau",
    "vanishing_gradient", "exploding_gradient", "throughput_drop",
)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One finding: what, on which metric, where (steps), how bad, and a one-line message."""

    kind: str  # one of KINDS
    metric: str
    step: int
    end_step: int | None
    severity: str  # "info" | "warning" | "critical"
    value: float | None
    message: str
