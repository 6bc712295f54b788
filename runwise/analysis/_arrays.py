"""Shared array helpers for the analysis modules: argument checks, runs of True, block medians.

Steps in messages are formatted by runwise.formatting.fmt_step (standard library only, the bottom of
the package); `fmt_num` stays here: four significant digits, not formatting.fmt's thousands separators.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]


def as_values(values: Any) -> FloatArray:
    """Return `values` as a 1-D float64 array; ValueError if it is not 1-D."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    return v


def as_series(steps: Any, values: Any, *, check_sorted: bool = False) -> tuple[IntArray, FloatArray]:
    """Return (steps int64, values float64), both 1-D and of equal length, else ValueError."""
    s = np.asarray(steps)
    v = as_values(values)
    if s.ndim != 1 or s.shape != v.shape:
        raise ValueError(f"steps and values must be 1-D of equal length, got {s.shape} and {v.shape}")
    if s.size and not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"steps must be integers, got dtype {s.dtype}")
    s = s.astype(np.int64, copy=False)
    if check_sorted and s.size > 1 and bool(np.any(s[1:] < s[:-1])):
        raise ValueError("steps must be sorted ascending")
    return s, v


def true_runs(mask: NDArray[np.bool_]) -> tuple[IndexArray, IndexArray]:
    """Return (starts, ends) of the runs of True in a 1-D bool mask; `ends` are inclusive."""
    padded = np.zeros(mask.size + 2, dtype=np.int8)
    padded[1:-1] = mask
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return starts, ends


def block_median_mad(values: FloatArray, block: int) -> tuple[FloatArray, FloatArray]:
    """Median and MAD of the finite values of each block of `block` consecutive points.

    Returns two float64 arrays of length ceil(n / block); NaN for a block without finite values.
    Long whole blocks of finite values take np.median (a partition, O(n)); otherwise each row of a
    (blocks, block) matrix is sorted, O(n log block), NaN-padded. Loop-free either way.
    """
    n = values.size
    block = max(1, min(block, n))  # a window longer than the series is one block, not a huge pad
    nb = -(-n // block)
    if block >= 1000 and n % block == 0 and bool(np.isfinite(values).all()):  # long blocks: partition, no sort
        whole = values.reshape(nb, block)
        m = np.median(whole, axis=1)
        return m, np.median(np.abs(whole - m[:, None]), axis=1)
    rows = np.full(nb * block, np.nan)
    rows[:n] = np.where(np.isfinite(values), values, np.nan)
    mat = rows.reshape(nb, block)
    med = _row_median(np.sort(mat, axis=1))
    mad = _row_median(np.sort(np.abs(mat - med[:, None]), axis=1))
    return med, mad


def _row_median(sorted_rows: FloatArray) -> FloatArray:
    """Median of each row of a row-sorted matrix whose NaNs sit at the end of each row."""
    counts = np.count_nonzero(~np.isnan(sorted_rows), axis=1)
    lo = np.maximum((counts - 1) // 2, 0)
    hi = np.maximum(counts // 2, 0)
    rows = np.arange(sorted_rows.shape[0])
    med: FloatArray = sorted_rows[rows, lo] * 0.5 + sorted_rows[rows, hi] * 0.5  # halves first: no overflow
    med[counts == 0] = np.nan
    return med


def fmt_num(x: float) -> str:
    """A value in four significant digits."""
    return f"{x:.4g}"
