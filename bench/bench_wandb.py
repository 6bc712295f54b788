"""Read the full history of a 1,000,000-row W&B run: runwise vs wandb's protobuf parser.

    python bench/make_wandb_big.py          # once (offline run into bench/_data/, git-ignored)
    python bench/bench_wandb.py [--repeat 3] [--file path/to/run-<id>.wandb] [--skip-reference]

Each reader runs in its own subprocess, timed after its imports, with peak memory from
resource.getrusage(RUSAGE_SELF).ru_maxrss. The reference is tests/wandb_reference.py: a Python
chunk loop, `wandb_internal_pb2.Record.FromString` per record and `json.loads` per history value.
Both must return the same keys, steps and values (checked by a digest).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import hashlib, json, resource, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
which, path = sys.argv[1], Path(sys.argv[2])
if which == "runwise":
    from runwise.parsers.wandb.segment import read_log
    t = time.perf_counter()
    hist = read_log(path.parent, path).history
    secs = time.perf_counter() - t
    cols = {{k: (s, v) for k, (s, v) in hist.items()}}
else:
    import numpy as np
    from tests import wandb_reference as ref
    import wandb.proto.wandb_internal_pb2  # import cost is not timed
    t = time.perf_counter()
    hist = ref.history(path.read_bytes())
    secs = time.perf_counter() - t
    cols = {{k: (np.array(s, dtype=np.int64), np.array(v, dtype=np.float64)) for k, (s, v) in hist.items()}}
h = hashlib.sha256()
for k in sorted(cols):
    h.update(k.encode()); h.update(cols[k][0].tobytes()); h.update(cols[k][1].tobytes())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": secs, "rss_mb": rss, "points": int(sum(c[0].size for c in cols.values())),
                  "keys": len(cols), "digest": h.hexdigest()[:16]}}))
"""


def run(which: str, path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), which, str(path)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    path = args.file or next(iter(sorted((ROOT / "bench" / "_data").glob("wandb/*/run-*.wandb"))), None)
    if path is None:
        print("no run: python bench/make_wandb_big.py first", file=sys.stderr)
        return 1
    print(f"file: {path.name} {path.stat().st_size / 1e6:.0f} MB")
    best: dict[str, dict[str, float]] = {}
    for i in range(args.repeat):
        for which in ("runwise",) + (() if args.skip_reference or i else ("protobuf",)):
            r = run(which, path)
            print(f"  {which:9s} {r['seconds']:6.2f} s  peak {r['rss_mb']:5.0f} MB  {r['points']} points "
                  f"{r['keys']} keys  digest {r['digest']}", flush=True)
            if which not in best or r["seconds"] < best[which]["seconds"]:
                best[which] = r
    rw = best["runwise"]
    print(f"runwise best {rw['seconds']:.2f} s, peak {rw['rss_mb']:.0f} MB")
    if "protobuf" in best:
        pb = best["protobuf"]
        same = "identical" if pb["digest"] == rw["digest"] else "DIFFERENT"
        print(f"protobuf reference {pb['seconds']:.2f} s, peak {pb['rss_mb']:.0f} MB; "
              f"speed-up {pb['seconds'] / rw['seconds']:.1f}x; results {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
