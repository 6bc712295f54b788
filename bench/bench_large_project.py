"""A large project: 1,000 runs, listed and ranked from the run index.

    python bench/bench_large_project.py [--runs 1000] [--big 10] [--wandb 5] [--tensorboard 495]

Generates once (into bench/_data/large_project/, git-ignored) a project of `--runs` runs: small
JSONL logs (json.dumps), TensorBoard runs (tensorboardX), W&B runs (the real wandb client, offline,
in a child process), and `--big` JSONL logs of over 100 MB each. Then, each in a new process with an
empty run index and disk cache at first:

  1. the first listing of every run (it reads each run once and indexes it)       <= 30 s
  2. the second listing, in a new process                                          <= 1 s
  3. every row of it has a state, a last step and a final value
  4. `find_best_run` (train/loss over every run) in a new process, warm index     <= 2 s
     (by final value; and by best value, once a first ranking read the large logs whole)

A listing is one `list_runs` per source (a listing shows at most 500 runs, so no source has more
than 500 here). It prints PASS or FAIL for each. Times are of the handler calls (discovery included), measured
inside the child; the child's whole wall time (interpreter start and imports too) is shown beside.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, run_child  # noqa: E402
from runwise.index import index_path  # noqa: E402

DATA = ROOT / "bench" / "_data"
BIG_BYTES = 100 * 1024 * 1024
LIMITS = {"first": 30.0, "second": 1.0, "best": 2.0}

CHILD = r"""
import json, sys, time
started = time.perf_counter()
from runwise.config import RunwiseConfig
from runwise.tools.runs import FindBestRunInput, ListRunsInput, find_best_run, list_runs
root, cache, what = sys.argv[1:4]
cfg = RunwiseConfig.load(root, env={"RUNWISE_CACHE_DIR": cache})
t0 = time.perf_counter()
if what in ("final", "best"):
    out = find_best_run(FindBestRunInput(metric="train/loss", use=what, top_n=3, max_runs=1000), cfg)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "process_s": time.perf_counter() - started, "considered": out.considered,
                      "ranked": len(out.ranking.rows), "without": out.without_metric, "summary": out.summary}))
else:  # a listing shows at most 500 runs: one per source
    rows, total = [], 0
    for source in ("jsonl", "tensorboard", "wandb"):
        out = list_runs(ListRunsInput(source=source, limit=500, sparklines=True), cfg)
        rows += [dict(zip(out.runs.columns, r)) for r in out.runs.rows]
        total += out.total
    seconds = time.perf_counter() - t0
    bad = [r["id"] for r in rows if r["state"] in ("?", "unreadable", None) or r["last_step"] is None
           or r["final"] is None]
    states = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    print(json.dumps({"seconds": seconds, "process_s": time.perf_counter() - started, "rows": len(rows),
                      "total": total, "incomplete": bad[:10], "n_incomplete": len(bad), "states": states,
}))
"""

WANDB_CHILD = r"""
import math, os, sys
root, n, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.environ.update(WANDB_MODE="offline", WANDB_DIR=root, WANDB_SILENT="true", WANDB_CONSOLE="off")
import wandb
for k in range(n):
    run = wandb.init(project="large-project", name=f"wandb-{k:03d}", config={"lr": 1e-3 * (k + 1), "seed": k},
                     tags=["bench"])
    for i in range(steps):
        run.log({"train/loss": 2.0 * math.exp(-i / (100 + 20 * k)) + 0.01 * math.sin(i), "lr": 1e-3}, step=i)
    run.finish()
print("{}")
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _loss(i: int, steps: int, end: float, rng: random.Random) -> float:
    return round((end + (2.5 - end) * math.exp(-4.0 * i / steps)) * (1 + 0.01 * rng.gauss(0, 1)), 6)


def _small_jsonl(path: Path, k: int, rng: random.Random) -> None:
    steps = rng.randrange(100, 1500)
    end = rng.uniform(0.2, 1.0)
    lines = [json.dumps({"step": 0, "config": {"lr": 10 ** rng.uniform(-4, -2), "seed": k},
                         "_meta": {"name": f"jsonl-{k:04d}"}})]
    lines += [json.dumps({"step": i, "train/loss": _loss(i, steps, end, rng), "lr": 3e-4}) for i in range(steps)]
    if k % 3:  # most runs say how they ended
        lines.append(json.dumps({"_meta": {"state": "finished"}}))
    path.write_text("\n".join(lines) + "\n")


def _big_jsonl(path: Path, k: int) -> None:
    """A log of over BIG_BYTES: wide rows (a loss, an lr and 16 more metrics every step)."""
    rng = random.Random(1000 + k)
    steps = 230_000
    extra = [f"layer{j}/grad_norm" for j in range(16)]
    part = path.with_name(path.name + ".part")  # renamed when whole: an interrupted run leaves no short log
    with part.open("w") as fp:
        fp.write(json.dumps({"step": 0, "config": {"lr": 1e-3, "seed": k}, "_meta": {"name": f"big-{k:02d}"}}) + "\n")
        i = 0
        while i < steps or fp.tell() < BIG_BYTES:
            row = {"step": i, "train/loss": _loss(i, steps, 0.3 + 0.02 * k, rng), "lr": 1e-3}
            for name in extra:
                row[name] = round(rng.random(), 6)
            fp.write(json.dumps(row) + "\n")
            i += 1
        fp.write(json.dumps({"_meta": {"state": "finished"}}) + "\n")
    part.replace(path)


def _tensorboard(run_dir: Path, k: int, rng: random.Random) -> None:
    from tensorboardX import SummaryWriter

    steps = rng.randrange(100, 600)
    end = rng.uniform(0.2, 1.0)
    with SummaryWriter(str(run_dir)) as w:
        for i in range(steps):
            w.add_scalar("train/loss", _loss(i, steps, end, rng), i)
            if i % 10 == 0:
                w.add_scalar("lr", 3e-4, i)


def generate(root: Path, *, runs: int, big: int, wandb: int, tensorboard: int) -> None:
    """Write the project's missing runs and remove runs beyond the counts (a marker file records what was made)."""
    marker = root / "made.json"
    spec = {"runs": runs, "big": big, "wandb": wandb, "tensorboard": tensorboard}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        log(f"project already made: {root.relative_to(ROOT)} {spec}")
        return
    marker.unlink(missing_ok=True)
    logs, tb = root / "logs", root / "runs"
    logs.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    started = time.perf_counter()
    small = runs - big - wandb - tensorboard
    want_logs = {f"big-{k:02d}.jsonl" for k in range(big)} | {f"run-{k:04d}.jsonl" for k in range(small)}
    want_tb = {f"tb-{k:04d}" for k in range(tensorboard)}
    for p in logs.iterdir():
        if p.name not in want_logs:
            p.unlink()
    if tb.is_dir():
        for p in tb.iterdir():
            if p.name not in want_tb:
                shutil.rmtree(p)
    wandb_runs = list((root / "wandb").glob("offline-run-*")) if (root / "wandb").is_dir() else []
    if len(wandb_runs) != wandb:
        shutil.rmtree(root / "wandb", ignore_errors=True)
        if wandb:
            log(f"writing {wandb} W&B runs with wandb offline (child process) ...")
            run_child(WANDB_CHILD, str(root), str(wandb), "300", timeout=1800)
    log(f"writing the missing of {big} JSONL logs of over {BIG_BYTES >> 20} MB ...")
    for k in range(big):
        if not (logs / f"big-{k:02d}.jsonl").exists():
            _big_jsonl(logs / f"big-{k:02d}.jsonl", k)
    log(f"writing the missing of {tensorboard} TensorBoard runs (tensorboardX) ...")
    for k in range(tensorboard):
        if not (tb / f"tb-{k:04d}").exists():
            _tensorboard(tb / f"tb-{k:04d}", k, rng)
    log(f"writing the missing of {small} small JSONL logs ...")
    for k in range(small):
        if not (logs / f"run-{k:04d}.jsonl").exists():
            _small_jsonl(logs / f"run-{k:04d}.jsonl", k, rng)
    _age(root, 3600)
    marker.write_text(json.dumps(spec))
    log(f"made in {time.perf_counter() - started:.0f} s")


def _age(root: Path, seconds: float) -> None:
    """Date every file back by `seconds`: a project of past runs, none still being written (a run whose
    files changed in the last two minutes counts as running, and is read again once it goes quiet)."""
    when = time.time() - seconds
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (when, when))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--big", type=int, default=10)
    ap.add_argument("--wandb", type=int, default=5)
    ap.add_argument("--tensorboard", type=int, default=495)
    args = ap.parse_args(argv)
    root = DATA / "large_project"
    generate(root, runs=args.runs, big=args.big, wandb=args.wandb, tensorboard=args.tensorboard)
    cache = DATA / "large_project_cache"
    for d in (cache, index_path(cache).parent):  # an empty disk cache and index: the first listing reads every run
        shutil.rmtree(d, ignore_errors=True)
    results = {
        "first": run_child(CHILD, str(root), str(cache), "list"),
        "second": run_child(CHILD, str(root), str(cache), "list"),
        "best": run_child(CHILD, str(root), str(cache), "final"),
        "by_best_first": run_child(CHILD, str(root), str(cache), "best"),
        "by_best": run_child(CHILD, str(root), str(cache), "best"),
    }
    ok = True
    LIMITS["by_best"] = LIMITS["best"]
    for what, label in (("first", "first listing (reads and indexes every run)"),
                        ("second", "second listing, new process"),
                        ("best", "find_best_run by final value, new process, warm"),
                        ("by_best", "find_best_run by best value, new process, warm")):
        r = results[what]
        passed = r["seconds"] <= LIMITS[what]
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'}  {label}: {r['seconds']:.2f} s (limit {LIMITS[what]:g} s; "
              f"whole process {r['process_s']:.2f} s)")
    for what in ("first", "second"):
        r = results[what]
        complete = r["n_incomplete"] == 0 and r["rows"] == args.runs
        ok &= complete
        print(f"{'PASS' if complete else 'FAIL'}  {what} listing: {r['rows']} rows of {r['total']}, "
              f"{r['n_incomplete']} without a state, last step or final value {r['incomplete']}; states {r['states']}")
    first = results["by_best_first"]
    print(f"      find_best_run by best value, first (reads the large logs the listing read at their ends): "
          f"{first['seconds']:.2f} s")
    for what in ("best", "by_best"):
        r = results[what]
        print(f"      {r['summary']} ({r['considered']} considered)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
