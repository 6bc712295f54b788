"""Resume across processes: a new process answers about a grown 1,000,000-row run from its appended bytes.

    python bench/bench_appends.py [--repeat 3] [--rows 1000] [--limit 0.3] [--json PATH]

The run is `bench/_data/jsonl/logs/big.jsonl` (made with bench_jsonl's generator if absent), copied
into `bench/_data/appends/logs/` (a copy: this bench appends to it). Each repeat, from a fresh copy
and an empty cache directory (`bench/_data/appends/cache`):

1. process A: `runwise stats big` (the CLI's main, in a child process) reads the run whole and writes
   its disk cache entry (with the JSONL reader's resume state);
2. `--rows` rows are appended to the log (same keys, steps going on), as the training script would;
3. process B: `runwise stats big` again. It is timed inside the child from just before the command
   (after imports: `handler`; of it, the run's read: `runs._read`) and as a whole process from the
   parent (`wall`). The child watches the JSONL reader and reports the byte ranges it parsed and
   whether it read the log whole.

PASS when, in every repeat, process B read nothing whole and parsed exactly the appended bytes, its
answer equals the text of an uncached process on the same grown log (RUNWISE_NO_CACHE=1: a full
parse, run once), and the median handler time is at most `--limit` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, figure, write_figures  # noqa: E402

DATA = ROOT / "bench" / "_data"
SOURCE = DATA / "jsonl" / "logs" / "big.jsonl"
PROJECT = DATA / "appends"
LOG = PROJECT / "logs" / "big.jsonl"
CACHE = PROJECT / "cache"
ROWS = 1_000_000

CHILD = r"""
import io, json, os, sys, time, contextlib
from runwise import cli
# what `runwise stats` imports on its way (lazily): imported before the clock starts
import runwise.commands, runwise.tools, runwise.tools.metrics, runwise.render, runwise.config, runwise._state
from runwise import runs
from runwise.parsers import jsonl
parsed, whole, load = [], [], []
real_read = runs._read
def timed_read(*a, **kw):
    t = time.perf_counter()
    try:
        return real_read(*a, **kw)
    finally:
        load.append(time.perf_counter() - t)
runs._read = timed_read
real_part, real_parts = jsonl.read_part, jsonl.jsonl_workers.read_parts
def read_part(path, start, end, **kw):
    parsed.append([start, end])
    return real_part(path, start, end, **kw)
def read_parts(path, size, **kw):
    whole.append(size); parsed.append([0, size])
    return real_parts(path, size, **kw)
jsonl.read_part, jsonl.jsonl_workers.read_parts = read_part, read_parts
out = io.StringIO()
started = time.perf_counter()
cpu = time.process_time()
with contextlib.redirect_stdout(out):
    code = cli.main(["--root", sys.argv[1], "stats", "big"])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "cpu_s": time.process_time() - cpu, "code": code, "parsed": parsed,
                  "whole": whole, "load": sum(load), "text": out.getvalue()}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWISE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, "RUNWISE_CACHE_DIR": str(CACHE), **extra}


def _child(env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(PROJECT)], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=False, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if out["code"] != 0:
        raise SystemExit(f"runwise stats failed: {out['text'][-500:]}")
    out["wall"] = wall
    return out


def _fresh_copy() -> None:
    if not SOURCE.is_file():
        from bench.bench_jsonl import generate

        print(f"generating {SOURCE.relative_to(ROOT)} ({ROWS:,} rows) ...", flush=True)
        generate(SOURCE, ROWS)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE, LOG)
    shutil.rmtree(CACHE, ignore_errors=True)
    shutil.rmtree(CACHE.with_name(CACHE.name + "-index"), ignore_errors=True)


def _append(rows: int) -> int:
    """Append `rows` rows like the generator's (the steps go on after the last); returns the bytes written."""
    import orjson

    lines = []
    for i in range(ROWS, ROWS + rows):
        row: dict[str, Any] = {"step": i, "train/loss": 0.3 + 1e-6 * (i % 97), "train/acc": 0.9 - 1e-6 * (i % 89),
                               "lr": 1e-9 * (1 + i % 5), "grad_norm": 1.0 + 1e-3 * (i % 13),
                               "samples_per_sec": 1200.0 + i % 17}
        if i % 100 == 0:
            row["val/loss"] = 0.35 + 1e-6 * (i % 101)
        lines.append(orjson.dumps(row) + b"\n")
    data = b"".join(lines)
    with LOG.open("ab") as fp:
        fp.write(data)
    return len(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1000, help="rows appended between the two processes")
    ap.add_argument("--limit", type=float, default=0.3, help="most seconds for process B's command (median)")
    ap.add_argument("--json", help="write the figures as JSON here (bench/run_all.py)")
    args = ap.parse_args()
    env = _env()
    problems: list[str] = []
    first: list[float] = []
    handler: list[float] = []
    wall: list[float] = []
    expected = ""
    for i in range(args.repeat):
        _fresh_copy()
        size = LOG.stat().st_size
        a = _child(env)  # reads the run whole, writes the cache entry
        if not a["whole"]:
            problems.append(f"repeat {i + 1}: process A did not read the run whole")
        entry = sum(p.stat().st_size for p in CACHE.glob("*.npz"))
        appended = _append(args.rows)
        b = _child(env)
        if not expected:
            expected = _child(_env(RUNWISE_NO_CACHE="1"))["text"]  # the same grown log every repeat
        parsed = sum(end - start for start, end in b["parsed"])
        print(f"  repeat {i + 1}/{args.repeat}: A {a['seconds']:.2f} s (cache entry {entry / 2**20:.0f} MiB); "
              f"appended {appended:,} B; B handler {b['seconds'] * 1000:.0f} ms (cpu {b['cpu_s'] * 1000:.0f} ms; "
              f"of it reading the run {b['load'] * 1000:.0f} ms), "
              f"wall {b['wall'] * 1000:.0f} ms, parsed {parsed:,} B in {b['parsed']}", flush=True)
        if b["whole"]:
            problems.append(f"repeat {i + 1}: process B read the log whole")
        if b["parsed"] != [[size, size + appended]]:
            problems.append(f"repeat {i + 1}: process B parsed {b['parsed']}, not [[{size}, {size + appended}]]")
        if b["text"] != expected:
            problems.append(f"repeat {i + 1}: process B's answer differs from an uncached process's")
        first.append(a["seconds"])
        handler.append(b["seconds"])
        wall.append(b["wall"])
    med = statistics.median(handler)
    passed = not problems and med <= args.limit
    print(f"process A (whole read + cache write): median {statistics.median(first):.2f} s")
    print(f"process B `runwise stats big` after {args.rows:,} appended rows: handler median {med * 1000:.0f} ms "
          f"[{', '.join(f'{x * 1000:.0f}' for x in handler)}], whole process median "
          f"{statistics.median(wall) * 1000:.0f} ms [{', '.join(f'{x * 1000:.0f}' for x in wall)}]")
    for p in problems:
        print("  problem:", p)
    print(f"{'PASS' if passed else 'FAIL'}: handler median {med * 1000:.0f} ms, limit {args.limit * 1000:.0f} ms; "
          f"{'only the appended bytes parsed, answer equal to an uncached one' if not problems else 'see problems'}")
    write_figures(args.json, "bench_appends", [
        figure("runwise stats after appends, new process (handler)", med, unit="s",
               target=f"<= {args.limit} s, only appended bytes parsed", passed=passed),
        figure("runwise stats after appends, new process (whole process)", statistics.median(wall), unit="s"),
    ])
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
