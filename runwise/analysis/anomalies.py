"""Anomaly detection on full-resolution history: NaN/inf, spikes and dips, divergence, overfitting,
plateaus, vanishing/exploding gradients, throughput drops and learning-rate schedule faults.

Every check says whether it ran: a check whose metric is missing (or too short) is listed in
`AnomalyReport.checks_skipped` with the reason, so "no anomalies" only covers checks that ran.
Lasting anomalies are dated at their onset (runwise.analysis.changepoint); every finding carries
its evidence (runwise.analysis.evidence): what other metrics did in its window and which moved first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runwise.analysis import _checks, _grad_checks
from runwise.analysis._anomaly_types import KINDS, SEVERITIES, Anomaly, Thresholds
from runwise.analysis._arrays import FloatArray, IntArray, as_series, as_values, fmt_num, true_runs
from runwise.analysis._robust import spike_points, spike_scores
from runwise.analysis.aliases import ROLES, find_metric
from runwise.analysis.evidence import with_evidence
from runwise.analysis.schedule import check_lr_schedule
from runwise.formatting import fmt_step

__all__ = [
    "CHECKS", "DEFAULT_THRESHOLDS", "KINDS", "SEVERITIES", "Anomaly", "AnomalyReport", "Thresholds",
    "detect_anomalies", "find_spikes",
]

CHECKS = (
    "nan_inf", "spikes", "divergence", "overfitting", "plateau",
    "vanishing_gradient", "exploding_gradient", "throughput_drop", "lr_schedule",
)
DEFAULT_THRESHOLDS = Thresholds()
SPIKE_MIN_POINTS = 3  # a spike needs a finite point on each side
MAX_SPIKES_PER_METRIC = 5  # spike findings per metric and direction: the largest; the message counts the rest
MAX_LISTED_STEPS = 5  # up to this many isolated points are named step by step, more as a range
BURST_GAP = 10  # spikes of one direction at most this many points apart are one burst
_CRITICAL_ROLES = ("loss", "val_loss", "grad_norm")  # NaN/inf in these means the run is broken


@dataclass(frozen=True, slots=True)
class AnomalyReport:
    """What detect_anomalies found, which checks ran, which were skipped and why.

    `observations` are not findings: what an engineer should know to judge the run
    ("train/loss converging under a decayed lr").
    """

    anomalies: tuple[Anomaly, ...]
    checks_run: tuple[str, ...]
    checks_skipped: dict[str, str]  # check -> reason, e.g. "no validation loss metric"
    truncated: int  # anomalies dropped by max_anomalies
    observations: tuple[str, ...] = ()


def find_spikes(
    values: NDArray[np.float64], *, window: int = 100, threshold: float = 6.0
) -> NDArray[np.intp]:
    """Return the indices of spikes: points far from both their trailing and leading baseline.

    The robust z-score is (value - median) / (1.4826 x MAD) against the block of `window` points
    before the point's own block and against the block after it (an approximation of a rolling
    median that stays vectorised; see runwise.analysis._robust). A spike exceeds `threshold`
    with the same sign on both sides, in either direction; consecutive spike points are grouped
    and only each group's peak is returned. MAD is floored at 1e-3 x |median| so flat series do
    not divide by ~0. NaN/inf are never spikes. Raises ValueError if `values` is not 1-D,
    `window` < 3 or `threshold` <= 0.
    """
    if window < 3:
        raise ValueError(f"window must be at least 3, got {window}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    idx, _ = spike_scores(as_values(values), window=window, threshold=threshold)
    return idx


def detect_anomalies(
    history: Mapping[str, tuple[NDArray[np.int64], NDArray[np.float64]]],
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    roles: Mapping[str, str] | None = None,
    max_anomalies: int = 20,
    config: Mapping[str, Any] | None = None,
) -> AnomalyReport:
    """Run every anomaly check that the history's metrics allow; sort by severity, then step.

    `history` maps metric key -> (steps, values). `roles` maps role (see aliases.ROLES) ->
    metric key; when None every role is found with aliases.find_metric, otherwise the mapping is
    taken as given (roles it lacks, or keys absent from `history`, count as missing). Checks:
    nan_inf (every metric), spikes (loss and val loss, up and down), divergence and plateau
    (loss; plateau judged against the lr), overfitting (loss and val loss), vanishing/
    exploding_gradient (grad norm), throughput_drop, lr_schedule (lr; `config` is the run's
    flattened config, for declared schedules). At most `max_anomalies` are kept; `truncated`
    counts the rest. Raises ValueError for malformed or unsorted series or a negative `max_anomalies`.
    """
    if max_anomalies < 0:
        raise ValueError(f"max_anomalies must be >= 0, got {max_anomalies}")
    th = thresholds
    data = {key: as_series(*sv, check_sorted=True) for key, sv in history.items()}
    if roles is None:
        keys = list(data)
        role_keys = {r: k for r in ROLES if (k := find_metric(keys, r)) is not None}
    else:
        role_keys = {r: k for r, k in roles.items() if k in data}
    loss, val = role_keys.get("loss"), role_keys.get("val_loss")
    grad, speed, lr_key = role_keys.get("grad_norm"), role_keys.get("throughput"), role_keys.get("lr")
    lr = _lr(data[lr_key]) if lr_key is not None else None

    found: list[Anomaly] = []
    run: list[str] = []
    skipped: dict[str, str] = {}
    observations: list[str] = []

    def record(check: str, result: _checks.Result) -> None:
        if isinstance(result, str):
            skipped[check] = result
        else:
            found.extend(result)
            if check not in run:
                run.append(check)

    if data:
        critical = {role_keys[r] for r in _CRITICAL_ROLES if r in role_keys}
        nonfinite = [a for k, (s, v) in data.items() for a in _nan_inf(k, s, v, k in critical)]
        record("nan_inf", _fold_tails(nonfinite, data, [role_keys[r] for r in _CRITICAL_ROLES if r in role_keys]))
    else:
        skipped["nan_inf"] = "no metrics"

    spike_results = [_spikes(k, *data[k], th) for k in (loss, val) if k is not None]
    spikes = [a for r in spike_results if not isinstance(r, str) for a in r]
    if any(not isinstance(r, str) for r in spike_results):
        record("spikes", spikes)
    else:  # no loss metric, or none with enough finite points
        skipped["spikes"] = "; ".join(r for r in spike_results if isinstance(r, str)) or "no loss metric"

    record("divergence", _checks.check_divergence(loss, *data[loss], th) if loss is not None else "no loss metric")
    record("plateau", _checks.check_plateau(loss, *data[loss], th, lr) if loss is not None else "no loss metric")
    if loss is not None and (note := _checks.converging_note(loss, *data[loss], th, lr)) is not None:
        observations.append(note)

    if loss is None or val is None:
        skipped["overfitting"] = "no loss metric" if loss is None else "no validation loss metric"
    else:
        record("overfitting", _checks.check_overfitting(loss, *data[loss], val, *data[val], th))

    if grad is None:
        skipped["vanishing_gradient"] = skipped["exploding_gradient"] = "no gradient norm metric"
    else:
        record("vanishing_gradient", _grad_checks.check_vanishing(grad, *data[grad], th))
        explained = _explained_steps(spikes, data[grad][0])
        record("exploding_gradient", _grad_checks.check_exploding(grad, *data[grad], th, explained))

    record("throughput_drop",
           _grad_checks.check_throughput(speed, *data[speed], th) if speed is not None else "no throughput metric")
    record("lr_schedule", _lr_schedule(lr_key, data, th, config))

    found = [with_evidence(a, data, role_keys) for a in found]
    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    found.sort(key=lambda a: (rank[a.severity], a.step, a.kind, a.metric))
    kept = tuple(found[:max_anomalies])
    return AnomalyReport(kept, tuple(c for c in CHECKS if c in run), skipped, len(found) - len(kept),
                         tuple(observations))


def _lr(sv: tuple[IntArray, FloatArray]) -> _checks.Lr | None:
    s, v = sv
    ok = np.isfinite(v)
    return _checks.Lr(s[ok], v[ok]) if ok.any() else None


def _lr_schedule(lr_key: str | None, data: Mapping[str, tuple[IntArray, FloatArray]], th: Thresholds,
                 config: Mapping[str, Any] | None) -> _checks.Result:
    """The learning-rate schedule check (runwise.analysis.schedule), when there is an lr metric."""
    if lr_key is None:
        return "no learning rate metric"
    return check_lr_schedule(lr_key, *data[lr_key], config=dict(config or {}), thresholds=th)


def _explained_steps(spikes: list[Anomaly], grad_steps: IntArray) -> frozenset[int]:
    """Grad-norm steps at the upward loss spikes: a grad jump there is the spike's evidence, not a finding."""
    if grad_steps.size == 0:
        return frozenset()
    out: set[int] = set()
    for a in spikes:
        if a.severity != "warning":
            continue
        for st in a.steps or (a.step,):
            i = int(np.clip(np.searchsorted(grad_steps, st), 0, grad_steps.size - 1))
            near = [j for j in (i - 1, i, i + 1) if 0 <= j < grad_steps.size]
            out.update(int(grad_steps[j]) for j in near if abs(int(grad_steps[j]) - st) <= 1)
    return frozenset(out)


def _listed(s: IntArray, where: NDArray[np.intp]) -> tuple[int, ...]:
    """Every step of up to MAX_LISTED_STEPS points, else none (the finding gives the range)."""
    return tuple(int(x) for x in s[where]) if 1 < where.size <= MAX_LISTED_STEPS else ()


def _nan_inf(key: str, s: IntArray, v: FloatArray, critical: bool) -> list[Anomaly]:
    """NaN and ±inf findings of one metric.

    Non-finite values of one kind from step k to the end are a lasting finding dated at k; other
    points of that kind are one more finding naming every step (up to 5) or their range.
    """
    out: list[Anomaly] = []
    severity = "critical" if critical else "warning"
    for kind, mask in (("nan", np.isnan(v)), ("inf", np.isinf(v))):
        where = np.flatnonzero(mask)
        if where.size == 0:
            continue
        what = "NaN" if kind == "nan" else "/".join(sorted({"+inf" if x > 0 else "-inf" for x in v[where][[0, -1]]}))
        starts, _ = true_runs(mask)
        tail = int(starts[-1]) if mask[-1] and v.size - starts[-1] >= 2 else None
        if tail is not None:
            msg = f"{key} {what} from step {fmt_step(int(s[tail]))} to the end ({v.size - tail:,} points)"
            out.append(Anomaly(kind, key, int(s[tail]), int(s[-1]), severity, None, msg))
            where = where[where < tail]
            if where.size == 0:
                continue
        first, last = int(s[where[0]]), int(s[where[-1]])
        if where.size == 1:
            msg = f"{key} {what} at step {fmt_step(first)}"
        elif where.size <= MAX_LISTED_STEPS:
            msg = f"{key} {what} at steps " + ", ".join(fmt_step(int(x)) for x in s[where])
        else:
            msg = f"{key} {what} at {where.size:,} points from step {fmt_step(first)} to {fmt_step(last)}"
        out.append(Anomaly(kind, key, first, last if where.size > 1 else None, severity, None, msg,
                           steps=_listed(s, where)))
    return out


def _fold_tails(found: list[Anomaly], data: Mapping[str, tuple[IntArray, FloatArray]],
                primary: list[str]) -> list[Anomaly]:
    """Non-finite tails that begin together are one event: the first metric's finding names the others.

    A tail (NaN or inf to the end) of another metric that begins within one of its own logging
    intervals of the leading tail's step (the loss's first, then val loss, grad norm, then any)
    becomes "grad_norm NaN from step 4,200 too" in the leading finding's `related`.
    """
    tails = [a for a in found if a.end_step is not None and not a.steps and a.message.endswith("points)")
             and "to the end" in a.message]
    if len(tails) < 2:
        return found
    order = {k: i for i, k in enumerate(primary)}
    lead = min(tails, key=lambda a: (order.get(a.metric, len(order)), a.step))
    folded: list[Anomaly] = []
    notes: list[str] = []
    for a in tails:
        if a is lead or a.kind != lead.kind:
            continue
        s = data[a.metric][0]
        gap = int(np.median(np.diff(s))) if s.size > 1 else 0
        if abs(a.step - lead.step) <= max(gap, 1):
            folded.append(a)
            notes.append(f"{a.metric} {'NaN' if a.kind == 'nan' else 'inf'} from step {fmt_step(a.step)} too")
    if not folded:
        return found
    merged = replace(lead, related=(*notes, *lead.related))
    return [merged if a is lead else a for a in found if not any(a is f for f in folded)]


def _spikes(key: str, s: IntArray, v: FloatArray, th: Thresholds) -> _checks.Result:
    """Upward spikes (warnings) and downward dips (info) of a loss; a burst of them is one finding.

    Spikes of one direction at most BURST_GAP points apart form a burst that names every step
    (up to 5, else the range). The largest MAX_SPIKES_PER_METRIC findings per direction are kept.
    A spike stands out from the points on both sides of it, so fewer than 3 finite points
    cannot hold one: the check says so instead of running.
    """
    if np.count_nonzero(np.isfinite(v)) < SPIKE_MIN_POINTS:
        return f"{key} has fewer than {SPIKE_MIN_POINTS} finite points"
    idx, z = spike_points(v, window=th.spike_window, threshold=th.spike_threshold)
    out: list[Anomaly] = []
    for direction, severity, word in ((1.0, "warning", "spike"), (-1.0, "info", "dip")):
        mine = np.flatnonzero(np.sign(z) == direction)
        if mine.size == 0:
            continue
        pts = idx[mine]
        group = np.cumsum(np.diff(pts, prepend=pts[0] - BURST_GAP - 1) > BURST_GAP) - 1
        ng = int(group[-1]) + 1
        peak_z = np.zeros(ng)
        np.maximum.at(peak_z, group, np.abs(z[mine]))
        order = np.argsort(-peak_z, kind="stable")
        top, extra = order[:MAX_SPIKES_PER_METRIC], max(0, ng - MAX_SPIKES_PER_METRIC)
        for rank, g in enumerate(top.tolist()):
            members = pts[group == g]
            zs = z[mine][group == g]
            peak = int(members[int(np.argmax(np.abs(zs)))])
            first, last = int(s[members[0]]), int(s[members[-1]])
            value = float(v[peak])
            base = _local_level(v, int(members[0]), int(members[-1]))
            if members.size == 1:
                msg = f"{key} {word} {fmt_num(value)} at step {fmt_step(first)}"
            else:
                msg = (f"{key} {members.size} {word}s from step {fmt_step(first)} to {fmt_step(last)}, "
                       f"peak {fmt_num(value)}")
            if rank == 0 and extra:
                msg += f"; {extra:,} smaller {word}s not listed"
            out.append(Anomaly("spike", key, first, last if members.size > 1 else None, severity, value, msg,
                               steps=_listed(s, np.asarray(members, dtype=np.intp)), baseline=base))
    return out


def _local_level(v: FloatArray, a: int, b: int, k: int = 10) -> float | None:
    """Median of the finite values among the k points before index a and after index b."""
    around = np.concatenate((v[max(0, a - k):a], v[b + 1:b + 1 + k]))
    around = around[np.isfinite(around)]
    return float(np.median(around)) if around.size else None
