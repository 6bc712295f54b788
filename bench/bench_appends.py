"""Resume across processes: a new process answers about a grown run from the bytes appended since.

    python bench/bench_appends.py [--sources jsonl,tensorboard,wandb] [--repeat 3] [--rows 1000]
                                  [--limit 0.3] [--json PATH]

The runs (copies under `bench/_data/appends/<source>/`, each a project of its own: this bench appends
to them):

- jsonl: `bench/_data/jsonl/logs/big.jsonl`, 1,000,000 rows (made with bench_jsonl's generator if
  absent), copied whole; `--rows` rows (same keys, steps going on) are appended.
- tensorboard: the first 95% of the bytes of `bench/_data/tb_100000/`'s event file (bench_tensorboard's,
  made if absent), cut mid-record as a running writer leaves it; the next 1% of its bytes are appended.
- wandb: the first 10% of the big offline W&B log (bench/make_wandb_big.py; skipped if absent), cut
  mid-record; the next 0.1% of its bytes are appended (about 1,000 rows).

Each repeat, from a fresh copy and an empty cache directory:

1. process A: `runwise stats <run>` (the CLI's main, in a child process) reads the run whole and
   writes its disk cache entry (with the source's resume state);
2. the run grows (above);
3. process B: `runwise stats <run>` again. It is timed inside the child from just before the command
   (after imports: `handler`; of it, the run's read: `runs._read`) and as a whole process from the
   parent (`wall`). The child watches the source's reader and reports the byte ranges it parsed and
   whether it read a file whole.

A source passes when, in every repeat, process B read nothing whole and parsed exactly the appended
bytes (W&B: from the start of the chunk the cut was in, at most one 32 KiB block before the old end),
and its run (every point) and its answer equal an uncached process's on the same grown run (RUNWISE_NO_CACHE=1: a
full parse, run right after process B). The JSONL run must also answer within `--limit` seconds (median handler time).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, figure, write_figures  # noqa: E402

DATA = ROOT / "bench" / "_data"
HOME = DATA / "appends"
JSONL_SOURCE = DATA / "jsonl" / "logs" / "big.jsonl"
JSONL_ROWS = 1_000_000
TB_STEPS = 100_000
WANDB_BLOCK = 32 * 1024

CHILD = r"""
import io, json, os, sys, time, contextlib
root, ref, source = sys.argv[1:4]
from runwise import cli
# what `runwise stats` imports on its way (lazily): imported before the clock starts
import runwise.commands, runwise.tools, runwise.tools.metrics, runwise.render, runwise.config, runwise._state
from runwise import runs, parsers
parsers.source_module(source)
parsed, whole, load = [], [], []
real_read = runs._read
def timed_read(*a, **kw):
    t = time.perf_counter()
    try:
        return real_read(*a, **kw)
    finally:
        load.append(time.perf_counter() - t)
runs._read = timed_read
if source == "jsonl":
    from runwise.parsers import jsonl
    real_part, real_parts = jsonl.read_part, jsonl.jsonl_workers.read_parts
    def read_part(path, start, end, **kw):
        parsed.append([start, end])
        return real_part(path, start, end, **kw)
    def read_parts(path, size, **kw):
        whole.append(path); parsed.append([0, size])
        return real_parts(path, size, **kw)
    jsonl.read_part, jsonl.jsonl_workers.read_parts = read_part, read_parts
elif source == "tensorboard":
    from runwise.parsers.tensorboard import resume, run as tb_run
    def watch(real, is_whole):
        def read_events(fp, *, path, start=0, **kw):
            if is_whole:
                whole.append(path)
            parsed.append([start, os.fstat(fp.fileno()).st_size])
            return real(fp, path=path, start=start, **kw)
        return read_events
    tb_run.read_events = watch(tb_run.read_events, True)
    resume.read_events = watch(resume.read_events, False)
elif source == "wandb":
    from runwise.parsers.wandb import run as wb_run, segment
    real_log, real_on = wb_run.read_log, wb_run.read_on
    def read_log(d, log, **kw):
        whole.append(str(log)); parsed.append([0, os.stat(log).st_size])
        return real_log(d, log, **kw)
    def read_on(d, previous, *a, **kw):
        parsed.append([previous.cursor.pos, os.stat(previous.log).st_size])
        return real_on(d, previous, *a, **kw)
    wb_run.read_log, wb_run.read_on, segment.read_log = read_log, read_on, read_log
out = io.StringIO()
started = time.perf_counter()
cpu = time.process_time()
with contextlib.redirect_stdout(out):
    code = cli.main(["--root", root, "stats", ref])
seconds = time.perf_counter() - started
cpu = time.process_time() - cpu
from pathlib import Path
from bench._common import digest
from runwise.config import RunwiseConfig
run, _ = runs.get_run(ref, RunwiseConfig.load(Path(root)))  # in memory now: its points, to compare
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "code": code, "parsed": parsed, "whole": whole,
                  "load": sum(load), "text": out.getvalue(),
                  "digest": digest({k: (s.steps, s.values) for k, s in run.history.items()})}))
"""


@dataclass
class Run:
    """One source's growing run: where it lives, how to start it afresh and how it grows."""

    source: str
    ref: str
    log: Path  # the file that grows
    fresh: Callable[[], None]  # the run as process A finds it
    grow: Callable[[], int]  # appends; returns the bytes appended

    @property
    def root(self) -> Path:
        return HOME / self.source

    @property
    def cache(self) -> Path:
        return self.root / "cache"


def _copy_bytes(src: Path, dst: Path, start: int, end: int) -> int:
    with src.open("rb") as fi, dst.open("ab") as fo:
        fi.seek(start)
        left = end - start
        while left > 0:
            buf = fi.read(min(left, 64 << 20))
            if not buf:
                break
            fo.write(buf)
            left -= len(buf)
    return end - start - left


def _jsonl() -> Run:
    log = HOME / "jsonl" / "logs" / "big.jsonl"

    def fresh() -> None:
        if not JSONL_SOURCE.is_file():
            from bench.bench_jsonl import generate

            print(f"generating {JSONL_SOURCE.relative_to(ROOT)} ({JSONL_ROWS:,} rows) ...", flush=True)
            generate(JSONL_SOURCE, JSONL_ROWS)
        log.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(JSONL_SOURCE, log)

    def grow() -> int:
        import orjson

        lines = []
        for i in range(JSONL_ROWS, JSONL_ROWS + ROWS_APPENDED):
            row: dict[str, Any] = {"step": i, "train/loss": 0.3 + 1e-6 * (i % 97), "train/acc": 0.9 - 1e-6 * (i % 89),
                                   "lr": 1e-9 * (1 + i % 5), "grad_norm": 1.0 + 1e-3 * (i % 13),
                                   "samples_per_sec": 1200.0 + i % 17}
            if i % 100 == 0:
                row["val/loss"] = 0.35 + 1e-6 * (i % 101)
            lines.append(orjson.dumps(row) + b"\n")
        data = b"".join(lines)
        with log.open("ab") as fp:
            fp.write(data)
        return len(data)

    return Run("jsonl", "big", log, fresh, grow)


def _tensorboard() -> Run:
    src_dir = DATA / f"tb_{TB_STEPS}"
    run_dir = HOME / "tensorboard" / "runs" / "tb"

    def source_file() -> Path:
        found = sorted(src_dir.glob("events.out.tfevents.*"))
        if not found:
            from bench.bench_tensorboard import generate

            print(f"generating {src_dir.relative_to(ROOT)} ...", flush=True)
            generate(src_dir, TB_STEPS)
            found = sorted(src_dir.glob("events.out.tfevents.*"))
        return found[0]

    def fresh() -> None:
        src = source_file()
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        _copy_bytes(src, run_dir / src.name, 0, int(src.stat().st_size * 0.95))

    def grow() -> int:
        src = source_file()
        dst = run_dir / src.name
        size = dst.stat().st_size
        return _copy_bytes(src, dst, size, size + src.stat().st_size // 100)

    return Run("tensorboard", "tb", run_dir / source_file().name, fresh, grow)


def _wandb() -> Run | None:
    found = sorted((DATA / "wandb").glob("offline-run-*/run-*.wandb"))
    if not found:
        return None
    src = max(found, key=lambda p: p.stat().st_size)
    run_dir = HOME / "wandb" / "wandb" / src.parent.name

    def fresh() -> None:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(src.parent, run_dir, ignore=shutil.ignore_patterns("*.wandb"))
        _copy_bytes(src, run_dir / src.name, 0, src.stat().st_size // 10)

    def grow() -> int:
        dst = run_dir / src.name
        size = dst.stat().st_size
        return _copy_bytes(src, dst, size, size + src.stat().st_size // 1000)

    return Run("wandb", src.stem[len("run-"):], run_dir / src.name, fresh, grow)


ROWS_APPENDED = 1000


def _env(run: Run, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWISE_", "WANDB_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, "RUNWISE_CACHE_DIR": str(run.cache), **extra}


def _child(run: Run, env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(run.root), run.ref, run.source], capture_output=True,
                          text=True, env=env, cwd=ROOT, check=False, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if out["code"] != 0:
        raise SystemExit(f"runwise stats failed: {out['text'][-500:]}")
    out["wall"] = wall
    return out


def _ms(xs: list[float]) -> str:
    return ", ".join(f"{x * 1000:.0f}" for x in xs)


def bench(run: Run, repeat: int, limit: float | None) -> tuple[bool, list[dict[str, Any]]]:
    print(f"{run.source}: {run.log.relative_to(ROOT)}", flush=True)
    problems: list[str] = []
    first, handler, reading, wall = [], [], [], []
    for i in range(repeat):
        shutil.rmtree(run.cache, ignore_errors=True)
        shutil.rmtree(run.cache.with_name(run.cache.name + "-index"), ignore_errors=True)
        run.fresh()
        size = run.log.stat().st_size
        a = _child(run, _env(run))  # reads the run whole, writes the cache entry
        if not a["whole"]:
            problems.append(f"repeat {i + 1}: process A did not read the run whole")
        entry = sum(p.stat().st_size for p in run.cache.glob("*.npz"))
        appended = run.grow()
        b = _child(run, _env(run))
        uncached = _child(run, _env(run, RUNWISE_NO_CACHE="1"))  # at once: "running" depends on the clock
        expected = uncached["text"]
        parsed = sum(end - start for start, end in b["parsed"])
        print(f"  repeat {i + 1}/{repeat}: A {a['seconds']:.2f} s (file {size / 2**20:.0f} MiB, cache entry "
              f"{entry / 2**20:.0f} MiB); appended {appended:,} B; B handler {b['seconds'] * 1000:.0f} ms "
              f"(cpu {b['cpu_s'] * 1000:.0f} ms; reading the run {b['load'] * 1000:.0f} ms), wall "
              f"{b['wall'] * 1000:.0f} ms, parsed {parsed:,} B in {b['parsed']}", flush=True)
        if b["whole"]:
            problems.append(f"repeat {i + 1}: process B read {b['whole']} whole")
        ranges = b["parsed"]
        if run.source == "wandb":  # from the chunk the old end was in (its start is at most a block before)
            ok = len(ranges) == 1 and size - WANDB_BLOCK <= ranges[0][0] <= size and ranges[0][1] == size + appended
        elif run.source == "tensorboard":  # from the end of the last complete record (the cut one is read again)
            ok = len(ranges) == 1 and size - 64 * 1024 <= ranges[0][0] <= size and ranges[0][1] == size + appended
        else:
            ok = ranges == [[size, size + appended]]
        if not ok:
            problems.append(f"repeat {i + 1}: process B parsed {ranges} (the run grew from {size} by {appended})")
        if b["digest"] != uncached["digest"]:
            problems.append(f"repeat {i + 1}: process B's run has other points than an uncached process's")
        if b["text"] != expected:
            diff = difflib.unified_diff(expected.splitlines(), b["text"].splitlines(), "uncached", "process B",
                                        lineterm="", n=0)
            problems.append(f"repeat {i + 1}: process B's answer differs from an uncached process's:\n    "
                            + "\n    ".join(list(diff)[:12]))
        first.append(a["seconds"])
        handler.append(b["seconds"])
        reading.append(b["load"])
        wall.append(b["wall"])
    med = statistics.median(handler)
    passed = not problems and (limit is None or med <= limit)
    print(f"  process A (whole read + cache write): median {statistics.median(first):.2f} s")
    print(f"  process B after the run grew: handler median {med * 1000:.0f} ms [{_ms(handler)}], of it reading "
          f"the run {statistics.median(reading) * 1000:.0f} ms [{_ms(reading)}]; whole process median "
          f"{statistics.median(wall) * 1000:.0f} ms [{_ms(wall)}]")
    for p in problems:
        print("  problem:", p)
    target = f"<= {limit * 1000:.0f} ms, " if limit is not None else ""
    print(f"  {run.source}: {'PASS' if passed else 'FAIL'} ({target}only the appended bytes parsed, "
          f"answer equal to an uncached process's)", flush=True)
    rows = [
        figure(f"{run.source}: runwise stats in a new process after the run grew (handler)", med, unit="s",
               target=f"{target}only appended bytes parsed, same answer", passed=passed),
        figure(f"{run.source}: the same, whole process", statistics.median(wall), unit="s"),
    ]
    return passed, rows


def main() -> int:
    global ROWS_APPENDED
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", default="jsonl,tensorboard,wandb")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1000, help="rows appended to the JSONL run between the processes")
    ap.add_argument("--limit", type=float, default=0.3, help="most seconds for the JSONL run's process B (median)")
    ap.add_argument("--json", help="write the figures as JSON here (bench/run_all.py)")
    args = ap.parse_args()
    ROWS_APPENDED = args.rows
    makers: dict[str, Callable[[], Run | None]] = {"jsonl": _jsonl, "tensorboard": _tensorboard, "wandb": _wandb}
    results: list[bool] = []
    rows: list[dict[str, Any]] = []
    for name in args.sources.split(","):
        run = makers[name]()
        if run is None:
            print(f"{name}: skipped (no input; see the docstring)")
            continue
        passed, figures = bench(run, args.repeat, args.limit if name == "jsonl" else None)
        results.append(passed)
        rows.extend(figures)
    write_figures(args.json, "bench_appends", rows)
    print("PASS" if results and all(results) else "FAIL")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
