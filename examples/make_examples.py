"""Write the example project's two JSONL training logs (seeded: the output is always the same).

    python examples/make_examples.py      # rewrites examples/logs/*.jsonl

Both runs train the same small model for 4,000 steps and log every 10 steps, the way a training
script does with `json.dumps`: train/loss, lr, grad_norm and perf/samples_per_sec each time,
val/loss and val/acc every 50 steps, and a first row with the config and run metadata.

  baseline    constant lr 3e-4; a loss spike at step 2,350 (one bad batch: grad_norm jumps too)
  lr_warmup   lr 6e-4 with 200 warm-up steps and cosine decay; ends lower, no spike
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

STEPS = 4000
LOG_EVERY = 10
VAL_EVERY = 50
SPIKE_STEP = 2350
HERE = Path(__file__).resolve().parent


def _round(x: float, digits: int = 5) -> float:
    return float(f"{x:.{digits}g}")


def lr_at(step: int, *, peak: float, warmup: int, cosine: bool) -> float:
    """Linear warm-up to `peak`, then constant or cosine decay to 10% of it."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if not cosine:
        return peak
    progress = (step - warmup) / max(1, STEPS - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_run(
    name: str,
    *,
    seed: int,
    peak_lr: float,
    warmup: int,
    cosine: bool,
    floor: float,
    spike_at: int | None,
    notes: str,
    tags: list[str],
) -> list[dict[str, Any]]:
    """The rows of one run, oldest first."""
    rng = random.Random(seed)
    config = {
        "model": {"name": "resnet18", "width": 64},
        "optimizer": {"name": "adamw", "lr": peak_lr, "weight_decay": 0.05},
        "schedule": {"warmup_steps": warmup, "decay": "cosine" if cosine else "constant"},
        "batch_size": 128,
        "max_steps": STEPS,
        "seed": seed,
    }
    rows: list[dict[str, Any]] = [
        {"step": 0, "config": config, "_meta": {"name": name, "notes": notes, "tags": tags}},
    ]
    progress = 0.0  # learning progress: integrates the learning rate, so the schedule shapes the curve
    runtime = 0.0
    for step in range(0, STEPS + 1, LOG_EVERY):
        lr = lr_at(step, peak=peak_lr, warmup=warmup, cosine=cosine)
        progress += lr * LOG_EVERY
        clean = floor + (2.3 - floor) * math.exp(-progress / 0.25)
        loss = clean * (1 + 0.03 * rng.gauss(0, 1))
        grad_norm = (0.6 + 1.4 * math.exp(-step / 800)) * (1 + 0.1 * rng.gauss(0, 1))
        if spike_at is not None and step == spike_at:
            loss *= 3.5
            grad_norm *= 12
        samples_per_sec = 1250 * (1 + 0.02 * rng.gauss(0, 1))
        runtime += LOG_EVERY * 128 / samples_per_sec
        row: dict[str, Any] = {
            "step": step,
            "train/loss": _round(loss),
            "lr": _round(lr, 4),
            "grad_norm": _round(grad_norm, 4),
            "perf/samples_per_sec": _round(samples_per_sec, 4),
            "_runtime": round(runtime, 1),
        }
        if step % VAL_EVERY == 0:
            val = clean * 1.08 + 0.02 * (step / STEPS) ** 2  # a little overfitting late in training
            row["val/loss"] = _round(val * (1 + 0.005 * rng.gauss(0, 1)))
            row["val/acc"] = _round(min(0.99, 1.0 - 0.38 * val))
        rows.append(row)
    rows.append({"_meta": {"state": "finished", "exit_code": 0}})  # the script's last line: it ended cleanly
    return rows


def main(out_dir: Path | None = None) -> None:
    """Write logs/baseline.jsonl and logs/lr_warmup.jsonl under `out_dir` (default: examples/)."""
    runs = {
        "baseline": make_run(
            "baseline",
            seed=1,
            peak_lr=3e-4,
            warmup=0,
            cosine=False,
            floor=0.42,
            spike_at=SPIKE_STEP,
            notes="constant learning rate, no warm-up",
            tags=["baseline"],
        ),
        "lr_warmup": make_run(
            "lr_warmup",
            seed=2,
            peak_lr=6e-4,
            warmup=200,
            cosine=True,
            floor=0.36,
            spike_at=None,
            notes="2x peak lr with 200 warm-up steps and cosine decay",
            tags=["lr-sweep"],
        ),
    }
    logs = (out_dir or HERE) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for name, rows in runs.items():
        with (logs / f"{name}.jsonl").open("w", encoding="utf-8") as fp:
            fp.writelines(json.dumps(row) + "\n" for row in rows)


if __name__ == "__main__":
    main()
