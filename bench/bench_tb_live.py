"""A live TensorBoard run: the first read, then the read after the writer appended 1% more.

    python bench/bench_tb_live.py [--steps 1000000] [--start 0.95] [--grow 0.01] [--repeat 3] [--json PATH]

Takes the generated file of bench_tensorboard.py (bench/_data/tb_<steps>/, made if missing),
copies its first 95% of bytes (cut mid-record, as a running writer leaves it) into
bench/_data/tb_live/run/, and reads the run through `runwise.runs.get_run` (no disk cache): a
full read. Then it appends the next 1% of the original bytes and reads again: `runs.load` finds
the previous Run and the TensorBoard source reads only the appended bytes (`refresh`). The
second result is checked against a full read of the grown file (every point, every field). The
cycle runs `--repeat` times, in one process; each read's median and min are reported. `--json PATH`
also writes the figures there (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import figure, watch_source, write_figures  # noqa: E402
from bench_tensorboard import generate  # noqa: E402

from runwise import runs  # noqa: E402
from runwise.config import RunwiseConfig  # noqa: E402
from runwise.model import Run  # noqa: E402
from runwise.parsers.tensorboard import run as tb  # noqa: E402

FIELDS = ["state", "config", "notes", "non_numeric", "start_time", "runtime", "truncated", "warnings", "segments"]


def copy_prefix(src: Path, dst: Path, n: int, start: int = 0) -> None:
    with src.open("rb") as fi, dst.open("ab") as fo:
        fi.seek(start)
        left = n - start
        while left > 0:
            buf = fi.read(min(left, 64 << 20))
            fo.write(buf)
            left -= len(buf)


def differences(a: Run, b: Run) -> list[str]:
    out = [f for f in FIELDS if getattr(a, f) != getattr(b, f)]
    if a.summary.keys() != b.summary.keys() or any(
        not (a.summary[k] == v or (math.isnan(a.summary[k]) and math.isnan(v))) for k, v in b.summary.items()
    ):
        out.append("summary")
    if list(a.history) != list(b.history):
        out.append("history keys")
    for tag, s in b.history.items():
        t = a.history.get(tag)
        if t is None or not (np.array_equal(t.steps, s.steps) and np.array_equal(t.values, s.values, equal_nan=True)):
            out.append(f"history {tag}")
    return out


def cycle(src: Path, root: Path, first: int, second: int) -> tuple[float, float, float, int, int, bool, list[str]]:
    """One first read, read after the append, and full read of the grown copy (times, points, checks)."""
    run_dir = root / "run"
    shutil.rmtree(root, ignore_errors=True)
    run_dir.mkdir(parents=True)
    live = run_dir / src.name
    copy_prefix(src, live, first)
    cfg = RunwiseConfig(root, env={"RUNWISE_NO_CACHE": "1"})
    ref = str(run_dir)
    runs.clear_cache()

    t0 = time.perf_counter()
    before, _ = runs.get_run(ref, cfg)
    t_first = time.perf_counter() - t0

    copy_prefix(src, live, second, start=first)
    with watch_source("tensorboard") as calls:
        t0 = time.perf_counter()
        after, _ = runs.get_run(ref, cfg)
        t_second = time.perf_counter() - t0

    t0 = time.perf_counter()
    full = tb.load_file(run_dir, cfg)
    t_full = time.perf_counter() - t0
    full.id = after.id
    runs.clear_cache()
    n_before = sum(len(s) for s in before.history.values())
    n_after = sum(len(s) for s in after.history.values())
    refreshed = calls.refreshed == [True] and calls.full_reads == 0
    return t_first, t_second, t_full, n_before, n_after, refreshed, differences(after, full)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--start", type=float, default=0.95, help="fraction of the file present at the first read")
    ap.add_argument("--grow", type=float, default=0.01, help="fraction appended before the second read")
    ap.add_argument("--repeat", type=int, default=3, help="cycles of the three reads (median and min)")
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()
    src = generate(HERE / "_data" / f"tb_{args.steps}", args.steps)
    root = HERE / "_data" / "tb_live"
    size = src.stat().st_size
    first, second = int(size * args.start), int(size * (args.start + args.grow))
    print(f"file: {src.relative_to(HERE.parent)}  {size / 2**20:.0f} MiB; live copy {first / 2**20:.1f} MiB "
          f"+ {(second - first) / 2**20:.1f} MiB appended; {args.repeat} cycles, one process")
    names = ("first read (full)", "second read (appended)", "full read of the grown")
    times: dict[str, list[float]] = {k: [] for k in names}
    ok = True
    for i in range(args.repeat):
        t_first, t_second, t_full, n_before, n_after, refreshed, diff = cycle(src, root, first, second)
        for k, x in zip(times, (t_first, t_second, t_full), strict=True):
            times[k].append(x)
        print(f"  cycle {i + 1}: first {t_first:.3f} s ({n_before:,} points), second {t_second:.3f} s "
              f"({n_after:,} points, {'refresh' if refreshed else 'FULL READ'}), full read of the grown "
              f"{t_full:.3f} s; equal to the full read: " + ("yes" if not diff else f"NO: {', '.join(diff)}"))
        ok = ok and refreshed and not diff
    if not ok:
        print("refresh not used or not equal to a full read: no figures")
        write_figures(args.json, "tb_live", [figure("refresh used and equal to a full read", False, target="True",
                                                    passed=False)])
        sys.exit(1)
    for k, xs in times.items():
        print(f"  {k:24s} median {statistics.median(xs):7.3f} s  min {min(xs):7.3f} s  "
              f"[{', '.join(f'{x:.3f}' for x in xs)}]")
    ratio = statistics.median(times["full read of the grown"]) / statistics.median(times["second read (appended)"])
    print(f"  the second read is {ratio:.0f}x faster than a full read of the grown file (medians)")
    first_s, second_s, full_s = (statistics.median(xs) for xs in times.values())
    write_figures(args.json, "tb_live", [
        figure(f"live {args.steps:,}-step tfevents: read after {args.grow:.0%} appended (refresh, equal to a full "
               "read), median s", second_s, peer=full_s, peer_name="runwise full read of the grown file", unit="s",
               target="equal to a full read", passed=True),
        figure(f"first read of {args.start:.0%} of the file (full read), median s", first_s, unit="s"),
    ], repeat=args.repeat)


if __name__ == "__main__":
    main()
