"""The small value types of anomaly detection (re-exported by runwise.analysis.anomalies)."""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("critical", "warning", "info")  # most severe first
KINDS = (
    "nan", "inf", "spike", "divergence", "overfitting", "plateau",
    "vanishing_gradient", "exploding_gradient", "throughput_drop",
)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Thresholds of the anomaly checks; same fields and defaults as config.AnomalyThresholds."""

    spike_threshold: float = 6.0
    spike_window: int = 100
    overfit_ratio_threshold: float = 1.5
    overfit_baseline_steps: tuple[int, int] = (100, 500)
    plateau_min_steps: int = 500
    plateau_improvement_threshold: float = 0.01
    gradient_vanish_threshold: float = 1e-7
    gradient_explode_multiplier: float = 10.0
    gradient_sustained_steps: int = 10
    throughput_drop_threshold: float = 0.4

    def __post_init__(self) -> None:
        bounds = tuple(int(b) for b in self.overfit_baseline_steps)  # a JSON list becomes a tuple
        object.__setattr__(self, "overfit_baseline_steps", bounds)
        problems = [
            name
            for name, ok in (
                ("spike_threshold", self.spike_threshold > 0),
                ("spike_window", self.spike_window >= 3),
                ("overfit_ratio_threshold", self.overfit_ratio_threshold > 1),
                ("overfit_baseline_steps", len(bounds) == 2 and bounds[0] <= bounds[1]),
                ("plateau_min_steps", self.plateau_min_steps >= 1),
                ("plateau_improvement_threshold", self.plateau_improvement_threshold >= 0),
                ("gradient_vanish_threshold", self.gradient_vanish_threshold >= 0),
                ("gradient_explode_multiplier", self.gradient_explode_multiplier > 1),
                ("gradient_sustained_steps", self.gradient_sustained_steps >= 1),
                ("throughput_drop_threshold", 0 < self.throughput_drop_threshold < 1),
            )
            if not ok
        ]
        if problems:
            raise ValueError(f"invalid anomaly thresholds: {', '.join(problems)}")


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
