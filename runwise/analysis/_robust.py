"""Robust baselines by blocks: the vectorised stand-in for rolling medians over long series.

A true rolling median over 1,000,000 points is either a loop or a (n, window) matrix; instead the
series is cut into consecutive blocks of `window` points and each point is compared with the
median/MAD of the block before its own (trailing baseline) and of the block after it (leading
baseline). The trailing baseline thus ends 0 to `window` points before the point, the leading
one starts 1 to `window` points after it. The first block has no predecessor and the last no
successor: they use their own median/MAD, which a few outliers cannot move.
"""

from __future__ import annotations

import numpy as np

from runwise.analysis._arrays import FloatArray, IndexArray, block_median_mad

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
MAD_FLOOR_REL = 1e-3  # MAD is floored at this fraction of |median|: flat series, quantised values
MAD_FLOOR_ABS = 1e-12


def block_baselines(values: FloatArray, window: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per point: (trailing median, trailing scale, leading median, leading scale).

    Scale is MAD x 1.4826, floored at 1e-3 x |median| (and 1e-12) so a flat series does not
    divide by zero; NaN where the block has no finite values.
    """
    n = values.size
    med, mad = block_median_mad(values, window)
    scale = MAD_TO_SIGMA * np.maximum(mad, np.maximum(MAD_FLOOR_REL * np.abs(med), MAD_FLOOR_ABS))
    nb = med.size
    prev = np.maximum(np.arange(nb) - 1, 0)
    nxt = np.minimum(np.arange(nb) + 1, nb - 1)
    block = np.arange(n) // window
    return med[prev][block], scale[prev][block], med[nxt][block], scale[nxt][block]


def spike_scores(values: FloatArray, *, window: int, threshold: float) -> tuple[IndexArray, FloatArray]:
    """Peak index and signed robust z-score of each group of consecutive spike points.

    A point is a spike when its robust z-score exceeds `threshold` with the same sign against
    both the trailing and the leading block baseline, so level shifts and steady trends (far
    from one side only) are not spikes. Non-finite points are never spikes and never enter a
    baseline. The z-score reported is the smaller of the two in magnitude.
    """
    if values.size == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)
    prev_med, prev_scale, next_med, next_scale = block_baselines(values, window)
    with np.errstate(invalid="ignore", over="ignore"):
        z_prev = (values - prev_med) / prev_scale
        z_next = (values - next_med) / next_scale
    finite = np.isfinite(values) & np.isfinite(z_prev) & np.isfinite(z_next)
    up = finite & (z_prev > threshold) & (z_next > threshold)
    down = finite & (z_prev < -threshold) & (z_next < -threshold)
    z = np.where(np.abs(z_prev) < np.abs(z_next), z_prev, z_next)
    parts_idx: list[IndexArray] = []
    for mask in (up, down):
        members = np.flatnonzero(mask)
        if members.size == 0:
            continue
        run_id = np.cumsum(np.diff(members, prepend=-2) != 1)  # consecutive indices share an id
        order = np.lexsort((-np.abs(z[members]), run_id))  # by run, largest |z| first
        first = np.ones(order.size, dtype=bool)
        first[1:] = run_id[order][1:] != run_id[order][:-1]
        parts_idx.append(members[order][first])
    if not parts_idx:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)
    idx = np.sort(np.concatenate(parts_idx)).astype(np.intp)
    return idx, z[idx]
