"""A run's verdict (healthy / watch / broken) and what backs it: the validation trend and best checkpoint.

`verdict` reads an AnomalyReport: broken on a critical finding (NaN/inf in the loss, a
divergence still rising, sustained exploding gradients, an LR stuck at 0 to the end), watch on
any other finding, healthy only when nothing was found AND the core checks ran on enough data.
`val_trend` says whether validation still improves over its last evaluations, judged on running
medians against the metric's own noise; `best_checkpoint` is the step of its best value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from runwise.analysis._anomaly_types import SEVERITIES, Anomaly
from runwise.analysis._arrays import FloatArray, IntArray, as_series, fmt_num
from runwise.analysis.aliases import higher_is_better
from runwise.formatting import fmt_step

__all__ = ["CORE_CHECKS", "ValTrend", "best_checkpoint", "finding_label", "val_trend", "verdict"]

CORE_CHECKS = ("nan_inf", "spikes", "divergence")  # the loss checks a "healthy" verdict needs
MIN_EVALS = 4  # fewer evaluations cannot show a trend beyond their noise
MAX_WINDOW = 5  # evaluations per running median, at most
IMPROVE_K = 1.5  # the last level must beat the one a window earlier by this many level-difference sds
WORSE_K = 3.0  # ... and trail the best level by this many to be worsening
REL_FLOOR = 0.002  # relative changes below this are flat whatever the noise
LISTED = 3  # findings the verdict line names


class Report(Protocol):
    """What the verdict reads of runwise.analysis.anomalies.AnomalyReport."""

    @property
    def anomalies(self) -> tuple[Anomaly, ...]: ...
    @property
    def checks_run(self) -> tuple[str, ...]: ...
    @property
    def checks_skipped(self) -> dict[str, str]: ...
    @property
    def truncated(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ValTrend:
    """Whether a validation metric still improves; its best evaluation; one line of text."""

    state: str  # "improving" | "flat" | "worsening" | "unknown"
    text: str  # "val/loss improving over the last 3 evals; best 0.4105 @3,800"
    best_step: int | None
    best_value: float | None
    evals: int  # finite evaluations


def best_checkpoint(
    key: str, steps: IntArray, values: FloatArray, *, higher: bool | None = None
) -> tuple[int, float] | None:
    """(step, value) of the best finite value: the lowest, or the highest for accuracy-like keys.

    `higher` overrides the direction read from the name (aliases.higher_is_better). None when
    the series has no finite value. Ties go to the earliest step.
    """
    s, v = as_series(steps, values)
    finite = np.flatnonzero(np.isfinite(v))
    if finite.size == 0:
        return None
    up = higher_is_better(key) if higher is None else higher
    i = int(finite[np.argmax(v[finite]) if up else np.argmin(v[finite])])
    return int(s[i]), float(v[i])


def val_trend(key: str, steps: IntArray, values: FloatArray, *, higher: bool | None = None) -> ValTrend:
    """Is `key` still improving over its last evaluations, flat, or getting worse beyond its noise?

    The evaluations are smoothed by a running median of w = n/4 (2 to 5) points. Improving: the
    last level beats the level w evaluations earlier by more than 1.5 sds of a level difference
    (point noise from second differences, scaled by 1.25/sqrt(w)). Worsening: the last level
    trails the best level by more than 3 such sds (and 0.2%). Otherwise flat. Unknown with fewer
    than 4 finite evaluations.
    """
    s, v = as_series(steps, values)
    finite = np.isfinite(v)
    fs, fv = s[finite], v[finite]
    n = int(fv.size)
    best = best_checkpoint(key, fs, fv, higher=higher)
    best_text = f"best {fmt_num(best[1])} @{fmt_step(best[0])}" if best else "no finite value"
    if n < MIN_EVALS or best is None:
        return ValTrend("unknown", f"{key}: {n} evals, too few for a trend; {best_text}",
                        best[0] if best else None, best[1] if best else None, n)
    up = higher_is_better(key) if higher is None else higher
    y = -fv if up else fv  # lower is better from here on
    w = min(MAX_WINDOW, max(2, n // 4))
    level = np.median(np.lib.stride_tricks.sliding_window_view(y, w), axis=1)
    # point noise from second differences: a steady trend is not noise
    noise = 1.4826 * float(np.median(np.abs(np.diff(y, 2)))) / math.sqrt(6)
    diff_sd = 1.25 * noise / math.sqrt(w) * math.sqrt(2)
    last, lowest = float(level[-1]), float(np.min(level))
    earlier = float(level[-1 - w]) if level.size > w else float(level[0])
    scale = max(abs(last), abs(lowest), 1e-12)
    shown = fmt_num(-last if up else last)
    if last - lowest > max(WORSE_K * diff_sd, REL_FLOOR * scale):
        return ValTrend("worsening", f"{key} worsening: {shown} over the last {w} evals vs {best_text}",
                        best[0], best[1], n)
    if earlier - last > max(IMPROVE_K * diff_sd, REL_FLOOR * scale):
        return ValTrend("improving", f"{key} improving over the last {w} evals; {best_text}", best[0], best[1], n)
    return ValTrend("flat", f"{key} flat over the last {w} evals; {best_text}", best[0], best[1], n)


_WORDS = {
    "nan": "NaN", "inf": "inf", "divergence": "diverged", "overfitting": "overfitting", "plateau": "plateau",
    "vanishing_gradient": "vanished", "exploding_gradient": "exploded", "throughput_drop": "dropped",
}


def finding_label(a: Anomaly) -> str:
    """A finding in a few words for a verdict line: "train/loss diverged from step 5,000"."""
    where = f"from step {fmt_step(a.step)}" if a.end_step is not None else f"at step {fmt_step(a.step)}"
    if len(a.steps) > 1:  # isolated points (NaN at three steps, a burst): a "from" would read as lasting
        where = "at steps " + ", ".join(fmt_step(s) for s in a.steps[:3]) + (
            f" (+{len(a.steps) - 3} more)" if len(a.steps) > 3 else "")
    if a.kind == "spike":
        down = (a.baseline is not None and a.value is not None and a.value < a.baseline) or " dip" in a.message
        return f"{a.metric} {'dip' if down else 'spike'} {where}"
    if a.kind == "lr_schedule":
        head = a.message.split(":")[0].split(";")[0].split(", ")[0]
        return head if "step" in head else f"{head} {where}"
    return f"{a.metric} {_WORDS.get(a.kind, a.kind)} {where}"


def verdict(report: Report, *, core: Sequence[str] = CORE_CHECKS) -> tuple[str, str]:
    """("healthy" | "watch" | "broken", reason): the run in one word and one line, worst finding first.

    Broken when a finding is critical; watch for any other finding, and when no finding was made
    but a core check could not run (the reason says which and why); healthy otherwise.
    """
    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    found = sorted(report.anomalies, key=lambda a: (rank.get(a.severity, len(rank)), a.step))
    total = len(found) + report.truncated
    if found:
        word = "broken" if found[0].severity == "critical" else "watch"
        named = [finding_label(a) for a in found[:LISTED]]
        more = f"; +{total - len(named)} more" if total > len(named) else ""
        order = ", worst first" if total > 1 else ""
        return word, f"{total} finding{'s' if total != 1 else ''}{order}: {'; '.join(named)}{more}"
    missing = [c for c in core if c not in report.checks_run]
    if missing:
        why = report.checks_skipped.get(missing[0], "not run")
        return "watch", f"no findings, but {', '.join(missing)} could not run ({why})"
    ran = len(report.checks_run)
    skipped = len(report.checks_skipped)
    tail = f"; {skipped} could not run (checks_skipped)" if skipped else ""
    return "healthy", f"no findings in {ran} checks{tail}"
