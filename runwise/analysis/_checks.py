"""The training-dynamics checks behind detect_anomalies, one function per check.

Each check takes finite-or-not (steps, values) columns and returns its anomalies, or a string:
the reason it could not run (too few points, non-positive losses ...).
"""

from __future__ import annotations

import numpy as np

from runwise.analysis._anomaly_types import Anomaly, Thresholds
from runwise.analysis._arrays import FloatArray, IndexArray, IntArray, block_median_mad, fmt_num, true_runs
from runwise.formatting import fmt_step

Result = list[Anomaly] | str

DIVERGENCE_MIN_POINTS = 30  # finite loss points the level check needs
DIVERGENCE_BLOCKS = 50  # the loss level is tracked as the median of at most this many blocks
VAL_RISE = 0.05  # validation loss this far (relative) above its minimum counts as rising
SMOOTH_BLOCKS = 25  # validation points are judged as at most this many block medians
EDGE_POINTS = 3  # ratios/levels at the start and end of a series are medians of this many points
JUMP_NEIGHBOURS = 3  # a grad-norm jump must also stand out from the median of this many points before it
PLATEAU_MIN_POINTS = 4


def _word(x: float) -> str:
    return "NaN" if np.isnan(x) else "+inf" if x > 0 else "-inf"


def check_divergence(key: str, s: IntArray, v: FloatArray, th: Thresholds) -> Result:
    """Loss that ends non-finite after being finite, or whose level ends above 2x its minimum level.

    The level is the median of each of up to 50 equal blocks of finite points (earliest points
    trimmed to make the blocks equal); "above 2x" generalises to min + |min| for negative losses.
    The finding is dated at the onset of the climb: the point after the last one at or below the
    lowest level before the level crossed the limit (noise delays it by the few points the climb
    needs to rise clear of it). Critical when the last block is still above the one before it,
    else a warning.
    """
    finite = np.isfinite(v)
    fidx = np.flatnonzero(finite)
    if fidx.size == 0:
        return f"{key} has no finite values"
    if fidx[-1] < v.size - 1:
        i = int(fidx[-1]) + 1
        msg = f"{key} became {_word(float(v[i]))} at step {fmt_step(int(s[i]))} and never recovered"
        return [Anomaly("divergence", key, int(s[i]), int(s[-1]), "critical", None, msg)]
    if fidx.size < DIVERGENCE_MIN_POINTS:
        return f"{key} has fewer than {DIVERGENCE_MIN_POINTS} finite points"
    fs, fv = s[fidx], v[fidx]
    nb = min(DIVERGENCE_BLOCKS, fv.size // 10)
    block = fv.size // nb
    offset = fv.size - nb * block
    med, _ = block_median_mad(fv[offset:], block)
    k_min = int(np.argmin(med))
    low, final = float(med[k_min]), float(med[-1])
    limit = low + max(abs(low), 1e-12)
    if k_min == nb - 1 or final <= limit:
        return []
    k_cross = k_min + int(np.argmax(med[k_min:] > limit))  # > k_min: med[k_min] == low < limit
    bottom, cross = offset + k_min * block, offset + k_cross * block
    # half the lowest block is at or below its median, so the slice holds at least one such point
    onset = bottom + int(np.flatnonzero(fv[bottom:cross] <= low)[-1]) + 1
    step, cross_step = int(fs[onset]), int(fs[cross])
    rising = final > float(med[-2])
    msg = (f"{key} diverged: climbing from step {fmt_step(step)} (lowest level {fmt_num(low)}), "
           f"above {fmt_num(limit)} from step {fmt_step(cross_step)}, level {fmt_num(final)} at the end"
           + (", still rising" if rising else ""))
    return [Anomaly("divergence", key, step, int(fs[-1]), "critical" if rising else "warning", final, msg)]


def _train_at(ts: IntArray, tv: FloatArray, at: IntArray, width: int) -> FloatArray:
    """Mean train value over (step - width, step] per `at` step, else the last value before it."""
    top = float(np.max(np.abs(tv))) if tv.size else 0.0
    scale = top if 0.0 < top < np.inf else 1.0  # sums of values up to 1.8e308 would overflow
    csum = np.concatenate(([0.0], np.cumsum(tv / scale)))
    hi = np.searchsorted(ts, at, side="right")
    lo = np.searchsorted(ts, at - width, side="right")
    cnt = hi - lo
    out = np.full(at.size, np.nan)
    has = cnt > 0
    out[has] = (csum[hi[has]] - csum[lo[has]]) / cnt[has] * scale
    before = ~has & (hi > 0)
    out[before] = tv[hi[before] - 1]
    return out


def check_overfitting(loss_key: str, ts: IntArray, tv: FloatArray, val_key: str, vs: IntArray,
                      vv: FloatArray, th: Thresholds) -> Result:
    """Validation loss rising from its minimum while train loss falls, or val/train ratio growth.

    Train loss is compared on the validation cadence: its mean over the interval since the
    previous validation step (or its last value before the validation step). The ratio at the
    end (median of the last 3) is compared with the ratio over `overfit_baseline_steps` (or the
    first 3 validation points when none falls in that range).
    """
    tf, vf = np.isfinite(tv), np.isfinite(vv)
    ts, tv, vs, vv = ts[tf], tv[tf], vs[vf], vv[vf]
    if vv.size < 3:
        return f"{val_key} has fewer than 3 finite points"
    if tv.size < 2:
        return f"{loss_key} has fewer than 2 finite points"
    gaps = np.diff(vs)
    cadence = max(int(np.median(gaps[gaps > 0])) if np.any(gaps > 0) else 1, 1)
    train = _train_at(ts, tv, vs, cadence)
    ok = np.isfinite(train)
    vs, vv, train = vs[ok], vv[ok], train[ok]
    if vv.size < 3:
        return f"fewer than 3 {val_key} points after the first {loss_key} point"

    onset: int | None = None
    notes: list[str] = []
    # judge the rise on block medians, so one lucky low validation point is not "the minimum"
    blocks = np.array_split(np.arange(vv.size), min(vv.size, SMOOTH_BLOCKS))
    sv = np.array([np.median(vv[b]) for b in blocks])
    st = np.array([np.median(train[b]) for b in blocks])
    j_min = int(np.argmin(sv))
    v_min = float(sv[j_min])
    tail = float(sv[-1])
    tol = VAL_RISE * abs(v_min)
    if j_min < sv.size - 1 and tail > v_min + tol and st[-1] < st[j_min]:
        k = j_min + 1 + int(np.argmax(sv[j_min + 1:] > v_min + tol))
        onset = int(blocks[k][0])
        pct = (tail - v_min) / abs(v_min) * 100 if v_min else float("inf")
        notes.append(f"{val_key} rose {pct:.0f}% from its minimum {fmt_num(v_min)} near step "
                     f"{fmt_step(int(vs[blocks[j_min][0]]))} while {loss_key} kept falling")

    if np.all(vv > 0) and np.all(train > 0):
        ratio = vv / train
        lo, hi = th.overfit_baseline_steps
        in_base = (vs >= lo) & (vs <= hi)
        base = float(np.median(ratio[in_base] if in_base.any() else ratio[:EDGE_POINTS]))
        end = float(np.median(ratio[-EDGE_POINTS:]))
        if end > th.overfit_ratio_threshold * base:
            above = ratio > th.overfit_ratio_threshold * base
            starts, _ = true_runs(above)
            ratio_onset = int(starts[-1]) if above[-1] else int(np.argmax(above))
            onset = ratio_onset if onset is None else min(onset, ratio_onset)
            notes.append(f"val/train loss ratio {end:.2f} vs {base:.2f} early ({end / base:.1f}x)")
    if onset is None:
        return []
    msg = "overfitting: " + "; ".join(notes)
    return [Anomaly("overfitting", val_key, int(vs[onset]), int(vs[-1]), "warning", float(vv[-1]), msg)]


def check_plateau(key: str, s: IntArray, v: FloatArray, th: Thresholds) -> Result:
    """Loss whose level moved less than plateau_improvement_threshold over its last stretch.

    The stretch is the last plateau_min_steps steps, or the last tenth of the run if longer.

    Level = median of the first and of the last tenth of the finite points in that window; the
    relative change must stay within the threshold either way (a clear rise is not a plateau).
    """
    finite = np.isfinite(v)
    fs, fv = s[finite], v[finite]
    if fv.size == 0:
        return f"{key} has no finite values"
    if int(fs[-1] - fs[0]) < th.plateau_min_steps:
        return f"{key} spans fewer than {th.plateau_min_steps:,} steps"
    # the last plateau_min_steps, or the last tenth of a long run: 500 steps of a million say nothing
    span = max(th.plateau_min_steps, int(fs[-1] - fs[0]) // 10)
    window = fs >= fs[-1] - span
    wv = fv[window]
    if wv.size < PLATEAU_MIN_POINTS:
        return f"{key} has fewer than {PLATEAU_MIN_POINTS} points in its last {span:,} steps"
    q = max(1, wv.size // 10)
    start, end = float(np.median(wv[:q])), float(np.median(wv[-q:]))
    change = (end - start) / abs(start) if start else (0.0 if end == start else float("inf"))
    if abs(change) >= th.plateau_improvement_threshold:
        return []
    step = int(fs[window][0])
    msg = (f"{key} plateaued: {fmt_num(start)} -> {fmt_num(end)} ({change * 100:+.2g}%) over the last "
           f"{span:,} steps (threshold {th.plateau_improvement_threshold * 100:.2g}%)")
    return [Anomaly("plateau", key, step, int(fs[-1]), "info", end, msg)]


def check_vanishing(key: str, s: IntArray, v: FloatArray, th: Thresholds) -> Result:
    """Grad norm below gradient_vanish_threshold for gradient_sustained_steps consecutive points."""
    finite = np.isfinite(v)
    if np.count_nonzero(finite) < th.gradient_sustained_steps:
        return f"{key} has fewer than {th.gradient_sustained_steps} finite points"
    low = finite & (v < th.gradient_vanish_threshold)
    starts, ends = true_runs(low)
    long = (ends - starts + 1) >= th.gradient_sustained_steps
    if not long.any():
        return []
    a, b = int(starts[long][0]), int(ends[long][0])
    more = int(np.count_nonzero(long)) - 1
    msg = (f"{key} below {th.gradient_vanish_threshold:g} for {b - a + 1:,} points from step "
           f"{fmt_step(int(s[a]))}" + (f" ({more} more stretches)" if more else ""))
    return [Anomaly("vanishing_gradient", key, int(s[a]), int(s[b]), "warning", float(v[a]), msg)]


def _trailing_median(v: FloatArray, block: int) -> FloatArray:
    """Per point, the median of the previous block of `block` points (the first block: its own)."""
    med, _ = block_median_mad(v, block)
    prev = np.maximum(np.arange(med.size) - 1, 0)
    return med[prev][np.arange(v.size) // block]


def check_exploding(key: str, s: IntArray, v: FloatArray, th: Thresholds) -> Result:
    """Grad norm above multiplier x its running median for sustained points, or a short jump.

    Running median: the median of the previous block of spike_window points. Sustained:
    gradient_sustained_steps consecutive points (critical). A jump: a point above multiplier x
    the running median outside a sustained stretch that is also above multiplier x the median of
    the 3 finite points before it, so the first points of a run whose grad norm starts high and
    falls fast are not jumps (warning; the largest one, the message counts the others).
    """
    if np.count_nonzero(np.isfinite(v)) < 2:  # a jump needs a point before it
        return f"{key} has fewer than 2 finite points"
    base = _trailing_median(v, th.spike_window)
    with np.errstate(invalid="ignore"):
        high = ~np.isnan(v) & (base > 0) & (v > th.gradient_explode_multiplier * base)
    out: list[Anomaly] = []
    starts, ends = true_runs(high)
    long = (ends - starts + 1) >= th.gradient_sustained_steps
    if long.any():
        a, b = int(starts[long][0]), int(ends[long][0])
        peak = a + int(np.argmax(v[a:b + 1]))
        msg = (f"{key} above {th.gradient_explode_multiplier:g}x its running median "
               f"({fmt_num(float(base[a]))}) for {b - a + 1:,} points from step {fmt_step(int(s[a]))}, "
               f"peak {fmt_num(float(v[peak]))}")
        out.append(Anomaly("exploding_gradient", key, int(s[a]), int(s[b]), "critical", float(v[peak]), msg))
    marks = np.zeros(v.size + 1, dtype=np.int64)
    np.add.at(marks, starts[long], 1)
    np.add.at(marks, ends[long] + 1, -1)
    in_long = np.cumsum(marks[:-1]) > 0
    jumps = np.flatnonzero(high & ~in_long)
    if jumps.size:
        before = _finite_before(v, jumps, JUMP_NEIGHBOURS)
        with np.errstate(invalid="ignore", over="ignore"):
            jumps = jumps[v[jumps] > th.gradient_explode_multiplier * before]  # NaN before: never a jump
    if jumps.size:
        with np.errstate(invalid="ignore", over="ignore"):
            ratio = v[jumps] / base[jumps]
        i = int(jumps[np.argmax(ratio)])
        more = jumps.size - 1
        msg = (f"{key} jumped to {fmt_num(float(v[i]))} at step {fmt_step(int(s[i]))} "
               f"({float(np.max(ratio)):.0f}x its running median)" + (f"; {more} smaller jumps" if more else ""))
        out.append(Anomaly("exploding_gradient", key, int(s[i]), None, "warning", float(v[i]), msg))
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
    baseline (as a whole-run median would). Sustained: max(3, gradient_sustained_steps)
    consecutive points.
    """
    finite = np.isfinite(v)
    if not finite.any():
        return f"{key} has no finite values"
    need = max(3, th.gradient_sustained_steps)
    if v.size < need:
        return f"{key} has fewer than {need} points"
    block = max(need, min(th.spike_window, v.size // 10))
    med, _ = block_median_mad(v, block)
    best = np.fmax.accumulate(med)  # NaN blocks (no finite points) do not reset the maximum
    prev = np.maximum(np.arange(med.size) - 1, 0)
    base = best[prev][np.arange(v.size) // block]
    with np.errstate(invalid="ignore"):
        low = finite & (base > 0) & (v < (1.0 - th.throughput_drop_threshold) * base)
    starts, ends = true_runs(low)
    long = (ends - starts + 1) >= need
    if not long.any():
        return []
    a, b = int(starts[long][0]), int(ends[long][0])
    level = float(np.median(v[a:b + 1]))
    ref = float(base[a])
    pct = (1.0 - level / ref) * 100
    msg = (f"{key} fell {pct:.0f}% ({fmt_num(ref)} -> {fmt_num(level)}) from step "
           f"{fmt_step(int(s[a]))} for {b - a + 1:,} points")
    return [Anomaly("throughput_drop", key, int(s[a]), int(s[b]), "warning", level, msg)]
