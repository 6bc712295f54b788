"""Read the full history of a 1,000,000-row W&B run: runwise vs wandb's protobuf parser.

    python bench/make_wandb_big.py          # once (offline run into bench/_data/, git-ignored)
    python bench/bench_wandb.py [--repeat 3] [--file path/to/run-<id>.wandb] [--skip-reference]

Each reader runs `--repeat` times (interleaved: runwise, reference, runwise, ...), each time in a
fresh subprocess, timed after its imports, with peak memory from getrusage(RUSAGE_SELF).
Both sides use one process. The reference is tests/wandb_reference.py: a Python chunk loop,
`wandb_internal_pb2.Record.FromString` per record and `json.loads` per history value. Both must
return the same keys, steps and values (same point count and digest, bench/_common.py) on every
run before the ratio of the medians is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Side, repeat, run_child, same_points, table  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, "bench")
from _common import count, digest
which, path = sys.argv[1], Path(sys.argv[2])
if which == "runwise":
    from runwise.parsers.wandb.segment import read_log
    t, c = time.perf_counter(), time.process_time()
    hist = read_log(path.parent, path).history
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the digest allocates
    cols = {k: (s, v) for k, (s, v) in hist.items()}
else:
    from tests import wandb_reference as ref
    import wandb.proto.wandb_internal_pb2  # import cost is not timed
    t, c = time.perf_counter(), time.process_time()
    cols = ref.history(path.read_bytes())
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": secs, "cpu_s": cpu, "rss_mb": rss, "points": count(cols), "keys": len(cols),
                  "digest": digest(cols)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    path = args.file or next(iter(sorted((ROOT / "bench" / "_data").glob("wandb/*/run-*.wandb"))), None)
    if path is None:
        print("no run: python bench/make_wandb_big.py first", file=sys.stderr)
        return 1
    path = path.resolve()  # the children run from the repository root
    print(f"file: {path.name} {path.stat().st_size / 1e6:.0f} MB; {args.repeat} runs of each side, interleaved")
    sides = [Side("runwise", lambda: run_child(CHILD, "runwise", str(path)), "1")]
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
                      extra=lambda s: f"  peak {max(r['rss_mb'] for r in s.runs):.0f} MB"):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
