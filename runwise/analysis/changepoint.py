"""Onsets of lasting changes, found on the full-resolution series in O(n).

A lasting anomaly (divergence, plateau, overfitting, vanishing or exploding gradients, a throughput
drop) is dated where the change began, not where it crossed a threshold. Two tools:

* `page_onset`: Page's CUSUM. Given a per-point score that is negative in the old regime and
  positive in the new one (e.g. x - (old level + drift)), the onset is where the cumulative sum is
  lowest: the sum falls while the old regime lasts and climbs once the new one starts. A ramp is
  dated where it rose `drift` above the old level, so the drift is kept to about one noise sd.
* `mean_split`: the best single split of the mean (the one that explains most of the variance),
  for a step change whose levels are not known in advance.

Both are one pass of cumulative sums; `robust_sd` measures the noise from first differences, so a
trend does not count as noise.
"""

from __future__ import annotations

import numpy as np

from runwise.analysis._arrays import FloatArray
from runwise.analysis._robust import MAD_TO_SIGMA


def robust_sd(values: FloatArray, *, order: int = 1) -> float:
    """Noise sd of a series from its `order`-th differences (1 or 2), finite points only.

    1.4826 x MAD of the differences, divided by sqrt(2) (first) or sqrt(6) (second): differences
    cancel a slow trend (second differences also a bend), so a falling loss is not mistaken for
    noise. 0.0 for fewer than order + 2 finite points.
    """
    v = values[np.isfinite(values)]
    if v.size < order + 2:
        return 0.0
    d = np.diff(v, n=order)
    return float(MAD_TO_SIGMA * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0 if order == 1 else 6.0))


def page_onset(score: FloatArray) -> int:
    """Index of the first point of the new regime: the argmin of the prefix sums of `score`.

    `score` is negative on average before the change and positive after it. Returns a value in
    [0, score.size]; score.size means no point belongs to the new regime. Non-finite scores count 0.
    """
    g = np.where(np.isfinite(score), score, 0.0)
    top = float(np.max(np.abs(g))) if g.size else 0.0
    if top > 0.0:
        g = g / top  # the same argmin, and sums of values near 1e307 cannot overflow
    sums = np.concatenate(([0.0], np.cumsum(g)))
    return int(np.argmin(sums))


def mean_split(values: FloatArray, *, min_size: int = 1) -> int:
    """Index where the second segment starts in the best split of `values` into two constant means.

    Maximises n1 n2 / n (m1 - m2)^2 over splits with at least `min_size` points on each side
    (non-finite values are replaced by the median). Returns 0 when the series is too short to split.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n < 2 * max(min_size, 1):
        return 0
    finite = np.isfinite(v)
    if not finite.all():
        v = np.where(finite, v, np.median(v[finite]) if finite.any() else 0.0)
    v = v - np.mean(v)  # centred: the prefix sums stay small
    csum = np.cumsum(v)
    k = np.arange(1, n)  # points in the first segment
    left = csum[:-1]
    gain = left * left * n / (k * (n - k))
    lo, hi = max(min_size, 1), n - max(min_size, 1)
    return lo + int(np.argmax(gain[lo - 1:hi]))


ONSET_MAX_BACK = 20_000  # points an onset is looked for before the threshold crossing, at most


def onset_before(x: FloatArray, a: int, b: int, *, direction: float, min_drift: float = 0.0,
                 log: bool = False) -> int:
    """Onset of a departure that crossed a threshold at index `a` and lasted to index `b` (inclusive).

    The old level is the median of the points before `a` (at most max(2000, 4 x (b - a + 1)) of
    them, and no more than 20,000, so an earlier regime of a long run does not count); Page's
    CUSUM over those points and the departure of direction x (x - old level) - drift, with the
    drift one noise sd (at least `min_drift`), dates where the series left the old level. With
    `log`, log10 of the values is judged (values <= 0 count as far below any level). Returns an
    index <= a (a itself for a sudden change). Non-finite points count 0.
    """
    lo = max(0, a - min(ONSET_MAX_BACK, max(2000, 4 * (b - a + 1))))
    seg = x[lo:b + 1]
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            seg = np.where(np.isfinite(seg), np.log10(np.where(seg > 0, seg, 1e-300)), np.nan)
    head = seg[: a - lo]
    head = head[np.isfinite(head)]
    if head.size < 4:
        return a
    base = float(np.median(head))
    d = max(robust_sd(head), min_drift, 1e-12)
    onset = lo + page_onset(direction * (seg - base) - d)
    return min(onset, a)
