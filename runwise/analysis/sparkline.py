"""One-line unicode sparklines: a whole series in `width` characters."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from runwise.analysis._arrays import as_values

BARS = "▁▂▃▄▅▆▇█"
NAN_MARK = "·"  # a bucket holding only NaN
INF_MARK = "!"  # a bucket holding no finite value but some ±inf


def sparkline(values: NDArray[np.float64], *, width: int = 20) -> str:
    """Render `values` as min(width, len(values)) characters from "▁▂▃▄▅▆▇█".

    Points are bucketed by index; each character is the mean of the bucket's finite values,
    scaled between the lowest and highest bucket mean. A bucket of only NaN is "·", one with
    ±inf but no finite value is "!", a constant series is all "▄", an empty one is "".
    Raises ValueError if `width` < 1 or `values` is not 1-D.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    v = as_values(values)
    n = int(v.size)
    if n == 0:
        return ""
    w = min(width, n)
    starts = (np.arange(w, dtype=np.int64) * n) // w
    finite = np.isfinite(v)
    if finite.all():  # the common case: no masks to carry
        scale = max(float(np.max(v)), -float(np.min(v)))
        counts = np.diff(starts, append=n)
        sums = np.add.reduceat(v / (scale or 1.0), starts)  # in [-1, 1]: bucket sums cannot overflow
        has_inf = np.zeros(w, dtype=bool)
    else:
        scale = float(np.max(np.abs(v[finite]))) if finite.any() else 1.0
        scaled = np.where(finite, v / (scale or 1.0), 0.0)
        counts = np.add.reduceat(finite.astype(np.int64), starts)
        sums = np.add.reduceat(scaled, starts)
        has_inf = np.logical_or.reduceat(np.isinf(v), starts)
    ok = counts > 0
    means = sums / np.maximum(counts, 1)
    levels = np.full(w, 3, dtype=np.intp)
    if ok.any():
        lo = float(means[ok].min())
        hi = float(means[ok].max())
        if hi - lo > 1e-9 * max(abs(lo), abs(hi)):
            levels = np.rint((means - lo) / (hi - lo) * (len(BARS) - 1)).astype(np.intp)
            levels = np.clip(levels, 0, len(BARS) - 1)
    chars = np.array(list(BARS))[levels]
    chars[~ok] = NAN_MARK
    chars[~ok & has_inf] = INF_MARK
    return "".join(chars.tolist())
