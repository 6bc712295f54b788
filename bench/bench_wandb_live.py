"""A live W&B run read twice: the first read is a full read, the second reads only the appended bytes.

    python bench/make_wandb_big.py          # once (offline run into bench/_data/, git-ignored)
    python bench/bench_wandb_live.py [--file path/to/run-<id>.wandb] [--first 0.95] [--grow 0.01] [--repeat 3]
                                     [--json PATH]

Copies the first 95% of the big log into bench/_data/live/, reads it through
runwise.runs.get_run (full read), appends the next 1% of the original bytes, reads again
(refresh), and checks the refreshed run equals a full read of the grown file. The cycle runs
`--repeat` times, in one process; each step's median and min are reported. `--json PATH` also
writes the figures there (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runwise import runs  # noqa: E402
from runwise.config import RunwiseConfig  # noqa: E402
from runwise.model import Run  # noqa: E402
from runwise.parsers.wandb import run as wandb_run  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from _common import figure, watch_source, write_figures  # noqa: E402

FIELDS = ("state", "config", "summary", "exit_code", "truncated", "output_tail", "warnings", "runtime", "non_numeric")


def differences(got: Run, want: Run) -> list[str]:
    out = [f for f in FIELDS if getattr(got, f) != getattr(want, f)]
    if list(got.history) != list(want.history):
        out.append("history keys")
    for k, s in want.history.items():
        g = got.history.get(k)
        if g is None or not np.array_equal(g.steps, s.steps) or not np.array_equal(g.values, s.values, equal_nan=True):
            out.append(f"history {k}")
    return out


def copy_head(src: Path, dst: Path, n: int) -> None:
    with src.open("rb") as a, dst.open("wb") as b:
        left = n
        while left:
            buf = a.read(min(left, 64 << 20))
            b.write(buf)
            left -= len(buf)


def cycle(src: Path, project: Path, head: int, grown: int) -> tuple[float, float, float, bool, list[str]]:
    """One first read, refresh and full read of the grown copy: their times, refresh used, differences."""
    shutil.rmtree(project, ignore_errors=True)
    run_dir = project / "wandb" / src.parent.name
    run_dir.mkdir(parents=True)
    log = run_dir / src.name
    copy_head(src, log, head)
    cfg = RunwiseConfig(project, env={"RUNWISE_WANDB_DIR": str(project / "wandb"), "RUNWISE_NO_CACHE": "1"})
    run_id = src.stem[len("run-"):]

    wandb_run._CACHE.clear()
    runs.clear_cache()
    t = time.perf_counter()
    runs.get_run(run_id, cfg)
    full_s = time.perf_counter() - t

    with src.open("rb") as a, log.open("ab") as b:
        a.seek(head)
        b.write(a.read(grown - head))
    os.utime(log)
    with watch_source("wandb") as calls:
        t = time.perf_counter()
        second, _ = runs.get_run(run_id, cfg)
        again_s = time.perf_counter() - t

    wandb_run._CACHE.clear()
    runs.clear_cache()
    t = time.perf_counter()
    want, _ = runs.get_run(run_id, cfg)
    grown_s = time.perf_counter() - t
    used_refresh = calls.refreshed == [True] and calls.full_reads == 0
    return full_s, again_s, grown_s, used_refresh, differences(second, want)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path)
    ap.add_argument("--first", type=float, default=0.95)
    ap.add_argument("--grow", type=float, default=0.01)
    ap.add_argument("--repeat", type=int, default=3, help="first read / refresh / full read cycles (median, min)")
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()
    src = args.file or next(iter(sorted((ROOT / "bench" / "_data").glob("wandb/*/run-*.wandb"))), None)
    if src is None:
        print("no run: python bench/make_wandb_big.py first", file=sys.stderr)
        return 1
    src = src.resolve()  # not through the latest-run link
    size = src.stat().st_size
    project = ROOT / "bench" / "_data" / "live"
    head, grown = int(size * args.first), int(size * (args.first + args.grow))
    print(f"file: {src.name} {size / 1e6:.0f} MB; first read of {head / 1e6:.0f} MB, then "
          f"{(grown - head) / 1e6:.1f} MB appended; {args.repeat} cycles, one process")
    times: dict[str, list[float]] = {"full read": [], f"refresh (+{args.grow:.0%})": [], "full read grown": []}
    ok = True
    for i in range(args.repeat):
        full_s, again_s, grown_s, used_refresh, diff = cycle(src, project, head, grown)
        for k, x in zip(times, (full_s, again_s, grown_s), strict=True):
            times[k].append(x)
        print(f"  cycle {i + 1}: full {full_s:.2f} s, refresh {again_s:.3f} s (used refresh: {used_refresh}), "
              f"full read grown {grown_s:.2f} s; refreshed run "
              + ("equals the full read" if not diff else f"DIFFERS from the full read: {', '.join(diff[:5])}"))
        ok = ok and used_refresh and not diff
    if not ok:
        print("refresh not used or not equal to a full read: no figures")
        write_figures(args.json, "wandb_live", [figure("refresh used and equal to a full read", False,
                                                       target="True", passed=False)])
        return 1
    for k, xs in times.items():
        print(f"  {k:18s} median {statistics.median(xs):7.3f} s  min {min(xs):7.3f} s  "
              f"[{', '.join(f'{x:.3f}' for x in xs)}]")
    ratio = statistics.median(times["full read grown"]) / statistics.median(times[f"refresh (+{args.grow:.0%})"])
    print(f"  refresh is {ratio:.0f}x faster than a full read of the grown file (medians)")
    full, refresh, grown = (statistics.median(xs) for xs in times.values())
    write_figures(args.json, "wandb_live", [
        figure(f"live 1M-row .wandb: read after {args.grow:.0%} appended (refresh, equal to a full read), median s",
               refresh, peer=grown, peer_name="runwise full read of the grown file", unit="s",
               target="equal to a full read", passed=True),
        figure(f"first read of {args.first:.0%} of the file (full read), median s", full, unit="s"),
    ], repeat=args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
