"""Benchmark: read every point of a 1,000,000-step x 5-scalar tfevents file.

    python bench/bench_tensorboard.py                 # all readers, full file (EA/tbparse ~3 min each)
    python bench/bench_tensorboard.py --peers prefix  # EA and tbparse on a 10% prefix, extrapolated
    python bench/bench_tensorboard.py --steps 200000  # a smaller file

Readers, each in its own process (wall time of the load; peak RSS of the process):
- runwise: `runwise.parsers.tensorboard.load_file` on the run directory (a full Run: every point
  of every tag as Series, every record's CRC checked).
- rustboard: TensorBoard's Rust data server (tensorboard-data-server) with
  `--samples-per-plugin scalars=all --reload once`, timed from launch to its "Finished load cycle"
  log line; afterwards all points are fetched over gRPC (ReadScalars) to check none is missing.
- EventAccumulator with size_guidance={"scalars": 0}, then Scalars(tag) for every tag.
- tbparse SummaryReader(...).scalars (a DataFrame of every point).

The input is generated once into bench/_data/tb_<steps>/: each Event is built with tensorboard's
protos (the same bytes as tensorboardX's add_scalar: a test checks this) and framed by
tensorboard's own RecordWriter, with its pure-Python CRC32C swapped for google-crc32c to make
generation take seconds instead of minutes. Results go to bench/_results/tensorboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TAGS = ["train/loss", "train/lr", "val/acc", "grad_norm", "throughput/samples_per_sec"]
T0 = 1_700_000_000.0


def generate(d: Path, steps: int) -> Path:
    """Write `steps` x len(TAGS) add_scalar events (plus the file_version event) into `d`."""
    f = d / "events.out.tfevents.1700000000.bench"
    if f.exists():
        return f
    import google_crc32c
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer import record_writer

    def masked(data: bytes) -> int:
        x = google_crc32c.value(data)
        return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    record_writer.masked_crc32c = masked  # same checksum, computed in C
    d.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".partial")
    started = time.perf_counter()
    with open(tmp, "wb") as fp:
        w = record_writer.RecordWriter(fp)
        w.write(event_pb2.Event(wall_time=T0, file_version="brain.Event:2").SerializeToString())
        Value, Summary, Event = summary_pb2.Summary.Value, summary_pb2.Summary, event_pb2.Event
        for s in range(steps):
            wall = T0 + s * 0.05
            vals = (
                2.0 / (1 + s / 1000),
                3e-4 * 0.99999**s,
                0.5 + s / (4 * steps),
                1.0 + (s % 97) / 50,
                900.0 + s % 13,
            )
            for tag, v in zip(TAGS, vals, strict=True):
                ev = Event(wall_time=wall, step=s, summary=Summary(value=[Value(tag=tag, simple_value=v)]))
                w.write(ev.SerializeToString())
    tmp.rename(f)
    print(
        f"generated {f.relative_to(ROOT)} ({f.stat().st_size / 2**20:.0f} MiB)"
        f" in {time.perf_counter() - started:.0f} s"
    )
    return f


RUNWISE = """
import resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from runwise.config import RunwiseConfig
from runwise.parsers.tensorboard import run as tb
d = Path(sys.argv[1])
cfg = RunwiseConfig(d.parent, env={})
t1 = time.perf_counter()
run = tb.load_file(d, cfg)
t2 = time.perf_counter()
points = sum(len(s) for s in run.history.values())
print(t2 - t1, t1 - t0, points, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

CRC_COST = """
import sys, time
from pathlib import Path
from runwise.parsers.tensorboard.events import read_events
f = next(Path(sys.argv[1]).glob("events.out.tfevents.*"))
best = {}
for check in (True, False, True, False):
    with f.open("rb") as fp:
        t = time.perf_counter()
        read_events(fp, path=f.name, check_crc=check)
        best[check] = min(best.get(check, 1e9), time.perf_counter() - t)
print(best[True], best[False], 0, 0)
"""

EVENT_ACCUMULATOR = """
import resource, sys, time
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
t1 = time.perf_counter()
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
points = sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"])
print(time.perf_counter() - t1, 0, points, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

TBPARSE = """
import resource, sys, time
from tbparse import SummaryReader
t1 = time.perf_counter()
df = SummaryReader(sys.argv[1], pivot=False).scalars
print(time.perf_counter() - t1, 0, len(df), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_python(code: str, logdir: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, str(logdir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    seconds, import_s, points, rss_kb = out.stdout.split()[-4:]
    return {
        "seconds": float(seconds),
        "import_s": float(import_s),
        "points": int(points),
        "peak_mb": int(rss_kb) / 1024,
    }


def run_rustboard(logdir: Path, expected: int) -> dict[str, float]:
    import grpc
    import tensorboard_data_server
    from tensorboard.data.proto import data_provider_pb2, data_provider_pb2_grpc

    binary = tensorboard_data_server.server_binary()
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        log = Path(tmp) / "log"
        started = time.perf_counter()
        with open(log, "w") as err:
            proc = subprocess.Popen(
                [binary, "--logdir", str(logdir), "--samples-per-plugin", "scalars=all", "--reload", "once",
                 "--port", "0", "--port-file", str(port_file), "-v"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
            try:
                while "Finished load cycle" not in log.read_text():
                    if proc.poll() is not None:
                        raise RuntimeError(f"data server exited: {log.read_text()[-500:]}")
                    time.sleep(0.005)
                seconds = time.perf_counter() - started
                logged = re.search(r"Finished load cycle \(([\d.]+)(m?s)\)", log.read_text())
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
                channel = grpc.insecure_channel(
                    f"localhost:{port_file.read_text().strip()}",
                    options=[("grpc.max_receive_message_length", -1)],
                )
                stub = data_provider_pb2_grpc.TensorBoardDataProviderStub(channel)
                req = data_provider_pb2.ReadScalarsRequest(
                    experiment_id="", plugin_filter={"plugin_name": "scalars"}
                )
                req.downsample.num_points = 10 * expected
                req.run_tag_filter.SetInParent()
                resp = stub.ReadScalars(req)
                points = sum(len(t.data.step) for r in resp.runs for t in r.tags)
                channel.close()
            finally:
                proc.kill()
                proc.wait()
    own = None
    if logged:
        own = float(logged.group(1)) / (1000 if logged.group(2) == "ms" else 1)
    return {"seconds": seconds, "logged_s": own or 0.0, "points": points, "peak_mb": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    peers_help = "EventAccumulator and tbparse: full file, 10%% prefix (extrapolated), or skip"
    ap.add_argument("--peers", choices=["full", "prefix", "skip"], default="full", help=peers_help)
    ap.add_argument("--repeat", type=int, default=3, help="runs of runwise and rustboard (best is reported)")
    args = ap.parse_args()
    data = HERE / "_data"
    logdir = data / f"tb_{args.steps}"
    f = generate(logdir, args.steps)
    expected = args.steps * len(TAGS)
    results: dict[str, dict[str, float]] = {}
    results["runwise"] = min(
        (run_python(RUNWISE, logdir) for _ in range(args.repeat)), key=lambda r: r["seconds"]
    )
    results["rustboard"] = min(
        (run_rustboard(logdir, expected) for _ in range(args.repeat)), key=lambda r: r["seconds"]
    )
    crc = run_python(CRC_COST, logdir)
    crc_note = {"with_crc_s": crc["seconds"], "without_crc_s": crc["import_s"]}
    if args.peers != "skip":
        peer_dir, scale = logdir, 1.0
        if args.peers == "prefix":
            peer_dir = data / f"tb_{args.steps // 10}"
            generate(peer_dir, args.steps // 10)
            scale = 10.0
        for name, code in (("event_accumulator", EVENT_ACCUMULATOR), ("tbparse", TBPARSE)):
            r = run_python(code, peer_dir)
            r["extrapolated_x"] = scale
            r["seconds"] *= scale
            results[name] = r
    print(f"file: {f.relative_to(ROOT)}  {f.stat().st_size / 2**20:.0f} MiB, {expected:,} scalar points")
    base = results["runwise"]["seconds"]
    for name, r in results.items():
        extra = f"  (x{r['extrapolated_x']:.0f} from a prefix)" if r.get("extrapolated_x", 1) != 1 else ""
        ratio = "" if name == "runwise" else f"  {r['seconds'] / base:6.1f}x runwise"
        print(
            f"{name:18s} {r['seconds']:8.2f} s  peak {r['peak_mb']:7.0f} MB"
            f"  points {int(r['points']):>10,}{ratio}{extra}"
        )
    print(
        f"runwise read_events alone: {crc_note['with_crc_s']:.2f} s checking every data CRC, "
        f"{crc_note['without_crc_s']:.2f} s without"
    )
    out = ROOT / "bench" / "_results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tensorboard.json").write_text(
        json.dumps({"steps": args.steps, "results": results, "crc": crc_note}, indent=2)
    )


if __name__ == "__main__":
    main()
