"""Benchmark: read every point of an MLflow run of 10 metrics x 200,000 steps, in the SQLite store and the file store.

    python bench/bench_mlflow.py --mlflow-python /path/to/venv/bin/python   # a Python with `pip install mlflow`
    python bench/bench_mlflow.py --steps 20000 --repeat 1                   # a smaller run, one run of each side
    MLFLOW_PYTHON=/path/to/venv/bin/python python bench/bench_mlflow.py --json out.json

Requirements: this script and the runwise side run in runwise's own environment; MLflow (`pip install
mlflow`; measured with 3.17.2) is needed only by the Python named by `--mlflow-python` (default: the
MLFLOW_PYTHON variable, else this Python), which writes the inputs and runs the reference side.

The inputs are written once by the real MLflow (that Python, in a child process) into
bench/_data/mlflow_<steps>/ (git-ignored; kept, and written again only when missing): one run
(experiment `bench`, run `big`) of 10 metrics x `steps` steps, logged through
`MlflowClient().log_batch` in batches of 1,000 metrics (MLflow's limit), into
`sqlite/mlflow.db` (`sqlite:///...`) and into `file/mlruns` (`file:...`). `train/loss` is NaN at steps
777 and steps//2 and `grad_norm` at the last step; `train/loss` is logged a second time (a later
timestamp, another value) at steps 1000 and 2000, as a resumed run does: both points are kept.

By default (`--sqlite-writer migrate`) the SQLite store is made from the written file store by
MLflow's own `mlflow migrate-filestore` (the same run id and points): log_batch into SQLite ran at
about 350 points a second on a 2-core machine, some 95 minutes for the 2M points;
`--sqlite-writer log_batch` writes it that way all the same. Both sides run from bytecode
(runwise's is compiled first, as an installed package's is; MLflow's was at its install).

Sides, per store, each in a fresh process, run `--repeat` times interleaved (bench/_common.py);
median and min reported, ratio by median:
- mlflow: `MlflowClient(uri).get_run(run_id)` for the metric keys, then
  `get_metric_history(run_id, key)` for every key (it pages through every point itself). The
  clock starts after `import mlflow` and after the client's store is built (for SQLite: the
  engine and its schema check), so MLflow's start-up is not counted against it.
- runwise: `RunwiseConfig.load(project)` + `runs.resolve("mlflow:bench/big")` + `runs.load` with
  the disk cache off (RUNWISE_NO_CACHE=1): discovery, the run's params/tags and every point of
  every series. The clock starts after `import runwise`.

Values are compared before speeds: each side's first run saves its points (per key: steps, and
values, MLflow's sorted by step then timestamp) to an .npz file; every key's steps must be equal
and every value equal (NaN equal to NaN), and every run of a side must give the same count and
digest. Only then is a ratio printed. Target: runwise >= 10x faster than MLflow, per store, by median.
Results go to bench/_results/mlflow.json; `--json PATH` also writes the figures (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import ROOT, Result, Side, figure, repeat, same_points, table, write_figures  # noqa: E402

KEYS = ["train/loss", "train/accuracy", "train/lr", "grad_norm", "throughput/samples_per_sec",
        "val/loss", "val/accuracy", "gpu/memory_mb", "gpu/utilization", "epoch"]
TARGET = 10.0
EXPERIMENT, RUN = "bench", "big"

WRITER = r"""
import json, math, sys, time
from pathlib import Path
import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

uri, steps, keys = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
T0 = 1_767_000_000_000  # ms
nan_at = {("train/loss", 777), ("train/loss", steps // 2), ("grad_norm", steps - 1)}
again = {("train/loss", 1000), ("train/loss", 2000)}  # logged twice: a resumed run

def value(i, s):
    if (keys[i], s) in nan_at:
        return math.nan
    return (i + 1) * 2.0 / (1.0 + s / 1000.0) + ((s * 7919 + i) % 1009) / 1e4

client = MlflowClient(uri)
exp = client.create_experiment("bench")
run = client.create_run(exp, run_name="big", start_time=T0)
client.log_param(run.info.run_id, "steps", steps)
client.set_tag(run.info.run_id, "store", uri.split(":")[0])
started = time.perf_counter()
batch = []
def flush():
    client.log_batch(run.info.run_id, metrics=batch)
    batch.clear()
for s in range(steps):
    for i, k in enumerate(keys):
        batch.append(Metric(k, value(i, s), T0 + s, s))
        if len(batch) == 1000:
            flush()
for k, s in sorted(again):
    batch.append(Metric(k, 0.5 + s / 1e6, T0 + steps + s, s))
if batch:
    flush()
client.set_terminated(run.info.run_id, "FINISHED", end_time=T0 + 2 * steps)
print(json.dumps({"run_id": run.info.run_id, "seconds": time.perf_counter() - started}))
"""

EMIT = r"""
def _emit(seconds, cpu, columns, dump, extra=None):
    # the points are summarised (and saved for the comparison) after the clock stopped
    import json, resource, sys
    import numpy as np
    sys.path.insert(0, "bench")
    from _common import count, digest
    cols = {}
    for k, (s, v) in columns.items():
        v = np.asarray(v, dtype=np.float64).copy()
        v[np.isnan(v)] = np.nan  # one NaN bit pattern, for the digest
        cols[k] = (np.asarray(s, dtype=np.int64), v)
    if dump:
        arrays = {}
        for i, k in enumerate(sorted(cols)):
            arrays[f"k{i}_steps"], arrays[f"k{i}_values"] = cols[k]
        np.savez(dump, keys=np.array(sorted(cols)), **arrays)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "points": count(cols), "digest": digest(cols),
                      "peak_mb": peak, **(extra or {})}))
"""

MLFLOW_SIDE = EMIT + r"""
import sys, time
t0 = time.perf_counter()
import numpy as np
from mlflow.tracking import MlflowClient
uri, run_id, dump = sys.argv[1], sys.argv[2], sys.argv[3]
client = MlflowClient(uri)
client._tracking_client.store  # the store (SQLite: engine, schema check) is built before the clock starts
t1, c1 = time.perf_counter(), time.process_time()
keys = sorted(client.get_run(run_id).data.metrics)
history = {k: client.get_metric_history(run_id, k) for k in keys}
t2, c2 = time.perf_counter(), time.process_time()
cols = {}
for k, ms in history.items():
    ms = sorted(ms, key=lambda m: (m.step, m.timestamp))
    cols[k] = ([m.step for m in ms], [m.value for m in ms])
_emit(t2 - t1, c2 - c1, cols, dump, {"import_s": t1 - t0})
"""

RUNWISE_SIDE = EMIT + r"""
import sys, time
from pathlib import Path
t0 = time.perf_counter()
from runwise import runs
from runwise.config import RunwiseConfig
root, ref, dump = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
t1, c1 = time.perf_counter(), time.process_time()
cfg = RunwiseConfig.load(root, env={"RUNWISE_NO_CACHE": "1"})
run = runs.load(runs.resolve(ref, cfg), cfg)
t2, c2 = time.perf_counter(), time.process_time()
_emit(t2 - t1, c2 - c1, {k: (s.steps, s.values) for k, s in run.history.items()}, dump, {"import_s": t1 - t0})
"""


def child(python: str, code: str, *args: str, pythonpath: str | None = None, timeout: float = 3600) -> Result:
    """Run `python -c code args` from the repository root in a fresh process; its last stdout line as JSON."""
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true")  # MLflow 3.x refuses the file store without it
    env.pop("RUNWISE_CACHE_DIR", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # each side runs from bytecode, as an installed package does
    for var in ("MLFLOW_TRACKING_URI", "RUNWISE_MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    out: Result = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def stores(d: Path) -> dict[str, tuple[str, Path]]:
    """store name -> (tracking URI, runwise project root)."""
    return {"sqlite": (f"sqlite:///{d / 'sqlite' / 'mlflow.db'}", d / "sqlite"),
            "file": ((d / "file" / "mlruns").as_uri(), d / "file")}


def generate(d: Path, steps: int, python: str, sqlite_writer: str = "migrate") -> dict[str, str]:
    """Write the run into both stores with MLflow (once); store name -> MLflow run id.

    `sqlite_writer` "log_batch": the writer logs into SQLite too (both stores at once, in two
    processes); "migrate": the SQLite store is made from the written file store by MLflow's own
    `mlflow migrate-filestore` (the same run, run id and points; much faster than log_batch into SQLite).
    """
    made = d / "made.json"
    if made.exists():
        out: dict[str, str] = json.loads(made.read_text())
        return out
    import shutil

    shutil.rmtree(d, ignore_errors=True)
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true")  # MLflow 3.x refuses the file store without it
    env.pop("MLFLOW_TRACKING_URI", None)
    where = stores(d)
    names = ["sqlite", "file"] if sqlite_writer == "log_batch" else ["file"]
    procs = {}
    started = time.perf_counter()
    for name in names:
        uri, root = where[name]
        root.mkdir(parents=True)
        procs[name] = subprocess.Popen([python, "-c", WRITER, uri, str(steps), json.dumps(KEYS)], cwd=root, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ids = {}
    for name, proc in procs.items():
        out_text, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"the MLflow writer failed ({proc.returncode}): {err.strip()[-800:]}")
        ids[name] = json.loads(out_text.strip().splitlines()[-1])["run_id"]
        print(f"wrote {len(KEYS)} x {steps:,} steps into the {name} store with MLflow's log_batch "
              f"({time.perf_counter() - started:.0f} s since the start)")
    if sqlite_writer == "migrate":
        ids["sqlite"] = migrate(d, python)
        print(f"moved the run into the sqlite store with mlflow migrate-filestore "
              f"({time.perf_counter() - started:.0f} s since the start)")
    made.write_text(json.dumps({**ids, "sqlite_writer": sqlite_writer}))
    return ids


def migrate(d: Path, python: str) -> str:
    """Make the SQLite store from the file store with `mlflow migrate-filestore`; the run's id."""
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true")
    uri, root = stores(d)["sqlite"]
    root.mkdir(parents=True, exist_ok=True)
    source = str(stores(d)["file"][1] / "mlruns")
    done = subprocess.run([python, "-m", "mlflow", "migrate-filestore", "--source", source, "--target", uri,
                           "--no-progress"], cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"mlflow migrate-filestore failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return next(p.parent.name for p in (root.parent / "file" / "mlruns").glob("*/*/meta.yaml"))


def side(who: str, code: str, first: list[str], python: str, path: str | None, dump: Path) -> Side:
    """A side run in a fresh process each time; its first run saves its points to `dump`."""
    def once() -> Result:
        return child(python, code, *first, "" if dump.exists() else str(dump), pythonpath=path)
    return Side(who, once, "1")


def compare_dumps(a: Path, b: Path) -> list[str]:
    """Where two saved reads differ (keys, steps, values with NaN equal to NaN); [] when every point is equal."""
    import numpy as np

    out = []
    with np.load(a) as x, np.load(b) as y:
        ka, kb = x["keys"].tolist(), y["keys"].tolist()
        if ka != kb:
            return [f"keys differ: {ka} vs {kb}"]
        for i, k in enumerate(ka):
            sa, sb, va, vb = x[f"k{i}_steps"], y[f"k{i}_steps"], x[f"k{i}_values"], y[f"k{i}_values"]
            if not np.array_equal(sa, sb):
                out.append(f"{k}: steps differ ({len(sa):,} vs {len(sb):,} points)")
            elif not np.array_equal(va, vb, equal_nan=True):
                j = int(np.flatnonzero(~((va == vb) | (np.isnan(va) & np.isnan(vb))))[0])
                out.append(f"{k}: values differ first at step {int(sa[j])}: {va[j]!r} vs {vb[j]!r}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side per store (median and min reported)")
    ap.add_argument("--mlflow-python", default=os.environ.get("MLFLOW_PYTHON", sys.executable),
                    help="a Python with mlflow installed: writes the inputs, runs the MlflowClient side")
    ap.add_argument("--sqlite-writer", choices=["log_batch", "migrate"], default="migrate",
                    help="how the SQLite store is written: log_batch (as the file store), or moved from the written "
                         "file store by `mlflow migrate-filestore` (faster)")
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()
    d = HERE / "_data" / f"mlflow_{args.steps}"
    ids = generate(d, args.steps, args.mlflow_python, args.sqlite_writer)
    expected = len(KEYS) * args.steps + 2
    made = json.loads((d / "made.json").read_text())
    print(f"inputs: {d.relative_to(ROOT)} (file store: MLflow's log_batch; sqlite store: "
          f"{'log_batch' if made.get('sqlite_writer', 'log_batch') == 'log_batch' else 'mlflow migrate-filestore'})")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "runwise")], check=True)  # bytecode
    figures: list[Result] = []
    results: dict[str, Any] = {"steps": args.steps, "repeat": args.repeat, "stores": {}}
    ok = True
    for name, (uri, root) in stores(d).items():
        dumps = {"mlflow": d / f"read_mlflow_{name}.npz", "runwise": d / f"read_runwise_{name}.npz"}
        for p in dumps.values():
            p.unlink(missing_ok=True)

        sides = [
            side("runwise", RUNWISE_SIDE, [str(root), f"mlflow:{EXPERIMENT}/{RUN}"], sys.executable, str(ROOT),
                 dumps["runwise"]),
            side("mlflow", MLFLOW_SIDE, [uri, ids[name]], args.mlflow_python, None, dumps["mlflow"]),
        ]
        print(f"{name} store: {expected:,} points ({len(KEYS)} keys x {args.steps:,} steps + 2 logged twice); "
              f"{args.repeat} runs of each side, interleaved, each a fresh process")
        repeat(sides, args.repeat)
        problems = same_points(sides) + compare_dumps(dumps["runwise"], dumps["mlflow"])
        points = sides[0].runs[0]["points"]
        if not problems and points != expected:
            problems.append(f"both sides read {points:,} points, expected {expected:,}")
        results["stores"][name] = {s.name: s.runs for s in sides}
        if problems:
            print("NOT COMPARABLE: " + "; ".join(problems))
            figures.append(figure(f"{name} store: both sides read the same points", False, passed=False,
                                  target="same points"))
            ok = False
            continue
        print(f"every point equal (NaN = NaN): {points:,} points, digest {sides[0].runs[0]['digest']}")
        for line in table(sides, against="runwise",
                          extra=lambda s: f"  peak {max(r['peak_mb'] for r in s.runs):.0f} MB"):
            print(line)
        rw, ml = sides
        speedup = ml.median / rw.median
        passed = speedup >= TARGET
        ok = ok and passed
        print(f"{'PASS' if passed else 'FAIL'}: {name} store, runwise {speedup:.1f}x faster than "
              f"MlflowClient.get_metric_history by median (target >= {TARGET:.0f}x)")
        figures.append(figure(f"read every point of {points:,} ({name} store), median s", rw.median,
                              peer=ml.median, peer_name="MlflowClient.get_metric_history", unit="s",
                              target=f">= {TARGET:.0f}x faster", passed=passed))
    out = ROOT / "bench" / "_results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mlflow.json").write_text(json.dumps(results, indent=2))
    write_figures(args.json, "mlflow", figures, steps=args.steps, repeat=args.repeat)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
