"""Extreme-preserving downsampling: per index bucket keep the first, last, min and max point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from runwise.analysis._arrays import FloatArray, IndexArray, as_series


@dataclass(frozen=True, slots=True)
class Downsampled:
    """A downsampled series and what was done to it (counts refer to the source series)."""

    steps: NDArray[np.int64]
    values: NDArray[np.float64]
    source_points: int
    returned_points: int
    method: str  # "all" or "minmax-buckets"
    nan_count: int
    inf_count: int


def downsample(steps: NDArray[np.int64], values: NDArray[np.float64], *, max_points: int) -> Downsampled:
    """Return at most `max_points` points that keep every bucket's first, last, min and max.

    Series no longer than `max_points` come back whole (method "all"). Otherwise the points are
    split by index into `max_points // 4` buckets of equal size (method "minmax-buckets"); each
    bucket keeps its first and last point, its minimum and maximum (±inf count as extremes) and
    its first NaN, deduplicated and in step order, so a one-step spike always survives. When
    NaN points would push the total above `max_points`, `max_points // 5` buckets are used
    instead (with `max_points` == 4, bucket-first points are dropped). Raises ValueError if
    `max_points` < 4 or the arrays are not 1-D of equal length.
    """
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    s, v = as_series(steps, values)
    n = int(v.size)
    isnan = np.isnan(v)
    nan_count = int(np.count_nonzero(isnan))
    inf_count = int(np.count_nonzero(np.isinf(v)))
    if n <= max_points:
        return Downsampled(s, v, n, n, "all", nan_count, inf_count)
    idx = _bucket_points(v, isnan, max_points // 4, with_first=True)
    if idx.size > max_points:  # only possible when NaN points add a fifth point per bucket
        buckets = max_points // 5
        idx = _bucket_points(v, isnan, max(buckets, 1), with_first=buckets >= 1)
    return Downsampled(s[idx], v[idx], n, int(idx.size), "minmax-buckets", nan_count, inf_count)


def _bucket_points(v: FloatArray, isnan: NDArray[np.bool_], buckets: int, *, with_first: bool) -> IndexArray:
    """Sorted unique indices of each bucket's last, argmin, argmax, first NaN (and first) point."""
    n = v.size
    starts = (np.arange(buckets, dtype=np.int64) * n) // buckets
    ends = np.append(starts[1:], n)
    sizes = ends - starts
    pos = np.arange(n, dtype=np.int64)
    notnan = ~isnan
    low = np.where(isnan, np.inf, v)
    high = np.where(isnan, -np.inf, v)
    bucket_min = np.repeat(np.minimum.reduceat(low, starts), sizes)
    bucket_max = np.repeat(np.maximum.reduceat(high, starts), sizes)
    # first position in each bucket that attains the bucket's extreme (n where none: all NaN)
    arg_min = np.minimum.reduceat(np.where((low == bucket_min) & notnan, pos, n), starts)
    arg_max = np.minimum.reduceat(np.where((high == bucket_max) & notnan, pos, n), starts)
    parts = [ends - 1, arg_min, arg_max]
    if with_first:
        parts.append(starts)
    if not notnan.all():
        parts.append(np.minimum.reduceat(np.where(isnan, pos, n), starts))
    idx = np.unique(np.concatenate(parts))
    return idx[idx < n].astype(np.intp)
