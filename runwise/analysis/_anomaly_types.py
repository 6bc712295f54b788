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
    "vanishing_gradient", "exploding_gradient", "throughput_drop", "lr_schedule",
)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One finding: what, on which metric, where (steps), how bad, the evidence, and what to run next.

    `step` is the onset of a lasting anomaly (or the first of its points), `end_step` its last
    step (None for one point); `steps` lists every step of up to 5 isolated points (a burst, NaN
    at separate steps), empty otherwise. `baseline` and `value` are the evidence in numbers: the
    level before and the level observed. `related` holds what other metrics did in the same
    window ("grad_norm 0.7→9.1 at the same step", "lr unchanged"); `first` says which moved first
    ("grad_norm rose 30 steps before the loss spike"). `window` (first, last step) and `keys` are
    what a follow-up get_history call should show; the tool layer writes that call.
    """

    kind: str  # one of KINDS
    metric: str
    step: int
    end_step: int | None
    severity: str  # "info" | "warning" | "critical"
    value: float | None  # the observed value or level
    message: str
    steps: tuple[int, ...] = ()
    baseline: float | None = None
    related: tuple[str, ...] = ()
    first: str = ""
    window: tuple[int, int] | None = None
    keys: tuple[str, ...] = ()
