"""JSONL at scale: a 1,000,000-row run, read by runwise vs a plain orjson loop, side by side.

    python bench/bench_jsonl.py [--rows 1000000] [--repeat 3]

Generates (once) `bench/_data/jsonl/logs/big.jsonl`: 1M rows x 5 metrics logged every step
(train/loss, train/acc, lr, grad_norm, samples_per_sec) plus val/loss every 100 steps, with one
one-step loss spike at SPIKE_STEP. Then, each in a fresh process so no cache helps:
  baseline     `for line in f: orjson.loads(line)` over the same file
  get_stats    the get_stats tool handler (discovery, parse, columns, stats)
  get_history  the get_history tool handler with default arguments
and checks what the issue asks: the default get_history output holds the spike's step and the
validation metric in at most 8,000 characters; summarize_run flags the spike; both handlers
take at most 1.5x the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "jsonl"
SPIKE_STEP = 612_345


def generate(path: Path, rows: int) -> None:
    import orjson

    rng = np.random.default_rng(0)
    steps = np.arange(rows)
    loss = 2.5 * np.exp(-steps / (rows / 5)) + 0.3 + 0.02 * rng.standard_normal(rows)
    loss[SPIKE_STEP] *= 8.0
    acc = 1.0 - loss / 3.0
    lr = 1e-3 * np.minimum(1.0, (steps + 1) / 1000) * np.cos(np.pi * steps / (2 * rows))
    grad = 1.0 + 0.1 * rng.standard_normal(rows)
    sps = 1200 + 20 * rng.standard_normal(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for i in range(rows):
            # full-precision floats, as `json.dumps({"loss": loss.item(), ...})` writes them
            row = {"step": i, "train/loss": float(loss[i]), "train/acc": float(acc[i]), "lr": float(lr[i]),
                   "grad_norm": float(grad[i]), "samples_per_sec": float(sps[i])}
            if i % 100 == 0:
                row["val/loss"] = float(loss[i] + 0.05)
            f.write(orjson.dumps(row) + b"\n")
    tmp.rename(path)


# The plain loops: parse every line and drop it ("discard"), or parse every line into the list
# of rows a script would then compute on ("rows"). Timed after imports, like the handlers.
BASELINE = """
import sys, time, orjson
t = time.perf_counter()
with open(sys.argv[1], 'rb') as f:
    if sys.argv[2] == 'rows':
        rows = [orjson.loads(line) for line in f]
    else:
        for line in f:
            orjson.loads(line)
print(time.perf_counter() - t)
"""

HANDLER = """
import sys, time, json
from runwise.config import RunwiseConfig
from runwise import tools
spec = tools.TOOLS_BY_NAME[sys.argv[2]]
t = time.perf_counter()
out = spec.handler(spec.input(run=sys.argv[3]), RunwiseConfig.load(sys.argv[1]))
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "output": out.model_dump_json()}))
"""


def run_py(code: str, *args: str, env_cache: bool = False) -> str:
    cache_dir = str(DATA.parent / "cache")
    env = dict(os.environ, RUNWISE_CACHE_DIR=cache_dir) if env_cache else dict(os.environ, RUNWISE_NO_CACHE="1")
    return subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


LIVE = """
import os, sys, time, shutil
import numpy as np
from pathlib import Path
from runwise import runs
from runwise.config import RunwiseConfig
src, root = Path(sys.argv[1]), Path(sys.argv[2])
data = src.read_bytes()
cut = data.index(b"\\n", int(len(data) * 0.95)) + 1
grow = data.index(b"\\n", cut + int(len(data) * 0.01)) + 1
shutil.rmtree(root, ignore_errors=True)
(root / "logs").mkdir(parents=True)
live = root / "logs" / "live.jsonl"
live.write_bytes(data[:cut])
cfg = RunwiseConfig.load(root)
t = time.perf_counter(); first, _ = runs.get_run("live", cfg); t_full = time.perf_counter() - t
with live.open("ab") as fp:
    fp.write(data[cut:grow])
t = time.perf_counter(); second, _ = runs.get_run("live", cfg); t_refresh = time.perf_counter() - t
runs.clear_cache()
full, _ = runs.get_run("live", cfg)
same = sorted(full.history) == sorted(second.history) and all(
    np.array_equal(full.history[k].steps, second.history[k].steps)
    and np.array_equal(full.history[k].values, second.history[k].values) for k in full.history)
print(f"{t_full:.3f} {t_refresh:.3f} {len(first.history['train/loss'])} {len(second.history['train/loss'])} {same}")
"""


def live(path: Path) -> bool:
    """A run still being written: read 95% of the file, append 1% more, read again."""
    out = run_py(LIVE, str(path), str(DATA.parent / "jsonl_live"))
    t_full, t_refresh, n1, n2, same = out.split()
    print(f"live run: first read of {int(n1):,} rows {float(t_full):.2f} s; after {int(n2) - int(n1):,} rows were "
          f"appended, second read {float(t_refresh):.3f} s; equal to a full read: {same}")
    return same == "True"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = DATA if args.rows == 1_000_000 else DATA.with_name(f"jsonl_{args.rows}")
    path = root / "logs" / "big.jsonl"
    if not path.exists():
        t = time.perf_counter()
        generate(path, args.rows)
        size = path.stat().st_size / 1e6
        print(f"generated {path.relative_to(HERE.parent)} ({size:.0f} MB) in {time.perf_counter() - t:.1f}s")
    times: dict[str, list[float]] = {"loop_discard": [], "loop_rows": [], "get_stats": [], "get_history": []}
    outputs: dict[str, str] = {}
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits every reader alike
        times["loop_discard"].append(float(run_py(BASELINE, str(path), "discard")))
        times["loop_rows"].append(float(run_py(BASELINE, str(path), "rows")))
        for tool in ("get_stats", "get_history"):
            res = json.loads(run_py(HANDLER, str(root), tool, "big"))
            times[tool].append(res["seconds"])
            outputs[tool] = res["output"]
    summ = json.loads(run_py(HANDLER, str(root), "summarize_run", "big"))
    run_py(HANDLER, str(root), "get_stats", "big", env_cache=True)  # fills the on-disk cache
    med = {k: statistics.median(v) for k, v in times.items()}
    hist = outputs["get_history"]
    hist_obj = json.loads(hist)
    spike_kept = SPIKE_STEP in hist_obj["metrics"]["train/loss"]["steps"]
    val_kept = "val/loss" in hist_obj["metrics"]
    spike_flagged = any(f"{SPIKE_STEP:,}" in a or str(SPIKE_STEP) in a for a in json.loads(summ["output"])["anomalies"])
    print(f"rows: {args.rows:,}; file {path.stat().st_size / 1e6:.0f} MB; median of {args.repeat} runs, "
          "each in a fresh process, timed after imports, no cache")
    for k, v in med.items():
        ratio = "" if k.startswith("loop") else (
            f"  ({v / med['loop_rows']:.2f}x loop_rows, {v / med['loop_discard']:.2f}x loop_discard)")
        print(f"  {k:12s} {v:6.2f} s{ratio}   runs: {', '.join(f'{x:.2f}' for x in times[k])}")
    warm = json.loads(run_py(HANDLER.replace("RUNWISE_NO_CACHE", ""), str(root), "get_stats", "big", env_cache=True))
    print(f"  get_stats from the on-disk cache (second process): {warm['seconds']:.2f} s")
    print(f"get_history default output: {len(hist):,} chars; spike step kept: {spike_kept}; "
          f"val/loss present: {val_kept}")
    print(f"summarize_run flags the spike at {SPIKE_STEP:,}: {spike_flagged}; "
          f"its output: {len(summ['output']):,} chars")
    live_ok = live(path)
    ok = (
        live_ok and spike_kept and val_kept and len(hist) <= 8000 and spike_flagged
        and med["get_stats"] <= 1.5 * med["loop_rows"] and med["get_history"] <= 1.5 * med["loop_rows"]
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
