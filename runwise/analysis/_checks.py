"""The loss-level checks behind detect_anomalies: divergence, plateau and overfitting.

Each check takes (steps, values) columns (non-finite points allowed) and returns its anomalies,
or a string: the reason it could not run (too few points ...). Lasting anomalies are dated at
their onset with runwise.analysis.changepoint, on the full-resolution series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runwise.analysis._anomaly_types import Anomaly, Thresholds
from runwise.analysis._arrays import FloatArray, IntArray, block_median_mad, fmt_num
from runwise.analysis.changepoint import mean_split, page_onset, robust_sd
from runwise.formatting import fmt_step

Result = list[Anomaly] | str

DIVERGENCE_MIN_POINTS = 30  # finite loss points the level check needs
LEVEL_BLOCKS = 50  # a loss level is tracked as the median of at most this many blocks
ONSET_BLOCKS = 200  # the onset of a climb is fitted on at most this many block medians
HINGE_BACK = 5  # ... and refined from this many blocks before the fitted one
EDGE_POINTS = 3  # the level at the end of a validation series: the median of this many points
VAL_MIN_POINTS = 6  # validation points the overfitting check needs
VAL_NOISE_K = 4.0  # validation must rise this many of its noise sds above its minimum
VAL_RISE_REL = 0.02  # ... and by this fraction of its minimum
VAL_RISE_POINTS = 3  # ... over at least this many evaluations after the onset
LR_HIGH = 0.3  # the lr over a plateau is still "high" above this fraction of its peak
LR_DECAYED = 0.1  # ... and "decayed" at or below this fraction (convergence, not a plateau)


@dataclass(frozen=True, slots=True)
class Lr:
    """The learning rate series a plateau is judged against: finite (steps, values)."""

    steps: IntArray
    values: FloatArray

    def level(self, start: int, end: int) -> float | None:
        """Median lr over [start, end] steps; the last value before `start` when none falls inside."""
        inside = (self.steps >= start) & (self.steps <= end)
        if inside.any():
            return float(np.median(self.values[inside]))
        i = int(np.searchsorted(self.steps, start, side="right")) - 1
        return float(self.values[i]) if i >= 0 else None

    @property
    def peak(self) -> float:
        return float(np.max(self.values)) if self.values.size else 0.0


def _word(x: float) -> str:
    return "NaN" if np.isnan(x) else "+inf" if x > 0 else "-inf"


def _levels(v: FloatArray, blocks: int) -> tuple[FloatArray, int, int]:
    """Block medians of `v` (at most `blocks`, earliest points trimmed to equal blocks), block size, offset."""
    nb = max(1, min(blocks, v.size // 10))
    size = v.size // nb
    offset = v.size - nb * size
    med, _ = block_median_mad(v[offset:], size)
    return med, size, offset


def check_divergence(key: str, s: IntArray, v: FloatArray, th: Thresholds) -> Result:
    """Loss whose level ends above 2x its lowest level (min + |min| for negative losses).

    Runs on the finite points (a loss that ends non-finite is the nan/inf check's lasting finding).
    The level is the median of each of up to 50 blocks. The finding is dated at the onset of the
    climb: from the lowest block on, the best continuous fit of a flat level that turns into a
    straight climb (on up to 200 block medians), so a gradual climb is dated where it began, not
    where it crossed the limit. Always critical: a loss that ends above twice its best level has stopped
    learning, whether it is still rising (the message says so) or has settled high.
    """
    finite = np.isfinite(v)
    if not finite.any():
        return f"{key} has no finite values"
    fs, fv = s[finite], v[finite]
    if fv.size < DIVERGENCE_MIN_POINTS:
        return f"{key} has fewer than {DIVERGENCE_MIN_POINTS} finite points"
    med, size, offset = _levels(fv, LEVEL_BLOCKS)
    k_min = int(np.argmin(med))
    low, final = float(med[k_min]), float(med[-1])
    limit = low + max(abs(low), 1e-12)
    if k_min == med.size - 1 or final <= limit:
        return []
    bottom = offset + k_min * size
    # the onset: the best fit of a flat level turning into a straight climb, on finer blocks
    fsize = -(-(fv.size - bottom) // ONSET_BLOCKS)  # from the bottom on: its first points matter most
    fine, _ = block_median_mad(fv[bottom:], fsize)
    top = float(np.max(np.abs(fine)))
    unit = fine / top if 0.0 < top < np.inf else fine
    j, hinge_err = _hinge_onset(unit, 0, fine.size - 2, fine.size, rising=True)
    # refined at full resolution: Page's CUSUM from a few blocks before, against the level there
    base = float(np.median(fine[max(0, j - HINGE_BACK):j + 1]))
    start = bottom + max(0, j - HINGE_BACK) * fsize
    k = mean_split(unit)  # a jump to a new level fits a step better than a climbing line
    if k > 0:
        step_err = float(np.sum((unit[:k] - unit[:k].mean()) ** 2) + np.sum((unit[k:] - unit[k:].mean()) ** 2))
        if step_err < hinge_err:  # a step (or a ramp to a new level) splits mid-change: judge against all before it
            base, start = float(np.median(fine[:k])), bottom
    d = max(robust_sd(fv[bottom:bottom + 20_000]), 1e-3 * abs(low), 1e-12)
    onset = min(start + page_onset(fv[start:] - (base + d)), fv.size - 1)
    step = int(fs[onset])
    rising = med.size > 1 and final > float(med[-2])
    msg = f"{key} diverged from step {fmt_step(step)}: {fmt_num(low)} -> {fmt_num(final)}" + (
        ", still rising" if rising else "")
    return [Anomaly("divergence", key, step, int(fs[-1]), "critical", final, msg, baseline=low)]


def _running_median3(v: FloatArray) -> FloatArray:
    """Centred running median of 3 points; the ends keep their own value."""
    if v.size < 3:
        return v.copy()
    out = v.copy()
    out[1:-1] = np.median(np.stack([v[:-2], v[1:-1], v[2:]]), axis=0)
    return out


def _mean_before(ts: IntArray, tv: FloatArray, at: IntArray, width: int) -> FloatArray:
    """Mean train value over (step - width, step] per `at` step, else the last value before it; NaN if none."""
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
    """Validation loss getting worse beyond its own noise while train loss still improves.

    Validation is judged on its own cadence: its lowest level is the minimum of a running median
    of 3 evaluations; it must end (median of its last 3) more than 4 noise sds and 2% above that
    minimum, with at least 3 evaluations after the onset. Train loss (its mean over each
    validation interval) must be lower at the end than at the validation minimum. The onset is
    dated by Page's CUSUM on the validation points from their minimum.
    """
    tf, vf = np.isfinite(tv), np.isfinite(vv)
    ts, tv, vs, vv = ts[tf], tv[tf], vs[vf], vv[vf]
    if vv.size < VAL_MIN_POINTS:
        return f"{val_key} has fewer than {VAL_MIN_POINTS} finite points"
    if tv.size < 2:
        return f"{loss_key} has fewer than 2 finite points"
    gaps = np.diff(vs)
    cadence = max(int(np.median(gaps[gaps > 0])) if np.any(gaps > 0) else 1, 1)
    train = _mean_before(ts, tv, vs, cadence)
    ok = np.isfinite(train)
    vs, vv, train = vs[ok], vv[ok], train[ok]
    if vv.size < VAL_MIN_POINTS:
        return f"fewer than {VAL_MIN_POINTS} {val_key} points after the first {loss_key} point"
    smooth = _running_median3(vv)
    m = int(np.argmin(smooth))
    v_min = float(smooth[m])
    sd = robust_sd(vv, order=2)
    end = float(np.median(vv[-EDGE_POINTS:]))
    rise = end - v_min
    if m >= vv.size - VAL_RISE_POINTS or rise <= max(VAL_NOISE_K * sd, VAL_RISE_REL * abs(v_min)):
        return []
    onset = m + page_onset(vv[m:] - (v_min + sd))
    if onset > vv.size - VAL_RISE_POINTS:
        return []
    t_at, t_end = float(np.median(train[max(0, m - 1):m + 2])), float(np.median(train[-EDGE_POINTS:]))
    if not t_end < t_at:
        return []  # train not improving: the run as a whole got worse (divergence), not overfitting
    pct = rise / abs(v_min) * 100 if v_min else float("inf")
    msg = (f"{val_key} rising from step {fmt_step(int(vs[onset]))}: {fmt_num(v_min)} -> {fmt_num(end)} "
           f"(+{pct:.0f}%) while {loss_key} fell {fmt_num(t_at)} -> {fmt_num(t_end)}")
    return [Anomaly("overfitting", val_key, int(vs[onset]), int(vs[-1]), "warning", end, msg, baseline=v_min,
                    related=_ratio_growth(vs, vv, train, th))]


def _ratio_growth(vs: IntArray, vv: FloatArray, train: FloatArray, th: Thresholds) -> tuple[str, ...]:
    """'val/train ratio 2.1x its level over steps 100-500' when it grew by overfit_ratio_threshold or more.

    Evidence for an overfitting finding, not a finding by itself: a gap that widens while
    validation still improves is generalisation falling behind, not validation getting worse.
    """
    if not (np.all(vv > 0) and np.all(train > 0)):
        return ()
    ratio = vv / train
    lo, hi = th.overfit_baseline_steps
    early = (vs >= lo) & (vs <= hi)
    base = float(np.median(ratio[early] if early.any() else ratio[:EDGE_POINTS]))
    now = float(np.median(ratio[-EDGE_POINTS:]))
    if not now >= th.overfit_ratio_threshold * base:
        return ()
    where = f"steps {lo:,}-{hi:,}" if early.any() else "its first evaluations"
    return (f"val/train ratio {now / base:.1f}x its level over {where}",)


PLATEAU_BLOCKS = 100  # the loss level is judged on at most this many block medians
PLATEAU_SCALES = (0.2, 0.3, 0.4)  # window lengths (fractions of the run) a flat stretch is looked for at
PLATEAU_MIN_BLOCKS = 4  # a window needs this many blocks to fit a line
STOP_SCALES = (0.1, 0.15, 0.2)  # window lengths at which a loss that stopped improving is looked for
STOP_MIN_GAIN = 0.05  # it had improved by at least this fraction over the window before ...
STOP_RATIO = 0.1  # ... and then moved at most this fraction of that gain (within 2 standard errors)


@dataclass(frozen=True, slots=True)
class Plateau:
    """A flat stretch of a loss: first and last index (of the finite points), its level, the level before."""

    start: int
    end: int
    level: float
    before: float


def _window_fits(level: FloatArray, w: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per window of `w` blocks: (mean, change along its least-squares line, standard error of that change)."""
    x = np.arange(w) - (w - 1) / 2.0
    win = np.lib.stride_tricks.sliding_window_view(level, w)
    mean = win.mean(axis=1)
    slope = (win * x).sum(axis=1) / float((x * x).sum())
    resid = win - mean[:, None] - slope[:, None] * x
    sd = np.sqrt((resid * resid).sum(axis=1) / max(w - 2, 1))
    return mean, slope * w, sd * np.sqrt(12.0 / w)


def _hinge_onset(level: FloatArray, lo: int, hi: int, end: int, *, rising: bool = False) -> tuple[int, float]:
    """Block where a line meets a flat level, and the fit's squared error: the best continuous fit over level[lo:end].

    The onset is looked for in [lo, hi].
    By default a line before the onset and a line after it, joined there (a broken stick: a loss
    that falls, then stays flat or nearly); `rising`: flat, then a climbing line (a divergence).
    """
    y = level[lo:end]
    x = np.arange(lo, end, dtype=np.float64)
    sse = []
    for j in range(lo, max(hi, lo) + 1):  # at most a few hundred candidates on at most 200 blocks
        if rising:
            a = np.column_stack((np.ones_like(x), np.maximum(x - j, 0.0)))
        else:  # a plateau may still drift a little (an lr term that decays with the schedule): its own slope
            a = np.column_stack((np.ones_like(x), np.minimum(x - j, 0.0), np.maximum(x - j, 0.0)))
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        sse.append(float(np.sum((a @ coef - y) ** 2)))
    err = np.array(sse)
    # the earliest of equally good fits (a loss flat from the start: rounding decides the rest)
    best = int(np.argmax(err <= err.min() + 1e-9 * float(np.sum(y * y))))
    return lo + best, float(err[best])


def _kink(unit: FloatArray, centre: FloatArray, j: int, lo: int, stop: int, n: int) -> int:
    """The point index where the lines through the block medians before and after block j cross.

    Refines the broken stick's block to the point: the crossing is clipped to the centres of the
    blocks either side of j (the first point of block j when the lines are parallel or too short).
    The blocks right next to j are left out of both lines: the kink may lie in either.
    """
    start = int(np.clip(np.ceil(centre[j] - (centre[1] - centre[0]) / 2.0 if centre.size > 1 else 0.0), 0, n - 1))
    # the blocks next to j may hold the kink itself: each line is fitted on the blocks beyond them
    a, b = unit[lo:max(j - 1, lo)], unit[j + 1:stop]
    if a.size < 2 or b.size < 2:
        return start
    p1 = np.polyfit(centre[lo:max(j - 1, lo)], a, 1)
    p2 = np.polyfit(centre[j + 1:stop], b, 1)
    if abs(p1[0] - p2[0]) <= 1e-15:
        return start
    x = (p2[1] - p1[1]) / (p1[0] - p2[0])
    left, right = centre[max(j - 1, 0)], centre[min(j + 1, centre.size - 1)]
    return int(np.clip(np.ceil(np.clip(x, left, right) - 1e-9), 0, n - 1))


def find_plateau(s: IntArray, v: FloatArray, th: Thresholds, lr: Lr | None = None) -> Plateau | str | None:
    """The first stretch over which a loss stayed flat while the lr stayed high; None if there is none.

    The loss is judged on up to 100 block medians. A window of 20%, 30% or 40% of the run is flat
    when |change along its fitted line| + 2 standard errors stays within plateau_improvement_threshold
    per tenth of the run (2%, 3%, 4% of its level): noise counts against a plateau, so a noisy run
    that may still improve is not called flat. A window of 10-20% also counts when the loss stopped
    improving: it had improved by 5% or more over the window before and moved at most a tenth of
    that (within 2 standard errors; and no more than twice the flat limit) in this one. With an lr
    series, windows where the lr is at or below 30% of its peak do not count (a flat loss under a
    decayed lr is convergence). Overlapping flat windows form the stretch; its onset is the best
    fit of a falling line meeting a flat level.
    """
    finite = np.isfinite(v)
    fs, fv = s[finite], v[finite]
    if fv.size == 0:
        return "has no finite values"
    span = int(fs[-1] - fs[0])
    if span < th.plateau_min_steps:
        return f"spans fewer than {th.plateau_min_steps:,} steps"
    nb = min(PLATEAU_BLOCKS, fv.size // 5)
    if nb < 5 * PLATEAU_MIN_BLOCKS:
        return f"has fewer than {25 * PLATEAU_MIN_BLOCKS} finite points"
    level, size, offset = _levels(fv, nb)
    nb = level.size
    first = offset + np.arange(nb) * size  # index of each block's first point
    top = float(np.max(np.abs(level)))
    unit = level / top if 0.0 < top < np.inf else level  # fits on values near 1: no overflow at 1e307
    flat = np.zeros(nb, dtype=bool)
    lr_blocks, lr_peak = None, 0.0
    if lr is not None and lr.peak > 0:  # the lr at each block's middle step
        mid = fs[np.minimum(first + size // 2, fv.size - 1)].astype(np.float64)
        lr_blocks, lr_peak = np.interp(mid, lr.steps.astype(np.float64), lr.values), lr.peak
    for frac in sorted({*PLATEAU_SCALES, *STOP_SCALES}):
        w = max(PLATEAU_MIN_BLOCKS, round(frac * nb))
        if w > nb:
            continue
        mean, change, se = _window_fits(unit, w)
        bound = np.abs(change) + 2.0 * se  # the most the loss may have moved along the window
        allowed = th.plateau_improvement_threshold * frac * 10.0 * np.abs(mean)
        ok = bound <= allowed if frac in PLATEAU_SCALES else np.zeros(mean.size, dtype=bool)
        if frac in STOP_SCALES and mean.size > w:
            gain = -change[:-w]  # the improvement over the window just before each window from w on
            stop = (gain >= STOP_MIN_GAIN * np.abs(mean[:-w])) & (bound[w:] <= STOP_RATIO * gain)
            ok[w:] |= stop & (bound[w:] <= 2.0 * allowed[w:])
        if lr_blocks is not None:
            ok &= np.median(np.lib.stride_tricks.sliding_window_view(lr_blocks, w), axis=1) > LR_HIGH * lr_peak
        for b in np.flatnonzero(ok).tolist():
            flat[b:b + w] = True
    if not flat.any():
        return None
    b0 = int(np.argmax(flat))
    b1 = b0 + int(np.argmax(~flat[b0:])) - 1 if not flat[b0:].all() else nb - 1
    w0 = max(PLATEAU_MIN_BLOCKS, round(PLATEAU_SCALES[0] * nb))
    lo, fit_end = max(0, b0 - w0 // 2), min(b1, b0 + w0) + 1
    onset_block, _ = _hinge_onset(unit, lo, min(b0 + w0 // 2, b1), fit_end)
    centre: FloatArray = first.astype(np.float64) + (size - 1) / 2.0
    start = _kink(unit, centre, onset_block, lo, fit_end, fv.size)
    end = min(int(first[b1]) + size, fv.size) - 1
    if int(fs[end] - fs[start]) < th.plateau_min_steps:
        return None
    flat_level = float(np.median(fv[start:end + 1]))
    before = float(np.median(level[max(0, onset_block - w0):max(1, onset_block)]))
    return Plateau(start, end, flat_level, before)


def check_plateau(key: str, s: IntArray, v: FloatArray, th: Thresholds, lr: Lr | None = None) -> Result:
    """A loss that stopped improving for a long stretch while the learning rate stayed high (see find_plateau).

    A warning with an lr series (the lr was high over the stretch), info without one.
    """
    found = find_plateau(s, v, th, lr)
    if isinstance(found, str):
        return f"{key} {found}"
    if found is None:
        return []
    fs = s[np.isfinite(v)]
    step, end = int(fs[found.start]), int(fs[found.end])
    lr_note = ""
    if lr is not None and (at := lr.level(step, end)) is not None and lr.peak > 0:
        lr_note = f" (lr {at / lr.peak:.0%} of its peak)"
    msg = f"{key} flat at {fmt_num(found.level)} from step {fmt_step(step)} to {fmt_step(end)}{lr_note}"
    severity = "warning" if lr is not None else "info"
    return [Anomaly("plateau", key, step, end, severity, found.level, msg, baseline=found.before)]


def converging_note(key: str, s: IntArray, v: FloatArray, th: Thresholds, lr: Lr | None) -> str | None:
    """'train/loss converging under a decayed lr (3% of peak)' when the loss ends flat or nearly under a decayed lr."""
    if lr is None or lr.peak <= 0:
        return None
    finite = np.isfinite(v)
    fs = s[finite]
    if fs.size < 20:
        return None
    tail = int(fs[-1] - (fs[-1] - fs[0]) // 10)
    at = lr.level(tail, int(fs[-1]))
    if at is None or at > LR_DECAYED * lr.peak:
        return None
    return f"{key} converging under a decayed lr ({at / lr.peak:.0%} of its peak)"
