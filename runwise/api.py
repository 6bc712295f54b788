"""The Python API: `RunAnalyzer`, a thin layer over the same tool handlers the CLI and MCP use.

It runs the calls the original runwise documents, unchanged:

    analyzer = RunAnalyzer()                      # or RunAnalyzer(RunwiseConfig.load("path"))
    runs = analyzer.list_runs(limit=10)           # list[RunInfo]
    print(analyzer.format_run_list(runs))
    run = analyzer.get_latest_run()               # RunInfo (or None when there are no runs)
    print(analyzer.summarize_run(run))            # every method takes a RunInfo or a reference
    print(analyzer.compare_runs(analyzer.find_run("a"), "b"))
    best, ranked = analyzer.find_best_run("val/loss", limit=10, higher_is_better=False)
    print(analyzer.get_history(run, ["loss", "val_loss"], samples=500))   # CSV text

The text methods render what the CLI prints. Typed answers stay available: `query(request)`
takes a tool's input model and returns that tool's output model (`query(GetStatsInput(...))`
is a `GetStatsOutput`). Answers are held to the same token budgets as the MCP server's: the
request's `budget`, else `RunAnalyzer(budget=N)`'s, else each tool's default. Errors are the
`runwise.errors` tree (RunNotFound, UnknownMetric, ...); `find_run` returns None for a run that
does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

from runwise.config import RunwiseConfig
from runwise.errors import RunNotFound
from runwise.formatting import Cell, split_keys
from runwise.render import dicts_text, history_csv, render, rows_as_dicts
from runwise.tools import TOOLS
from runwise.tools._common import In, Out
from runwise.tools.anomalies import DetectAnomaliesInput, DetectAnomaliesOutput
from runwise.tools.compare import CompareRunsInput, CompareRunsOutput
from runwise.tools.metrics import (
    GetHistoryInput,
    GetHistoryOutput,
    GetStabilityInput,
    GetStabilityOutput,
    GetStatsInput,
    GetStatsOutput,
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
)
from runwise.tools.runs import FindBestRunInput, FindBestRunOutput, ListRunsInput, ListRunsOutput
from runwise.tools.summary import SummarizeRunInput, SummarizeRunOutput

Keys = str | Sequence[str] | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as `list_runs`, `get_latest_run`, `find_run` and `find_best_run` return it.

    Every RunAnalyzer method accepts it wherever a run reference goes; `ref` is that reference.
    Fields a call did not read are None or empty (a listing has no notes, `find_run` no final value).
    """

    id: str
    name: str
    source: str
    state: str
    ref: str
    last_step: int | None = None
    runtime: str = ""  # as the listing shows it: 6m50s
    metric: str | None = None  # the metric `final` and `spark` are of (the loss unless asked otherwise)
    final: float | None = None
    spark: str = ""
    path: str = ""
    notes: str = ""
    tags: tuple[str, ...] = ()
    group: str = ""

    def __str__(self) -> str:
        return self.ref


@dataclass(frozen=True, slots=True)
class RankedRun:
    """One row of `find_best_run`'s ranking: the run, its best (or final) value and where it was."""

    rank: int
    run: RunInfo
    value: float | None
    step: int | None
    final: float | None


RunLike = RunInfo | str | None  # None: the latest run

_LIST_COLUMNS = ("id", "name", "source", "state", "last_step", "runtime", "metric", "final", "spark")


def _ref(run: RunLike) -> str:
    if run is None:
        return "latest"
    return run.ref if isinstance(run, RunInfo) else run


def _float(v: Cell) -> float | None:
    """A number of an answer as a float: 'nan' / 'inf' / '-inf' strings too; anything else None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return float(v) if v in ("nan", "inf", "-inf") else None


def _int(v: Cell) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _text(v: Cell) -> str:
    return "" if v is None else str(v)


class RunAnalyzer:
    """Ask questions about the runs of one project (W&B, TensorBoard and JSONL logs)."""

    def __init__(self, config: RunwiseConfig | None = None, *, budget: int | None = None) -> None:
        self.config = config if config is not None else RunwiseConfig.load()
        self.budget = budget  # tokens for every answer whose request names none (None: each tool's default)

    # ------------------------------------------------------------ typed answers

    @overload
    def query(self, request: ListRunsInput) -> ListRunsOutput: ...
    @overload
    def query(self, request: SummarizeRunInput) -> SummarizeRunOutput: ...
    @overload
    def query(self, request: CompareRunsInput) -> CompareRunsOutput: ...
    @overload
    def query(self, request: GetHistoryInput) -> GetHistoryOutput: ...
    @overload
    def query(self, request: GetStatsInput) -> GetStatsOutput: ...
    @overload
    def query(self, request: GetStabilityInput) -> GetStabilityOutput: ...
    @overload
    def query(self, request: FindBestRunInput) -> FindBestRunOutput: ...
    @overload
    def query(self, request: GetConfigInput) -> GetConfigOutput: ...
    @overload
    def query(self, request: RunContextInput) -> RunContextOutput: ...
    @overload
    def query(self, request: ListKeysInput) -> ListKeysOutput: ...
    @overload
    def query(self, request: LiveStatusInput) -> LiveStatusOutput: ...
    @overload
    def query(self, request: DetectAnomaliesInput) -> DetectAnomaliesOutput: ...

    def query(self, request: In) -> Out:
        """Run the tool whose input model `request` is; returns that tool's output model, shaped to its budget."""
        for spec in TOOLS:
            if type(request) is spec.input:
                if request.budget is None and self.budget is not None:
                    request = spec.input.model_validate({**request.model_dump(), "budget": self.budget})
                out = spec.run(request, self.config)
                if not isinstance(out, Out) or not isinstance(out, spec.output):
                    raise TypeError(f"{spec.name} answered with {type(out).__name__}")
                answer: Out = out
                return answer
        raise TypeError(f"not a tool input model: {type(request).__name__}")

    # ------------------------------------------------------------ runs

    def list_runs(self, limit: int = 15) -> list[RunInfo]:
        """The newest runs, newest first, with their loss (or chosen metric): final value and sparkline."""
        table = self.query(ListRunsInput(limit=limit)).runs
        runs = []
        for c in rows_as_dicts(table):
            runs.append(RunInfo(
                id=_text(c.get("id")), name=_text(c.get("name")), source=_text(c.get("source")),
                state=_text(c.get("state")), ref=f"{c.get('source')}:{c.get('id')}", last_step=_int(c.get("last_step")),
                runtime=_text(c.get("runtime")), metric=_text(c.get("metric")) or None, final=_float(c.get("final")),
                spark=_text(c.get("spark")),
            ))
        return runs

    def format_run_list(self, runs: Sequence[RunInfo] | None = None) -> str:
        """`runs` as a text table (default: the newest runs, as `runwise list` prints them)."""
        if runs is None:
            return render(self.query(ListRunsInput()), "text")
        rows = [{k: getattr(r, k) for k in _LIST_COLUMNS} for r in runs]
        shown = [k for k in _LIST_COLUMNS if any(row[k] not in (None, "") for row in rows)]
        return dicts_text([{k: row[k] for k in shown} for row in rows])

    def get_latest_run(self) -> RunInfo | None:
        """The most recently written run, or None when the project has no runs."""
        runs = self.list_runs(limit=1)
        return runs[0] if runs else None

    def find_run(self, ref: str) -> RunInfo | None:
        """The run `ref` names (id, prefix, name, source:id, path, 'latest'), or None if none does."""
        try:
            out = self.query(RunContextInput(run=ref))
        except RunNotFound:
            return None
        h = out.run
        # a log file named by path has its path as id; it is found again by that path
        again = out.path if h.id == out.path else f"{h.source}:{h.id}"
        return RunInfo(
            id=h.id, name=h.name, source=h.source, state=h.state, ref=again, last_step=h.last_step,
            path=out.path, notes=out.notes, tags=tuple(out.tags), group=out.group,
        )

    def summarize_run(self, run: RunLike = "latest", keys: Keys = None) -> str:
        """State, main metrics, anomalies and ending of a run, as text."""
        return render(self.query(SummarizeRunInput(run=_ref(run), keys=split_keys(keys))), "text")

    def compare_runs(
        self, run_a: RunLike, run_b: RunLike, *more: RunLike, step: int | None = None, prefix: str = "",
        group: bool = False, threshold_pct: float = 0.0, config_diff: bool = True, max_metrics: int = 20,
    ) -> str:
        """Runs side by side as text: final values (or at `step`), % deltas, config differences."""
        req = CompareRunsInput(
            runs=[_ref(r) for r in (run_a, run_b, *more)], step=step, prefix=prefix, group=group,
            threshold_pct=threshold_pct, config_diff=config_diff, max_metrics=max_metrics,
        )
        return render(self.query(req), "text")

    def get_config(self, run: RunLike = "latest", prefix: str = "") -> str:
        """A run's config as text, one flattened key per line ('optimizer.lr')."""
        return render(self.query(GetConfigInput(run=_ref(run), prefix=prefix, max_keys=2000)), "text")

    def _best(
        self, metric: str, limit: int, higher_is_better: bool | None, use: Literal["best", "final"]
    ) -> FindBestRunOutput:
        mode: Literal["auto", "min", "max"] = "auto" if higher_is_better is None else (
            "max" if higher_is_better else "min")
        return self.query(FindBestRunInput(metric=metric, mode=mode, use=use, max_runs=limit, top_n=50))

    def find_best_run(
        self, metric: str, limit: int = 10, higher_is_better: bool | None = None, *,
        use: Literal["best", "final"] = "best",
    ) -> tuple[RunInfo | None, list[RankedRun]]:
        """`(best, ranked)` over the `limit` newest runs; `higher_is_better` None: from the name and config.

        `ranked` holds every run with the metric (at most 50), best first; `best` is the first one's
        run, None when no run has the metric.
        """
        table = self._best(metric, limit, higher_is_better, use).ranking
        ranked: list[RankedRun] = []
        for c in rows_as_dicts(table):
            info = RunInfo(
                id=_text(c.get("id")), name=_text(c.get("name")), source=_text(c.get("source")),
                state=_text(c.get("state")), ref=f"{c.get('source')}:{c.get('id')}", metric=metric,
                final=_float(c.get("final")),
            )
            rank = _int(c.get("rank"))
            ranked.append(RankedRun(rank=rank if rank is not None else len(ranked) + 1, run=info,
                                    value=_float(c.get(use)), step=_int(c.get("step")), final=info.final))
        return (ranked[0].run if ranked else None), ranked

    def format_best_run(
        self, metric: str, limit: int = 10, higher_is_better: bool | None = None, *,
        use: Literal["best", "final"] = "best",
    ) -> str:
        """`find_best_run` as text: the winner in one line, then the ranking."""
        return render(self._best(metric, limit, higher_is_better, use), "text")

    # ------------------------------------------------------------ metrics

    def get_history(self, run: RunLike = "latest", keys: Keys = None, samples: int | None = 500) -> str:
        """Downsampled history as one CSV (`metric,step,value`), at most `samples` points per metric.

        Downsampling keeps each bucket's first, last, min and max, so spikes survive.
        """
        out = self.query(GetHistoryInput(run=_ref(run), keys=split_keys(keys), max_points=samples))
        return history_csv(out.metrics)

    def get_history_stats(self, run: RunLike = "latest", keys: Keys = None) -> str:
        """Full-resolution statistics per metric as text: points, final, min/max with steps, mean, std, nan, inf."""
        return render(self.query(GetStatsInput(run=_ref(run), keys=split_keys(keys))), "text")

    def list_available_keys(self, run: RunLike = "latest") -> str:
        """A run's metric keys as text, with point counts and step ranges."""
        return render(self.query(ListKeysInput(run=_ref(run), max_keys=5000)), "text")

    def __repr__(self) -> str:
        budget = "" if self.budget is None else f", budget={self.budget}"
        return f"RunAnalyzer(root={str(self.config.root)!r}{budget})"


__all__ = ["RankedRun", "RunAnalyzer", "RunInfo", "RunwiseConfig"]
