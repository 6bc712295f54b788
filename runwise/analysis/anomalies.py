"""Anomaly detection on full-resolution history: NaN/inf, spikes, divergence, overfitting,
plateaus, vanishing/exploding gradients and throughput drops, each located by step.

Every check says whether it ran: a check whose metric is missing (or too short) is listed in
`AnomalyReport.checks_skipped` with the reason, so "no anomalies" only covers checks that ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runwise.analysis import _checks
from runwise.analysis._anomaly_types import KINDS, SEVERITIES, Anomaly, Thresholds
from runwise.analysis._arrays import FloatArray, IntArray, as_series, as_values, fmt_num
from runwise.analysis._robust import spike_scores
from runwise.analysis.aliases import ROLES, find_metric
from runwise.formatting import fmt_step

__all__ = [
    "CHECKS", "DEFAULT_THRESHOLDS", "KINDS", "SEVERITIES", "Anomaly", "AnomalyReport", "Thresholds",
    "detect_anomalies", "find_spikes",
]

CHECKS = (
    "nan_inf", "spikes", "divergence", "overfitting", "plateau",
    "vanishing_gradient", "exploding_gradient", "throughput_drop",
)
DEFAULT_THRESHOLDS = Thresholds()
SPIKE_MIN_POINTS = 3  # a spike needs a finite point on each side
MAX_SPIKES_PER_METRIC = 5  # per direction: the largest by robust z; the message counts the rest
_CRITICAL_ROLES = ("loss", "val_loss", "grad_norm")  # NaN/inf in these means the run is broken


@dataclass(frozen=True, slots=True)
class AnomalyReport:
    """What detect_anomalies found, which checks ran, which were skipped and why."""

    anomalies: tuple[Anomaly, ...]
    checks_run: tuple[str, ...]
    checks_skipped: dict[str, str]  # check -> reason, e.g. "no validation loss metric"
    truncated: int  # anomalies dropped by max_anomalies


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
    nan_inf (every metric), spikes (loss and val loss), divergence and plateau (loss),
    overfitting (loss and val loss), vanishing/exploding_gradient (grad norm), throughput_drop.
    `config` is the run's flattened config (declared schedules, warmup).
    Spikes keep the 5 largest per metric and direction (the largest one's message counts the
    rest); upward spikes are warnings, downward dips info. At most `max_anomalies` are kept;
    `truncated` counts the rest. Raises ValueError for malformed or unsorted series or a
    negative `max_anomalies`.
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
    grad, speed = role_keys.get("grad_norm"), role_keys.get("throughput")

    found: list[Anomaly] = []
    run: list[str] = []
    skipped: dict[str, str] = {}

    def record(check: str, result: _checks.Result) -> None:
        if isinstance(result, str):
            skipped[check] = result
        else:
            found.extend(result)
            if check not in run:
                run.append(check)

    if data:
        critical = {role_keys[r] for r in _CRITICAL_ROLES if r in role_keys}
        record("nan_inf", [a for k, (s, v) in data.items() for a in _nan_inf(k, s, v, k in critical)])
    else:
        skipped["nan_inf"] = "no metrics"

    spike_results = [_spikes(k, *data[k], th) for k in (loss, val) if k is not None]
    ran = [a for r in spike_results if not isinstance(r, str) for a in r]
    if any(not isinstance(r, str) for r in spike_results):
        record("spikes", ran)
    else:  # no loss metric, or none with enough finite points
        skipped["spikes"] = "; ".join(r for r in spike_results if isinstance(r, str)) or "no loss metric"

    for check, fn in (("divergence", _checks.check_divergence), ("plateau", _checks.check_plateau)):
        record(check, fn(loss, *data[loss], th) if loss is not None else "no loss metric")

    if loss is None or val is None:
        skipped["overfitting"] = "no loss metric" if loss is None else "no validation loss metric"
    else:
        record("overfitting", _checks.check_overfitting(loss, *data[loss], val, *data[val], th))

    for check, fn in (("vanishing_gradient", _checks.check_vanishing),
                      ("exploding_gradient", _checks.check_exploding)):
        record(check, fn(grad, *data[grad], th) if grad is not None else "no gradient norm metric")

    record("throughput_drop",
           _checks.check_throughput(speed, *data[speed], th) if speed is not None else "no throughput metric")

    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    found.sort(key=lambda a: (rank[a.severity], a.step, a.kind, a.metric))
    kept = tuple(found[:max_anomalies])
    return AnomalyReport(kept, tuple(c for c in CHECKS if c in run), skipped, len(found) - len(kept))


def _nan_inf(key: str, s: IntArray, v: FloatArray, critical: bool) -> list[Anomaly]:
    """One anomaly for the NaN points of a metric, one for its ±inf points (first step, count)."""
    out: list[Anomaly] = []
    severity = "critical" if critical else "warning"
    for kind, mask in (("nan", np.isnan(v)), ("inf", np.isinf(v))):
        where = np.flatnonzero(mask)
        if where.size == 0:
            continue
        first, last = int(where[0]), int(where[-1])
        if kind == "nan":
            what = "NaN"
        else:
            signs = {"+inf" if x > 0 else "-inf" for x in (v[first], v[last])}
            what = "/".join(sorted(signs))
        step = int(s[first])
        msg = f"{key} {what} from step {fmt_step(step)} ({where.size:,} points"
        msg += f", last at step {fmt_step(int(s[last]))})" if where.size > 1 else ")"
        end = int(s[last]) if where.size > 1 else None
        out.append(Anomaly(kind, key, step, end, severity, None, msg))
    return out


def _spikes(key: str, s: IntArray, v: FloatArray, th: Thresholds) -> _checks.Result:
    """Upward spikes (warnings) and downward dips (info) of a loss; the largest few of each.

    A spike stands out from the points on both sides of it, so fewer than 3 finite points
    cannot hold one: the check says so instead of running.
    """
    if np.count_nonzero(np.isfinite(v)) < SPIKE_MIN_POINTS:
        return f"{key} has fewer than {SPIKE_MIN_POINTS} finite points"
    idx, z = spike_scores(v, window=th.spike_window, threshold=th.spike_threshold)
    out: list[Anomaly] = []
    for direction, severity, word in ((1.0, "warning", "spike"), (-1.0, "info", "dip")):
        mine = np.flatnonzero(np.sign(z) == direction)
        top = mine[np.argsort(-np.abs(z[mine]), kind="stable")[:MAX_SPIKES_PER_METRIC]]
        extra = mine.size - top.size
        for rank, j in enumerate(top.tolist()):
            i, zi = int(idx[j]), float(z[j])
            step, value = int(s[i]), float(v[i])
            msg = f"{key} {word} {fmt_num(value)} at step {fmt_step(step)} (robust z {abs(zi):.0f})"
            if rank == 0 and extra:
                msg += f"; {extra:,} smaller {word}s not listed"
            out.append(Anomaly("spike", key, step, None, severity, value, msg))
    return out
