"""Runs for the token-budget tests and bench/bench_tokens.py, written the way training scripts write JSONL.

  write_long_run(path, steps)   6 metrics logged every step (val/loss every 500), a planted one-step
                                loss spike (SPIKE_AT) and a one-step grad_norm dip (DIP_AT), as fractions
  write_wide_run(path, metrics) `metrics` metrics over 400 steps, with long nested names
  write_odd_run(path)           unicode and very long metric names, nan/inf values, tiny and huge numbers,
                                a long config: the text kinds that tokenize worst
  write_project(root, steps)    a project holding one run of each kind (and two short runs to compare)

Every row is one `json.dumps` line, as a training loop writes it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

SPIKE_AT = 0.612345  # the planted loss spike, as a fraction of the run
DIP_AT = 0.3137  # the planted grad_norm dip

CONFIG = {"model": {"name": "gpt-small", "layers": 12, "d_model": 768}, "optimizer": {"name": "adamw", "lr": 3e-4},
          "batch_size": 64, "warmup_steps": 1000, "seed": 0}


def spike_step(steps: int) -> int:
    return int(steps * SPIKE_AT)


def dip_step(steps: int) -> int:
    return int(steps * DIP_AT)


def write_long_run(path: Path, steps: int, *, seed: int = 0, config: dict[str, object] | None = None) -> None:
    """6 metrics x `steps` steps: train/loss, train/acc, lr, grad_norm, samples_per_sec; val/loss every 500."""
    rng = np.random.default_rng(seed)
    x = np.arange(steps)
    loss = 2.5 * np.exp(-x / (steps / 5)) + 0.3 + 0.02 * rng.standard_normal(steps)
    loss[spike_step(steps)] *= 6.0
    acc = np.clip(1.0 - loss / 3.0, 0, 1)
    warm = min(1000, max(1, steps // 10))
    lr = 3e-4 * np.minimum(1.0, (x + 1) / warm) * 0.5 * (1 + np.cos(np.pi * x / steps))
    grad = 1.0 + 0.1 * rng.standard_normal(steps)
    grad[dip_step(steps)] = 0.01
    sps = 1200 + 20 * rng.standard_normal(steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        f.write(json.dumps({"config": config if config is not None else CONFIG}) + "\n")
        for i in range(steps):
            row = {"step": i, "train/loss": float(loss[i]), "train/acc": float(acc[i]), "lr": float(lr[i]),
                   "grad_norm": float(grad[i]), "samples_per_sec": float(sps[i])}
            if i % 500 == 0 or i == steps - 1:
                row["val/loss"] = float(loss[i] + 0.05)
            f.write(json.dumps(row) + "\n")


def write_wide_run(path: Path, metrics: int, *, steps: int = 400, seed: int = 1) -> None:
    """`metrics` metrics with long nested names ('model/encoder/layer_07/attn/q_proj/grad_norm') over `steps` steps."""
    rng = np.random.default_rng(seed)
    names = ["train/loss", "val/loss", "lr"]
    parts = ["attn/q_proj", "attn/k_proj", "attn/v_proj", "attn/out_proj", "mlp/fc_in", "mlp/fc_out"]
    i = 0
    while len(names) < metrics:
        names.append(f"model/encoder/layer_{i // (2 * len(parts)):02d}/{parts[(i // 2) % len(parts)]}/"
                     f"{'grad_norm' if i % 2 else 'weight_norm'}")
        i += 1
    base = rng.random(len(names)) * 3
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        f.write(json.dumps({"config": {**CONFIG, "notes": "wide run"}}) + "\n")
        for s in range(steps):
            vals = base * math.exp(-s / steps) + 0.01 * rng.standard_normal(len(names))
            f.write(json.dumps({"step": s, **{n: float(v) for n, v in zip(names, vals, strict=True)}}) + "\n")


def write_odd_run(path: Path, *, steps: int = 3000) -> None:
    """Metric names and values that tokenize worst: unicode, 150-character names, nan/inf, 1e-12 and 1e12."""
    rng = np.random.default_rng(2)
    long_name = "eval/" + "_".join(["downstream", "benchmark", "multilingual", "reasoning"] * 4) + "/accuracy"
    config = {"描述": "学习率调度 → 余弦", "data.paths": [f"/datasets/shard_{i:05d}.parquet" for i in range(40)],
              "prompt": "Answer the question using only the context below. " * 8, "lr": 1e-4}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        f.write(json.dumps({"config": config}) + "\n")
        for s in range(steps):
            row: dict[str, object] = {"step": s * 7 + 1_000_003}
            row["训练/损失"] = float(2 * math.exp(-s / 900) + 0.01 * rng.standard_normal())
            if s % 50 == 0:
                row["val/损失"] = float(2.1 * math.exp(-s / 900))
                row["Verlust/Überprüfung"] = float(rng.random())
                row[long_name] = float(rng.random())
            row["tiny_grad"] = float(1e-12 * (1 + rng.random()))
            row["huge_count"] = float(1e12 * (1 + rng.random()))
            bad = float("nan") if s in (1000, 1001, 2500) else float("inf")
            row["loss"] = bad if s in (1000, 1001, 2000, 2500) else float(rng.random())
            f.write(json.dumps(row) + "\n")


def write_project(root: Path, steps: int) -> Path:
    """A project: logs/long.jsonl (6 x `steps`), wide.jsonl (300 metrics), odd.jsonl, and short_a/b/c/d.jsonl."""
    logs = root / "logs"
    write_long_run(logs / "long.jsonl", steps)
    write_wide_run(logs / "wide.jsonl", 300)
    write_odd_run(logs / "odd.jsonl")
    for i, name in enumerate(("short_a", "short_b", "short_c", "short_d")):
        write_long_run(logs / f"{name}.jsonl", 3000 + 500 * i, seed=10 + i,
                       config={**CONFIG, "optimizer": {"name": "adamw", "lr": 1e-4 * (i + 1)}, "seed": i})
    return root
