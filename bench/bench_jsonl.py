"""JSONL at scale: a 1,000,000-row run, read by runwise vs plain orjson loops, side by side.

    python bench/bench_jsonl.py [--rows 1000000] [--repeat 3] [--json PATH]

Generates (once) `bench/_data/jsonl/logs/big.jsonl`: 1M rows x 5 metrics logged every step
(train/loss, train/acc, lr, grad_norm, samples_per_sec) plus val/loss every 100 steps, with one
one-step loss spike at step 612,345 (at the same fraction of a smaller run). Then runs each side
`--repeat` times, interleaved, each time in a fresh process with no cache, timed after imports;
median and min are reported:
  get_stats    the get_stats tool handler (discovery, parse, columns, stats)
  get_history  the get_history tool handler with default arguments
  loop         `rows = [orjson.loads(line) for line in f]`: one process
  loop_xN      the same loop split at line boundaries into N equal byte ranges, one per process
               of a ProcessPoolExecutor, where N is the number of processes runwise used (itself
               plus the worker interpreters it started, counted during the handler call); timed
               until every process has its rows (gathering them in one process is not timed,
               which favours the loop)
Every side's points (per metric: steps and values) are counted and digested (bench/_common.py)
and must agree before a ratio is printed; each handler's time is given against both loops.
It also checks what the issue asks: the default get_history output holds the spike's step and
the validation metric in at most 8,000 characters; summarize_run flags the spike; both handlers
take at most 1.5x the one-process loop. `--json PATH` also writes the figures there (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import Side, figure, repeat, run_child, same_points, table, write_figures  # noqa: E402

DATA = HERE / "_data" / "jsonl"


def spike_step(rows: int) -> int:
    """The step of the planted loss spike: 612,345 in a 1M-row run, the same fraction otherwise."""
    return rows * 612_345 // 1_000_000


def generate(path: Path, rows: int) -> None:
    import orjson

    rng = np.random.default_rng(0)
    steps = np.arange(rows)
    loss = 2.5 * np.exp(-steps / (rows / 5)) + 0.3 + 0.02 * rng.standard_normal(rows)
    loss[spike_step(rows)] *= 8.0
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


# The plain loops parse every line into the list of rows a script would then compute on, timed
# after imports like the handlers. Afterwards (not timed) their rows become per-metric columns
# for the points check.
COLUMNS = """
import json, sys
sys.path.insert(0, "bench")
from _common import count, digest

def columns(rows):
    cols = {}
    for row in rows:
        step = row.get("step")
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                s, vals = cols.setdefault(k, ([], []))
                s.append(step)
                vals.append(v)
    return cols

def emit(seconds, cols, processes, **extra):
    print(json.dumps({"seconds": seconds, "points": count(cols), "digest": digest(cols),
                      "processes": processes, **extra}))
"""

LOOP = COLUMNS + """
import time, orjson
t, c = time.perf_counter(), time.process_time()
with open(sys.argv[1], "rb") as f:
    rows = [orjson.loads(line) for line in f]
seconds, cpu = time.perf_counter() - t, time.process_time() - c
emit(seconds, columns(rows), 1, cpu_s=cpu)
"""

LOOP_PARALLEL = COLUMNS + """
import os, time, orjson
from concurrent.futures import ProcessPoolExecutor

def part(path, start, end):
    with open(path, "rb") as f:
        f.seek(start)
        rows = [orjson.loads(line) for line in f.read(end - start).splitlines()]
    done, cpu = time.monotonic(), time.process_time()  # the rows are parsed: the loop's work ends here
    return done, cpu, columns(rows)

def bounds(path, n):
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for i in range(1, n):
            f.seek(max(size * i // n, cuts[-1]))
            f.readline()
            cuts.append(min(f.tell(), size))
    return list(zip(cuts, cuts[1:] + [size]))

if __name__ == "__main__":
    path, n = sys.argv[1], int(sys.argv[2])
    t, c0 = time.monotonic(), time.process_time()
    with ProcessPoolExecutor(max_workers=n) as pool:
        parts = list(pool.map(part, [path] * n, *zip(*bounds(path, n))))
        parent_cpu = time.process_time() - c0
    seconds = max(done for done, _, _ in parts) - t
    cpu = parent_cpu + sum(worker_cpu for _, worker_cpu, _ in parts)  # a forked worker's CPU clock starts at 0
    cols = {}
    for _, _, c in parts:  # in file order
        for k, (s, v) in c.items():
            cs, cv = cols.setdefault(k, ([], []))
            cs.extend(s)
            cv.extend(v)
    emit(seconds, cols, n, cpu_s=cpu)
"""

# A handler call; the processes it used are this one plus every process it started (counted by
# wrapping subprocess.Popen); its points are those of the run it loaded (from the in-memory cache
# afterwards, not timed).
HANDLER = """
import json, resource, subprocess, sys, time
sys.path.insert(0, "bench")
from _common import count, digest
from runwise import runs
from runwise.config import RunwiseConfig
from runwise import tools
started = []
real_init = subprocess.Popen.__init__
def counting_init(self, *a, **k):
    started.append(a[0] if a else k.get("args"))
    real_init(self, *a, **k)
subprocess.Popen.__init__ = counting_init
spec = tools.TOOLS_BY_NAME[sys.argv[2]]
cfg = RunwiseConfig.load(sys.argv[1])
def cpu_now():
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # worker processes, once they were waited for
    return time.process_time() + kids.ru_utime + kids.ru_stime
t, c = time.perf_counter(), cpu_now()
out = spec.handler(spec.input(run=sys.argv[3]), cfg)
elapsed, cpu = time.perf_counter() - t, cpu_now() - c
subprocess.Popen.__init__ = real_init
run, _ = runs.get_run(sys.argv[3], cfg)
cols = {k: (s.steps, s.values) for k, s in run.history.items()}
print(json.dumps({"seconds": elapsed, "cpu_s": cpu, "output": out.model_dump_json(), "processes": 1 + len(started),
                  "points": count(cols), "digest": digest(cols)}))
"""


def run_py(code: str, *args: str, env_cache: bool = False) -> dict[str, object]:
    cache_dir = str(DATA.parent / "cache")
    env = dict(os.environ, RUNWISE_CACHE_DIR=cache_dir) if env_cache else dict(os.environ, RUNWISE_NO_CACHE="1")
    return run_child(code, *args, env=env)


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
import json
line = f"{t_full:.3f} {t_refresh:.3f} {len(first.history['train/loss'])} {len(second.history['train/loss'])} {same}"
print(json.dumps({"line": line}))
"""


def live(path: Path, figures: list[dict[str, object]] | None = None) -> bool:
    """A run still being written: read 95% of the file, append 1% more, read again."""
    out = run_py(LIVE, str(path), str(DATA.parent / "jsonl_live"))
    t_full, t_refresh, n1, n2, same = str(out["line"]).split()
    print(f"live run: first read of {int(n1):,} rows {float(t_full):.2f} s; after {int(n2) - int(n1):,} rows were "
          f"appended, second read {float(t_refresh):.3f} s; equal to a full read: {same}")
    if figures is not None:
        figures.append(figure("live run: read after 1% appended vs the first read (95%)", float(t_refresh),
                              peer=float(t_full), peer_name="runwise first read", unit="s",
                              target="equal to a full read", passed=same == "True"))
    return same == "True"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of every side (median and min are reported)")
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()
    figures: list[dict[str, object]] = []
    root = DATA if args.rows == 1_000_000 else DATA.with_name(f"jsonl_{args.rows}")
    path = root / "logs" / "big.jsonl"
    if not path.exists():
        t = time.perf_counter()
        generate(path, args.rows)
        size = path.stat().st_size / 1e6
        print(f"generated {path.relative_to(HERE.parent)} ({size:.0f} MB) in {time.perf_counter() - t:.1f}s")
    print(f"rows: {args.rows:,}; file {path.stat().st_size / 1e6:.0f} MB; {args.repeat} runs of each side, "
          "interleaved, each in a fresh process, timed after imports, no cache")
    outputs: dict[str, str] = {}

    def handler(tool: str) -> dict[str, object]:
        res = run_py(HANDLER, str(root), tool, "big")
        outputs[tool] = str(res.pop("output"))
        return res

    # runwise decides how many processes to use from the file and the machine: ask it once first
    first = handler("get_stats")
    n = int(first["processes"])  # type: ignore[call-overload]
    sides = [
        Side("get_stats", lambda: handler("get_stats"), f"{n} (runwise)"),
        Side("get_history", lambda: handler("get_history"), f"{n} (runwise)"),
        Side("loop", lambda: run_py(LOOP, str(path)), "1"),
        Side(f"loop_x{n}", lambda: run_py(LOOP_PARALLEL, str(path), str(n)), str(n)),
    ]
    repeat(sides, args.repeat)
    problems = same_points(sides)
    used = {int(r["processes"]) for s in sides[:2] for r in s.runs}
    if used != {n}:
        problems.append(f"runwise used {sorted(used)} processes across runs, the parallel loop {n}")
    if problems:
        print("NOT COMPARABLE: " + "; ".join(problems))
        write_figures(args.json, "jsonl", [figure("sides return the same points", False, target="same points",
                                                  passed=False)], problems=problems)
        return 1
    print(f"every run of every side: {sides[0].runs[0]['points']:,} points, digest {sides[0].runs[0]['digest']}; "
          f"runwise used {n} process{'es' if n > 1 else ''} (cpu_count {os.cpu_count()})")
    for line in table(sides, against="loop"):
        print(line)
    for s in sides[:2]:
        print(f"  {s.name}: {s.median / sides[2].median:.2f}x the one-process loop, "
              f"{s.median / sides[3].median:.2f}x the loop given the same {n} processes (medians)")
    summ = run_py(HANDLER, str(root), "summarize_run", "big")
    run_py(HANDLER, str(root), "get_stats", "big", env_cache=True)  # fills the on-disk cache
    hist = outputs["get_history"]
    hist_obj = json.loads(hist)
    spike = spike_step(args.rows)
    spike_kept = spike in hist_obj["metrics"]["train/loss"]["steps"]
    val_kept = "val/loss" in hist_obj["metrics"]
    anomalies = json.loads(str(summ["output"]))["anomalies"]
    spike_flagged = any(f"{spike:,}" in a or str(spike) in a for a in anomalies)
    warm = run_py(HANDLER, str(root), "get_stats", "big", env_cache=True)
    print(f"  get_stats from the on-disk cache (second process): {float(warm['seconds']):.2f} s")  # type: ignore[arg-type]
    print(f"get_history default output: {len(hist):,} chars; spike step kept: {spike_kept}; "
          f"val/loss present: {val_kept}")
    print(f"summarize_run flags the spike at {spike:,}: {spike_flagged}; "
          f"its output: {len(str(summ['output'])):,} chars")
    loop = sides[2].median
    for s in sides[:2]:
        figures.append(figure(f"{s.name} handler, {args.rows:,}-row run, median s ({n} processes)", s.median,
                              peer=loop, peer_name="orjson loop, 1 process", unit="s", target="<= 1.5x",
                              passed=s.median <= 1.5 * loop))
        figures.append(figure(f"{s.name} handler vs the loop given the same {n} processes", s.median,
                              peer=sides[3].median, peer_name=f"orjson loop x{n} processes", unit="s"))
    figures.append(figure("get_history default answer", len(hist), unit="chars", target="<= 8,000",
                          passed=len(hist) <= 8000))
    figures.append(figure("get_history keeps the spike step and val/loss; summarize_run flags the spike",
                          spike_kept and val_kept and spike_flagged, target="True",
                          passed=spike_kept and val_kept and spike_flagged))
    figures.append(figure("get_stats from the on-disk cache (second process)", float(warm["seconds"]),  # type: ignore[arg-type]
                          unit="s"))
    live_ok = live(path, figures)
    ok = (
        live_ok and spike_kept and val_kept and len(hist) <= 8000 and spike_flagged
        and sides[0].median <= 1.5 * loop and sides[1].median <= 1.5 * loop
    )
    write_figures(args.json, "jsonl", figures, rows_in_run=args.rows, repeat=args.repeat)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
