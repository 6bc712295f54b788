"""The Python API: `RunAnalyzer`, a thin layer over the same tool handlers the CLI and MCP use.

Methods return plain Python data (dicts, lists, floats) or rendered text; errors are the
`runwise.errors` tree (RunNotFound, UnknownMetric, ...), except `find_run`, which returns None for
a run that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from runwise.config import RunwiseConfig
from runwise.errors import RunNotFound
from runwise.formatting import split_keys
from runwise.render import dicts_text, render, rows_as_dicts

Keys = str | Sequence[str] | None


def _float(v: Any) -> Any:
    """Output numbers back to floats: 'nan' / 'inf' / '-inf' strings become float('nan') etc."""
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    return v


class RunAnalyzer:
    """Ask questions about the runs of one project (W&B, TensorBoard and JSONL logs)."""

    def __init__(self, config: RunwiseConfig | None = None) -> None:
        self.config = config if config is not None else RunwiseConfig.load()

    def _call(self, tool: str, **fields: Any) -> Any:
        from runwise.tools import TOOLS_BY_NAME

        spec = TOOLS_BY_NAME[tool]
        return spec.handler(spec.input.model_validate(fields), self.config)

    @staticmethod
    def _text(out: BaseModel) -> str:
        return render(out, "text")

    # ------------------------------------------------------------ runs

    def list_runs(self, limit: int = 15) -> list[dict[str, Any]]:
        """The newest runs as dicts: id, name, source, state, last_step, runtime, metric, final, spark."""
        out = self._call("list_runs", limit=limit)
        return [{k: _float(v) for k, v in row.items()} for row in rows_as_dicts(out.runs)]

    def format_run_list(self, runs: Sequence[dict[str, Any]] | None = None) -> str:
        """A text table of `runs` (default: the newest runs, with the listing's summary line)."""
        if runs is None:
            return self._text(self._call("list_runs"))
        return dicts_text(runs)

    def get_latest_run(self) -> dict[str, Any] | None:
        """The most recently written run as a list_runs row, or None when there are no runs."""
        rows = self.list_runs(limit=1)
        return rows[0] if rows else None

    def find_run(self, ref: str) -> dict[str, Any] | None:
        """A run's header and context (id, name, source, state, path, tags, notes, ...), None if not found."""
        try:
            out = self._call("get_run_context", run=ref)
        except RunNotFound:
            return None
        data: dict[str, Any] = out.run.model_dump()
        data.update(out.model_dump(exclude={"run"}))
        return data

    def summarize_run(self, ref: str = "latest") -> str:
        """State, main metrics, anomalies and ending of a run, as text."""
        return self._text(self._call("summarize_run", run=ref))

    def compare_runs(self, a: str, b: str, *more: str, **opts: Any) -> str:
        """Compare runs as text; `opts` are compare_runs fields (step, prefix, group, threshold_pct, ...)."""
        return self._text(self._call("compare_runs", runs=[a, b, *more], **opts))

    def get_config(self, ref: str = "latest") -> dict[str, Any]:
        """A run's config as flattened keys ('optimizer.lr' -> 0.001)."""
        out = self._call("get_config", run=ref, max_keys=2000)
        return dict(out.config)

    def find_best_run(
        self, metric: str, higher_is_better: bool = False, top_n: int = 5
    ) -> list[dict[str, Any]]:
        """Runs ranked by the metric's best value: rank, id, name, source, best, step, final, state."""
        mode = "max" if higher_is_better else "min"
        out = self._call("find_best_run", metric=metric, mode=mode, top_n=top_n)
        return [{k: _float(v) for k, v in row.items()} for row in rows_as_dicts(out.ranking)]

    def format_best_run(self, rows: Sequence[dict[str, Any]]) -> str:
        """A text table of find_best_run's rows."""
        return dicts_text(rows) if rows else "no runs have that metric"

    # ------------------------------------------------------------ metrics

    def get_history(
        self, ref: str = "latest", keys: Keys = None, max_points: int | None = None
    ) -> dict[str, dict[str, Any]]:
        """Downsampled history per metric: {"steps": [...], "values": [...], "source_points", "method"}."""
        out = self._call("get_history", run=ref, keys=split_keys(keys), max_points=max_points)
        return {
            k: {
                "steps": list(h.steps),
                "values": [_float(v) for v in h.values],
                "source_points": h.source_points,
                "method": h.method,
            }
            for k, h in out.metrics.items()
        }

    def get_history_stats(self, ref: str = "latest", keys: Keys = None) -> dict[str, dict[str, Any]]:
        """Full-resolution statistics per metric: points, final, min/max with steps, mean, std, nan, inf."""
        out = self._call("get_stats", run=ref, keys=split_keys(keys), max_metrics=500)
        return {row.pop("metric"): {k: _float(v) for k, v in row.items()} for row in rows_as_dicts(out.stats)}

    def list_available_keys(self, ref: str = "latest") -> list[str]:
        """Every numeric metric key of a run, sorted."""
        out = self._call("list_keys", run=ref, max_keys=5000)
        return [str(row[0]) for row in out.metrics.rows]

    def __repr__(self) -> str:
        return f"RunAnalyzer(root={str(self.config.root)!r})"


__all__ = ["RunAnalyzer", "RunwiseConfig"]
