"""Benchmark: read every point of a 1,000,000-step x 5-scalar tfevents file.

    python bench/bench_tensorboard.py                  # all readers on the full file (EA/tbparse ~3 min a run)
    python bench/bench_tensorboard.py --peers small    # EA and tbparse on a 10x smaller file, with runwise
    python bench/bench_tensorboard.py --steps 200000   # a smaller file
    python bench/bench_tensorboard.py --repeat 5       # runs of every reader (default 3)

Readers, each in its own process, each run `--repeat` times (interleaved), median and min
reported; wall time of the load; peak RSS of the process:
- runwise: `runwise.parsers.tensorboard.load_file` on the run directory (a full Run: every point
  of every tag as Series, every record's CRC checked). One process.
- rustboard: TensorBoard's Rust data server (tensorboard-data-server) with
  `--samples-per-plugin scalars=all --reload once`, timed from launch to its "Finished load cycle"
  log line; afterwards (not timed) every point is fetched over gRPC (ReadScalars). One process
  with its own threads.
- EventAccumulator with size_guidance={"scalars": 0}, then Scalars(tag) for every tag. One process.
- tbparse SummaryReader(...).scalars (a DataFrame of every point). One process.

Every reader's points (per tag: steps and float64 values, sorted by step) are counted and
digested (bench/_common.py); a ratio is printed only when every run of every reader on that file
has the same count and digest. Nothing is extrapolated: `--peers small` runs EA and tbparse on a
smaller generated file (`--peer-steps`, default a tenth) and runs runwise and rustboard on that
same file too, so each ratio compares readers on one input.

The input is generated once into bench/_data/tb_<steps>/: each Event is built with tensorboard's
protos (the same bytes as tensorboardX's add_scalar: a test checks this) and framed by
tensorboard's own RecordWriter, with its pure-Python CRC32C swapped for google-crc32c to make
generation take seconds instead of minutes. Results go to bench/_results/tensorboard.json;
`--json PATH` also writes the side-by-side figures there (bench/run_all.py).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    ROOT,
    Result,
    Side,
    count,
    digest,
    figure,
    repeat,
    run_child,
    same_points,
    table,
    write_figures,
)

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


COLUMNS = """
def _peak_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def _emit(seconds, peak_mb, columns, extra=None):
    # peak_mb and cpu_s (in extra) are taken right after the timed load: the digest below allocates too
    import json, sys
    import numpy as np
    sys.path.insert(0, "bench")
    from _common import count, digest
    cols = {}
    for tag, (s, v) in columns.items():
        s, v = np.asarray(s, dtype=np.int64), np.asarray(v, dtype=np.float64)
        order = np.argsort(s, kind="stable")
        cols[tag] = (s[order], v[order])
    out = {"seconds": seconds, "points": count(cols), "digest": digest(cols), "peak_mb": peak_mb, **(extra or {})}
    print(json.dumps(out))
"""

RUNWISE = COLUMNS + """
import sys, time
from pathlib import Path
t0 = time.perf_counter()
from runwise.config import RunwiseConfig
from runwise.parsers.tensorboard import run as tb
d = Path(sys.argv[1])
cfg = RunwiseConfig(d.parent, env={})
CPU0 = time.process_time()
t1 = time.perf_counter()
run = tb.load_file(d, cfg)
t2, cpu = time.perf_counter(), time.process_time() - CPU0
peak = _peak_mb()
_emit(t2 - t1, peak, {k: (s.steps, s.values) for k, s in run.history.items()}, {"import_s": t1 - t0, "cpu_s": cpu})
"""

CRC_COST = """
import json, sys, time
from pathlib import Path
from runwise.parsers.tensorboard.events import read_events
f = next(Path(sys.argv[1]).glob("events.out.tfevents.*"))
times = {True: [], False: []}
for check in (True, False, True, False, True, False):
    with f.open("rb") as fp:
        t = time.perf_counter()
        read_events(fp, path=f.name, check_crc=check)
        times[check].append(time.perf_counter() - t)
print(json.dumps({"with_crc_s": min(times[True]), "without_crc_s": min(times[False])}))
"""

EVENT_ACCUMULATOR = COLUMNS + """
import sys, time
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
CPU0 = time.process_time()
t1 = time.perf_counter()
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
events = {t: acc.Scalars(t) for t in acc.Tags()["scalars"]}
t2, cpu = time.perf_counter(), time.process_time() - CPU0
peak = _peak_mb()
_emit(t2 - t1, peak, {t: ([e.step for e in ev], [e.value for e in ev]) for t, ev in events.items()}, {"cpu_s": cpu})
"""

TBPARSE = COLUMNS + """
import sys, time
from tbparse import SummaryReader
CPU0 = time.process_time()
t1 = time.perf_counter()
df = SummaryReader(sys.argv[1], pivot=False).scalars
t2, cpu = time.perf_counter(), time.process_time() - CPU0
peak = _peak_mb()
_emit(t2 - t1, peak, {t: (g["step"].to_numpy(), g["value"].to_numpy()) for t, g in df.groupby("tag")}, {"cpu_s": cpu})
"""


def run_rustboard(logdir: Path, expected: int) -> Result:
    import grpc
    import numpy as np
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
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
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
                columns: dict[str, tuple[Any, Any]] = {}
                for r in resp.runs:
                    for t in r.tags:
                        s = np.asarray(t.data.step, dtype=np.int64)
                        order = np.argsort(s, kind="stable")
                        columns[t.tag_name] = (s[order], np.asarray(t.data.value, dtype=np.float64)[order])
                channel.close()
            finally:
                proc.kill()
                proc.wait()
    own = None
    if logged:
        own = float(logged.group(1)) / (1000 if logged.group(2) == "ms" else 1)
    return {"seconds": seconds, "cpu_s": cpu, "logged_s": own or 0.0, "points": count(columns),
            "digest": digest(columns), "peak_mb": peak}


def compare(logdir: Path, names: list[str], expected: int, times: int) -> tuple[list[Side], list[str]]:
    """Run the readers `names` on `logdir` `times` times each; the sides and any mismatch."""
    codes = {"runwise": RUNWISE, "event_accumulator": EVENT_ACCUMULATOR, "tbparse": TBPARSE}
    procs = {"rustboard": "1 (Rust, its own threads)"}

    def once(name: str) -> Callable[[], Result]:
        if name == "rustboard":
            return lambda: run_rustboard(logdir, expected)
        return lambda: run_child(codes[name], str(logdir))

    sides = [Side(n, once(n), procs.get(n, "1")) for n in names]
    repeat(sides, times)
    return sides, same_points(sides)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    peers_help = "EventAccumulator and tbparse: on the full file, on a smaller file (with runwise), or not at all"
    ap.add_argument("--peers", choices=["full", "small", "skip"], default="full", help=peers_help)
    ap.add_argument("--peer-steps", type=int, help="steps of the smaller file for --peers small (default steps/10)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of every reader (median and min are reported)")
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()
    figures: list[Result] = []
    data = HERE / "_data"
    logdir = data / f"tb_{args.steps}"
    generate(logdir, args.steps)
    plan: list[tuple[int, Path, list[str]]] = []
    peers = ["event_accumulator", "tbparse"]
    if args.peers == "full":
        plan.append((args.steps, logdir, ["runwise", "rustboard", *peers]))
    else:
        plan.append((args.steps, logdir, ["runwise", "rustboard"]))
    if args.peers == "small":
        small = args.peer_steps or args.steps // 10
        small_dir = data / f"tb_{small}"
        generate(small_dir, small)
        plan.append((small, small_dir, ["runwise", "rustboard", *peers]))
    results: dict[str, Any] = {"repeat": args.repeat, "inputs": []}
    ok = True
    for steps, d, names in plan:
        f = next(d.glob("events.out.tfevents.*"))
        expected = steps * len(TAGS)
        print(f"file: {f.relative_to(ROOT)}  {f.stat().st_size / 2**20:.0f} MiB, {expected:,} scalar points; "
              f"{args.repeat} runs of each reader, interleaved")
        sides, problems = compare(d, names, expected, args.repeat)
        entry = {"steps": steps, "readers": {s.name: {"processes": s.processes, "runs": s.runs} for s in sides}}
        results["inputs"].append(entry)
        if problems:
            print("NOT COMPARABLE: " + "; ".join(problems))
            figures.append(figure(f"{expected:,} points: readers return the same points", False, passed=False,
                                  target="same points"))
            ok = False
            continue
        if sides[0].runs[0]["points"] != expected:
            print(f"every reader returned {sides[0].runs[0]['points']:,} points, expected {expected:,}")
            ok = False
            continue
        print(f"every run of every reader: {expected:,} points, digest {sides[0].runs[0]['digest']}")
        for line in table(sides, against="runwise",
                          extra=lambda s: f"  peak {max(r['peak_mb'] for r in s.runs):.0f} MB"):
            print(line)
        for peer in sides[1:]:
            figures.append(figure(f"read every point of {expected:,} scalars, median s", sides[0].median,
                                  peer=peer.median, peer_name=peer.name, unit="s"))
    crc = run_child(CRC_COST, str(logdir))
    results["crc"] = crc
    print(f"runwise read_events alone (min of 3): {crc['with_crc_s']:.2f} s checking every data CRC, "
          f"{crc['without_crc_s']:.2f} s without")
    out = ROOT / "bench" / "_results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tensorboard.json").write_text(json.dumps(results, indent=2))
    figures.append(figure("runwise read_events, every data CRC checked vs none (min of 3)", crc["with_crc_s"],
                          peer=crc["without_crc_s"], peer_name="runwise without CRC", unit="s"))
    write_figures(args.json, "tensorboard", figures, steps=args.steps, peers=args.peers, repeat=args.repeat)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
