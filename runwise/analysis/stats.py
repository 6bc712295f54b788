"""Summary statistics of one metric series (NaN/inf counted, never averaged in)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from runwise.analysis._arrays import as_series


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """Counts, first/final values and finite min/max/mean/std of a series; None where undefined."""

    count: int
    finite_count: int
    nan_count: int
    inf_count: int
    first_step: int | None  # first step of the series (any value)
    last_step: int | None  # last step of the series (any value)
    first: float | None  # first finite value
    final: float | None  # last finite value
    final_step: int | None  # step of `final`
    min: float | None
    min_step: int | None  # step of the first occurrence of `min`
    max: float | None
    max_step: int | None  # step of the first occurrence of `max`
    mean: float | None  # None also when it overflows float64
    std: float | None  # population std (ddof=0); None also when it overflows float64


def series_stats(steps: NDArray[np.int64], values: NDArray[np.float64]) -> SeriesStats:
    """Return count, NaN/inf counts, first/final finite value and finite min/max/mean/std with steps."""
    s, v = as_series(steps, values)
    count = int(v.size)
    finite = np.isfinite(v)
    finite_count = int(np.count_nonzero(finite))
    nan_count = int(np.count_nonzero(np.isnan(v)))
    inf_count = count - finite_count - nan_count
    first_step = int(s[0]) if count else None
    last_step = int(s[-1]) if count else None
    if finite_count == 0:
        return SeriesStats(count, 0, nan_count, inf_count, first_step, last_step,
                           None, None, None, None, None, None, None, None, None)
    fidx = np.flatnonzero(finite)
    fv = v[fidx]
    i_min = int(fidx[np.argmin(fv)])
    i_max = int(fidx[np.argmax(fv)])
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(np.mean(fv))
        std = float(np.std(fv))
    return SeriesStats(
        count=count,
        finite_count=finite_count,
        nan_count=nan_count,
        inf_count=inf_count,
        first_step=first_step,
        last_step=last_step,
        first=float(fv[0]),
        final=float(fv[-1]),
        final_step=int(s[fidx[-1]]),
        min=float(v[i_min]),
        min_step=int(s[i_min]),
        max=float(v[i_max]),
        max_step=int(s[i_max]),
        mean=mean if math.isfinite(mean) else None,
        std=std if math.isfinite(std) else None,
    )
