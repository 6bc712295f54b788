"""Runs inside the runwise 0.4.0 venv (bench/_runwise040.py starts it): its own readers, its own detector.

    <venv>/bin/python bench/_runwise040_child.py < jobs.json

Reads {"jobs": [{"id", "source", "path", "run", "keys": {role: key}}]} on stdin and prints one
JSON line {"results": {id: {"api": [...], "tool": [...], "rows": n, "error": str | None}}}.
Imports only runwise 0.4.0 (and the tensorboard package it needs for event files), never the
runwise of this repository. Two ways of asking it, per job:

  api   its Python API `runwise.detect_anomalies(history, loss_key=, val_loss_key=,
        grad_norm_key=, throughput_key=)` on the full history its own reader returns for the
        source, with the scenario's metric names for the four keys (a user who configured it well).
  tool  what its agent-facing tools run: W&B `detect_anomalies` (MCP) reads 200 evenly spaced
        history rows and takes `loss_key` as an argument (val/grad/throughput keys stay at their
        defaults); TensorBoard `runwise tb RUN` summarises 100 rows with loss tag "loss"; JSONL
        `analyze_local_log` runs no anomaly check at all.
Each finding: {"type", "severity", "message", "step", "metric"}, `metric` being the key the check
read (the loss key for spike and plateau, the key named in a NaN/Inf message, ...).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from runwise.anomalies import AnomalyConfig

from runwise import RunAnalyzer, RunwiseConfig, detect_anomalies

ALL_ROWS = 10**9  # get_history_data reads every line when the file has fewer lines than this
DEFAULTS = {"loss": "loss", "val_loss": "val_loss", "grad_norm": "grad_norm", "throughput": "steps_per_sec"}


def _metric(a: Any, keys: dict[str, str]) -> str:
    """The metric key the 0.4.0 check that made `a` looked at."""
    if a.type == "nan":  # "NaN detected in KEY" / "Inf detected in KEY"
        return str(a.message.split(" detected in ", 1)[-1])
    role = {"spike": "loss", "plateau": "loss", "overfit": "val_loss", "gradient": "grad_norm",
            "system": "throughput"}.get(a.type, "loss")
    return keys[role]


def _detect(history: list[dict[str, Any]], keys: dict[str, str], config: AnomalyConfig | None = None) -> list[dict]:
    found = detect_anomalies(history, config=config, loss_key=keys["loss"], val_loss_key=keys["val_loss"],
                             grad_norm_key=keys["grad_norm"], throughput_key=keys["throughput"])
    return [{"type": a.type, "severity": a.severity, "message": a.message, "step": a.step,
             "metric": _metric(a, keys)} for a in found]


def _tb_run(parser: Any) -> Any:
    runs = parser.list_runs()
    if not runs:
        raise ValueError("no TensorBoard run found")
    return max(runs, key=lambda r: (r.run_id == "root", len(r.tags), r.steps))


def one(job: dict[str, Any]) -> dict[str, Any]:
    source, path = job["source"], Path(job["path"])
    keys = {**DEFAULTS, **{k: v for k, v in job["keys"].items() if v}}
    if source == "jsonl":
        analyzer = RunAnalyzer(RunwiseConfig(logs_dir=path.parent))
        rows = analyzer.parse_local_log(path)
        return {"api": _detect(rows, keys), "tool": [], "rows": len(rows)}
    if source == "wandb":
        analyzer = RunAnalyzer(RunwiseConfig(wandb_dir=path))
        run = analyzer.find_run(job["run"])
        if run is None:
            raise ValueError(f"no W&B run {job['run']!r} in its wandb dir")
        rows = analyzer.get_history_data(run, samples=ALL_ROWS)
        sampled = analyzer.get_history_data(run, samples=200)  # as its MCP detect_anomalies tool
        tool_keys = {**DEFAULTS, "loss": keys["loss"]}
        return {"api": _detect(rows, keys), "tool": _detect(sampled, tool_keys, analyzer.config.anomaly_config),
                "rows": len(rows)}
    if source == "tensorboard":
        from runwise.tensorboard import TensorBoardParser

        parser = TensorBoardParser(path)
        run = _tb_run(parser)
        rows = parser.get_history_data(run, samples=ALL_ROWS)
        sampled = parser.get_history_data(run, samples=100)  # as TensorBoardParser.summarize_run
        return {"api": _detect(rows, keys), "tool": _detect(sampled, dict(DEFAULTS)), "rows": len(rows)}
    raise ValueError(f"unknown source {source!r}")


def main() -> None:
    jobs = json.load(sys.stdin)["jobs"]
    results: dict[str, Any] = {}
    for job in jobs:
        try:
            results[job["id"]] = {**one(job), "error": None}
        except Exception as exc:  # one run's failure is reported in its row, not the whole bench's
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            results[job["id"]] = {"api": [], "tool": [], "rows": 0, "error": last}
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
