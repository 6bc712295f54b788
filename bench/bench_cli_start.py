"""Start-up of the CLI: `runwise --help` against `python -c "import argparse"`, side by side.

    python bench/bench_cli_start.py [--repeat 30] [--limit 1.5] [--json PATH]

Three commands, each a fresh process, run interleaved (one of each per round, in a rotating
order, so a busy machine slows every side alike) the same number of times:
  argparse      python -c "import argparse"             the floor: an interpreter that loads argparse
  console       runwise --help                          the installed console script
  module        python -m runwise --help                the same through `-m`
Each side is one process; stdout/stderr go to the null device. Reports each side's median and
min wall time, and the ratio of each runwise side's median (and min) to argparse's. Exits 1 when
a median ratio is above --limit (the issue asks for at most 1.5x).

The console script is looked up next to this interpreter, then on PATH; it must belong to an
installation of this checkout (`pip install -e .`). The sides run without
PYTHONDONTWRITEBYTECODE, and one untimed warm-up run of each writes the bytecode caches, as
`pip install` does: otherwise every run of runwise would compile its modules from source.
`--json PATH` also writes the figures there (bench/run_all.py).
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


def console_script() -> str:
    """The `runwise` script of this interpreter's environment, else the one on PATH."""
    here = Path(sys.executable).with_name("runwise")
    if here.is_file():
        return str(here)
    found = shutil.which("runwise")
    if found is None:
        raise SystemExit("bench_cli_start: no `runwise` console script; install this checkout (pip install -e .)")
    return found


def sides() -> dict[str, list[str]]:
    return {
        "argparse": [sys.executable, "-c", "import argparse"],
        "console": [console_script(), "--help"],
        "module": [sys.executable, "-m", "runwise", "--help"],
    }


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV)
    return time.perf_counter() - start


def measure(commands: dict[str, list[str]], repeat: int) -> dict[str, list[float]]:
    """`repeat` rounds; each round runs every side once, starting from a different side each time."""
    names = list(commands)
    for name, argv in commands.items():  # warm the file and bytecode caches; not counted
        done = subprocess.run(argv, capture_output=True, text=True, check=True, env=ENV)
        # compare what the sides print before timing them: each runwise side must print the whole help
        if name != "argparse" and not ("usage: runwise" in done.stdout and "compare" in done.stdout):
            raise SystemExit(f"bench_cli_start: {' '.join(argv)} did not print runwise's help")
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeat):
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            times[name].append(timed(commands[name]))
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=30, help="runs of each side (default 30)")
    ap.add_argument("--limit", type=float, default=1.5, help="largest allowed median ratio (default 1.5)")
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()

    commands = sides()
    times = measure(commands, args.repeat)
    base_med = statistics.median(times["argparse"])
    base_min = min(times["argparse"])
    print(f"{args.repeat} runs of each side, interleaved; one process per run; times in ms")
    print(f"{'side':<9} {'median':>8} {'min':>8} {'ratio(median)':>14} {'ratio(min)':>11}  command")
    worst = 0.0
    for name, argv in commands.items():
        med, low = statistics.median(times[name]), min(times[name])
        ratio_med, ratio_min = med / base_med, low / base_min
        if name != "argparse":
            worst = max(worst, ratio_med)
        shown = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv))
        print(f"{name:<9} {med * 1e3:8.1f} {low * 1e3:8.1f} {ratio_med:14.2f} {ratio_min:11.2f}  {shown}")
    ok = worst <= args.limit
    print(f"{'ok' if ok else 'FAIL'}: slowest runwise side is {worst:.2f}x argparse (limit {args.limit}x)")
    if args.json:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _common import figure, write_figures

        write_figures(args.json, "cli_start", [
            figure(f"{' '.join(Path(a).name if i == 0 else a for i, a in enumerate(commands[name]))}, "
                   f"median of {args.repeat}", statistics.median(times[name]) * 1e3,
                   peer=base_med * 1e3, peer_name='python -c "import argparse"', unit="ms",
                   target=f"<= {args.limit:g}x", passed=statistics.median(times[name]) <= args.limit * base_med)
            for name in commands if name != "argparse"
        ], repeat=args.repeat)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
