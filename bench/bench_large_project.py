"""A large project: 1,000 runs, listed and ranked from the run index.

    python bench/bench_large_project.py [--runs 1000] [--big 10] [--wandb 5] [--tensorboard 495]

Generates once (into bench/_data/large_project/, git-ignored; only what is missing) a project of
`--runs` runs: small JSONL logs (json.dumps), TensorBoard runs (tensorboardX), W&B runs (the real
wandb client, offline, in a child process), and `--big` runs of over 100 MB each, a mix of the three
sources: a third of them (rounded down) TensorBoard event files written by tensorboardX, a third W&B
logs written by the real wandb client offline (a child process each), the rest JSONL logs (10: 4
JSONL, 3 TensorBoard, 3 W&B). Writing them all took 18 minutes on a busy 2-core machine. Then, each in a
new process with an empty run index and disk cache at first:

  1. the first listing of every run (it reads each run once and indexes it)       <= 30 s
  2. the second listing, in a new process                                          <= 1 s
  3. every row of it has a state, a last step and a final value
     (and the runs over 100 MB are indexed from their ends: each source's ends reader took them)
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

from bench._common import ROOT, figure, run_child, write_figures  # noqa: E402
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
    process_s = time.perf_counter() - started
    from runwise import runs  # untimed: which rows the index holds from the runs' ends only
    indexed = runs.run_index(cfg).lookup(runs.discover(cfg)[0])
    ends = {}
    for row in indexed.values():
        if row.partial:
            ends[row.source] = ends.get(row.source, 0) + 1
    print(json.dumps({"seconds": seconds, "process_s": process_s, "rows": len(rows),
                      "total": total, "incomplete": bad[:10], "n_incomplete": len(bad), "states": states,
                      "ends": ends}))
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

BIG_WANDB_CHILD = r"""
import json, math, os, random, sys
from pathlib import Path
root, k, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.environ.update(WANDB_MODE="offline", WANDB_DIR=root, WANDB_SILENT="true", WANDB_CONSOLE="off")
import wandb
rng = random.Random(2000 + k)
run = wandb.init(project="large-project", name=f"big-wandb-{k:02d}", config={"lr": 1e-3, "seed": k, "big": True},
                 tags=["bench", "big"])
run_dir = Path(run.dir).parent
log = next(run_dir.glob("*.wandb"))
extra = [f"layer{j}/grad_norm" for j in range(16)]
i = 0
while True:
    row = {"train/loss": round((0.3 + 0.02 * k + 2.2 * math.exp(-i / 20000)) * (1 + 0.01 * rng.gauss(0, 1)), 6),
           "lr": 1e-3}
    for name in extra:
        row[name] = round(rng.random(), 6)
    if i % 500 == 0:
        row["eval/loss"] = round(0.35 + 0.02 * k + 2.2 * math.exp(-i / 20000), 6)
    run.log(row, step=i)
    i += 1
    if i % 2000 == 0 and log.stat().st_size >= limit:
        break
run.finish()
print(json.dumps({"dir": run_dir.name, "rows": i, "bytes": log.stat().st_size}))
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


def _big_tensorboard(run_dir: Path, k: int) -> None:
    """A run of over BIG_BYTES of event files (tensorboardX): a loss every step, an lr every 10 steps,
    16 more tags every step (long names, as deep models have: tensorboardX's cost is per event) and an
    eval loss every 500 steps."""
    from tensorboardX import SummaryWriter

    rng = random.Random(3000 + k)
    part = run_dir.with_name(run_dir.name + ".part")  # renamed when whole: an interrupted run leaves no short run
    shutil.rmtree(part, ignore_errors=True)
    extra = [f"model/encoder/layer_{j:02d}/self_attention/output_projection/grad_norm" for j in range(16)]
    steps = 60_000
    with SummaryWriter(str(part), max_queue=1000, flush_secs=30) as w:
        i = 0
        while i < steps or i % 1000 or _size(part) < BIG_BYTES:
            w.add_scalar("train/loss", _loss(i, steps, 0.3 + 0.02 * k, rng), i)
            for name in extra:
                w.add_scalar(name, round(rng.random(), 6), i)
            if i % 10 == 0:
                w.add_scalar("lr", 3e-4, i)
            if i % 500 == 0:
                w.add_scalar("eval/loss", _loss(i, steps, 0.35 + 0.02 * k, rng), i)
            i += 1
            if i % 1000 == 0:
                w.flush()
    part.replace(run_dir)


def _size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file()) if d.is_dir() else 0


def _big_wandb(root: Path, k: int) -> str:
    """A W&B run of over BIG_BYTES, by the real wandb client offline in a child process; its directory name."""
    out = run_child(BIG_WANDB_CHILD, str(root), str(k), str(BIG_BYTES + (1 << 20)), timeout=3600)
    log(f"  big W&B run {k}: {out['rows']} rows, {out['bytes'] >> 20} MB")
    return str(out["dir"])


def _tensorboard(run_dir: Path, k: int, rng: random.Random) -> None:
    from tensorboardX import SummaryWriter

    steps = rng.randrange(100, 600)
    end = rng.uniform(0.2, 1.0)
    with SummaryWriter(str(run_dir)) as w:
        for i in range(steps):
            w.add_scalar("train/loss", _loss(i, steps, end, rng), i)
            if i % 10 == 0:
                w.add_scalar("lr", 3e-4, i)


def split_big(big: int) -> tuple[int, int, int]:
    """How many of the `big` runs are (JSONL, TensorBoard, W&B): a third each of TensorBoard and W&B."""
    third = big // 3
    return big - 2 * third, third, third


def generate(root: Path, *, runs: int, big: int, wandb: int, tensorboard: int) -> None:
    """Write the project's missing runs and remove runs beyond the counts (a marker file records what was made)."""
    marker = root / "made.json"
    big_jsonl, big_tb, big_wandb = split_big(big)
    spec = {"runs": runs, "big": big, "wandb": wandb, "tensorboard": tensorboard,
            "big_mix": [big_jsonl, big_tb, big_wandb]}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        log(f"project already made: {root.relative_to(ROOT)} {spec}")
        return
    marker.unlink(missing_ok=True)
    logs, tb = root / "logs", root / "runs"
    logs.mkdir(parents=True, exist_ok=True)
    tb.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    started = time.perf_counter()
    small = runs - big - wandb - tensorboard
    want_logs = {f"big-{k:02d}.jsonl" for k in range(big_jsonl)} | {f"run-{k:04d}.jsonl" for k in range(small)}
    want_tb = {f"tb-{k:04d}" for k in range(tensorboard)} | {f"big-tb-{k:02d}" for k in range(big_tb)}
    for p in logs.iterdir():
        if p.name not in want_logs:
            p.unlink()
    for p in tb.iterdir():
        if p.name not in want_tb:
            shutil.rmtree(p)
    # the big W&B runs, by directory name (big_wandb.json); the other W&B runs are the small ones
    wandb_dir = root / "wandb"
    big_file = root / "big_wandb.json"
    made_big: dict[str, str] = json.loads(big_file.read_text()) if big_file.exists() else {}
    made_big = {k: d for k, d in made_big.items() if int(k) < big_wandb and (wandb_dir / d).is_dir()}
    for d in wandb_dir.glob("offline-run-*") if wandb_dir.is_dir() else ():
        if d.name not in made_big.values() and _is_big_wandb(d):
            shutil.rmtree(d)  # a big run whose writing was interrupted, or one beyond the count
    small_runs = [d for d in wandb_dir.glob("offline-run-*") if d.name not in made_big.values()] \
        if wandb_dir.is_dir() else []
    if len(small_runs) != wandb:
        for d in small_runs:
            shutil.rmtree(d)
        if wandb:
            log(f"writing {wandb} W&B runs with wandb offline (child process) ...")
            run_child(WANDB_CHILD, str(root), str(wandb), "300", timeout=1800)
    log(f"writing the missing of {big_wandb} W&B runs of over {BIG_BYTES >> 20} MB (wandb offline, a child each) ...")
    for k in range(big_wandb):
        if str(k) not in made_big:
            made_big[str(k)] = _big_wandb(root, k)
            big_file.write_text(json.dumps(made_big))
    big_file.write_text(json.dumps(made_big))
    log(f"writing the missing of {big_tb} TensorBoard runs of over {BIG_BYTES >> 20} MB (tensorboardX) ...")
    for k in range(big_tb):
        if not (tb / f"big-tb-{k:02d}").exists():
            _big_tensorboard(tb / f"big-tb-{k:02d}", k)
    log(f"writing the missing of {big_jsonl} JSONL logs of over {BIG_BYTES >> 20} MB ...")
    for k in range(big_jsonl):
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


def _is_big_wandb(d: Path) -> bool:
    """A W&B run directory whose log is over BIG_BYTES (or still being written by an interrupted child)."""
    logs = list(d.glob("*.wandb"))
    return any(p.stat().st_size > BIG_BYTES // 4 for p in logs)


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
    ap.add_argument("--json", help="write the figures as JSON here (bench/run_all.py)")
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
    figures = []
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
        figures.append(figure(f"{args.runs:,} runs: {label}", round(r["seconds"], 2), unit="s",
                              target=f"<= {LIMITS[what]:g} s", passed=passed))
    for what in ("first", "second"):
        r = results[what]
        complete = r["n_incomplete"] == 0 and r["rows"] == args.runs
        ok &= complete
        print(f"{'PASS' if complete else 'FAIL'}  {what} listing: {r['rows']} rows of {r['total']}, "
              f"{r['n_incomplete']} without a state, last step or final value {r['incomplete']}; states {r['states']}")
        figures.append(figure(f"{what} listing: rows without a state, last step or final value", r["n_incomplete"],
                              target="0", passed=complete))
    ends = results["first"]["ends"]
    mix = dict(zip(("jsonl", "tensorboard", "wandb"), split_big(args.big), strict=True))
    passed = ends == {k: n for k, n in mix.items() if n}
    ok &= passed
    print(f"{'PASS' if passed else 'FAIL'}  the runs over 100 MB indexed from their ends by the first listing: "
          f"{ends} (of {mix})")
    first = results["by_best_first"]
    print(f"      find_best_run by best value, first (reads the large logs the listing read at their ends): "
          f"{first['seconds']:.2f} s")
    for what in ("best", "by_best"):
        r = results[what]
        print(f"      {r['summary']} ({r['considered']} considered)")
    figures.append(figure("runs over 100 MB indexed from their ends by the first listing", sum(ends.values()),
                          target=str(sum(mix.values())), passed=passed))
    write_figures(args.json, "large_project", figures)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
