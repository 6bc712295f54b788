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
    divide by zero; NaN where the block has no finite values. Both scales are the larger of the
    block's own and the middle one of the previous, own and next blocks' scales: the MAD of one
    block of 100 points is uncertain by about 13%, enough to lift a 5-sd noise point over 6.
    """
    n = values.size
    med, mad = block_median_mad(values, window)
    scale = MAD_TO_SIGMA * np.maximum(mad, np.maximum(MAD_FLOOR_REL * np.abs(med), MAD_FLOOR_ABS))
    nb = med.size
    prev = np.maximum(np.arange(nb) - 1, 0)
    nxt = np.minimum(np.arange(nb) + 1, nb - 1)
    three = np.sort(np.stack([scale[prev], scale, scale[nxt]]), axis=0)  # NaNs sort last
    count = np.count_nonzero(~np.isnan(three), axis=0)
    cols = np.arange(nb)
    pooled = 0.5 * (three[np.maximum((count - 1) // 2, 0), cols] + three[count // 2, cols])
    block = np.arange(n) // window
    s_prev, s_next = np.fmax(scale[prev], pooled[prev]), np.fmax(scale[nxt], pooled[nxt])
    return med[prev][block], s_prev[block], med[nxt][block], s_next[block]


LOCAL = 3  # neighbours on each side a spike must stand out from
CLUSTER_GAP = 10  # candidates at most this many points apart are judged against the points around them all


def _require_local_contrast(
    values: FloatArray, up: np.ndarray, down: np.ndarray, scale: FloatArray, threshold: float
) -> None:
    """Keep only candidates that also stand out from the median of their LOCAL neighbours on each side.

    The block test alone flags the first points of a steeply falling curve (its first block has no
    predecessor, so it is judged against its own median): a real spike rises above the points just
    before it as well as the points just after it. Candidates at most CLUSTER_GAP points apart (a
    burst) are judged against the neighbours of the whole cluster, so a burst of adjacent spikes
    is not hidden by its own members. A point with no finite neighbour before it (the first point
    of a series) is never a spike. Works on the few candidates only; in place.
    """
    cand = np.flatnonzero(up | down)
    if cand.size == 0:
        return
    cluster = np.cumsum(np.diff(cand, prepend=cand[0] - CLUSTER_GAP - 1) > CLUSTER_GAP) - 1
    first = np.flatnonzero(np.diff(cluster, prepend=-1) != 0)
    last = np.append(first[1:] - 1, cand.size - 1)
    lo, hi = cand[first][cluster], cand[last][cluster]
    offsets = np.arange(1, LOCAL + 1)
    n = values.size

    def side_median(idx: np.ndarray) -> FloatArray:
        ok = (idx >= 0) & (idx < n)
        vals = np.where(ok, values[np.clip(idx, 0, n - 1)], np.nan)
        vals = np.where(np.isfinite(vals), vals, np.nan)
        out = np.full(vals.shape[0], np.nan)
        has = np.isfinite(vals).any(axis=1)
        out[has] = np.nanmedian(vals[has], axis=1)
        return out

    left = side_median(lo[:, None] - offsets[None, :])
    right = side_median(hi[:, None] + offsets[None, :])
    right = np.where(np.isfinite(right), right, left)  # the last point: judged by what came before
    size = np.bincount(cluster)[cluster]
    # a cluster is a burst only if it is short and the series comes back after it: not a level
    # shift or a climb that runs to the end of the series
    burst_ok = (size == 1) | ((hi - lo <= 3 * CLUSTER_GAP) & (hi + LOCAL < n))
    left = np.where(burst_ok, left, np.nan)
    with np.errstate(invalid="ignore"):
        zl = (values[cand] - left) / scale[cand]
        zr = (values[cand] - right) / scale[cand]
    keep_up = (zl > threshold) & (zr > threshold)
    keep_down = (zl < -threshold) & (zr < -threshold)
    up[cand] &= keep_up
    down[cand] &= keep_down


def _spike_masks(values: FloatArray, *, window: int, threshold: float) -> tuple[np.ndarray, np.ndarray, FloatArray]:
    """(upward spike mask, downward spike mask, signed robust z) of a non-empty series."""
    prev_med, prev_scale, next_med, next_scale = block_baselines(values, window)
    with np.errstate(invalid="ignore", over="ignore"):
        z_prev = (values - prev_med) / prev_scale
        z_next = (values - next_med) / next_scale
    finite = np.isfinite(values) & np.isfinite(z_prev) & np.isfinite(z_next)
    up = finite & (z_prev > threshold) & (z_next > threshold)
    down = finite & (z_prev < -threshold) & (z_next < -threshold)
    _require_local_contrast(values, up, down, prev_scale, threshold)
    z = np.where(np.abs(z_prev) < np.abs(z_next), z_prev, z_next)
    return up, down, z


def spike_points(values: FloatArray, *, window: int, threshold: float) -> tuple[IndexArray, FloatArray]:
    """Every spike point (not grouped) and its signed robust z-score; see spike_scores."""
    if values.size == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)
    up, down, z = _spike_masks(values, window=window, threshold=threshold)
    idx = np.flatnonzero(up | down).astype(np.intp)
    return idx, z[idx]


def spike_scores(values: FloatArray, *, window: int, threshold: float) -> tuple[IndexArray, FloatArray]:
    """Peak index and signed robust z-score of each group of consecutive spike points.

    A point is a spike when its robust z-score exceeds `threshold` with the same sign against
    both the trailing and the leading block baseline, so level shifts and steady trends (far
    from one side only) are not spikes. Non-finite points are never spikes and never enter a
    baseline. The z-score reported is the smaller of the two in magnitude.
    """
    if values.size == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)
    up, down, z = _spike_masks(values, window=window, threshold=threshold)
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
