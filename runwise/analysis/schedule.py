"""Learning-rate schedule checks: the logged LR against the schedule the run's config declares.

`check_lr_schedule` finds four faults, each dated at its onset:

- no warmup: the config declares one (warmup_steps / warmup_ratio / warmup > 0, a scheduler
  name with "warmup"), the first LR point lies early in that warmup, yet the LR is at its peak;
- a decay that never happens: the config declares cosine / linear / polynomial / inverse-sqrt
  decay (with the steps it spans) or step decay (milestones, step_size), the run is past the
  point where the LR should have dropped clearly, and it stays at its level;
- the LR stuck at 0: a sustained stretch of zeros after it was positive (abrupt, or a tenth of
  the run), or from the start while the config sets lr > 0;
- a restart or jump: after the warmup, the LR rises above its running minimum by more than 30%
  (and beyond its own noise) while the config declares no restarts (SGDR, cyclic, one-cycle ...).

`lr_phase` says where the schedule stands at the end of the run (warmup, constant, decay,
finished). The config is the run's flattened config ("scheduler.T_0": 1000); key names follow HF
Trainer, Lightning / torch, timm, nanoGPT / Megatron and plain custom configs, matched on the
last segment of the key, case-insensitively.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runwise.analysis._anomaly_types import Anomaly, Thresholds
from runwise.analysis._arrays import FloatArray, IntArray, as_series, block_median_mad, fmt_num, true_runs
from runwise.formatting import fmt_step

__all__ = ["Phase", "Schedule", "check_lr_schedule", "lr_phase", "read_schedule"]

MIN_POINTS = 5  # finite LR points the checks need
JUMP_RATIO = 1.3  # a rise above the running minimum by this factor is a jump ...
JUMP_NOISE_K = 12.0  # ... and by this many sds of the LR's point-to-point log noise
RELEVANT = 0.02  # rises and zero-stretch edges below this fraction of the peak are ignored
ZERO = 1e-8  # an LR at or below this fraction of the peak is zero
ZERO_MIN_POINTS = 3
ZERO_ABRUPT_SPAN = 0.02  # an abrupt zero stretch must span this fraction of the run ...
ZERO_LONG_SPAN = 0.10  # ... a gradual one (a decay that reached 0 early) this fraction
FLAT = 0.95  # the LR level after the decay point at or above this fraction of the level before it: no decay
DECAY_AT = 0.3  # a continuous decay must show by this fraction of its span
FINISHED = 0.02  # at or below this fraction of the peak, the schedule is finished
PHASE_BLOCKS = 200  # the phase is read from at most this many block medians
SAMPLE = 50_000  # levels and noise are read from at most this many evenly spaced points

_PEAK_KEYS = ("max_lr", "peak_lr", "learning_rate", "lr", "base_lr", "initial_lr")
_FLOOR_KEYS = ("min_lr", "eta_min", "lr_end", "end_lr", "final_lr", "min_learning_rate", "lr_min")
_FLOOR_RATIO_KEYS = ("min_lr_ratio", "final_lr_ratio", "lr_min_ratio", "final_div_factor_ratio")
_WARMUP_STEP_KEYS = ("warmup_steps", "num_warmup_steps", "warmup_iters", "lr_warmup_steps", "lr_warmup_iters",
                     "warmup_updates", "warmup_t", "n_warmup_steps")
_WARMUP_RATIO_KEYS = ("warmup_ratio", "warmup_fraction", "lr_warmup_fraction", "warmup_pct", "pct_start")
_WARMUP_EPOCH_KEYS = ("warmup_epochs", "warmup_epoch", "lr_warmup_epochs")
_TOTAL_KEYS = ("max_steps", "total_steps", "num_training_steps", "train_steps", "max_iters", "train_iters",
               "total_iters", "num_steps", "t_total", "training_steps", "lr_decay_iters", "lr_decay_steps",
               "decay_steps", "max_iterations", "total_training_steps")
_EPOCH_KEYS = ("num_train_epochs", "max_epochs", "epochs", "n_epochs", "num_epochs", "train_epochs")
_RESTART_KEYS = ("t_0", "t_mult", "restart_interval", "cycle_length", "cycle_limit", "cycle_mul", "num_cycles",
                 "restarts", "base_momentum", "step_size_up")
_NAME_WORDS = ("sched", "lr", "learning_rate", "decay", "anneal", "policy")
_RESTART_NAME = re.compile(r"restart|sgdr|cycl|triangular|one_?cycle|1cycle|exp_range")
_WARMUP_NAME = re.compile(r"warm_?up|one_?cycle|onecycle|1cycle|noam|inverse_sqrt|rsqrt")
_CONTINUOUS_NAME = re.compile(r"cos|(^|[^a-z])linear($|[^a-z])|linear_?decay|linearlr|warmup_?linear|poly|inverse_sqrt|"
                              r"invsqrt|rsqrt|noam")
_DECAY_NAMES = (("cos", "cosine"), ("poly", "polynomial"), ("sqrt", "inverse-sqrt"), ("noam", "inverse-sqrt"))
_STEP_NAME = re.compile(r"step|milestone")
_NO_PLAN_NAME = re.compile(r"plateau|wsd|stable|trapez|constant")  # decay on a metric, or late / never


@dataclass(frozen=True, slots=True)
class Schedule:
    """What a run's config declares about its LR schedule; None / empty where it says nothing."""

    peak: float | None  # the declared (peak) learning rate
    floor: float | None  # the declared final / minimum learning rate
    names: str  # scheduler names and types, lower-case, joined ("cosine_with_restarts")
    warmup: bool  # a warmup is declared
    warmup_steps: float | None  # its length in steps, when the config gives it (or lets it be derived)
    total_steps: float | None  # the steps the schedule spans (max_steps, T_max in steps ...)
    restarts: bool  # restarts / cycles are declared (SGDR, cyclic, one-cycle)
    continuous_decay: bool  # cosine / linear / polynomial / inverse-sqrt decay is declared
    milestones: tuple[float, ...]  # steps of declared step decays (first one first)
    decay_name: str  # "cosine", "linear", "polynomial", "inverse-sqrt" for a continuous decay, else ""


@dataclass(frozen=True, slots=True)
class Phase:
    """Where the LR schedule stands at the end of a run."""

    name: str  # "warmup" | "constant" | "decay" | "finished" | "unknown"
    fraction: float | None  # the final LR as a fraction of its peak
    peak: float | None
    text: str  # one line for a summary: "lr in decay, at 12% of peak 3e-4"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        x = float(v)
    elif isinstance(v, str):
        try:
            x = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _numbers(v: Any) -> tuple[float, ...]:
    """Milestones: a list of numbers, or its text ("[30, 60]")."""
    items = v if isinstance(v, (list, tuple)) else re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", v) if isinstance(
        v, str) else []
    out = [x for x in (_number(i) for i in items) if x is not None and x > 0]
    return tuple(sorted(out))


def read_schedule(config: Mapping[str, Any] | None) -> Schedule:
    """Read the LR schedule a flattened run config declares (HF, Lightning/torch, timm, custom keys).

    Lengths given in epochs become steps only when the config also declares the run's steps and
    epochs; the run's own last step is never taken for the planned length (a run may stop early).
    """
    by_leaf: dict[str, tuple[str, Any]] = {}
    texts: list[str] = []
    for key, value in (config or {}).items():
        low = str(key).lower()
        leaf = low.rsplit(".", 1)[-1]
        by_leaf.setdefault(leaf, (str(key), value))
        if isinstance(value, str) and "warmup" not in leaf and any(w in low for w in _NAME_WORDS):
            texts.append(value.lower())

    def first(keys: tuple[str, ...], *, positive: bool = True) -> float | None:
        for k in keys:
            if k in by_leaf:
                x = _number(by_leaf[k][1])
                if x is not None and (x > 0 or not positive):
                    return x
        return None

    names = " ".join(texts)
    peak = first(_PEAK_KEYS)
    floor = first(_FLOOR_KEYS, positive=False)
    ratio = first(_FLOOR_RATIO_KEYS, positive=False)
    if floor is None and ratio is not None and peak is not None:
        floor = ratio * peak
    epochs = first(_EPOCH_KEYS)
    total = first(_TOTAL_KEYS)
    t_max = first(("t_max",))
    interval = str(by_leaf.get("interval", ("", ""))[1]).lower()
    if total is None and t_max is not None and (interval == "step" or epochs is None or t_max > epochs):
        total = t_max  # Lightning's T_max counts steps with interval "step", else epochs
    per_epoch = total / epochs if total is not None and epochs else None

    # warmup: a length in steps, a ratio of the run, epochs, or a name; an explicit 0 means none
    w_steps = first(_WARMUP_STEP_KEYS, positive=False)
    w_ratio = first(_WARMUP_RATIO_KEYS, positive=False)
    w_epochs = first(_WARMUP_EPOCH_KEYS, positive=False)
    plain = first(("warmup", "lr_warmup"), positive=False)
    if plain is not None:
        if plain < 1:
            w_ratio = plain if w_ratio is None else w_ratio
        elif w_steps is None:
            w_steps = plain
    warmup_steps: float | None = None
    declared = [x for x in (w_steps, w_ratio, w_epochs) if x is not None]
    if w_steps:
        warmup_steps = w_steps
    elif w_ratio and total:
        warmup_steps = w_ratio * total
    elif w_epochs and per_epoch:
        warmup_steps = w_epochs * per_epoch
    warmup = any(x > 0 for x in declared) if declared else bool(_WARMUP_NAME.search(names))

    restarts = bool(_RESTART_NAME.search(names)) or any(k in by_leaf for k in _RESTART_KEYS)
    no_plan = bool(_NO_PLAN_NAME.search(names))
    continuous = bool(_CONTINUOUS_NAME.search(names)) and not no_plan
    if "linearlr" in names:  # torch LinearLR: a warmup when start_factor < end_factor, else a decay
        start_f, end_f = first(("start_factor",), positive=False), first(("end_factor",), positive=False)
        start_f, end_f = 1 / 3 if start_f is None else start_f, 1.0 if end_f is None else end_f
        continuous = end_f < start_f
        if start_f < end_f and not declared:
            warmup, warmup_steps = True, first(("total_iters",))
    milestones: tuple[float, ...] = ()
    if not no_plan and (_STEP_NAME.search(names) or "milestones" in by_leaf or "step_size" in by_leaf):
        gamma = first(("gamma", "decay_rate", "lr_decay_rate"))
        if gamma is None or gamma < FLAT:
            if "milestones" in by_leaf:
                milestones = _numbers(by_leaf["milestones"][1])
            elif (size := first(("step_size", "decay_epochs", "lr_decay_epochs"))) is not None:
                milestones = (size,)
            if milestones and epochs and milestones[-1] <= epochs:  # counted in epochs
                milestones = tuple(m * per_epoch for m in milestones) if per_epoch else ()
    decay_name = ""
    if continuous:
        decay_name = next((name for word, name in _DECAY_NAMES if word in names), "linear")
    return Schedule(peak, floor, names, warmup, warmup_steps, total, restarts, continuous, milestones, decay_name)


def check_lr_schedule(
    lr_key: str,
    steps: IntArray,
    values: FloatArray,
    *,
    config: Mapping[str, Any] | None,
    thresholds: Thresholds,
) -> list[Anomaly] | str:
    """Schedule faults of the logged LR `lr_key` against `config`, or why the check cannot run.

    Findings are of kind "lr_schedule", each dated at its onset (the jump, where the LR got
    stuck, where the declared warmup or decay should have shown), with `baseline` the LR level
    expected or before and `value` the LR observed; the faults are judged on the LR and the
    config alone (`thresholds` is taken for a uniform check signature). Raises ValueError for
    malformed series.
    """
    del thresholds  # judged on the LR and the config alone
    s, v = as_series(steps, values)
    finite = np.isfinite(v)
    fs, fv = s[finite], v[finite]
    if fv.size < MIN_POINTS:
        return f"{lr_key} has fewer than {MIN_POINTS} finite points"
    if float(np.min(fv)) < 0:
        return f"{lr_key} has negative values: not a learning rate"
    sch = read_schedule(config)
    top = float(np.max(fv))
    peak = max(top, sch.peak or 0.0)
    if peak <= 0:
        if sch.peak:
            msg = f"{lr_key} is 0 for the whole run though the config sets lr {fmt_num(sch.peak)}"
            return [Anomaly("lr_schedule", lr_key, int(fs[0]), int(fs[-1]), "critical", 0.0, msg,
                            baseline=sch.peak)]
        return []
    found = _stuck_at_zero(lr_key, fs, fv, sch, peak)
    found += _no_warmup(lr_key, fs, fv, sch)
    found += _never_decays(lr_key, fs, fv, sch)
    # the LR coming back after a stretch at 0 is part of that finding ("until step ..."), not a jump
    resumed = {a.end_step for a in found if a.value == 0.0 and a.end_step is not None}
    found += [a for a in _jumps(lr_key, fs, fv, sch, peak) if _step_before(fs, a.step) not in resumed]
    found.sort(key=lambda a: a.step)
    return found


def _step_before(s: IntArray, step: int) -> int | None:
    i = int(np.searchsorted(s, step))
    return int(s[i - 1]) if i > 0 else None


def _stuck_at_zero(key: str, s: IntArray, v: FloatArray, sch: Schedule, peak: float) -> list[Anomaly]:
    zero = v <= ZERO * peak
    starts, ends = true_runs(zero)
    span = max(int(s[-1] - s[0]), 1)
    out: list[Anomaly] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        length = int(s[b] - s[a]) + (int(s[b + 1] - s[b]) if b + 1 < s.size else 0)
        if b - a + 1 < ZERO_MIN_POINTS:
            continue
        if a == 0:
            if not sch.peak or length < ZERO_ABRUPT_SPAN * span:
                continue
            before, why = sch.peak, f"from the start though the config sets lr {fmt_num(sch.peak)}"
        else:
            before = float(v[a - 1])
            abrupt = before >= RELEVANT * peak
            if length < (ZERO_ABRUPT_SPAN if abrupt else ZERO_LONG_SPAN) * span:
                continue
            why = f"after {fmt_num(before)}"
        tail = b == s.size - 1
        until = "to the end" if tail else f"until step {fmt_step(int(s[b + 1]))}"
        msg = f"{key} stuck at 0 from step {fmt_step(int(s[a]))} {until}, {why}"
        out.append(Anomaly("lr_schedule", key, int(s[a]), int(s[b]), "critical" if tail else "warning", 0.0,
                           msg, baseline=before, window=(int(s[max(a - 1, 0)]), int(s[b]))))
    return out[:5]


def _no_warmup(key: str, s: IntArray, v: FloatArray, sch: Schedule) -> list[Anomaly]:
    """A declared warmup the logged LR does not show: its first point already at the peak."""
    if not sch.warmup:
        return []
    s0 = int(s[0])
    w = sch.warmup_steps
    if w is not None:
        if s0 > 0.5 * w:  # the first point lies late in the warmup, or after it: nothing to judge
            return []
        early = s <= s[0] + 2 * w
    else:
        if s0 > 1:  # length unknown: only a log from the first optimizer step shows a warmup
            return []
        early = s <= s[0] + max(0.1 * (s[-1] - s[0]), 1)
    local = float(np.max(v[early]))
    v0 = float(v[0])
    if local <= 0 or v0 < 0.9 * local:
        return []
    expected = local * (s0 + 1) / w if w else 0.0
    declared = f"the declared {w:,.0f}-step warmup" if w else "a declared warmup"
    msg = f"{key} starts at its peak {fmt_num(v0)} at step {fmt_step(s0)}: no sign of {declared}"
    return [Anomaly("lr_schedule", key, s0, None, "warning", v0, msg, baseline=expected,
                    window=(s0, int(s[np.flatnonzero(early)[-1]])))]


def _thin(v: NDArray[Any], most: int = SAMPLE) -> NDArray[Any]:
    """At most `most` evenly spaced points of `v`, its first and last among them (levels, not spikes)."""
    if v.size <= most:
        return v
    return v[np.linspace(0, v.size - 1, most).astype(np.intp)]


def _level(v: FloatArray) -> float:
    return float(np.median(_thin(v))) if v.size else math.nan


def _never_decays(key: str, s: IntArray, v: FloatArray, sch: Schedule) -> list[Anomaly]:
    """A declared decay that should have lowered the LR clearly by now, while it stays at its level."""
    if sch.restarts:
        return []
    start = float(sch.warmup_steps or 0.0)
    if sch.continuous_decay and sch.total_steps and sch.total_steps > start:
        onset, check = start, start + DECAY_AT * (sch.total_steps - start)
        early = start + 0.1 * (sch.total_steps - start)  # the level the decay starts from
        what = f"{sch.decay_name} decay"
    elif sch.milestones:
        onset = early = sch.milestones[0]
        check = onset * 1.1 + 1  # milestones converted from epochs are approximate
        what = "step decay"
    else:
        return []
    i0, i1, i2 = np.searchsorted(s, (start, early, check))
    before = v[i0:max(i1, i0 + 1)]
    after = v[i2:]
    if after.size < 3 or before.size == 0:
        return []
    lvl_before, lvl_after = _level(before), _level(after)
    if lvl_before <= 0 or lvl_after < FLAT * lvl_before or float(v[-1]) < 0.9 * lvl_before:
        return []
    i = int(np.searchsorted(s, onset))
    i = min(i, s.size - 1)
    msg = (f"{key} never decays: still {fmt_num(float(v[-1]))} at step {fmt_step(int(s[-1]))}; "
           f"declared {what} from step {fmt_step(int(onset))}")
    return [Anomaly("lr_schedule", key, int(s[i]), int(s[-1]), "warning", float(v[-1]), msg,
                    baseline=lvl_before, window=(int(s[i]), int(s[-1])))]


def _warmup_end(v: FloatArray, sch: Schedule, noise: float) -> int:
    """Index where the initial rise (warmup) ends: the LR reaches the declared peak (+-10%), or first falls."""
    n = v.size
    end = n
    if sch.peak:  # the LR sits at the declared peak (a logged LR on another scale never does)
        reach = np.flatnonzero((v >= 0.9 * sch.peak) & (v <= 1.1 * sch.peak))
        if reach.size:
            end = int(reach[0])
    fall = np.flatnonzero(v < np.maximum.accumulate(v) * math.exp(-max(math.log(1 / 0.9), 6 * noise)))
    if fall.size:
        end = min(end, int(fall[0]))
    return end


def _jumps(key: str, s: IntArray, v: FloatArray, sch: Schedule, peak: float) -> list[Anomaly]:
    """Rises of the LR after its warmup that the declared schedule does not explain."""
    pos = np.flatnonzero(v > ZERO * peak)
    pairs = pos[:-1][np.diff(pos) == 1]  # point-to-point changes between neighbouring positive values
    if pairs.size > SAMPLE:
        pairs = _thin(pairs)
    ratios = np.abs(np.log(v[pairs + 1] / v[pairs]))
    noise = 1.4826 * float(np.median(ratios)) / math.sqrt(2) if ratios.size > 1 else 0.0
    factor = max(JUMP_RATIO, math.exp(JUMP_NOISE_K * noise))
    start = _warmup_end(v, sch, noise)
    if start >= v.size:
        return []
    events: list[tuple[int, float, float]] = []  # (index of the rise, level before, level reached)
    if sch.restarts:  # declared restarts go back up to the peak; only an overshoot is unexplained
        ceiling = factor * max(sch.peak or 0.0, float(np.max(v[:start + 1])))
        over = np.flatnonzero(v[start + 1:] > ceiling)
        if over.size:
            i = start + 1 + int(over[0])
            events.append((i, float(v[i - 1]), float(v[i])))
    else:
        i = start
        while len(events) < 6 and i < v.size - 1:
            seg = v[i:]
            low = np.minimum.accumulate(seg)
            up = np.flatnonzero((seg > factor * low) & (seg >= RELEVANT * peak))
            if up.size == 0:
                break
            c = int(up[0])
            base = float(low[c])
            trough = int(np.flatnonzero(seg[:c] <= base)[-1])  # the last point at the running minimum
            # the rise starts at the first point past the trough halfway up to where it crossed the limit
            onset = trough + 1 + int(np.argmax(seg[trough + 1:c + 1] > 0.5 * (base + float(seg[c]))))
            rise = seg[c:]
            falls = np.flatnonzero(rise < np.maximum.accumulate(rise) / factor)
            end = int(falls[0]) if falls.size else rise.size
            events.append((i + onset, base, float(np.max(rise[:end]))))
            if not falls.size:
                break
            i += c + end  # the next rise is looked for once the LR has fallen from this one's top
    if not events:
        return []
    events.sort()
    onset, before, after = events[0]
    steps = tuple(int(s[e[0]]) for e in events[:5])
    more = f"; {len(events)} rises, at steps {', '.join(fmt_step(x) for x in steps)}" if len(events) > 1 else ""
    plan = "declared restarts" if sch.restarts else "the config's schedule"
    msg = f"{key} jumps {fmt_num(before)} -> {fmt_num(after)} at step {fmt_step(int(s[onset]))}, unexplained by {plan}"
    last = events[-1][0]
    return [Anomaly("lr_schedule", key, int(s[onset]), int(s[last]) if len(events) > 1 else None, "warning",
                    after, msg + more, steps=steps if len(events) > 1 else (), baseline=before,
                    window=(int(s[max(onset - 1, 0)]), int(s[min(last + 1, s.size - 1)])))]


def lr_phase(
    steps: IntArray, values: FloatArray, config: Mapping[str, Any] | None = None, *, key: str = "lr"
) -> Phase:
    """Where the LR schedule stands at the end of the run: warmup, constant, decay, finished or unknown.

    "finished" means decayed to the declared floor, to at most 2% of the peak, or at the declared
    last step; "warmup" that the LR is still rising to its peak at the end. `key` names the LR
    in the text.
    """
    s, v = as_series(steps, values)
    finite = np.isfinite(v)
    fs, fv = s[finite], v[finite]
    if fv.size < 3:
        return Phase("unknown", None, None, f"{key} phase unknown ({fv.size} finite points)")
    if float(np.max(fv)) <= 0:
        return Phase("unknown", None, None, f"{key} is 0 throughout")
    sch = read_schedule(config)
    top = float(np.max(fv))
    if fv[-1] <= ZERO * top:  # ends at 0: abruptly (stuck, a finding of its own) or by decaying there
        j = int(np.flatnonzero(fv > ZERO * top)[-1])
        if fv[j] >= RELEVANT * top and j < fv.size - ZERO_MIN_POINTS:
            return Phase("finished", 0.0, top, f"{key} at 0 from step {fmt_step(int(fs[j + 1]))}, "
                                               f"dropped from {fmt_num(float(fv[j]))}")
    # judged on block medians, so that a noisy logged LR has a level, not its highest noise
    fv = _thin(fv)
    nb = min(PHASE_BLOCKS, fv.size // 3)
    if nb >= 2:
        size = fv.size // nb
        lv, _ = block_median_mad(fv[fv.size - nb * size:], size)
    else:
        lv = fv
    peak = float(np.max(lv))
    last = float(lv[-1])
    if peak <= 0:
        return Phase("unknown", None, None, f"{key} is 0 at the end")
    frac = last / peak
    # noise from second differences, so that a steady rise or fall is not taken for noise
    noise = 1.4826 * float(np.median(np.abs(np.diff(lv, 2)))) / math.sqrt(6) if lv.size > 3 else 0.0
    recent = float(lv[-min(lv.size, max(3, lv.size // 10))])
    rising = last >= peak - 2 * noise and last > recent + max(0.02 * peak, 3 * noise) and last > 1.05 * float(lv[0])
    floor_hit = sch.floor is not None and last <= sch.floor * 1.05 + ZERO * peak and frac < 0.5
    at_end = sch.total_steps is not None and int(fs[-1]) >= sch.total_steps * 0.995 and frac < 0.5
    p = fmt_num(peak)
    if rising:
        return Phase("warmup", frac, peak, f"{key} in warmup, still rising ({fmt_num(last)})")
    if frac <= FINISHED or floor_hit or at_end:
        return Phase("finished", frac, peak, f"{key} schedule finished: {_pct(frac)} of peak {p}")
    falling = last < recent - max(0.005 * peak, 3 * noise)
    if last >= peak - max((1 - FLAT) * peak, 4 * noise) and not falling:
        return Phase("constant", frac, peak, f"{key} constant at {fmt_num(last)}")
    return Phase("decay", frac, peak, f"{key} in decay, at {_pct(frac)} of peak {p}")


def _pct(frac: float) -> str:
    pct = frac * 100
    if pct == 0:
        return "0%"
    return f"{pct:.0f}%" if pct >= 10 else f"{pct:.1g}%" if pct >= 0.1 else "<0.1%"
