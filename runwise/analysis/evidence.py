"""The evidence of a finding: what the run's other metrics did in its window, and which moved first.

For each other metric with a role (loss, val loss, grad norm, lr, throughput) the level just
before the finding (median of the first half of the lookback: LOOKBACK points of the finding's
own cadence, or a tenth of a lasting finding's length; at least 6 of the metric's points) is
compared with the level inside it (the farthest point within a step of a one-point finding, the
median of the first stretch of a lasting one). A metric moved when the difference exceeds both
MOVE_K robust sds of its level before and MOVE_REL of that level. The lr is said in any case: a
jump (with its step), a scheduled change, or "lr unchanged". Which came first: the onset of each
metric that moved (Page's CUSUM from its level before), or the lr's jump, compared with the
finding's step. Each finding costs a few searchsorted calls and medians over bounded windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from runwise.analysis._anomaly_types import Anomaly
from runwise.analysis._arrays import FloatArray, IntArray, fmt_num
from runwise.analysis._robust import MAD_TO_SIGMA
from runwise.analysis.changepoint import page_onset

INSIDE_POINTS = 2000  # a lasting finding's level inside: the median of at most this many points
LOOKBACK = 100  # points of a metric before the finding: the first half gives its level before
MOVE_K = 6.0  # a metric moved when its level changed by this many robust sds of its level before ...
MOVE_REL = 0.2  # ... and by this fraction of it
LR_REL = 0.01  # the lr is unchanged within this fraction
LR_JUMP = 0.1  # the lr jumped when two consecutive logged values differ by more than this fraction
MAX_RELATED = 3
PAD_POINTS = 25  # a one-point finding's window reaches this many of its metric's points each side
_ORDER = ("grad_norm", "lr", "loss", "val_loss", "throughput")
_WORDS = {
    "spike": "spike", "divergence": "divergence", "overfitting": "val rise", "plateau": "plateau",
    "vanishing_gradient": "fall", "exploding_gradient": "rise", "throughput_drop": "drop",
    "nan": "NaN", "inf": "inf", "lr_schedule": "lr change",
}


def _cadence(s: IntArray) -> int:
    """The usual step interval, from the first 10,000 points (a million-point diff per finding is waste)."""
    d = np.diff(s[:10_001])
    d = d[d > 0]
    return int(np.median(d)) if d.size else 1


def _levels(ks: IntArray, kv: FloatArray, a: Anomaly, tol: int) -> tuple[float, float, float, int, int] | None:
    """(level before, level inside, robust sd before, first index of the lookback, last index inside)."""
    i0 = int(np.searchsorted(ks, a.step, side="left"))
    last = a.end_step if a.end_step is not None else a.step
    point = a.end_step is None or bool(a.steps) or a.kind in ("spike", "nan", "inf")
    # LOOKBACK points of the finding's own cadence (a sparse metric's 100 points may span the run),
    # or a tenth of a lasting finding's length (what set it off may lie well before its onset),
    # but at least 6 of this metric's own points
    back = LOOKBACK * tol if point else max(LOOKBACK * tol, (last - a.step) // 10)
    by_steps = int(np.searchsorted(ks, a.step - back, side="left"))
    lo = max(0, min(by_steps, i0 - 6)) if not point else max(0, i0 - LOOKBACK, min(by_steps, i0 - 6))
    # the level before: the first half of the lookback, so a metric that moved shortly before the
    # finding (the one that came first) does not set its own baseline
    before = kv[lo:max(lo + 3, (lo + i0) // 2)]
    before = before[np.isfinite(before)]
    if before.size < 3:
        return None
    base = float(np.median(before))
    sd = float(MAD_TO_SIGMA * np.median(np.abs(before - base)))
    if point:
        if a.kind == "spike" and a.end_step is not None and not a.steps:  # a long burst: all of it
            i1 = int(np.searchsorted(ks, last + tol, side="right"))
            inside = kv[i0:i1]
        else:  # the finding's own steps only (isolated points may lie far apart), within a step each
            at = np.asarray(a.steps or (a.step,), dtype=np.int64)
            a_i = np.searchsorted(ks, at, side="left")
            b_i = np.searchsorted(ks, at + tol, side="right")
            inside = np.concatenate([kv[x:y] for x, y in zip(a_i.tolist(), b_i.tolist(), strict=True)])
            i1 = int(b_i[0])  # which came first is judged at the first of them
        inside = inside[np.isfinite(inside)]
        if inside.size == 0:
            return None
        level = float(inside[int(np.argmax(np.abs(inside - base)))])
    else:
        span = max(tol, (last - a.step) // 4)
        i1 = min(int(np.searchsorted(ks, a.step + span, side="right")), i0 + INSIDE_POINTS)
        inside = kv[i0:i1]
        inside = inside[np.isfinite(inside)]
        if inside.size == 0:
            return None
        level = float(np.median(inside))
    return base, level, sd, lo, i1


def with_evidence(a: Anomaly, data: Mapping[str, tuple[IntArray, FloatArray]], roles: Mapping[str, str]) -> Anomaly:
    """`a` with `related`, `first`, `window` and `keys` filled from the run's other role metrics."""
    own_s = data[a.metric][0] if a.metric in data else np.empty(0, dtype=np.int64)
    tol = _cadence(own_s) if own_s.size > 1 else 1
    related: list[str] = []  # added to what the finding already has (non-finite tails of other metrics)
    leads: list[tuple[int, str]] = []
    moved_keys: list[str] = []
    is_point = a.end_step is None or bool(a.steps) or a.kind in ("spike", "nan", "inf")
    for role in _ORDER:
        key = roles.get(role)
        if key is None or key == a.metric or key not in data:
            continue
        ks, kv = data[key]
        got = _levels(ks, kv, a, tol)
        if got is None:
            continue
        base, level, sd, lo, i1 = got
        change = level - base
        if role == "lr":
            said, lead = _lr_change(key, ks, kv, lo, i1, base, level, a)
            related.append(said)
            if lead is not None and lead > tol:
                leads.append((lead, f"{key} jumped {lead:,} steps before the {a.metric} {_word(a)}"))
            if lead is not None:
                moved_keys.append(key)
            continue
        if abs(change) <= max(MOVE_K * sd, MOVE_REL * abs(base)):
            continue
        where = "at the same step" if is_point else f"from step {a.step:,}"
        related.append(f"{key} {fmt_num(base)}->{fmt_num(level)} {where}")
        moved_keys.append(key)
        seg = kv[lo:i1]
        onset = lo + page_onset(np.sign(change) * (seg - base) - max(sd, abs(change) / 4))
        onset = min(onset, i1 - 1)
        lead = a.step - int(ks[onset])
        if lead > tol:
            verb = "rose" if change > 0 else "fell"
            leads.append((lead, f"{key} {verb} {lead:,} steps before the {a.metric} {_word(a)}"))
    first = max(leads)[1] if leads else ""
    related = [*a.related, *related][:MAX_RELATED]  # what the check itself said comes first
    last = a.end_step if a.end_step is not None else a.step
    pad = PAD_POINTS * tol
    if not is_point:
        pad = max(pad, (last - a.step) // 10)
    lo_step = a.step - pad
    hi_step = last + pad
    if own_s.size:
        lo_step, hi_step = max(lo_step, int(own_s[0])), min(hi_step, int(own_s[-1]))
    keys = (a.metric, *[k for k in moved_keys if k != a.metric])[:3]
    return replace(a, related=tuple(related), first=first, window=(lo_step, hi_step), keys=keys)


def _lr_change(key: str, ks: IntArray, kv: FloatArray, lo: int, i1: int, base: float, level: float,
               a: Anomaly) -> tuple[str, int | None]:
    """What the lr did around a finding, and how many steps before it the lr jumped (None: no jump).

    A jump: consecutive logged values more than LR_JUMP apart (relative) between the lookback and
    the finding; the largest is named. A schedule's smooth change is said without a lead, so a
    decaying lr is not taken for the cause of whatever happens while it decays.
    """
    seg = kv[lo:i1]
    ok = np.isfinite(seg[1:]) & np.isfinite(seg[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(ok, np.abs(np.diff(seg)) / np.maximum(np.abs(seg[:-1]), 1e-30), 0.0)
    if rel.size and float(rel.max()) > LR_JUMP:
        j = int(np.argmax(rel))
        at = int(ks[lo + j + 1])
        return f"{key} {fmt_num(float(seg[j]))}->{fmt_num(float(seg[j + 1]))} at step {at:,}", a.step - at
    if abs(level - base) <= LR_REL * abs(base):
        return f"{key} unchanged", None
    if a.end_step is None or a.steps or a.kind in ("spike", "nan", "inf"):
        return f"{key} as scheduled (no jump)", None
    return f"{key} {fmt_num(base)}->{fmt_num(level)} as scheduled", None


def _word(a: Anomaly) -> str:
    if a.kind == "spike":
        return "spike" if a.severity == "warning" else "dip"
    return _WORDS.get(a.kind, a.kind)
