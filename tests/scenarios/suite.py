"""Labelled training-run scenarios as numpy arrays: planted anomalies with their steps, and healthy runs.

Every scenario is a run as a training script would log it: a loss with multiplicative noise
(1-10 %, Student-t tails clipped at 4 sigma, plus a slow wobble), a learning rate that follows
the schedule its config declares, a noisy gradient norm that starts high and settles, a
throughput, and often a validation loss on its own sparser cadence. The loss falls with the
learning rate actually applied (the cumulative LR), plus a term proportional to the current LR,
so step decay drops the loss, SGDR restarts lift it, and an LR stuck at 0 freezes it.

Labels name the kind, the metric and the step a detector must report (see Label). A scenario
without labels is healthy: any finding on it is a false alarm. Everything is deterministic:
each scenario's noise is seeded from its name.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["SCENARIOS", "Label", "Scenario", "by_name", "healthy", "anomalous"]

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Label:
    """One planted anomaly a detector must find: kind, metric, and where.

    Point or burst (lasting False): a finding matches when one of its steps lies in
    [step, end_step or step]. Lasting (dated at onset): |finding.step - step| <= tolerance.
    `also` lists other kinds that count too (NaN from step k may be reported as divergence).
    """

    kind: str
    metric: str
    step: int
    end_step: int | None = None
    lasting: bool = False
    tolerance: int = 0
    also: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Scenario:
    """One run: its config, its metrics (key -> (int64 steps ascending, float64 values)) and labels."""

    name: str
    length: int
    config: dict[str, Any]
    metrics: dict[str, tuple[IntArray, FloatArray]]
    labels: tuple[Label, ...]
    note: str

    @property
    def healthy(self) -> bool:
        return not self.labels


# ---------------------------------------------------------------------------------------------
# metric names, as real projects spell them


@dataclass(frozen=True)
class Names:
    loss: str = "loss"
    val: str = "val/loss"
    grad: str = "grad_norm"
    lr: str = "lr"
    speed: str = "samples_per_sec"


PLAIN = Names()
HF = Names("train/loss", "eval/loss", "train/grad_norm", "learning_rate", "samples_per_sec")
LIGHTNING = Names("train_loss_step", "val_loss_epoch", "gradient_norm", "lr-AdamW", "throughput")
CUSTOM = Names("training_loss", "validation_loss", "gradient_norm", "learning_rate", "tokens_per_s")
MIXED = Names("loss", "eval/loss", "grad_norm", "lr", "tokens_per_s")


# ---------------------------------------------------------------------------------------------
# building blocks


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _tnoise(rng: np.random.Generator, n: int, df: float = 5.0, clip: float = 4.0) -> FloatArray:
    """Unit-variance Student-t noise with its tails clipped: heavier shoulders than Gaussian, no freak outliers."""
    t = rng.standard_t(df, n) / np.sqrt(df / (df - 2.0))
    return np.asarray(np.clip(t, -clip, clip), dtype=np.float64)


def _wobble(rng: np.random.Generator, x: FloatArray, length: int, knots: int = 24) -> FloatArray:
    """A slow, smooth random wobble of unit scale (data order, shuffling): random knots, linearly joined."""
    kx = np.linspace(0.0, float(length), knots)
    return np.interp(x, kx, rng.normal(0.0, 1.0, knots))


def lr_curve(
    x: FloatArray,
    *,
    peak: float,
    length: int,
    schedule: str = "cosine",
    warmup: int = 0,
    floor: float = 0.0,
    milestones: tuple[int, ...] = (),
    gamma: float = 0.1,
    t0: int = 0,
    t_mult: int = 1,
    cycles: int = 1,
    pct_start: float = 0.3,
) -> FloatArray:
    """The LR a scheduler gives at steps `x`: linear warmup, then the named decay down to floor x peak."""
    span = max(length - warmup, 1)
    p = np.clip((x - warmup) / span, 0.0, 1.0)
    cos = 0.5 * (1.0 + np.cos(np.pi * p))
    if schedule == "constant":
        base = np.full_like(x, peak)
    elif schedule == "cosine":
        base = peak * (floor + (1.0 - floor) * cos)
    elif schedule == "linear":
        base = peak * (1.0 - (1.0 - floor) * p)
    elif schedule == "step":
        drops = np.searchsorted(np.asarray(milestones, dtype=np.float64), x, side="right")
        base = peak * np.power(gamma, drops, dtype=np.float64)
    elif schedule == "sgdr":  # torch CosineAnnealingWarmRestarts(T_0, T_mult)
        t = np.maximum(x - warmup, 0.0)
        if t_mult == 1:
            pos = (t % t0) / t0
        else:
            n = np.floor(np.log(1.0 + t / t0 * (t_mult - 1)) / np.log(t_mult))
            start = t0 * (t_mult**n - 1) / (t_mult - 1)
            pos = (t - start) / (t0 * t_mult**n)
        base = peak * (floor + (1.0 - floor) * 0.5 * (1.0 + np.cos(np.pi * pos)))
    elif schedule == "hf_restarts":  # transformers get_cosine_with_hard_restarts_schedule_with_warmup
        base = np.where(p >= 1.0, 0.0, peak * 0.5 * (1.0 + np.cos(np.pi * ((cycles * p) % 1.0))))
    elif schedule == "inverse_sqrt":
        base = peak * np.sqrt(max(warmup, 1) / np.maximum(x, max(warmup, 1)))
    elif schedule == "one_cycle":  # torch OneCycleLR: cosine up over pct_start, cosine down after
        up = pct_start * length
        rise = np.clip(x / up, 0.0, 1.0)
        fall = np.clip((x - up) / (length - up), 0.0, 1.0)
        lo, end = peak / 25.0, peak / 1e4
        base = np.where(
            x < up,
            lo + (peak - lo) * 0.5 * (1.0 - np.cos(np.pi * rise)),
            end + (peak - end) * 0.5 * (1.0 + np.cos(np.pi * fall)),
        )
        return base
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    if warmup > 0:
        base = np.where(x < warmup, peak * x / warmup, base)
    return base


@dataclass
class Draft:
    """A run being built: its arrays can still be edited before it becomes a Scenario."""

    name: str
    length: int
    config: dict[str, Any]
    names: Names
    rng: np.random.Generator
    metrics: dict[str, tuple[IntArray, FloatArray]] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)
    clean_loss: FloatArray | None = None

    def steps(self, key: str) -> IntArray:
        return self.metrics[key][0]

    def values(self, key: str) -> FloatArray:
        return self.metrics[key][1]

    def index(self, key: str, frac: float) -> int:
        """Index of the logged point of `key` nearest to frac x length."""
        return int(np.argmin(np.abs(self.steps(key) - frac * self.length)))

    def step(self, key: str, frac: float) -> int:
        return int(self.steps(key)[self.index(key, frac)])

    def tol(self, frac: float = 0.02, key: str | None = None, intervals: int = 2) -> int:
        """Tolerance of a lasting label: frac of the span, at least `intervals` logging intervals of `key`."""
        s = self.steps(key or self.names.loss)
        every = int(np.median(np.diff(s))) if s.size > 1 else 1
        return max(int(round(frac * self.length)), intervals * every)

    def done(self, note: str) -> Scenario:
        for key, (s, v) in self.metrics.items():
            if s.dtype != np.int64 or v.dtype != np.float64 or s.shape != v.shape or np.any(np.diff(s) <= 0):
                raise ValueError(f"{self.name}: malformed metric {key}")
        keys = set(self.metrics)
        for lab in self.labels:
            if lab.metric not in keys:
                raise ValueError(f"{self.name}: label on unlogged metric {lab.metric}")
            if not lab.lasting and lab.step not in set(self.steps(lab.metric).tolist()):
                raise ValueError(f"{self.name}: label step {lab.step} is not a logged step of {lab.metric}")
        loss_steps = self.metrics[self.names.loss][0] if self.names.loss in self.metrics else None
        if "logging_steps" in self.config and loss_steps is not None and loss_steps.size > 1:
            self.config["logging_steps"] = int(loss_steps[1] - loss_steps[0])  # HF: the cadence actually logged
        if "logging_steps" in self.config and self.names.val in self.metrics:
            self.config.setdefault("eval_steps", int(self.metrics[self.names.val][0][0]))
        # each metric its own read-only arrays: the suite is shared by every test that imports it
        metrics = {}
        for key, (s, v) in self.metrics.items():
            s, v = s.copy(), v.copy()
            s.flags.writeable = v.flags.writeable = False
            metrics[key] = (s, v)
        return Scenario(self.name, self.length, self.config, metrics, tuple(self.labels), note)


def draft(
    name: str,
    length: int,
    config: dict[str, Any],
    *,
    every: int = 1,
    start: int = 0,
    names: Names = PLAIN,
    sched: dict[str, Any] | None = None,
    lr_edit: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
    l0: float = 4.0,
    lfloor: float = 1.6,
    tau: float = 0.05,
    alpha: float = 0.8,
    lr_term: float = 0.12,
    noise: float = 0.03,
    wobble: float = 0.5,
    freeze: tuple[float, float] | None = None,
    val_every: int | None = None,
    val_noise: float = 0.01,
    val_gap: float = 0.06,
    grad: float = 0.8,
    grad_start: float = 6.0,
    grad_noise: float = 0.15,
    speed: float | None = 1200.0,
    speed_noise: float = 0.02,
    with_grad: bool = True,
    with_lr: bool = True,
    extra: dict[str, Callable[[Draft, IntArray], FloatArray]] | None = None,
) -> Draft:
    """A healthy run's arrays, built from its schedule; plant anomalies on the returned Draft.

    The clean loss is lfloor + (l0 - lfloor) * (1 + c / (tau x length)) ** -alpha + lr_term x lfloor x lr/peak,
    where c is the cumulative LR in steps at peak LR (zero inside `freeze`, a (from, to) fraction of
    the length). Loss noise is `noise` (relative) plus a slow wobble of `wobble` x noise; validation is the
    clean loss x (1 + val_gap, growing slowly) with `val_noise`, every `val_every` steps.
    """
    rng = _rng(name)
    sched = dict(sched or {"schedule": "constant", "peak": 3e-4})
    peak = float(sched["peak"])
    # steps from 0 (wandb's own counter), or from `start` up to and including `length` (HF's logging_steps)
    s = np.arange(start, length + (1 if start else 0), every, dtype=np.int64)
    x = s.astype(np.float64)
    lr = lr_curve(x, length=length, **sched)
    if lr_edit is not None:
        lr = lr_edit(x, lr)
    applied = lr / peak
    if freeze is not None:
        applied = np.where((x >= freeze[0] * length) & (x < freeze[1] * length), 0.0, applied)
    dt = np.diff(x, prepend=x[0] - every)
    cum = np.cumsum(applied * dt)
    clean = lfloor + (l0 - lfloor) * (1.0 + cum / (tau * length)) ** -alpha + lr_term * lfloor * lr / peak
    loss = clean * (1.0 + noise * _tnoise(rng, s.size) + wobble * noise * _wobble(rng, x, length))
    d = Draft(name, length, config, names, rng, clean_loss=clean)
    d.metrics[names.loss] = (s, loss)
    if val_every:
        vs = np.arange(val_every, length + 1, val_every, dtype=np.int64)
        vs = vs[vs <= s[-1]]
        vc = np.interp(vs.astype(np.float64), x, clean) * (1.0 + val_gap * (1.0 + 0.5 * vs / length))
        d.metrics[names.val] = (vs, vc * (1.0 + val_noise * _tnoise(rng, vs.size, df=8.0, clip=3.0)))
    if with_grad:
        gmult = 1.0 + grad_start * np.exp(-x / max(0.02 * length, 5.0))
        g = grad * gmult * (1.0 + 0.3 * x / length) * np.exp(grad_noise * _tnoise(rng, s.size))
        d.metrics[names.grad] = (s, g)
    if with_lr:
        d.metrics[names.lr] = (s, lr)
    if speed is not None:
        d.metrics[names.speed] = (s, speed * (1.0 + speed_noise * _tnoise(rng, s.size, df=8.0, clip=3.0)))
    for key, fn in (extra or {}).items():
        d.metrics[key] = (s, fn(d, s))
    return d


def hf_config(
    lr: float, steps: int, *, scheduler: str = "linear", warmup_steps: int = 0, warmup_ratio: float = 0.0,
    seed: int = 42, **more: Any,
) -> dict[str, Any]:
    """A Hugging Face Trainer config (TrainingArguments, flat) with a model section."""
    cfg: dict[str, Any] = {
        "learning_rate": lr, "lr_scheduler_type": scheduler, "warmup_steps": warmup_steps,
        "warmup_ratio": warmup_ratio, "max_steps": steps, "per_device_train_batch_size": 16,
        "gradient_accumulation_steps": 1, "weight_decay": 0.01, "adam_beta1": 0.9, "adam_beta2": 0.999,
        "logging_steps": 10, "seed": seed, "model": {"name": "distilroberta-base", "dropout": 0.1},
    }
    cfg.update(more)
    return cfg


def torch_config(lr: float, *, scheduler: dict[str, Any] | None = None, seed: int = 0, **more: Any) -> dict[str, Any]:
    """A nested config as Lightning / hydra projects write it: optimizer, scheduler, data, trainer."""
    cfg: dict[str, Any] = {
        "optimizer": {"name": "AdamW", "lr": lr, "weight_decay": 0.05, "betas": [0.9, 0.95]},
        "data": {"batch_size": 64, "num_workers": 8},
        "trainer": {"precision": "bf16-mixed", "gradient_clip_val": 1.0},
        "seed": seed,
    }
    if scheduler is not None:
        cfg["scheduler"] = scheduler
    cfg.update(more)
    return cfg


# ---------------------------------------------------------------------------------------------
# planting anomalies (each edits the draft's arrays and returns the label it planted)


def spike(d: Draft, key: str, frac: float, factor: float, *, grad_factor: float | None = None, note: str = "") -> Label:
    """One point of `key` multiplied by `factor` (> 1 up, < 1 down); the grad norm can jump with it."""
    i = d.index(key, frac)
    d.values(key)[i] *= factor
    if grad_factor is not None and d.names.grad in d.metrics:
        gs = d.steps(d.names.grad)
        j = int(np.searchsorted(gs, d.steps(key)[i]))
        d.values(d.names.grad)[j] *= grad_factor
    return Label("spike", key, int(d.steps(key)[i]), note=note or ("spike" if factor > 1 else "dip"))


def burst(
    d: Draft, key: str, frac: float, factors: tuple[float, ...], offsets: tuple[int, ...], note: str = ""
) -> Label:
    """A few spikes (or dips) at logged indices i + offsets: one label from the first to the last."""
    i = d.index(key, frac)
    idx = [i + o for o in offsets]
    for j, f in zip(idx, factors, strict=True):
        d.values(key)[j] *= f
    s = d.steps(key)
    return Label("spike", key, int(s[idx[0]]), int(s[idx[-1]]), note=note or "burst")


def ramp_from(
    x: FloatArray, x0: float, length: int, *, sudden: bool, height: float, width: float = 0.004
) -> FloatArray:
    """Multiplier 1 before x0, then rising: quickly to 1 + height (sudden) or linearly to it at the end."""
    t = np.maximum(x - x0, 0.0)
    if sudden:
        up = height * (1.0 - np.exp(-t / (width * length))) + 0.3 * height * t / max(length - x0, 1.0)
    else:
        up = height * t / max(length - x0, 1.0)
    return 1.0 + up


# ---------------------------------------------------------------------------------------------
# the scenarios


def _anomalous() -> list[Scenario]:
    out: list[Scenario] = []
    cos = {"schedule": "cosine", "peak": 3e-4, "warmup": 0, "floor": 0.1}

    # --- one-step spikes and dips -------------------------------------------------------------
    d = draft("spike_up_short", 2000, torch_config(3e-4, scheduler={"name": "CosineAnnealingLR", "T_max": 2000,
              "eta_min": 3e-5}), every=2, sched=cos, val_every=200)
    d.labels.append(spike(d, "loss", 0.62, 2.6, grad_factor=9.0, note="loss and grad norm jump at one step"))
    out.append(d.done("2k steps, a one-step loss spike x2.6 with the grad norm x9 at the same step"))

    d = draft("spike_up_long", 200_000, hf_config(2e-4, 200_000, scheduler="cosine", warmup_steps=2000),
              every=100, start=100, names=HF, sched={"schedule": "cosine", "peak": 2e-4, "warmup": 2000},
              val_every=5000, l0=9.0, lfloor=2.2, tau=0.02)
    d.labels.append(spike(d, HF.loss, 0.58, 1.9, grad_factor=5.0))
    out.append(d.done("200k steps logged every 50, one train/loss spike x1.9 late in a cosine schedule"))

    d = draft("dip_down_short", 5000, torch_config(1e-3, scheduler={"name": "constant"}), every=5,
              sched={"schedule": "constant", "peak": 1e-3}, names=MIXED, noise=0.02)
    d.labels.append(spike(d, "loss", 0.47, 0.45, note="a one-step dip: a batch of easy or duplicated samples"))
    out.append(d.done("5k steps, one downward loss dip to 0.45x"))

    d = draft("dip_down_sparse", 20_000, hf_config(5e-5, 20_000, scheduler="linear", warmup_steps=500),
              every=20, start=20, names=CUSTOM, sched={"schedule": "linear", "peak": 5e-5, "warmup": 500},
              val_every=1000, l0=2.8, lfloor=0.9, noise=0.04)
    d.labels.append(spike(d, CUSTOM.loss, 0.71, 0.35))
    out.append(d.done("20k steps every 10, training_loss dips to 0.35x at one logged step"))

    d = draft("spike_up_lightning", 50_000, torch_config(1e-3, scheduler={"name": "CosineAnnealingLR", "T_max": 50_000,
              "interval": "step"}), every=50, start=50, names=LIGHTNING, sched={"schedule": "cosine", "peak": 1e-3},
              val_every=2500, noise=0.05)
    d.labels.append(spike(d, LIGHTNING.loss, 0.33, 2.5, grad_factor=4.0))
    out.append(d.done("Lightning cadence (every 50 steps), one train_loss_step spike x2.5"))

    d = draft("spike_up_and_dip", 12_000, hf_config(1e-4, 12_000, scheduler="cosine", warmup_steps=600),
              every=10, names=HF, sched={"schedule": "cosine", "peak": 1e-4, "warmup": 600}, val_every=1000)
    d.labels.append(spike(d, HF.loss, 0.3, 2.2, grad_factor=3.0))
    d.labels.append(spike(d, HF.loss, 0.75, 0.4))
    out.append(d.done("12k steps, a spike up at 30% and a dip down at 75% of the run"))

    d = draft("spike_noisy_run", 8000, torch_config(3e-4), every=8, sched=cos, noise=0.08, names=PLAIN)
    d.labels.append(spike(d, "loss", 0.55, 3.2, grad_factor=6.0))
    out.append(d.done("noisy small-batch run (8% noise), one spike x3.2"))

    # --- bursts -----------------------------------------------------------------------------
    d = draft("burst_up", 10_000, torch_config(3e-4, scheduler={"name": "CosineAnnealingLR", "T_max": 10_000}),
              every=8, sched=cos, val_every=500)
    d.labels.append(burst(d, "loss", 0.44, (2.1, 2.8, 1.9, 2.4), (0, 2, 3, 6)))
    out.append(d.done("four loss spikes within 12 steps"))

    d = draft("burst_down", 8000, torch_config(3e-4), every=8, sched=cos, names=MIXED, val_every=400)
    d.labels.append(burst(d, "loss", 0.52, (0.45, 0.4, 0.5), (0, 3, 5), note="three dips within 10 steps"))
    out.append(d.done("a burst of three downward loss dips"))

    d = draft("burst_down_hf", 30_000, hf_config(3e-5, 30_000, scheduler="linear", warmup_ratio=0.05),
              every=30, start=30, names=HF, sched={"schedule": "linear", "peak": 3e-5, "warmup": 1500},
              val_every=1500, l0=3.2, lfloor=1.1)
    d.labels.append(burst(d, HF.loss, 0.66, (0.5, 0.42, 0.55, 0.45), (0, 1, 3, 4)))
    out.append(d.done("HF cadence, four train/loss dips in 50 steps"))

    d = draft("burst_up_long", 120_000, torch_config(6e-4, scheduler={"name": "cosine", "warmup_steps": 2000}),
              every=100, names=CUSTOM, sched={"schedule": "cosine", "peak": 6e-4, "warmup": 2000, "floor": 0.1},
              val_every=4000, l0=10.0, lfloor=2.5, tau=0.02)
    d.labels.append(burst(d, CUSTOM.loss, 0.37, (1.7, 2.0, 1.8), (0, 2, 4)))
    out.append(d.done("120k steps every 40, three training_loss spikes in 160 steps"))

    # --- NaN and inf --------------------------------------------------------------------------
    d = draft("nan_points", 6000, torch_config(3e-4), every=6, sched=cos, val_every=500)
    v = d.values("loss")
    for frac in (0.21, 0.48, 0.83):
        i = d.index("loss", frac)
        v[i] = np.nan
        d.labels.append(Label("nan", "loss", int(d.steps("loss")[i]), note="isolated NaN, training went on"))
    out.append(d.done("three isolated NaN losses at separate steps"))

    d = draft("inf_grad_points", 10_000, hf_config(2e-5, 10_000, scheduler="linear", warmup_steps=300,
              fp16=True), every=10, start=10, names=HF, sched={"schedule": "linear", "peak": 2e-5, "warmup": 300})
    g = d.values(HF.grad)
    for frac in (0.34, 0.71):
        i = d.index(HF.grad, frac)
        g[i] = np.inf
        d.labels.append(Label("inf", HF.grad, int(d.steps(HF.grad)[i]), note="fp16 overflow: one inf grad norm"))
    out.append(d.done("fp16 run, two isolated inf gradient norms"))

    d = draft("nan_from_k", 15_000, torch_config(1e-3, scheduler={"name": "cosine"}), every=15,
              sched={"schedule": "cosine", "peak": 1e-3, "floor": 0.05}, val_every=1500)
    i = d.index("loss", 0.68)
    k = int(d.steps("loss")[i])
    d.values("loss")[i:] = np.nan
    d.values("grad_norm")[i:] = np.nan
    vs = d.steps("val/loss")
    d.values("val/loss")[vs >= k] = np.nan
    d.labels.append(Label("nan", "loss", k, None, lasting=True, tolerance=d.tol(0.01), also=("divergence",),
                          note="NaN from step k to the end"))
    out.append(d.done("loss, grad norm and val loss NaN from 68% of the run to the end"))

    d = draft("nan_from_k_hf", 40_000, hf_config(1e-4, 40_000, scheduler="cosine", warmup_steps=1000), every=40,
              start=40, names=HF, sched={"schedule": "cosine", "peak": 1e-4, "warmup": 1000}, val_every=2000)
    i = d.index(HF.loss, 0.41)
    k = int(d.steps(HF.loss)[i])
    d.values(HF.loss)[i:] = np.nan
    d.labels.append(Label("nan", HF.loss, k, None, lasting=True, tolerance=d.tol(0.01), also=("divergence",)))
    out.append(d.done("train/loss NaN from 41% to the end (grad norm still finite: a bad loss reduction)"))

    d = draft("inf_loss_points", 3000, torch_config(3e-4), every=3, sched=cos, names=CUSTOM)
    for frac in (0.15, 0.5):
        i = d.index(CUSTOM.loss, frac)
        d.values(CUSTOM.loss)[i] = np.inf
        d.labels.append(Label("inf", CUSTOM.loss, int(d.steps(CUSTOM.loss)[i])))
    i = d.index(CUSTOM.loss, 0.77)
    d.values(CUSTOM.loss)[i] = np.nan
    d.labels.append(Label("nan", CUSTOM.loss, int(d.steps(CUSTOM.loss)[i])))
    out.append(d.done("training_loss +inf at two steps and NaN at a third"))

    # --- divergence ---------------------------------------------------------------------------
    d = draft("divergence_sudden", 10_000, torch_config(1e-3), every=10,
              sched={"schedule": "cosine", "peak": 1e-3, "floor": 0.1}, val_every=500)
    x0 = d.step("loss", 0.55)
    for key in ("loss", "grad_norm"):
        s, v = d.metrics[key]
        v *= ramp_from(s.astype(np.float64), x0, d.length, sudden=True, height=3.0 if key == "loss" else 4.0)
    vs, vv = d.metrics["val/loss"]
    vv *= ramp_from(vs.astype(np.float64), x0, d.length, sudden=True, height=3.0)
    d.labels.append(Label("divergence", "loss", x0, None, lasting=True, tolerance=d.tol(0.02)))
    out.append(d.done("loss climbs to 4x within ~1% of the run from 55% and keeps rising"))

    d = draft("divergence_gradual", 40_000, hf_config(5e-4, 40_000, scheduler="constant_with_warmup",
              warmup_steps=1000), every=40, names=CUSTOM, sched={"schedule": "constant", "peak": 5e-4, "warmup": 1000},
              val_every=2000)
    x0 = d.step(CUSTOM.loss, 0.6)
    s, v = d.metrics[CUSTOM.loss]
    v *= ramp_from(s.astype(np.float64), x0, d.length, sudden=False, height=2.0)
    vs, vv = d.metrics[CUSTOM.val]
    vv *= ramp_from(vs.astype(np.float64), x0, d.length, sudden=False, height=2.0)
    d.labels.append(Label("divergence", CUSTOM.loss, x0, None, lasting=True, tolerance=d.tol(0.05),
                          note="linear climb to 3x from 60%"))
    out.append(d.done("constant LR, the loss turns and climbs linearly to 3x from 60% of the run"))

    d = draft("divergence_sudden_long", 150_000, torch_config(8e-4, scheduler={"name": "cosine", "warmup_steps": 3000}),
              every=100, names=HF, sched={"schedule": "cosine", "peak": 8e-4, "warmup": 3000, "floor": 0.1},
              val_every=5000, l0=10.5, lfloor=2.4, tau=0.02)
    x0 = d.step(HF.loss, 0.34)
    for key in (HF.loss, HF.grad):
        s, v = d.metrics[key]
        v *= ramp_from(s.astype(np.float64), x0, d.length, sudden=True, height=2.5)
    d.labels.append(Label("divergence", HF.loss, x0, None, lasting=True, tolerance=d.tol(0.02)))
    out.append(d.done("150k steps, the loss jumps to 3.5x at 34% and never comes back"))

    d = draft("divergence_gradual_lightning", 60_000, torch_config(3e-3, scheduler={"name": "constant"}), every=50,
              start=50, names=LIGHTNING, sched={"schedule": "constant", "peak": 3e-3}, val_every=3000, noise=0.04)
    x0 = d.step(LIGHTNING.loss, 0.42)
    s, v = d.metrics[LIGHTNING.loss]
    v *= ramp_from(s.astype(np.float64), x0, d.length, sudden=False, height=1.6)
    s, v = d.metrics[LIGHTNING.grad]
    v *= ramp_from(s.astype(np.float64), x0, d.length, sudden=False, height=1.5)
    d.labels.append(Label("divergence", LIGHTNING.loss, x0, None, lasting=True, tolerance=d.tol(0.05)))
    out.append(d.done("LR too high: train_loss_step creeps up to 2.6x from 42% of the run"))

    # --- overfitting --------------------------------------------------------------------------
    def overfit(d: Draft, frac: float, rise: float) -> int:
        vs, vv = d.metrics[d.names.val]
        j = int(np.argmin(np.abs(vs - frac * d.length)))
        x = vs.astype(np.float64)
        base = float(np.median(vv[max(j - 1, 0): j + 2]))
        trend = base * (1.0 + rise * (x[j:] - x[j]) / (x[-1] - x[j]))
        vv[j:] = trend * (1.0 + 0.01 * d.rng.standard_normal(trend.size))
        return int(vs[j])

    d = draft("overfit_sparse_val", 20_000, torch_config(1e-3, scheduler={"name": "cosine"}), every=20,
              sched={"schedule": "cosine", "peak": 1e-3, "floor": 0.02}, val_every=500, lfloor=0.4, l0=2.5, tau=0.03)
    k = overfit(d, 0.45, 0.8)
    d.labels.append(Label("overfitting", "val/loss", k, None, lasting=True, tolerance=d.tol(0.04, "val/loss"),
                          note="val rises from 45% while train keeps falling"))
    out.append(d.done("val/loss every 500 steps turns up at 45% and ends 1.8x its minimum; train still falls"))

    d = draft("overfit_epochs_lightning", 30_000, torch_config(1e-3, scheduler={"name": "CosineAnnealingLR",
              "T_max": 30}, max_epochs=30), every=50, start=50, names=LIGHTNING,
              sched={"schedule": "cosine", "peak": 1e-3}, val_every=1000, lfloor=0.3, l0=2.3, tau=0.04)
    k = overfit(d, 0.4, 1.2)
    d.labels.append(Label("overfitting", LIGHTNING.val, k, None, lasting=True,
                          tolerance=d.tol(0.04, LIGHTNING.val)))
    out.append(d.done("30 epochs, val_loss_epoch once per epoch rises from epoch 12 to 2.2x"))

    d = draft("overfit_hf", 10_000, hf_config(5e-5, 10_000, scheduler="linear", warmup_steps=200), every=10, start=10,
              names=HF, sched={"schedule": "linear", "peak": 5e-5, "warmup": 200}, val_every=250, lfloor=0.2, l0=1.8,
              val_noise=0.015)
    k = overfit(d, 0.5, 0.9)
    d.labels.append(Label("overfitting", HF.val, k, None, lasting=True, tolerance=d.tol(0.04, HF.val)))
    out.append(d.done("fine-tune, eval/loss every 250 steps rises from the middle of the run"))

    d = draft("overfit_custom", 50_000, torch_config(3e-4, scheduler={"name": "cosine"}), every=50,
              names=CUSTOM, sched={"schedule": "cosine", "peak": 3e-4, "floor": 0.1}, val_every=2500,
              lfloor=0.5, l0=3.0)
    k = overfit(d, 0.55, 0.6)
    d.labels.append(Label("overfitting", CUSTOM.val, k, None, lasting=True, tolerance=d.tol(0.04, CUSTOM.val)))
    out.append(d.done("validation_loss every 2,500 steps rises 60% from 55% of the run"))

    # --- plateau (flat loss while the LR is still high) ---------------------------------------
    d = draft("plateau_constant_lr", 20_000, torch_config(3e-4, scheduler={"name": "constant"}), every=20,
              sched={"schedule": "constant", "peak": 3e-4}, l0=6.0, lfloor=2.0, tau=0.4, alpha=2.0, wobble=0.1,
              freeze=(0.4, 1.01), val_every=1000)
    d.labels.append(Label("plateau", "loss", d.step("loss", 0.4), None, lasting=True, tolerance=d.tol(0.04)))
    out.append(d.done("constant LR, the loss stops improving at 40% and stays flat to the end"))

    d = draft("plateau_mid_cosine", 30_000, hf_config(3e-4, 30_000, scheduler="cosine", warmup_steps=500), every=30,
              names=HF, sched={"schedule": "cosine", "peak": 3e-4, "warmup": 500}, l0=6.0, lfloor=2.0, tau=0.3,
              alpha=2.0, lr_term=0.02, wobble=0.1, freeze=(0.22, 0.5), val_every=1500)
    d.labels.append(Label("plateau", HF.loss, d.step(HF.loss, 0.22), d.step(HF.loss, 0.5), lasting=True,
                          tolerance=d.tol(0.04)))
    out.append(d.done("cosine LR still above half its peak: the loss is flat from 22% to 50%, then improves again"))

    d = draft("plateau_lightning", 40_000, torch_config(1e-3, scheduler={"name": "constant"}), every=50, start=50,
              names=LIGHTNING, sched={"schedule": "constant", "peak": 1e-3}, l0=6.0, lfloor=2.0, tau=0.4, alpha=2.0,
              wobble=0.1, freeze=(0.35, 1.01), val_every=2000, noise=0.04)
    d.labels.append(Label("plateau", LIGHTNING.loss, d.step(LIGHTNING.loss, 0.35), None, lasting=True,
                          tolerance=d.tol(0.04)))
    out.append(d.done("Lightning cadence, constant LR, train_loss_step flat from 35%"))

    # --- gradients ----------------------------------------------------------------------------
    d = draft("vanishing_grad", 5000, torch_config(1e-2, scheduler={"name": "constant"}, model={"activation": "sigmoid",
              "depth": 48}), every=5, sched={"schedule": "constant", "peak": 1e-2}, tau=0.3, alpha=1.0,
              freeze=(0.4, 1.01))
    x0 = d.step("grad_norm", 0.4)
    s, g = d.metrics["grad_norm"]
    x = s.astype(np.float64)
    g *= np.where(x < x0, 1.0, np.maximum(np.exp(-(x - x0) / (0.006 * d.length)), 1e-10))
    d.labels.append(Label("vanishing_gradient", "grad_norm", x0, None, lasting=True, tolerance=d.tol(0.03)))
    out.append(d.done("deep sigmoid net: the grad norm collapses to ~1e-10 from 40% and the loss freezes"))

    d = draft("vanishing_grad_hf", 30_000, hf_config(1e-4, 30_000, scheduler="linear", warmup_steps=1000), every=25,
              names=CUSTOM, sched={"schedule": "linear", "peak": 1e-4, "warmup": 1000}, tau=0.3, freeze=(0.63, 1.01),
              val_every=1500)
    x0 = d.step(CUSTOM.grad, 0.63)
    s, g = d.metrics[CUSTOM.grad]
    x = s.astype(np.float64)
    g *= np.where(x < x0, 1.0, np.maximum(np.exp(-(x - x0) / (0.004 * d.length)), 3e-11))
    d.labels.append(Label("vanishing_gradient", CUSTOM.grad, x0, None, lasting=True, tolerance=d.tol(0.03)))
    out.append(d.done("gradient_norm collapses to ~1e-10 from 63% of the run"))

    d = draft("exploding_grad", 8000, torch_config(1e-3), every=8, sched={"schedule": "constant", "peak": 1e-3},
              val_every=400)
    x0 = d.step("grad_norm", 0.5)
    s, g = d.metrics["grad_norm"]
    x = s.astype(np.float64)
    g *= np.exp(np.clip(x - x0, 0.0, None) / (0.006 * d.length)).clip(max=3000.0)
    s, v = d.metrics["loss"]
    v *= ramp_from(s.astype(np.float64), x0 + 0.01 * d.length, d.length, sudden=False, height=0.8)
    d.labels.append(Label("exploding_gradient", "grad_norm", x0, None, lasting=True, tolerance=d.tol(0.03)))
    out.append(d.done("grad norm grows exponentially from 50% to 3000x; the loss then creeps up"))

    d = draft("exploding_grad_long", 100_000, torch_config(6e-4, scheduler={"name": "cosine", "warmup_steps": 2000}),
              every=100, names=HF, sched={"schedule": "cosine", "peak": 6e-4, "warmup": 2000, "floor": 0.1},
              val_every=5000, l0=10.0, lfloor=2.6, tau=0.02)
    x0 = d.step(HF.grad, 0.72)
    s, g = d.metrics[HF.grad]
    x = s.astype(np.float64)
    g *= np.exp(np.clip(x - x0, 0.0, None) / (0.004 * d.length)).clip(max=500.0)
    d.labels.append(Label("exploding_gradient", HF.grad, x0, None, lasting=True, tolerance=d.tol(0.03)))
    out.append(d.done("100k steps, train/grad_norm explodes 500x from 72% (loss not yet affected)"))

    d = draft("explode_then_nan", 6000, torch_config(2e-3), every=6, sched={"schedule": "constant", "peak": 2e-3},
              names=MIXED)
    x0, x1 = d.step("grad_norm", 0.6), d.step("loss", 0.7)
    s, g = d.metrics["grad_norm"]
    x = s.astype(np.float64)
    g *= np.exp(np.clip(x - x0, 0.0, None) / (0.01 * d.length)).clip(max=1e4)
    g[s >= x1] = np.nan
    s, v = d.metrics["loss"]
    v *= ramp_from(s.astype(np.float64), x0 + 0.03 * d.length, d.length, sudden=False, height=1.0)
    v[s >= x1] = np.nan
    d.labels.append(Label("exploding_gradient", "grad_norm", x0, None, lasting=True, tolerance=d.tol(0.03)))
    d.labels.append(Label("nan", "loss", x1, None, lasting=True, tolerance=d.tol(0.01), also=("divergence",)))
    out.append(d.done("grad norm explodes from 60%, then loss and grad norm are NaN from 70%"))

    # --- throughput -----------------------------------------------------------------------------
    d = draft("throughput_drop", 10_000, torch_config(3e-4), every=10, sched=cos, val_every=500)
    x0 = d.step("samples_per_sec", 0.5)
    s, v = d.metrics["samples_per_sec"]
    v[s >= x0] *= 0.45
    d.labels.append(Label("throughput_drop", "samples_per_sec", x0, None, lasting=True, tolerance=d.tol(0.02)))
    out.append(d.done("samples_per_sec falls to 45% from the middle of the run and stays there"))

    d = draft("throughput_drop_tokens", 100_000, torch_config(6e-4, scheduler={"name": "cosine",
              "warmup_steps": 2000}), every=100, names=CUSTOM, sched={"schedule": "cosine", "peak": 6e-4,
              "warmup": 2000, "floor": 0.1}, speed=185_000.0, val_every=5000, l0=10.0, lfloor=2.5, tau=0.02)
    x0 = d.step(CUSTOM.speed, 0.3)
    s, v = d.metrics[CUSTOM.speed]
    v[s >= x0] *= 0.38
    d.labels.append(Label("throughput_drop", CUSTOM.speed, x0, None, lasting=True, tolerance=d.tol(0.02)))
    out.append(d.done("tokens_per_s drops to 38% at 30% of a 100k-step run (a slow data loader)"))

    d = draft("throughput_drop_hf", 25_000, hf_config(3e-5, 25_000, warmup_steps=500), every=25, start=25, names=HF,
              sched={"schedule": "linear", "peak": 3e-5, "warmup": 500}, speed=96.0, speed_noise=0.03,
              val_every=2500)
    x0 = d.step(HF.speed, 0.77)
    s, v = d.metrics[HF.speed]
    v[s >= x0] *= 0.5
    d.labels.append(Label("throughput_drop", HF.speed, x0, None, lasting=True, tolerance=d.tol(0.02)))
    out.append(d.done("HF run, samples_per_sec halves from 77% (another job on the GPU)"))

    # --- learning-rate schedule faults ----------------------------------------------------------
    d = draft("lr_no_warmup_hf", 20_000, hf_config(5e-4, 20_000, scheduler="linear", warmup_steps=2000), every=20,
              start=20, names=HF, sched={"schedule": "linear", "peak": 5e-4, "warmup": 0}, val_every=1000,
              grad_start=12.0)
    d.labels.append(Label("lr_schedule", HF.lr, int(d.steps(HF.lr)[0]), None, lasting=True, tolerance=d.tol(0.02),
                          note="config asks for 2,000 warmup steps; the LR starts at its peak"))
    out.append(d.done("warmup_steps=2000 in the config, but learning_rate starts at peak and decays linearly"))

    d = draft("lr_no_warmup_nested", 50_000, torch_config(1e-3, scheduler={"name": "cosine", "warmup_ratio": 0.05,
              "min_lr_ratio": 0.1}), every=50, names=LIGHTNING, sched={"schedule": "cosine", "peak": 1e-3,
              "floor": 0.1}, val_every=2500)
    d.labels.append(Label("lr_schedule", LIGHTNING.lr, int(d.steps(LIGHTNING.lr)[0]), None, lasting=True,
                          tolerance=d.tol(0.02)))
    out.append(d.done("scheduler.warmup_ratio=0.05 declared; lr-AdamW starts at its peak"))

    d = draft("lr_no_decay_cosine", 30_000, hf_config(2e-4, 30_000, scheduler="cosine", warmup_steps=500), every=25,
              start=25, names=HF, sched={"schedule": "constant", "peak": 2e-4, "warmup": 500}, val_every=1500)
    d.labels.append(Label("lr_schedule", HF.lr, 500, None, lasting=True, tolerance=d.tol(0.05),
                          note="cosine declared; after warmup the LR stays at its peak"))
    out.append(d.done("lr_scheduler_type=cosine, but learning_rate stays at peak after a 500-step warmup"))

    d = draft("lr_no_decay_linear", 12_000, torch_config(1e-3, scheduler={"name": "LinearLR", "start_factor": 1.0,
              "end_factor": 0.0, "total_iters": 12_000}), every=10, names=MIXED,
              sched={"schedule": "constant", "peak": 1e-3}, val_every=600)
    d.labels.append(Label("lr_schedule", "lr", 0, None, lasting=True, tolerance=d.tol(0.05),
                          note="linear decay to 0 declared; the LR never moves"))
    out.append(d.done("LinearLR to 0 declared, lr flat at 1e-3 for the whole run"))

    d = draft("lr_stuck_zero", 20_000, torch_config(3e-4, scheduler={"name": "cosine", "warmup_steps": 1000}),
              every=20, sched={"schedule": "cosine", "peak": 3e-4, "warmup": 1000, "floor": 0.1}, val_every=1000,
              lr_edit=lambda x, lr: np.where(x >= 6000, 0.0, lr))
    d.labels.append(Label("lr_schedule", "lr", 6000, None, lasting=True, tolerance=d.tol(0.02),
                          note="the LR drops to 0 at step 6,000 and stays there (the loss freezes)"))
    out.append(d.done("resumed at step 6,000 with a broken scheduler: lr is 0 from there on"))

    d = draft("lr_zero_throughout", 5000, hf_config(1e-4, 5000, scheduler="constant"), every=5, start=5,
              names=CUSTOM, sched={"schedule": "constant", "peak": 1e-4}, lr_edit=lambda x, lr: np.zeros_like(lr))
    d.labels.append(Label("lr_schedule", CUSTOM.lr, int(d.steps(CUSTOM.lr)[0]), None, lasting=True,
                          tolerance=d.tol(0.02), note="learning_rate=1e-4 in the config, 0 in every logged step"))
    out.append(d.done("learning_rate logged as 0 at every step while the config says 1e-4; the loss never moves"))

    d = draft("lr_restart_unexplained", 40_000, hf_config(3e-4, 40_000, scheduler="cosine", warmup_steps=1000),
              every=40, start=40, names=HF, sched={"schedule": "cosine", "peak": 3e-4, "warmup": 1000},
              val_every=2000,
              lr_edit=lambda x, lr: np.where(x >= 22_000, lr_curve(x - 22_000, peak=3e-4, length=18_000,
                                                                   schedule="cosine"), lr))
    d.labels.append(Label("lr_schedule", HF.lr, 22_000, None, lasting=True, tolerance=d.tol(0.01),
                          note="resumed without the scheduler state: the cosine starts over at step 22,000"))
    out.append(d.done("single cosine declared; learning_rate jumps back to its peak at step 22,000"))

    d = draft("lr_jump_then_spike", 16_000, torch_config(3e-4, scheduler={"name": "CosineAnnealingLR",
              "T_max": 16_000}), every=16, sched={"schedule": "cosine", "peak": 3e-4, "floor": 0.05}, val_every=800,
              lr_edit=lambda x, lr: np.where(x >= 11_200, 3e-4, lr))
    j = d.index("loss", 11_200 / 16_000)
    d.labels.append(Label("lr_schedule", "lr", 11_200, None, lasting=True, tolerance=d.tol(0.01),
                          note="the LR jumps from ~10% of peak back to peak"))
    s, v = d.metrics["loss"]
    v[j + 3] *= 2.8
    d.values("grad_norm")[j + 3] *= 6.0
    d.labels.append(Label("spike", "loss", int(s[j + 3]), note=f"{int(s[j + 3]) - 11_200} steps after the LR jump"))
    out.append(d.done(f"lr jumps 10x at step 11,200 (no schedule says so); the loss spikes {int(s[j + 3]) - 11_200} "
                      "steps later"))

    d = draft("lr_jump_then_spike_hf", 20_000, hf_config(1e-4, 20_000, scheduler="constant"), every=20, start=20,
              names=CUSTOM, sched={"schedule": "constant", "peak": 1e-4}, val_every=1000,
              lr_edit=lambda x, lr: np.where(x >= 9000, 1e-3, lr))
    j = d.index(CUSTOM.loss, 9000 / 20_000)
    d.labels.append(Label("lr_schedule", CUSTOM.lr, 9000, None, lasting=True, tolerance=d.tol(0.01),
                          note="constant LR declared; it jumps 10x at step 9,000"))
    s, v = d.metrics[CUSTOM.loss]
    v[j + 5] *= 3.0
    d.labels.append(Label("spike", CUSTOM.loss, int(s[j + 5]), note=f"{int(s[j + 5]) - 9000} steps after the LR jump"))
    out.append(d.done(f"learning_rate jumps 1e-4 -> 1e-3 at step 9,000; training_loss spikes {int(s[j + 5]) - 9000} "
                      "steps later"))

    d = draft("lr_restarts_undeclared", 24_000, torch_config(5e-4, scheduler={"name": "CosineAnnealingLR",
              "T_max": 24_000}), every=20, names=MIXED, sched={"schedule": "sgdr", "peak": 5e-4, "t0": 8000,
              "floor": 0.0}, val_every=1200)
    d.labels.append(Label("lr_schedule", "lr", 8000, None, lasting=True, tolerance=d.tol(0.01),
                          note="CosineAnnealingLR declared, but the LR restarts every 8,000 steps"))
    out.append(d.done("config declares one cosine; lr restarts at steps 8,000 and 16,000"))
    return out


def _healthy() -> list[Scenario]:
    out: list[Scenario] = []

    d = draft("healthy_cosine_long", 200_000, hf_config(3e-4, 200_000, scheduler="cosine", warmup_steps=2000),
              every=100, start=100, names=HF, sched={"schedule": "cosine", "peak": 3e-4, "warmup": 2000, "floor": 0.1},
              val_every=5000, l0=10.5, lfloor=2.3, tau=0.01, alpha=0.6)
    out.append(d.done("200k-step pretraining, cosine to 10% of peak: a long, slowly improving tail"))

    d = draft("healthy_cosine_to_zero", 20_000, torch_config(1e-3, scheduler={"name": "CosineAnnealingLR",
              "T_max": 20_000, "eta_min": 0.0}), every=20, names=MIXED, sched={"schedule": "cosine", "peak": 1e-3},
              val_every=1000)
    out.append(d.done("cosine down to 0: the last 20% of the run barely moves"))

    d = draft("healthy_cosine_flat_tail", 60_000, torch_config(6e-4, scheduler={"name": "cosine", "warmup_steps": 1000,
              "min_lr": 0.0}), every=40, names=CUSTOM, sched={"schedule": "cosine", "peak": 6e-4, "warmup": 1000},
              val_every=3000, tau=0.3, alpha=1.0, lr_term=0.0, noise=0.02)
    out.append(d.done("cosine to 0: the loss improves while the LR is high and goes flat as the LR anneals"))

    d = draft("healthy_linear_flat_tail", 30_000, hf_config(1e-4, 30_000, scheduler="linear", warmup_steps=600),
              every=20, start=20, names=HF, sched={"schedule": "linear", "peak": 1e-4, "warmup": 600}, val_every=1500,
              tau=0.25, alpha=1.2, lr_term=0.0, noise=0.03)
    out.append(d.done("HF linear decay to 0: a flat tail over the last fifth of the run, under a decayed LR"))

    d = draft("healthy_linear_hf", 12_000, hf_config(5e-5, 12_000, scheduler="linear", warmup_ratio=0.06), every=10,
              start=10, names=HF, sched={"schedule": "linear", "peak": 5e-5, "warmup": 720}, val_every=500, l0=2.9,
              lfloor=0.7, extra={"epoch": lambda d, s: s / 4000.0})
    out.append(d.done("HF fine-tune, linear decay to 0 after 6% warmup, logs epoch too"))

    d = draft("healthy_warmup_transient", 5000, torch_config(1e-3, scheduler={"name": "cosine", "warmup_steps": 500}),
              sched={"schedule": "cosine", "peak": 1e-3, "warmup": 500, "floor": 0.1}, grad_start=15.0, tau=0.02,
              l0=7.0, lfloor=2.0, val_every=250, every=5)
    out.append(d.done("grad norm starts 16x its settled level; the loss falls steeply during warmup"))

    d = draft("healthy_step_decay", 90_000, torch_config(0.1, scheduler={"name": "MultiStepLR",
              "milestones": [30_000, 60_000, 80_000], "gamma": 0.1, "interval": "step"}, optimizer={"name": "SGD",
              "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}), every=90, names=CUSTOM,
              sched={"schedule": "step", "peak": 0.1, "milestones": (30_000, 60_000, 80_000)}, val_every=1000,
              l0=2.4, lfloor=0.6, tau=0.03, lr_term=0.5, speed=2400.0)
    out.append(d.done("ResNet-style SGD, LR x0.1 at 30k, 60k, 80k: the loss drops at each milestone"))

    d = draft("healthy_sgdr_torch", 30_000, torch_config(1e-3, scheduler={"name": "CosineAnnealingWarmRestarts",
              "T_0": 2000, "T_mult": 2, "eta_min": 1e-5}), every=30, sched={"schedule": "sgdr", "peak": 1e-3,
              "t0": 2000, "t_mult": 2, "floor": 0.01}, val_every=1000, lr_term=0.3)
    out.append(d.done("SGDR declared (T_0=2000, T_mult=2): LR restarts at 2k, 6k, 14k and the loss bumps up"))

    d = draft("healthy_sgdr_hf", 15_000, hf_config(2e-4, 15_000, scheduler="cosine_with_restarts", warmup_steps=500,
              lr_scheduler_kwargs={"num_cycles": 3}), every=15, start=15, names=HF,
              sched={"schedule": "hf_restarts", "peak": 2e-4, "warmup": 500, "cycles": 3}, val_every=750, lr_term=0.25)
    out.append(d.done("HF cosine_with_restarts, 3 cycles: two hard restarts"))

    d = draft("healthy_noisy_small_batch", 20_000, torch_config(1e-4, data={"batch_size": 4}), every=15,
              sched={"schedule": "cosine", "peak": 1e-4, "floor": 0.1}, noise=0.1, grad_noise=0.35, val_every=1000)
    out.append(d.done("batch size 4: 10% loss noise, very noisy grad norm"))

    def rewards(d: Draft, s: IntArray, scale: float) -> FloatArray:
        x = s / d.length
        trend = scale * (0.05 + 0.95 * (1.0 - np.exp(-x / 0.25)))
        return trend * (1.0 + 0.35 * d.rng.standard_normal(s.size)) + 0.1 * scale * d.rng.standard_normal(s.size)

    d = draft("healthy_rl_rewards", 200_000, {"env_id": "HalfCheetah-v4", "algo": "ppo", "learning_rate": 3e-4,
              "anneal_lr": True, "num_envs": 8, "num_steps": 2048, "gamma": 0.99, "seed": 3}, every=200,
              names=Names("losses/value_loss", "val/unused", "losses/grad_norm", "charts/learning_rate",
                          "charts/SPS"),
              sched={"schedule": "linear", "peak": 3e-4}, with_grad=False, speed=2900.0, speed_noise=0.06,
              extra={"charts/episodic_return": lambda d, s: rewards(d, s, 4000.0),
                     "reward": lambda d, s: rewards(d, s, 1.3)})
    d.metrics.pop("losses/value_loss")
    out.append(d.done("PPO: episodic return and reward with 35% variance, no training loss, linearly annealed LR"))

    d = draft("healthy_rl_policy_loss", 100_000, {"algo": "ppo", "env_id": "procgen-coinrun", "lr": 5e-4,
              "lr_schedule": "constant", "seed": 7}, every=100, names=Names("loss", "val/unused", "grad_norm", "lr",
              "samples_per_sec"), sched={"schedule": "constant", "peak": 5e-4}, l0=0.9, lfloor=0.35, tau=0.3,
              alpha=0.7, noise=0.25, grad_noise=0.4, speed=8000.0, speed_noise=0.05,
              extra={"episode_return": lambda d, s: rewards(d, s, 9.0)})
    out.append(d.done("PPO with a noisy total loss (25% noise), constant LR, high-variance episode_return"))

    d = draft("healthy_val_wobble", 30_000, torch_config(3e-4, scheduler={"name": "cosine"}), every=30, names=CUSTOM,
              sched={"schedule": "cosine", "peak": 3e-4, "floor": 0.1}, val_every=1500, val_noise=0.04)
    vs, vv = d.metrics[CUSTOM.val]
    vv[vs.size // 2] *= 1.12  # one bad evaluation
    out.append(d.done("validation_loss with 4% noise and one bad evaluation, improving overall"))

    d = draft("healthy_eval_dips", 40_000, torch_config(3e-4), every=25, sched={"schedule": "cosine", "peak": 3e-4,
              "floor": 0.1}, val_every=2000, speed=1450.0)
    s, v = d.metrics["samples_per_sec"]
    v[(s % 2000 == 0) & (s > 0)] *= 0.3  # evaluation
    v[(s % 5000 == 0) & (s > 0)] *= 0.5  # checkpoint save
    out.append(d.done("throughput dips for one logged step at every evaluation and checkpoint"))

    d = draft("healthy_slow_late", 50_000, torch_config(2e-4, scheduler={"name": "constant"}), every=40,
              sched={"schedule": "constant", "peak": 2e-4}, tau=0.05, alpha=0.5, l0=3.5, lfloor=0.8, noise=0.02,
              val_every=2500)
    out.append(d.done("constant LR, power-law loss still improving slowly at the end"))

    d = draft("healthy_lightning_sparse", 40_000, torch_config(1e-3, scheduler={"name": "CosineAnnealingLR",
              "T_max": 40_000, "interval": "step"}, max_epochs=40), every=50, start=50, names=LIGHTNING,
              sched={"schedule": "cosine", "peak": 1e-3, "floor": 0.0}, val_every=1000)
    out.append(d.done("Lightning: train_loss_step every 50 steps, val_loss_epoch once per 1,000-step epoch"))

    d = draft("healthy_hf_sparse", 25_000, hf_config(1e-4, 25_000, scheduler="linear", warmup_steps=1000,
              logging_steps=50, eval_steps=500), every=50, start=50, names=HF,
              sched={"schedule": "linear", "peak": 1e-4, "warmup": 1000}, val_every=500)
    out.append(d.done("HF Trainer: loss every 50 steps, eval/loss every 500"))

    d = draft("healthy_short_50", 50, torch_config(1e-3), sched={"schedule": "constant", "peak": 1e-3}, tau=0.2,
              l0=2.3, lfloor=0.8, speed=300.0)
    out.append(d.done("a 50-step smoke test"))

    d = draft("healthy_short_120", 120, hf_config(2e-4, 120, scheduler="linear", warmup_steps=10), start=1, names=HF,
              sched={"schedule": "linear", "peak": 2e-4, "warmup": 10}, tau=0.2, val_every=20, l0=2.0, lfloor=0.9)
    out.append(d.done("120 steps with warmup and an eval every 20 steps"))

    d = draft("healthy_short_300", 300, torch_config(3e-4), names=CUSTOM, sched={"schedule": "cosine", "peak": 3e-4},
              tau=0.1, val_every=50, speed=52_000.0)
    out.append(d.done("300 steps, cosine, validation every 50"))

    d = draft("healthy_inverse_sqrt", 100_000, torch_config(7e-4, scheduler={"name": "inverse_sqrt",
              "warmup_steps": 4000}), every=100, names=CUSTOM, sched={"schedule": "inverse_sqrt", "peak": 7e-4,
              "warmup": 4000}, val_every=5000, l0=9.5, lfloor=2.9, tau=0.02, speed=210_000.0)
    out.append(d.done("transformer inverse-sqrt schedule after a 4,000-step warmup"))

    d = draft("healthy_val_gap", 30_000, torch_config(3e-4), every=30, sched={"schedule": "cosine", "peak": 3e-4,
              "floor": 0.1}, val_every=1500, lfloor=0.5)
    vs, vv = d.metrics["val/loss"]
    x = vs / d.length
    vv *= 1.0 + 0.25 * np.clip(x - 0.3, 0.0, None)  # the gap widens but validation never turns up
    vv[:] = np.minimum.accumulate(vv) * (1.0 + 0.01 * d.rng.standard_normal(vs.size))
    out.append(d.done("train keeps improving, validation flattens (the gap widens) but does not rise"))

    d = draft("healthy_one_cycle", 18_000, torch_config(4e-3, scheduler={"name": "OneCycleLR", "max_lr": 4e-3,
              "pct_start": 0.3, "total_steps": 18_000}), every=18, names=MIXED,
              sched={"schedule": "one_cycle", "peak": 4e-3, "pct_start": 0.3}, val_every=900)
    out.append(d.done("OneCycleLR: LR rises for 30% of the run, then anneals to ~0"))

    d = draft("healthy_finetune_short", 1500, hf_config(2e-5, 1500, scheduler="linear", warmup_steps=100,
              num_train_epochs=3), every=10, start=10, names=HF, sched={"schedule": "linear", "peak": 2e-5,
              "warmup": 100}, val_every=100, l0=0.9, lfloor=0.3, tau=0.1, noise=0.06, grad_start=3.0)
    out.append(d.done("3-epoch fine-tune, 1,500 steps, eval every 100"))
    return out


def _build() -> list[Scenario]:
    scenarios = _anomalous() + _healthy()
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ValueError("scenario names are not unique")
    return scenarios


SCENARIOS: list[Scenario] = _build()
_BY_NAME = {s.name: s for s in SCENARIOS}


def by_name(name: str) -> Scenario:
    """The scenario called `name`; KeyError names the choices."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no scenario {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def healthy() -> list[Scenario]:
    return [s for s in SCENARIOS if s.healthy]


def anomalous() -> list[Scenario]:
    return [s for s in SCENARIOS if not s.healthy]
