"""How steady a metric is: rolling standard deviation over a step window, robust trend, verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from runwise.analysis._arrays import FloatArray, IntArray, as_series

STABLE_CV = 0.05  # cv_last below this: "stable"
NOISY_CV = 0.2  # cv_last below this: "noisy"; otherwise "unstable"
FLAT_FRACTION = 0.01  # a total change within 1% of the typical level (or the noise) is "flat"
SLOPE_SAMPLE = 1000  # Theil-Sen uses all pairs of at most this many evenly spaced finite points


@dataclass(frozen=True, slots=True)
class Stability:
    """Rolling-std summary, robust trend and verdict of one metric."""

    window_steps: int
    points: int  # finite points analysed
    rolling_std_mean: float | None
    rolling_std_last: float | None
    rolling_std_max: float | None
    rolling_std_max_step: int | None
    cv_last: float | None  # std / |mean| of the finite values in the last window
    slope_per_1k_steps: float | None  # robust (Theil-Sen) slope, per 1,000 steps
    trend: str  # "decreasing" | "increasing" | "flat" | "unknown"
    verdict: str  # "stable" | "noisy" | "unstable" | "unknown"


def rolling_std(
    steps: NDArray[np.int64], values: NDArray[np.float64], *, window_steps: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Population std of the finite values in the trailing window (step - window_steps, step].

    Returns (steps, stds), one per input point; the window ends at the point itself (a repeated
    step sees only the writes before it). Fewer than 2 finite values in a window give NaN. O(n)
    after a searchsorted: cumulative sums of the finite values, shifted by their median to limit
    cancellation; a window whose values are all equal is exactly 0. Raises ValueError if
    `window_steps` < 1 or steps are not sorted.
    """
    if window_steps < 1:
        raise ValueError(f"window_steps must be at least 1, got {window_steps}")
    s, v = as_series(steps, values, check_sorted=True)
    out = np.full(v.size, np.nan)
    finite = np.isfinite(v)
    fs, fv = s[finite], v[finite]
    if fv.size < 2:
        return s, out
    with np.errstate(over="ignore", invalid="ignore"):  # |values| > 1e154: var becomes inf/NaN
        x = fv - np.median(fv)
        csum = np.concatenate(([0.0], np.cumsum(x)))
        csq = np.concatenate(([0.0], np.cumsum(x * x)))
    changes = np.concatenate(([0], np.cumsum(fv[1:] != fv[:-1])))  # changes[k]: value changes up to k
    hi = np.cumsum(finite)  # finite points up to and including each point (exclusive end index)
    lo = np.searchsorted(fs, s - window_steps, side="right")
    cnt = hi - lo
    ok = cnt >= 2
    hi_ok, lo_ok, cnt_ok = hi[ok], lo[ok], cnt[ok].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = (csum[hi_ok] - csum[lo_ok]) / cnt_ok
        var = np.maximum((csq[hi_ok] - csq[lo_ok]) / cnt_ok - mean * mean, 0.0)
    var[changes[hi_ok - 1] == changes[lo_ok]] = 0.0  # no change inside the window: exactly constant
    out[ok] = np.sqrt(var)
    return s, out


def stability(
    steps: NDArray[np.int64], values: NDArray[np.float64], *, window_steps: int | None = None
) -> Stability:
    """Summarise the rolling std, robust slope, trend and stability verdict of a series.

    The window defaults to max(10, span // 20) steps. `cv_last` is std / |mean| of the finite
    values in the last window. Verdict: "unstable" if the last window holds NaN/inf, else by
    cv_last: < 0.05 "stable", < 0.2 "noisy", otherwise "unstable"; "unknown" when cv_last is
    undefined (fewer than 2 finite values in the last window, or a zero mean with nonzero std).
    The slope is the Theil-Sen median of pairwise slopes over at most 1,000 evenly spaced finite
    points. Trend is "flat" when slope x span is within 1% of the median |value| or within the
    mean rolling std, else "decreasing"/"increasing"; "unknown" with fewer than 3 finite points.
    """
    s, v = as_series(steps, values, check_sorted=True)
    span = int(s[-1] - s[0]) if s.size else 0
    window = max(10, span // 20) if window_steps is None else window_steps
    if window < 1:
        raise ValueError(f"window_steps must be at least 1, got {window}")
    finite = np.isfinite(v)
    fs, fv = s[finite], v[finite]

    _, stds = rolling_std(s, v, window_steps=window)
    std_mean = std_last = std_max = None
    std_max_step = None
    defined = np.flatnonzero(~np.isnan(stds))
    if defined.size:
        std_mean = float(np.mean(stds[defined]))
        std_last = float(stds[defined[-1]])
        i_max = int(defined[np.argmax(stds[defined])])
        std_max, std_max_step = float(stds[i_max]), int(s[i_max])

    cv_last: float | None = None
    verdict = "unknown"
    if s.size:
        in_last = s > s[-1] - window
        last_vals = fv[fs > s[-1] - window]
        if last_vals.size >= 2:
            with np.errstate(over="ignore", invalid="ignore"):
                m = float(np.mean(last_vals))
                sd = float(np.std(last_vals))
            if sd == 0.0:
                cv_last = 0.0
            elif m != 0.0 and math.isfinite(sd / abs(m)):
                cv_last = sd / abs(m)
        if not bool(np.all(finite[in_last])):
            verdict = "unstable"
        elif cv_last is not None:
            verdict = "stable" if cv_last < STABLE_CV else "noisy" if cv_last < NOISY_CV else "unstable"

    slope = _theil_sen(fs, fv)
    trend = "unknown"
    if slope is not None:
        change = abs(slope * float(fs[-1] - fs[0]))
        tolerance = max(FLAT_FRACTION * float(np.median(np.abs(fv))), std_mean or 0.0)
        trend = "flat" if change <= tolerance else "decreasing" if slope < 0 else "increasing"
    return Stability(
        window_steps=window,
        points=int(fv.size),
        rolling_std_mean=std_mean,
        rolling_std_last=std_last,
        rolling_std_max=std_max,
        rolling_std_max_step=std_max_step,
        cv_last=cv_last,
        slope_per_1k_steps=None if slope is None else slope * 1000.0,
        trend=trend,
        verdict=verdict,
    )


def _theil_sen(fs: IntArray, fv: FloatArray) -> float | None:
    """Median slope per step over all pairs of <= SLOPE_SAMPLE evenly spaced points; None if undefined."""
    if fv.size < 3 or fs[-1] == fs[0]:
        return None
    if fv.size > SLOPE_SAMPLE:
        pick = np.unique(np.linspace(0, fv.size - 1, SLOPE_SAMPLE).round().astype(np.intp))
        fs, fv = fs[pick], fv[pick]
    i, j = np.triu_indices(fv.size, k=1)
    ds = (fs[j] - fs[i]).astype(np.float64)
    keep = ds > 0
    with np.errstate(over="ignore", invalid="ignore"):
        slopes = (fv[j][keep] - fv[i][keep]) / ds[keep]
    slopes = slopes[np.isfinite(slopes)]
    if slopes.size == 0:
        return None
    return float(np.median(slopes))
