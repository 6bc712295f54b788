"""Every runwise operation as one input model, one output model and one handler.

Both front ends (the MCP server and the CLI) call these handlers and nothing else. A handler
takes `(request, cfg, progress=None)` and returns its output model or raises a RunwiseError.
The registry `TOOLS` holds the name, title and description each front end shows, and each tool's
default token budget; `ToolSpec.run` is the handler with every answer held to the size cap and to
its token budget (`runwise.tools._bound`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from runwise import answers
from runwise.config import RunwiseConfig
from runwise.parsers import Progress
from runwise.tools._bound import fit, fit_tokens
from runwise.tools._common import In, Out, request_budget
from runwise.tools.anomalies import ANSWER_TOKENS, DetectAnomaliesInput, DetectAnomaliesOutput, detect_anomalies
from runwise.tools.anomalies import SIZES as ANOMALY_SIZES
from runwise.tools.compare import DEFAULT_BUDGET as COMPARE_BUDGET
from runwise.tools.compare import SIZES as COMPARE_SIZES
from runwise.tools.compare import CompareRunsInput, CompareRunsOutput, compare_runs
from runwise.tools.metrics import (
    HISTORY_SIZES,
    HISTORY_TOKENS,
    GetHistoryInput,
    GetHistoryOutput,
    GetStabilityInput,
    GetStabilityOutput,
    GetStatsInput,
    GetStatsOutput,
    get_history,
    get_stability,
    get_stats,
)
from runwise.tools.report import REPORT_BUDGET, ReportInput, ReportOutput, report
from runwise.tools.run import (
    GetConfigInput,
    GetConfigOutput,
    ListKeysInput,
    ListKeysOutput,
    LiveStatusInput,
    LiveStatusOutput,
    RunContextInput,
    RunContextOutput,
    get_config,
    get_run_context,
    list_keys,
    live_status,
)
from runwise.tools.runs import (
    FindBestRunInput,
    FindBestRunOutput,
    ListRunsInput,
    ListRunsOutput,
    find_best_run,
    list_runs,
)
from runwise.tools.summary import SIZES as SUMMARY_SIZES
from runwise.tools.summary import SUMMARY_BUDGET, SummarizeRunInput, SummarizeRunOutput, summarize_run

I = TypeVar("I", bound=In)  # noqa: E741 - the input model, as in the SDK's own generics
O = TypeVar("O", bound=Out)  # noqa: E741
I_contra = TypeVar("I_contra", bound=In, contravariant=True)
O_co = TypeVar("O_co", bound=Out, covariant=True)


class Handler(Protocol[I_contra, O_co]):
    """A tool handler: `(request, cfg, progress=None) -> output model`, raising a RunwiseError."""

    def __call__(self, req: I_contra, cfg: RunwiseConfig, progress: Progress | None = None) -> O_co: ...


@dataclass(frozen=True)
class ToolSpec(Generic[I, O]):
    """One tool: its names, its input and output models, and the handler that joins them.

    `budget` is the tool's default token budget; `ask` names the arguments that get what a budget
    cut left out (shown in the cut's note); `sizes` are the arguments with which a request asks
    for a size itself (max_points=500): the default budget then yields to them.
    """

    name: str
    title: str
    description: str
    input: type[I]
    output: type[O]
    handler: Handler[I, O]
    budget: int = 2_000
    ask: str = ""
    sizes: tuple[str, ...] = field(default=())

    def budget_for(self, req: I) -> int | None:
        """The token budget `req` gets: its own; else the tool's default, unless it asks for a size itself."""
        return request_budget(req, self.budget, self.sizes)

    def run(self, req: I, cfg: RunwiseConfig, progress: Progress | None = None) -> O:
        """The handler's answer, cut to the answer size cap and to its token budget (with notes saying what was cut).

        An answer about runs whose files are unchanged since it was given comes from the disk
        (runwise.answers), in any process; it is the very answer the handler gave then.
        """
        t = answers.ticket(cfg, self.name, answers.MODEL, req.model_dump(mode="json"))
        kept = answers.get(cfg, t) if t is not None else None
        if t is not None and kept is not None:
            try:
                return self.output.model_validate_json(kept)
            except ValueError:  # not an answer of this output model (pydantic's ValidationError is one)
                answers.forget(cfg, t)
        out = self.handler(req, cfg, progress)
        budget = self.budget_for(req)
        if budget is not None:  # first: its note then counts what the handler gave, not a cut copy
            out = fit_tokens(out, budget, ask=self.ask)
        out = fit(out)
        if t is not None:
            answers.put(cfg, t, out.model_dump_json())
        return out


# Each entry keeps its own input/output types; the list holds them all, so its element type is open.
TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "list_runs", "List runs",
        "List runs, newest first: state, last step, final loss, sparkline.",
        ListRunsInput, ListRunsOutput, list_runs,
        budget=1_500, ask="limit=, source=", sizes=("limit",),
    ),
    ToolSpec(
        "summarize_run", "Summarize a run",
        "Is this run healthy? Verdict (healthy/watch/broken), LR phase, val trend, best checkpoint, main "
        "metrics. Start here.",
        SummarizeRunInput, SummarizeRunOutput, summarize_run,
        budget=SUMMARY_BUDGET, ask="keys=, get_history, detect_anomalies", sizes=SUMMARY_SIZES,
    ),
    ToolSpec(
        "compare_runs", "Compare runs",
        "Compare 2-16 runs: final/best values, where they diverge beyond noise, config keys "
        "ranked by effect.",
        CompareRunsInput, CompareRunsOutput, compare_runs,
        budget=COMPARE_BUDGET, ask="prefix=, max_metrics=", sizes=COMPARE_SIZES,
    ),
    ToolSpec(
        "get_history", "Metric history",
        "Downsampled curves (step/value); bucket min/max kept, so spikes survive.",
        GetHistoryInput, GetHistoryOutput, get_history,
        budget=HISTORY_TOKENS, ask="keys=, start_step=/end_step=", sizes=HISTORY_SIZES,
    ),
    ToolSpec(
        "get_stats", "Metric statistics",
        "Full-resolution stats per metric: points, final, min/max with steps, mean, std, NaN/inf.",
        GetStatsInput, GetStatsOutput, get_stats,
        budget=2_000, ask="keys=", sizes=("max_metrics",),
    ),
    ToolSpec(
        "get_stability", "Metric stability",
        "Noise and trend per metric: rolling std, robust slope/1k steps, verdict.",
        GetStabilityInput, GetStabilityOutput, get_stability,
        budget=1_500, ask="keys=",
    ),
    ToolSpec(
        "find_best_run", "Best run by a metric",
        "Rank runs by a metric's best or final value (min: losses, max: accuracy).",
        FindBestRunInput, FindBestRunOutput, find_best_run,
        budget=1_000, ask="top_n=", sizes=("top_n",),
    ),
    ToolSpec(
        "get_config", "Run config",
        "A run's hyperparameters as flat keys ('optimizer.lr').",
        GetConfigInput, GetConfigOutput, get_config,
        budget=2_500, ask="prefix=", sizes=("max_keys",),
    ),
    ToolSpec(
        "get_run_context", "Run context",
        "A run's name, notes, tags, group, job type, project, segments, exit code.",
        RunContextInput, RunContextOutput, get_run_context,
        budget=1_500,
    ),
    ToolSpec(
        "list_keys", "List metric keys",
        "A run's metric keys: point counts, step ranges; non-numeric ones (media, text) by kind.",
        ListKeysInput, ListKeysOutput, list_keys,
        budget=3_000, ask="prefix=", sizes=("max_keys",),
    ),
    ToolSpec(
        "live_status", "Live status",
        "A running (or latest) job: step, speed, last write, latest values, anomalies, console tail.",
        LiveStatusInput, LiveStatusOutput, live_status,
        budget=1_000, ask="keys=, output_lines=", sizes=("output_lines",),
    ),
    ToolSpec(
        "detect_anomalies", "Detect anomalies",
        "Full-resolution checks: spikes, NaN/inf, divergence, overfitting, plateaus, vanishing/exploding "
        "grads, throughput, LR schedule; steps and evidence.",
        DetectAnomaliesInput, DetectAnomaliesOutput, detect_anomalies,
        budget=ANSWER_TOKENS, ask="keys=, max_anomalies=", sizes=ANOMALY_SIZES,
    ),
    ToolSpec(
        "report", "Markdown report",
        "Markdown report: verdicts, findings, metrics; 2+ runs: comparison, config diff.",
        ReportInput, ReportOutput, report,
        budget=REPORT_BUDGET, ask="fewer runs",
    ),
]

TOOLS_BY_NAME: dict[str, ToolSpec[Any, Any]] = {t.name: t for t in TOOLS}

__all__ = ["TOOLS", "TOOLS_BY_NAME", "Handler", "ToolSpec"]
