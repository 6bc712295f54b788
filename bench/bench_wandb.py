"""Read the full history of a 1,000,000-row W&B run: runwise vs wandb's protobuf parser.

    python bench/make_wandb_big.py          # once (offline run into bench/_data/, git-ignored)
    python bench/bench_wandb.py [--repeat 3] [--file path/to/run-<id>.wandb] [--skip-reference]

Each reader runs `--repeat` times (interleaved: runwise, reference, runwise, ...), each time in a
fresh subprocess, timed after its imports. runwise reads a log this big in several processes: it
splits the log at window boundaries and starts child interpreters for the later parts
(runwise.parsers.wandb.workers; as many processes as CPUs, at most 4), so its wall time is that of
several cores. The table says how many processes each side used, and shows the CPU seconds of
each side (for runwise, its own plus its children's, from getrusage(RUSAGE_CHILDREN); the
children's start-up counts, as it is part of the read) next to the wall times. Peak memory is
getrusage's maxrss of the reading process, and for runwise also of its largest child.
The reference is tests/wandb_reference.py, in one process: a Python chunk loop,
`wandb_internal_pb2.Record.FromString` per record and `json.loads` per history value. Both must
return the same keys, steps and values (same point count and digest, bench/_common.py) on every
run before the ratios (of the medians and of the minima) are printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Side, figure, repeat, run_child, same_points, table, write_figures  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, "bench")
from _common import count, digest
which, path = sys.argv[1], Path(sys.argv[2])
if which == "runwise":
    from runwise.parsers.wandb.segment import read_log
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    t, c = time.perf_counter(), time.process_time()
    hist = read_log(path.parent, path).history
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # worker processes, all reaped by now
    cpu += (after.ru_utime + after.ru_stime) - (kids.ru_utime + kids.ru_stime)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the digest allocates
    child_rss = after.ru_maxrss / 1024
    cols = {k: (s, v) for k, (s, v) in hist.items()}
else:
    from tests import wandb_reference as ref
    import wandb.proto.wandb_internal_pb2  # import cost is not timed
    t, c = time.perf_counter(), time.process_time()
    cols = ref.history(path.read_bytes())
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = 0.0
print(json.dumps({"seconds": secs, "cpu_s": cpu, "rss_mb": rss, "child_rss_mb": child_rss,
                  "points": count(cols), "keys": len(cols),
                  "digest": digest(cols)}))
"""


def peak(side: Side) -> str:
    out = f"  peak {max(r['rss_mb'] for r in side.runs):.0f} MB"
    kids = max(float(r.get("child_rss_mb", 0.0)) for r in side.runs)
    return out + (f" (largest worker {kids:.0f} MB)" if kids else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--target", type=float, default=8.0, help="protobuf's time over runwise's, best of runs")
    ap.add_argument("--json", help="write the figures as JSON here (bench/run_all.py)")
    args = ap.parse_args()
    path = args.file or next(iter(sorted((ROOT / "bench" / "_data").glob("wandb/*/run-*.wandb"))), None)
    if path is None:
        print("no run: python bench/make_wandb_big.py first", file=sys.stderr)
        return 1
    path = path.resolve()  # the children run from the repository root
    print(f"file: {path.name} {path.stat().st_size / 1e6:.0f} MB; {args.repeat} runs of each side, interleaved")
    from runwise.parsers.wandb import workers

    n = workers.workers_for(path.stat().st_size)
    procs = "1" if n == 1 else f"{n} (1 + {n - 1} worker{'s' if n > 2 else ''})"
    sides = [Side("runwise", lambda: run_child(CHILD, "runwise", str(path)), procs)]
    if not args.skip_reference:
        sides.append(Side("protobuf reference", lambda: run_child(CHILD, "protobuf", str(path)), "1"))
    repeat(sides, args.repeat)
    problems = same_points(sides)
    if problems:
        print("NOT COMPARABLE: " + "; ".join(problems))
        return 1
    first = sides[0].runs[0]
    print(f"every run of every side: {first['points']:,} points in {first['keys']} keys, digest {first['digest']}")
    for line in table(sides, against="runwise",
                      extra=peak):
        print(line)
    if len(sides) < 2:
        return 0
    ours, ref = sides
    best = ref.best / ours.best
    ok = best >= args.target
    print(f"protobuf / runwise: {best:.2f}x best of {args.repeat}, {ref.median / ours.median:.2f}x by median "
          f"(target {args.target:g}x best of runs): {'PASS' if ok else 'FAIL'}")
    write_figures(args.json, "wandb", [
        figure(f"1M-row .wandb full read, best of {args.repeat} (s; runwise {ours.processes} processes)",
               round(ours.best, 2), peer=round(ref.best, 2), peer_name="protobuf + json.loads, 1 process", unit="s",
               ratio=round(best, 2), target=f">= {args.target:g}x faster", passed=ok),
        figure(f"1M-row .wandb full read, median of {args.repeat} (s)", round(ours.median, 2),
               peer=round(ref.median, 2), peer_name="protobuf + json.loads, 1 process", unit="s",
               ratio=round(ref.median / ours.median, 2)),
    ])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
