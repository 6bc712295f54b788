"""The gradient and throughput checks behind detect_anomalies: vanishing and exploding gradients, throughput drops.

Each check takes (steps, values) columns (non-finite points allowed) and returns its anomalies,
or a string: the reason it could not run. A sustained stretch is found by its threshold, then
dated at its onset (runwise.analysis.changepoint.onset_before): where the series left its level,
on a log scale for gradient norms.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from runwise.analysis._anomaly_types import Anomaly, Thresholds
from runwise.analysis._arrays import FloatArray, IndexArray, IntArray, block_median_mad, fmt_num, true_runs
from runwise.analysis.changepoint import onset_before
from runwise.formatting import fmt_step

Result = list[Anomaly] | str

JUMP_NEIGHBOURS = 3  # a grad-norm jump must also stand out from the median of this many points before it
LOG_DRIFT = 0.05  # log10 units: a gradient norm has left its level once 12% away from it


def check_vanishing(key: str, s: IntArray, v: FloatArray, th: Thresholds) -> Result:
    """Grad norm below gradient_vanish_threshold for gradient_sustained_steps consecutive points.

    Dated at the onset of the fall (on log10 of the norm), which for a gradual decay comes before
    the threshold crossing.
    """
    finite = np.isfinite(v)
    if np.count_nonzero(finite) < th.gradient_sustained_steps:
        return f"{key} has fewer than {th.gradient_sustained_steps} finite points"
    low = finite & (v < th.gradient_vanish_threshold)
    starts, ends = sustained_runs(low, th.gradient_sustained_steps)
    if starts.size == 0:
        return []
    a, b = int(starts[0]), int(ends[0])
    onset = onset_before(np.abs(v), a, b, direction=-1.0, min_drift=LOG_DRIFT, log=True)
    more = starts.size - 1
    before = float(np.median(v[max(0, onset - 20):onset])) if onset > 0 else None
    msg = (f"{key} fell below {th.gradient_vanish_threshold:g} from step {fmt_step(int(s[onset]))} "
           f"({b - a + 1:,} points)" + (f"; {more} more stretches" if more else ""))
    return [Anomaly("vanishing_gradient", key, int(s[onset]), int(s[b]), "warning", float(np.median(v[a:b + 1])),
                    msg, baseline=before)]


def _previous_block(per_block: FloatArray, block: int, n: int) -> FloatArray:
    """Per point of a series of `n` points, the value of the block of `block` points before its own
    (the first block: its own); `per_block` holds one value per block (a median, a running min or max)."""
    prev = np.maximum(np.arange(per_block.size) - 1, 0)
    return per_block[prev][np.arange(n) // block]


def sustained_runs(mask: NDArray[np.bool_], need: int) -> tuple[IndexArray, IndexArray]:
    """(starts, ends) of the stretches of `mask` that hold a run of at least `need` True points.

    A stretch starts at its first such run and goes on through the runs that follow less than
    `need` points apart: noise around a threshold breaks a lasting stretch into pieces, and its
    end is the last piece's, not the first's. Pieces without a long run are no stretch at all, so
    every stretch returned is at least `need` points long.
    """
    starts, ends = true_runs(mask)
    if starts.size == 0:
        return starts, ends
    group = np.cumsum(np.concatenate(([True], (starts[1:] - ends[:-1] - 1) >= need))) - 1
    long = (ends - starts + 1) >= need
    has = np.zeros(int(group[-1]) + 1, dtype=bool)
    has[group[long]] = True
    first_long = np.full(has.size, starts.size, dtype=np.int64)  # index of each group's first long run
    np.minimum.at(first_long, group[long], np.flatnonzero(long))
    last = np.zeros(has.size, dtype=np.int64)
    np.maximum.at(last, group, np.arange(starts.size))
    keep = np.flatnonzero(has)
    return starts[first_long[keep]], ends[last[keep]]


def grad_jumps(v: FloatArray, th: Thresholds) -> tuple[IndexArray, FloatArray, IndexArray, IndexArray]:
    """(jump indices, their ratio to the running median, sustained starts, sustained ends) of a grad norm.

    Running median: the median of the previous block of spike_window points. Sustained:
    gradient_sustained_steps consecutive points above multiplier x the running median, or above
    multiplier x the lowest block median so far (a slow exponential growth). A jump: a
    point above that outside a sustained stretch that is also above multiplier x the median of the
    3 finite points before it (so a run whose grad norm starts high and falls fast has no jumps).
    """
    med, _ = block_median_mad(v, th.spike_window)
    base = _previous_block(med, th.spike_window, v.size)
    floor = _previous_block(np.fmin.accumulate(med), th.spike_window, v.size)  # NaN blocks do not reset it
    mult = th.gradient_explode_multiplier
    with np.errstate(invalid="ignore"):
        high = np.isfinite(v) & (base > 0) & (v > mult * base)
        # a slow explosion drags its own running median along: judged against the lowest level so far
        grown = np.isfinite(v) & (floor > 0) & (v > mult * floor)
    starts, ends = sustained_runs(high | grown, th.gradient_sustained_steps)
    marks = np.zeros(v.size + 1, dtype=np.int64)
    np.add.at(marks, starts, 1)
    np.add.at(marks, ends + 1, -1)
    in_long = np.cumsum(marks[:-1]) > 0
    jumps = np.flatnonzero(high & ~in_long)
    if jumps.size:
        before = _finite_before(v, jumps, JUMP_NEIGHBOURS)
        with np.errstate(invalid="ignore", over="ignore"):
            jumps = jumps[v[jumps] > th.gradient_explode_multiplier * before]  # NaN before: never a jump
    with np.errstate(invalid="ignore", over="ignore"):
        ratio = v[jumps] / base[jumps]
    return jumps, ratio, starts, ends


def check_exploding(key: str, s: IntArray, v: FloatArray, th: Thresholds,
                    explained: frozenset[int] = frozenset()) -> Result:
    """Grad norm above multiplier x its running median, sustained (critical) or as one jump (warning).

    The sustained stretch is dated at its onset on log10 of the norm. Jumps at the steps in
    `explained` (a loss spike at the same step reports them as its evidence) are left out; of
    the others the largest is reported and the message counts the rest.
    """
    if np.count_nonzero(np.isfinite(v)) < 2:  # a jump needs a point before it
        return f"{key} has fewer than 2 finite points"
    jumps, ratio, starts, ends = grad_jumps(v, th)
    out: list[Anomaly] = []
    if starts.size:
        a, b = int(starts[0]), int(ends[0])
        onset = onset_before(v, a, b, direction=1.0, min_drift=LOG_DRIFT, log=True)
        peak = a + int(np.argmax(v[a:b + 1]))
        before = float(np.median(v[max(0, onset - 20):onset])) if onset > 0 else None
        msg = (f"{key} exploded from step {fmt_step(int(s[onset]))}: peak {fmt_num(float(v[peak]))} "
               f"({b - a + 1:,} points above {th.gradient_explode_multiplier:g}x its earlier level)")
        out.append(Anomaly("exploding_gradient", key, int(s[onset]), int(s[b]), "critical", float(v[peak]), msg,
                           baseline=before))
    keep = np.array([int(s[j]) not in explained for j in jumps.tolist()], dtype=bool)
    jumps, ratio = jumps[keep], ratio[keep]
    if jumps.size:
        i = int(jumps[np.argmax(ratio)])
        more = jumps.size - 1
        before = float(np.median(v[max(0, i - 20):i]))
        msg = (f"{key} jumped to {fmt_num(float(v[i]))} at step {fmt_step(int(s[i]))} "
               f"({float(np.max(ratio)):.0f}x its running median)" + (f"; {more} smaller jumps" if more else ""))
        out.append(Anomaly("exploding_gradient", key, int(s[i]), None, "warning", float(v[i]), msg, baseline=before))
    return out


def _finite_before(v: FloatArray, idx: IndexArray, k: int) -> FloatArray:
    """Per index, the median of the finite values among the k points before it; NaN if none."""
    back = idx[:, None] - np.arange(1, k + 1)[None, :]
    vals = np.where(back >= 0, v[np.maximum(back, 0)], np.nan)
    vals = np.where(np.isfinite(vals), vals, np.nan)
    out = np.full(idx.size, np.nan)
    has = ~np.isnan(vals).all(axis=1)
    out[has] = np.nanmedian(vals[has], axis=1)
    return out


def check_throughput(key: str, s: IntArray, v: FloatArray, th: Thresholds) -> Result:
    """Throughput below (1 - throughput_drop_threshold) x its best level so far, sustained.

    Best level so far: the running maximum of the medians of previous blocks of
    max(sustained, min(spike_window, n // 10)) points, so a long drop cannot lower its own
    baseline. Sustained: max(3, gradient_sustained_steps) consecutive points, so one-step dips
    at evaluation or checkpoint steps are not drops. Dated at the onset of the fall.
    """
    finite = np.isfinite(v)
    if not finite.any():
        return f"{key} has no finite values"
    need = max(3, th.gradient_sustained_steps)
    if v.size < need:
        return f"{key} has fewer than {need} points"
    block = max(need, min(th.spike_window, v.size // 10))
    med, _ = block_median_mad(v, block)
    base = _previous_block(np.fmax.accumulate(med), block, v.size)  # NaN blocks do not reset the maximum
    with np.errstate(invalid="ignore"):
        low = finite & (base > 0) & (v < (1.0 - th.throughput_drop_threshold) * base)
    starts, ends = sustained_runs(low, need)
    if starts.size == 0:
        return []
    a, b = int(starts[0]), int(ends[0])
    onset = onset_before(v, a, b, direction=-1.0)
    level = float(np.median(v[a:b + 1]))
    ref = float(base[a])
    pct = (1.0 - level / ref) * 100
    msg = (f"{key} fell {pct:.0f}% ({fmt_num(ref)} -> {fmt_num(level)}) from step "
           f"{fmt_step(int(s[onset]))} for {b - onset + 1:,} points")
    return [Anomaly("throughput_drop", key, int(s[onset]), int(s[b]), "warning", level, msg, baseline=ref)]
