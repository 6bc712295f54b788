"""The thresholds of the anomaly checks: names, defaults, bounds and descriptions, in one place.

`Thresholds` is what the checks (runwise.analysis) take; runwise.json's `anomaly_detection`
is validated by a pydantic model that config.py derives from these fields, so a threshold is
added, renamed or bounded here only. Standard library only: the config imports it without
numpy, the analysis without pydantic.

Each field's metadata: `description` (one line), `bounds` (any of gt / ge / lt / le, as
pydantic's Field takes them), and optionally `check` (a predicate on the value) with `rule`
(what the predicate requires, in words).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

BOUNDS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "gt": (operator.gt, ">"),
    "ge": (operator.ge, ">="),
    "lt": (operator.lt, "<"),
    "le": (operator.le, "<="),
}


def _ascending_pair(value: Any) -> bool:
    return len(value) == 2 and 0 <= value[0] <= value[1]


def _spec(
    description: str, *, check: Callable[[Any], bool] | None = None, rule: str = "", **bounds: float
) -> dict[str, Any]:
    return {"description": description, "bounds": bounds, "check": check, "rule": rule}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Thresholds of the anomaly checks (runwise.json's `anomaly_detection`). ValueError if out of bounds."""

    spike_threshold: float = field(
        default=6.0, metadata=_spec("robust z-score (MAD) above which a point is a spike", gt=0)
    )
    spike_window: int = field(default=100, metadata=_spec("trailing points the spike baseline uses", ge=3))
    overfit_ratio_threshold: float = field(
        default=1.5, metadata=_spec(
            "factor the val/train loss ratio must grow by to be named in an overfitting finding's evidence", gt=1)
    )
    overfit_baseline_steps: tuple[int, int] = field(
        default=(100, 500),
        metadata=_spec(
            "steps [from, to] whose val/train ratio is the early level that evidence compares with",
            check=_ascending_pair, rule="two steps, 0 <= from <= to",
        ),
    )
    plateau_min_steps: int = field(
        default=500, metadata=_spec("fewest steps a plateau lasts (and a loss spans for the check to run)", ge=1)
    )
    plateau_improvement_threshold: float = field(
        default=0.01, metadata=_spec("relative change per tenth of the run below which the loss counts as flat", ge=0)
    )
    gradient_vanish_threshold: float = field(
        default=1e-7, metadata=_spec("gradient norm below which gradients have vanished", ge=0)
    )
    gradient_explode_multiplier: float = field(
        default=10.0, metadata=_spec("factor over its running median above which a gradient norm explodes", gt=1)
    )
    gradient_sustained_steps: int = field(
        default=10, metadata=_spec("consecutive points a vanished or exploding gradient must last", ge=1)
    )
    throughput_drop_threshold: float = field(
        default=0.4, metadata=_spec("fraction of its baseline the throughput must lose to count as a drop", gt=0, lt=1)
    )

    def __post_init__(self) -> None:
        pair = tuple(int(b) for b in self.overfit_baseline_steps)  # a JSON list becomes a tuple
        object.__setattr__(self, "overfit_baseline_steps", pair)
        problems = [f"{f.name} {why}" for f in fields(self) if (why := violation(f.metadata, getattr(self, f.name)))]
        if problems:
            raise ValueError(f"invalid anomaly thresholds: {'; '.join(problems)}")


def violation(spec: Any, value: Any) -> str | None:
    """What `value` breaks of a field's bounds and check ("must be > 0"), or None if it keeps them."""
    for name, bound in spec["bounds"].items():
        op, sign = BOUNDS[name]
        if not op(value, bound):
            return f"must be {sign} {bound}"
    check = spec["check"]
    if check is not None and not check(value):
        return f"must be {spec['rule']}"
    return None
