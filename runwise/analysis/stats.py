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


BLOCK = 1 << 16  # points per block: a series is summed block by block, so a grown one reuses its whole blocks


@dataclass(frozen=True, slots=True)
class Block:
    """The statistics of one block of a series (`values[i * BLOCK:(i + 1) * BLOCK]`), by global index."""

    start: int
    count: int
    finite: int
    nan: int
    first_i: int  # index of the first finite value, -1 if none
    last_i: int  # ... of the last
    min_i: int  # ... of the first occurrence of the minimum
    max_i: int
    mean: float
    var: float  # population variance (ddof=0) of the finite values


def series_stats(steps: NDArray[np.int64], values: NDArray[np.float64]) -> SeriesStats:
    """Return count, NaN/inf counts, first/final finite value and finite min/max/mean/std with steps."""
    return grown_stats(steps, values, ())[0]


def grown_stats(
    steps: NDArray[np.int64], values: NDArray[np.float64], known: tuple[Block, ...]
) -> tuple[SeriesStats, tuple[Block, ...]]:
    """`series_stats`, and the blocks it was made of, reusing `known`: the blocks of a series this one
    begins with (the same steps and values up to there). Only the whole blocks of `known` are kept;
    the rest is computed. Block by block, then combined in order (Chan et al.): the same result
    whether the series was read whole or grew by appends. A series of one block is numpy's own
    mean and std."""
    s, v = as_series(steps, values)
    whole = [b for b in known if b.count == BLOCK and b.start + BLOCK <= v.size]
    blocks = whole + [_block(v, i) for i in range(len(whole) * BLOCK, v.size, BLOCK)]
    return _combine(s, v, blocks), tuple(blocks)


def _block(v: NDArray[np.float64], start: int) -> Block:
    part = v[start:start + BLOCK]
    finite = np.isfinite(part)
    n = int(np.count_nonzero(finite))
    if n == part.size:  # the usual block: no gather needed
        with np.errstate(over="ignore", invalid="ignore"):
            mean, var = float(np.mean(part)), float(np.var(part))
        return Block(start, n, n, 0, start, start + n - 1, start + int(np.argmin(part)), start + int(np.argmax(part)),
                     mean, var)
    nan = int(np.count_nonzero(np.isnan(part)))
    if n == 0:
        return Block(start, int(part.size), 0, nan, -1, -1, -1, -1, 0.0, 0.0)
    fidx = np.flatnonzero(finite)
    fv = part[fidx]
    with np.errstate(over="ignore", invalid="ignore"):
        mean, var = float(np.mean(fv)), float(np.var(fv))
    return Block(start, int(part.size), n, nan, start + int(fidx[0]), start + int(fidx[-1]),
                 start + int(fidx[np.argmin(fv)]), start + int(fidx[np.argmax(fv)]), mean, var)


def _combine(s: NDArray[np.int64], v: NDArray[np.float64], blocks: list[Block]) -> SeriesStats:
    count = int(v.size)
    finite_count = sum(b.finite for b in blocks)
    nan_count = sum(b.nan for b in blocks)
    inf_count = count - finite_count - nan_count
    first_step = int(s[0]) if count else None
    last_step = int(s[-1]) if count else None
    used = [b for b in blocks if b.finite]
    if not used:
        return SeriesStats(count, 0, nan_count, inf_count, first_step, last_step,
                           None, None, None, None, None, None, None, None, None)
    i_min, i_max = used[0].min_i, used[0].max_i
    n, mean, m2 = used[0].finite, used[0].mean, used[0].var * used[0].finite
    with np.errstate(over="ignore", invalid="ignore"):
        for b in used[1:]:
            if v[b.min_i] < v[i_min]:  # strictly: the first occurrence is kept
                i_min = b.min_i
            if v[b.max_i] > v[i_max]:
                i_max = b.max_i
            total = n + b.finite
            delta = b.mean - mean
            mean = mean + delta * b.finite / total
            m2 = m2 + b.var * b.finite + delta * delta * n * b.finite / total
            n = total
        std = math.sqrt(used[0].var) if len(used) == 1 else (math.sqrt(m2 / n) if math.isfinite(m2) else math.inf)
    return SeriesStats(
        count=count,
        finite_count=finite_count,
        nan_count=nan_count,
        inf_count=inf_count,
        first_step=first_step,
        last_step=last_step,
        first=float(v[used[0].first_i]),
        final=float(v[used[-1].last_i]),
        final_step=int(s[used[-1].last_i]),
        min=float(v[i_min]),
        min_step=int(s[i_min]),
        max=float(v[i_max]),
        max_step=int(s[i_max]),
        mean=mean if math.isfinite(mean) else None,
        std=std if math.isfinite(std) else None,
    )
