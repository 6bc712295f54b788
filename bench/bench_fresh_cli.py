"""A fresh CLI process answering `runwise stats` on a 1,000,000-row run from the cache.

    python bench/bench_fresh_cli.py [--repeat 7] [--limit 2.0] [--json PATH]

The project holds one 1M-row JSONL run (`bench/_data/jsonl/logs/big.jsonl`, made with bench_jsonl's
generator if absent; hard-linked into `bench/_data/fresh_cli/logs/`), with its own disk cache
directory, emptied at the start. One `runwise stats big` reads the run and keeps what the next
process needs (the parsed run in the disk cache, the answer in the answer store). Then, interleaved
`--repeat` times each, three sides run as new processes with the same interpreter:

- `runwise stats big`: answers from the answer store (runwise.answers);
- the same command with the answer store removed before each run: it answers from the disk cache
  of the parsed run (loads the arrays, computes the statistics, keeps the answer again);
- `python -c "import numpy, pydantic"`: the reference.

Wall time of the whole process, median. PASS when the first side's median is at most `--limit`
times the reference's. Before any time is shown, the answers must equal the text of an uncached
process (RUNWISE_NO_CACHE=1: a full parse).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, figure, write_figures  # noqa: E402

DATA = ROOT / "bench" / "_data"
SOURCE = DATA / "jsonl" / "logs" / "big.jsonl"
PROJECT = DATA / "fresh_cli"
CACHE = DATA / "fresh_cli_cache"
ROWS = 1_000_000


def _runwise() -> list[str]:
    """The `runwise` console script beside this interpreter (as a user runs it), else `python -m runwise`."""
    script = Path(sys.executable).with_name("runwise")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "runwise"]


def _prepare() -> None:
    if not SOURCE.is_file():
        from bench.bench_jsonl import generate

        SOURCE.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {SOURCE.relative_to(ROOT)} ({ROWS:,} rows) ...", flush=True)
        generate(SOURCE, ROWS)
    # answers are kept only for files last written over two minutes ago: date a new input back
    old = time.time() - 3600
    if SOURCE.stat().st_mtime > old:
        os.utime(SOURCE, (old, old))
    target = PROJECT / "logs" / "big.jsonl"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(SOURCE, target)
    shutil.rmtree(CACHE, ignore_errors=True)
    shutil.rmtree(CACHE.with_name(CACHE.name + "-index"), ignore_errors=True)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWISE_")}
    return {**env, "RUNWISE_CACHE_DIR": str(CACHE), **extra}


def _stats(env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([*_runwise(), "--root", str(PROJECT), "stats", "big"], capture_output=True, text=True,
                          env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"runwise stats failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def _reference() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy, pydantic"], check=True)
    return time.perf_counter() - started


def _answers_removed(env: dict[str, str]) -> tuple[float, str]:
    from runwise.answers import store_path

    store = store_path(CACHE)
    for p in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        p.unlink(missing_ok=True)
    return _stats(env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--limit", type=float, default=2.0, help="most times the reference's median (default 2.0)")
    ap.add_argument("--json", help="write the figures as JSON here (bench/run_all.py)")
    args = ap.parse_args()
    _prepare()
    env = _env()

    _, expected = _stats(_env(RUNWISE_NO_CACHE="1"))
    first, text = _stats(env)  # reads the run, writes the disk cache and keeps the answer
    if text != expected:
        raise SystemExit("the first cached answer differs from an uncached one")
    print(f"first call (parse, write the cache): {first:.2f} s")

    sides: dict[str, list[float]] = {"stats (answer kept)": [], "stats (disk cache only)": [],
                                     "import numpy, pydantic": []}
    for _ in range(args.repeat):
        seconds, out = _stats(env)
        if out != expected:
            raise SystemExit("an answer from the answer store differs from an uncached one")
        sides["stats (answer kept)"].append(seconds)
        seconds, out = _answers_removed(env)
        if out != expected:
            raise SystemExit("an answer from the disk cache differs from an uncached one")
        sides["stats (disk cache only)"].append(seconds)
        sides["import numpy, pydantic"].append(_reference())
    _answers_removed(env)  # the store as the first side found it: with the answer (kept again by this call)

    ref = statistics.median(sides["import numpy, pydantic"])
    print(f"\n{'side':<26} {'median':>8} {'min':>8} {'x reference':>12}   ({args.repeat} runs each, interleaved)")
    for name, times in sides.items():
        med = statistics.median(times)
        print(f"{name:<26} {med * 1000:>6.0f} ms {min(times) * 1000:>5.0f} ms {med / ref:>11.2f}x")
    kept = statistics.median(sides["stats (answer kept)"])
    ok = kept <= args.limit * ref
    print(f"\nfresh `runwise stats` from the cache: {kept / ref:.2f}x `import numpy, pydantic` "
          f"(limit {args.limit:g}x): {'PASS' if ok else 'FAIL'}")
    write_figures(args.json, "fresh_cli", [
        figure("fresh `runwise stats` (1M rows), answer kept on disk", round(kept * 1000, 1),
               peer=round(ref * 1000, 1), peer_name="python -c 'import numpy, pydantic'", unit="ms",
               target=f"<= {args.limit:g}x", passed=ok),
        figure("fresh `runwise stats` (1M rows), disk cache of the run only",
               round(statistics.median(sides["stats (disk cache only)"]) * 1000, 1),
               peer=round(ref * 1000, 1), peer_name="python -c 'import numpy, pydantic'", unit="ms"),
    ])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
