"""Every runwise operation as one input model, one output model and one handler.

Both front ends (the MCP server and the CLI) call these handlers and nothing else. A handler
takes `(request, cfg, progress=None)` and returns its output model or raises a RunwiseError.
The registry `TOOLS` holds the name, title and description each front end shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from runwise.tools.compare import CompareRunsInput, CompareRunsOutput, compare_runs
from runwise.tools.metrics import (
    DetectAnomaliesInput,
    DetectAnomaliesOutput,
    GetHistoryInput,
    GetHistoryOutput,
    GetStabilityInput,
    GetStabilityOutput,
    GetStatsInput,
    GetStatsOutput,
    detect_anomalies,
    get_history,
    get_stability,
    get_stats,
)
from runwise.tools.run import (
    GetConfigInput,
    GetConfigOutput,
    ListKeysInput,
    ListKeysOutput,
    LiveStatusInput,
    LiveStatusOutput,
    RunContextInput,
    RunContextOutput,
    SummarizeRunInput,
    SummarizeRunOutput,
    get_config,
    get_run_context,
    list_keys,
    live_status,
    summarize_run,
)
from runwise.tools.runs import (
    FindBestRunInput,
    FindBestRunOutput,
    ListRunsInput,
    ListRunsOutput,
    find_best_run,
    list_runs,
)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input: type[BaseModel]
    output: type[BaseModel]
    handler: Callable[..., Any]


TOOLS: list[ToolSpec] = [
    ToolSpec(
        "list_runs", "List runs",
        "List training runs (W&B, TensorBoard, JSONL), newest first: state, last step, final loss, sparkline.",
        ListRunsInput, ListRunsOutput, list_runs,
    ),
    ToolSpec(
        "summarize_run", "Summarize a run",
        "Is this run healthy? State, main metrics (final/min/max with steps, sparkline), anomalies, how it "
        "ended. Start here.",
        SummarizeRunInput, SummarizeRunOutput, summarize_run,
    ),
    ToolSpec(
        "compare_runs", "Compare runs",
        "Compare 2-8 runs: final values (or values at a step: 'ref@STEP' or step=N), % deltas, config "
        "differences. Answers which config change made B better than A.",
        CompareRunsInput, CompareRunsOutput, compare_runs,
    ),
    ToolSpec(
        "get_history", "Metric history",
        "Downsampled metric curves as step/value columns; keeps every bucket's min/max so spikes survive. "
        "Narrow with keys, start_step/end_step.",
        GetHistoryInput, GetHistoryOutput, get_history,
    ),
    ToolSpec(
        "get_stats", "Metric statistics",
        "Per-metric statistics on full-resolution data: points, final, min/max with steps, mean, std, NaN/inf.",
        GetStatsInput, GetStatsOutput, get_stats,
    ),
    ToolSpec(
        "get_stability", "Metric stability",
        "Noise and trend per metric: rolling std over a window of steps, robust slope per 1k steps, verdict.",
        GetStabilityInput, GetStabilityOutput, get_stability,
    ),
    ToolSpec(
        "find_best_run", "Best run by a metric",
        "Rank runs by a metric's best or final value (min for losses, max for accuracy-like names).",
        FindBestRunInput, FindBestRunOutput, find_best_run,
    ),
    ToolSpec(
        "get_config", "Run config",
        "A run's hyperparameters as flattened keys ('optimizer.lr'); filter with prefix.",
        GetConfigInput, GetConfigOutput, get_config,
    ),
    ToolSpec(
        "get_run_context", "Run context",
        "A run's name, notes, tags, group, job type, project, segments and exit code.",
        RunContextInput, RunContextOutput, get_run_context,
    ),
    ToolSpec(
        "list_keys", "List metric keys",
        "Metric names of a run with point counts and step ranges; non-numeric keys (media, text) by kind.",
        ListKeysInput, ListKeysOutput, list_keys,
    ),
    ToolSpec(
        "live_status", "Live status",
        "Status of a running (or the latest) job: last step, steps/s, seconds since last write, latest values, "
        "recent anomalies, console tail.",
        LiveStatusInput, LiveStatusOutput, live_status,
    ),
    ToolSpec(
        "detect_anomalies", "Detect anomalies",
        "Full-resolution checks: loss spikes, NaN/inf, divergence, overfitting, plateaus, vanishing/exploding "
        "gradients, throughput drops; each with its step.",
        DetectAnomaliesInput, DetectAnomaliesOutput, detect_anomalies,
    ),
]

TOOLS_BY_NAME = {t.name: t for t in TOOLS}

__all__ = ["TOOLS", "TOOLS_BY_NAME", "ToolSpec"]
