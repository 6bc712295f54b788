"""Generate the 1,000,000-row W&B run the wandb benchmarks read (once; 7 min of CPU, 20 min on a busy 2-core box).

    python bench/make_wandb_big.py [--rows N]

Writes an offline run with the real wandb client into bench/_data/wandb/ (git-ignored): 6 scalar
metrics logged every step. Skips the work if a finished run with that many rows already exists.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "_data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    marker = DATA / f"wandb_big_{args.rows}.done"
    if marker.exists():
        print(f"already made: {marker.read_text().strip()}")
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_DIR"] = str(DATA)
    os.environ["WANDB_SILENT"] = "true"
    os.environ["WANDB_CONSOLE"] = "off"
    import wandb

    run = wandb.init(project="runwise-bench", name=f"big-{args.rows}", config={"rows": args.rows})
    for i in range(args.rows):
        t = i / 1000.0
        run.log(
            {
                "train/loss": 2.0 * math.exp(-t / 300) + 0.01 * math.sin(i),
                "train/acc": 1.0 - math.exp(-t / 200),
                "train/lr": 1e-3 * (1 - i / args.rows),
                "train/grad_norm": 1.0 + 0.5 * math.cos(i / 7),
                "perf/throughput": 1000.0 + (i % 97),
                "epoch": i // 10_000,
            }
        )
        if i % 100_000 == 0:
            print(f"{i} rows", file=sys.stderr, flush=True)
    path = Path(run.dir).parent
    run.finish()
    marker.write_text(str(next(path.glob("*.wandb"))) + "\n")
    print(f"made {marker.read_text().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
