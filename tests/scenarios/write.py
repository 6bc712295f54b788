"""Write the scenario suite with the real writers: JSONL (json.dumps), TensorBoard (tensorboardX), W&B (wandb offline).

    python -m tests.scenarios.write OUT_DIR [--sources jsonl tensorboard wandb] [--names a b ...] [--check]

Each source is its own runwise project under OUT_DIR, with a runwise.json:
    OUT_DIR/jsonl/logs/<name>.jsonl             first row {"config", "_meta": {"name"}}, then one row per step
    OUT_DIR/tensorboard/runs/<name>/            SummaryWriter.add_scalar per metric and step; the config
                                                (flattened) through add_hparams, which runwise reads as Run.config
    OUT_DIR/wandb/wandb/offline-run-*/          wandb.init(id, name, config), one run.log per step

wandb runs in child processes (its service and globals stay out of the caller), several runs per
process to pay its start-up once. `check_written` loads every run back through runwise and compares
metric names and point counts with the scenario (TensorBoard stores float32: values to 1e-6 relative).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from tests.scenarios.suite import SCENARIOS, Scenario, by_name

__all__ = ["SOURCES", "check_written", "run_id", "step_rows", "write_suite"]

SOURCES = ("jsonl", "tensorboard", "wandb")
REPO = Path(__file__).resolve().parents[2]
WANDB_PROJECT = "runwise-scenarios"
WANDB_CHILDREN = 2  # wandb processes side by side; each writes its share of the runs
T0 = 1_700_000_000.0  # wall time of step 0 in TensorBoard events (fixed, so files are reproducible)


def run_id(name: str) -> str:
    """A short W&B run id derived from the scenario name (lower-case letters and digits)."""
    return f"sc{zlib.crc32(name.encode()):08x}"


def step_rows(scenario: Scenario) -> Iterator[tuple[int, dict[str, float]]]:
    """(step, {metric: value}) for every step at which the scenario logs something, ascending."""
    keys = list(scenario.metrics)
    steps = np.concatenate([scenario.metrics[k][0] for k in keys])
    which = np.concatenate([np.full(scenario.metrics[k][0].size, i) for i, k in enumerate(keys)])
    values = np.concatenate([scenario.metrics[k][1] for k in keys])
    order = np.lexsort((which, steps))
    steps, which, values = steps[order], which[order], values[order]
    bounds = np.flatnonzero(np.diff(steps)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, steps.size], strict=True):
        yield int(steps[lo]), {keys[int(w)]: float(v) for w, v in zip(which[lo:hi], values[lo:hi], strict=True)}


def _flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flat_config(v, name))
        else:
            out[name] = v
    return out


def _selected(names: Iterable[str] | None) -> list[Scenario]:
    return list(SCENARIOS) if names is None else [by_name(n) for n in names]


def _runwise_json(project: Path, body: dict[str, Any]) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "runwise.json").write_text(json.dumps({"project_name": f"scenarios ({project.name})", **body}))


# ---------------------------------------------------------------------------------------------
# JSONL


def write_jsonl(project: Path, scenarios: Sequence[Scenario]) -> None:
    """logs/<name>.jsonl per scenario: a config/_meta row, then one json.dumps row per step."""
    logs = project / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for sc in scenarios:
        with (logs / f"{sc.name}.jsonl").open("w", encoding="utf-8") as fp:
            fp.write(json.dumps({"config": sc.config, "_meta": {"name": sc.name}}) + "\n")
            for step, row in step_rows(sc):
                fp.write(json.dumps({"step": step, **row}) + "\n")
    _runwise_json(project, {"logs_dir": "logs"})


# ---------------------------------------------------------------------------------------------
# TensorBoard


def _hparam_value(v: Any) -> Any:
    """add_hparams takes int, float, str and bool: anything else (lists, None) goes in as its JSON text."""
    return v if isinstance(v, (bool, int, float, str)) else json.dumps(v)


def write_tensorboard(project: Path, scenarios: Sequence[Scenario]) -> None:
    """runs/<name>/ per scenario, by tensorboardX's SummaryWriter; the flattened config via add_hparams.

    Each step is one event whose summary holds a simple_value per metric logged at that step, passed to
    the writer's file writer (what add_scalar does per value, minus its per-call tensor conversion,
    which made the suite take minutes). NaN and inf go in as they are.
    """
    from tensorboardX import SummaryWriter
    from tensorboardX.proto.summary_pb2 import Summary

    runs = project / "runs"
    for sc in scenarios:
        with SummaryWriter(str(runs / sc.name), flush_secs=3600, max_queue=1000) as w:
            fw = w.file_writer  # the FileWriter the SummaryWriter opened for this run dir
            for step, row in step_rows(sc):
                summary = Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in row.items()])
                fw.add_summary(summary, global_step=step, walltime=T0 + 0.1 * step)
            hparams = {k: _hparam_value(v) for k, v in _flat_config(sc.config).items()}
            # a child dir named like a timestamp, as add_hparams names it by default: runwise reads it as this run's
            w.add_hparams(hparams, {}, name=f"{T0:.1f}")
    _runwise_json(project, {"tensorboard_dirs": ["runs"]})


# ---------------------------------------------------------------------------------------------
# W&B (offline, in child processes)


def _wandb_child(project: Path, names: Sequence[str]) -> None:
    """Inside the child: one offline wandb run per scenario, one run.log per step."""
    import wandb

    settings = wandb.Settings(x_disable_stats=True, x_disable_meta=True, console="off", host="scenario-host")
    for name in names:
        sc = by_name(name)
        run = wandb.init(project=WANDB_PROJECT, dir=str(project), id=run_id(name), name=name, config=sc.config,
                         settings=settings)
        for step, row in step_rows(sc):
            run.log(row, step=step)
        run.finish()


class WandbJob:
    """wandb child processes writing their share of the runs; `wait` collects them."""

    def __init__(self, project: Path, scenarios: Sequence[Scenario], *, children: int = WANDB_CHILDREN) -> None:
        project.mkdir(parents=True, exist_ok=True)
        self.project = project
        names = [sc.name for sc in scenarios]
        # deal the runs out by size so the children finish together
        sizes = {n: sum(s.size for s, _ in by_name(n).metrics.values()) for n in names}
        shares: list[list[str]] = [[] for _ in range(max(1, min(children, len(names))))]
        for n in sorted(names, key=lambda n: -sizes[n]):
            min(shares, key=lambda sh: sum(sizes[x] for x in sh)).append(n)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
        data = Path(tempfile.gettempdir()) / "runwise-scenario-wandb"
        env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true", WANDB_DISABLE_CODE="true",
                   WANDB_DATA_DIR=str(data), WANDB_CACHE_DIR=str(data / "cache"),
                   WANDB_CONFIG_DIR=str(data / "config"), WANDB_ARTIFACT_DIR=str(data / "artifacts"),
                   WANDB_PROGRAM="train.py")
        self.procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        for share in shares:
            if share:
                log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
                cmd = [sys.executable, "-m", "tests.scenarios.write", "--wandb-child", str(project), *share]
                self.procs.append((subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log), log))

    def wait(self, timeout: float = 1800.0) -> None:
        """Wait for every child; RuntimeError with the tail of its output if one failed."""
        errors = []
        for proc, log in self.procs:
            code = proc.wait(timeout=timeout)
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            log.close()
            if code != 0:
                errors.append(f"wandb writer exited {code}: {tail}")
        if errors:
            raise RuntimeError("\n".join(errors))
        _runwise_json(self.project, {"wandb_dir": "wandb"})


def write_wandb(project: Path, scenarios: Sequence[Scenario], *, children: int = WANDB_CHILDREN) -> None:
    """wandb/offline-run-*/ per scenario, written by `children` child processes side by side."""
    WandbJob(project, scenarios, children=children).wait()


# ---------------------------------------------------------------------------------------------
# the suite


_WRITERS = {"jsonl": write_jsonl, "tensorboard": write_tensorboard, "wandb": write_wandb}


def write_suite(
    out_dir: Path, sources: Sequence[str] = SOURCES, names: Iterable[str] | None = None,
    *, timings: dict[str, float] | None = None,
) -> dict[str, Path]:
    """Write every scenario (or `names`) as one run per source; returns {source: project dir}.

    `timings`, when given, receives the wall time each source took, in seconds (wandb's children run
    while the other sources are written, so its time overlaps theirs).
    """
    unknown = [s for s in sources if s not in _WRITERS]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; choose from {', '.join(SOURCES)}")
    scenarios = _selected(names)
    out = {source: Path(out_dir) / source for source in sources}
    spent: dict[str, float] = {}
    t0 = time.perf_counter()
    # wandb writes in child processes: start them first, write the other sources meanwhile
    job = WandbJob(out["wandb"], scenarios) if "wandb" in out else None
    for source in sources:
        if source != "wandb":
            t = time.perf_counter()
            _WRITERS[source](out[source], scenarios)
            spent[source] = time.perf_counter() - t
    if job is not None:
        job.wait()
        spent["wandb"] = time.perf_counter() - t0
    if timings is not None:
        timings.update(spent)
    return out


def check_written(project: Path, source: str, names: Iterable[str] | None = None) -> list[str]:
    """Load each run back through runwise; one line per difference from its scenario (empty: all equal).

    Compared: the metric keys, each metric's steps, and its values (float32-exact for TensorBoard,
    else exact); NaN and ±inf must come back where they were written.
    """
    from runwise import runs
    from runwise.config import RunwiseConfig

    cfg = RunwiseConfig.load(project, env={"RUNWISE_NO_CACHE": "1"})
    problems: list[str] = []
    for sc in _selected(names):
        try:
            run, _ = runs.get_run(sc.name, cfg)
        except Exception as exc:  # report every run, not just the first that fails
            problems.append(f"{source}:{sc.name}: cannot load: {exc}")
            continue
        hist = {k: s for k, s in run.history.items() if not k.startswith("_")}
        if set(hist) != set(sc.metrics):
            problems.append(f"{source}:{sc.name}: metrics {sorted(hist)} != {sorted(sc.metrics)}")
            continue
        for key, (steps, values) in sc.metrics.items():
            got = hist[key]
            if not np.array_equal(got.steps, steps):
                problems.append(f"{source}:{sc.name}:{key}: {len(got)} points at other steps than the {steps.size} "
                                "written")
                continue
            want = values.astype(np.float32).astype(np.float64) if source == "tensorboard" else values
            rtol = 1e-6 if source == "tensorboard" else 0.0
            if not np.allclose(got.values, want, rtol=rtol, atol=0.0, equal_nan=True):
                bad = int(np.flatnonzero(~np.isclose(got.values, want, rtol=rtol, atol=0.0, equal_nan=True))[0])
                problems.append(f"{source}:{sc.name}:{key}: value at step {int(steps[bad])} is {got.values[bad]!r}, "
                                f"wrote {values[bad]!r}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="output directory (one project per source under it)")
    ap.add_argument("--sources", nargs="*", default=list(SOURCES), choices=SOURCES)
    ap.add_argument("--names", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--check", action="store_true", help="load every run back and compare with its scenario")
    ap.add_argument("--wandb-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("child_names", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.wandb_child:
        _wandb_child(args.out, args.child_names)
        return 0
    timings: dict[str, float] = {}
    projects = write_suite(args.out, args.sources, args.names, timings=timings)
    for source, project in projects.items():
        print(f"{source:12s} {timings[source]:6.1f} s  {project}")
        if args.check:
            problems = check_written(project, source, args.names)
            print("\n".join(problems) if problems else f"{source:12s} every run loads as written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
