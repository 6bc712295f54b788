"""Tools over many runs: list_runs, find_best_run.

Both answer from the run index (runwise.index): each run's state, steps, final, lowest and highest
values and sparklines, kept while its files are unchanged. A run the index has not seen (new, or
changed since) is read once, and is indexed as it is read.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Literal

from pydantic import Field

from runwise import runs
from runwise.analysis.aliases import ROLES, find_metric, higher_is_better
from runwise.config import RunwiseConfig
from runwise.index import MetricRow, Row
from runwise.model import RunEntry
from runwise.parsers import Progress
from runwise.tools._common import In, Num, Out, Table, fmt, fmt_duration, num, unknown_metric
from runwise.tools._fields import MetricName

Source = Literal["all", "wandb", "tensorboard", "jsonl", "mlflow", "dvclive", "trackio", "hf", "csv", "wandb-cloud"]


def _entries(
    cfg: RunwiseConfig, source: str, *, limit: int = runs.LIST_MAX_RUNS
) -> tuple[list[RunEntry] | None, list[RunEntry], list[str]]:
    """All the project's runs (None for cloud runs), those of `source` ("all": every one), and the
    discovery warnings.

    W&B cloud runs (`wandb-cloud`) are asked of W&B's servers only when that source is chosen: the
    newest `limit` runs of the configured project, of `cfg.wandb_state` when set (`runwise api --state`;
    not an input field: the tools list's schemas are held to 8,000 characters).
    """
    if source == "wandb-cloud":
        from runwise.parsers import wandb_cloud

        return None, wandb_cloud.list_entries(cfg, state=cfg.wandb_state, limit=limit), []
    entries, warnings = runs.discover(cfg)
    chosen = entries if source == "all" else [e for e in entries if e.source == source]
    return entries, chosen, warnings


def _rows(
    every: list[RunEntry] | None, shown: list[RunEntry], cfg: RunwiseConfig, progress: Progress | None, *,
    whole: bool = False,
) -> dict[str, Row | str]:
    """The index rows of `shown` (read now where the index has not seen them); forgets runs no longer on disk.

    `whole`: rows with each metric's lowest and highest values (a large log read at its ends has none).
    """
    rows = runs.index_rows(shown, cfg, progress, whole=whole)
    if every is not None:  # None: a cloud listing, which says nothing of the local runs
        runs.forget_missing(every, cfg)
    return rows


def _final(m: MetricRow) -> Num:
    """A metric's final value as list_runs shows it: the last finite one, else the last (NaN or inf)."""
    return num(m.final, 4) if m.final is not None else num(m.last)


# ---------------------------------------------------------------- list_runs


class ListRunsInput(In):
    source: Source = "all"
    limit: Annotated[int, Field(ge=1, le=runs.LIST_MAX_RUNS, description="Newest runs to show")] = 15
    metric: Annotated[MetricName | None, Field(description="Metric per run (default: loss)")] = None
    sparklines: bool = True


class ListRunsOutput(Out):
    summary: str
    runs: Table  # id, name, source, state, last_step, runtime, <metric>, spark
    total: int
    omitted: int
    notes: list[str]


def list_runs(req: ListRunsInput, cfg: RunwiseConfig, progress: Progress | None = None) -> ListRunsOutput:
    every, entries, warnings = _entries(cfg, req.source, limit=req.limit)
    shown = entries[: req.limit]
    columns = ["id", "name", "source", "state", "last_step", "runtime", "metric", "final"]
    if req.sparklines:
        columns.append("spark")
    rows: list[list[str | int | float | bool | None]] = []
    notes = list(warnings)
    indexed = _rows(every, shown, cfg, progress)  # from the run index; runs it has not seen are read now
    loss_key = cfg.schema.loss_key
    for e in shown:
        row = indexed[e.key]
        if isinstance(row, str):
            bad: list[str | int | float | bool | None] = [e.id, e.name, e.source, "unreadable", None, None, None, None]
            rows.append(bad + ([""] if req.sparklines else []))
            notes.append(f"{e.key}: {row}")
            continue
        # the loss as roles() finds it, without looking for every other role (a listing has many rows)
        key = req.metric if req.metric in row.metrics else find_metric(row.metrics, "loss", preferred=loss_key)
        m = row.metrics.get(key) if key else None
        cells: list[str | int | float | bool | None] = [
            row.id, row.name, row.source, row.state, row.last_step, fmt_duration(row.runtime), key,
            _final(m) if m is not None else None,
        ]
        if req.sparklines:
            cells.append(m.spark or "" if m is not None else "")
        rows.append(cells)
    by_source: dict[str, int] = {}
    for e in entries:
        by_source[e.source] = by_source.get(e.source, 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(by_source.items())) or "none"
    summary = f"{len(entries)} run{'' if len(entries) == 1 else 's'} ({counts}); newest first"
    if req.metric and not any(r[6] == req.metric for r in rows):
        notes.append(f"no listed run has metric {req.metric!r}; showing the loss where there is one")
    return ListRunsOutput(summary=summary, runs=Table(columns=columns, rows=rows), total=len(entries),
                          omitted=max(0, len(entries) - len(shown)), notes=notes[:8])


# ---------------------------------------------------------------- find_best_run


class FindBestRunInput(In):
    metric: Annotated[MetricName, Field(description="e.g. 'val/loss'")]
    mode: Annotated[Literal["auto", "min", "max"], Field(description="auto: max for accuracy-like names")] = "auto"
    use: Annotated[Literal["best", "final"], Field(description="Each run's best or final value")] = "best"
    top_n: Annotated[int, Field(ge=1, le=50)] = 5
    source: Source = "all"
    max_runs: Annotated[int, Field(ge=1, le=1000, description="Newest runs to consider")] = 100


class FindBestRunOutput(Out):
    summary: str
    ranking: Table  # rank, id, name, source, value, step, final, state
    considered: int
    without_metric: int
    notes: list[str]


def find_best_run(req: FindBestRunInput, cfg: RunwiseConfig, progress: Progress | None = None) -> FindBestRunOutput:
    every, entries, warnings = _entries(cfg, req.source, limit=req.max_runs)
    entries = entries[: req.max_runs]
    maximize = higher_is_better(req.metric) if req.mode == "auto" else req.mode == "max"
    hib = cfg.schema.higher_is_better(req.metric)
    if req.mode == "auto" and hib is not None:
        maximize = hib
    scored: list[tuple[float, list[str | int | float | bool | None]]] = []
    missing = 0
    notes = list(warnings)
    all_keys: set[str] = set()
    aliased: dict[str, None] = {}  # keys a role name ('val_loss') was read as, in order
    indexed = _rows(every, entries, cfg, progress, whole=req.use == "best")  # values from the run index
    for e in entries:
        info = indexed[e.key]
        if isinstance(info, str):
            notes.append(f"{e.key}: {info}")
            continue
        all_keys.update(info.metrics)
        key = _metric_key(info.metrics, req.metric)
        if key is not None and key != req.metric:
            aliased.setdefault(key, None)
        m = info.metrics.get(key) if key is not None else None
        picked = _pick(m, req.use, maximize) if m is not None else None
        if m is None or picked is None:  # no finite value at all
            missing += 1
            continue
        value, step = picked
        cells: list[str | int | float | bool | None] = [
            0, info.id, info.name, info.source, num(value), int(step), num(m.final), info.state,
        ]
        scored.append((value, cells))
    if not scored and entries:
        raise unknown_metric(req.metric, all_keys)
    if aliased:
        notes.insert(0, f"{req.metric!r} read as the run's {', '.join(aliased)} (a role name, not a logged key)")
    scored.sort(key=lambda t: -t[0] if maximize else t[0])
    rows = []
    for rank, (_, row) in enumerate(scored[: req.top_n], 1):
        row[0] = rank
        rows.append(row)
    direction = "highest" if maximize else "lowest"
    if rows:
        best = rows[0]
        summary = (
            f"best by {req.use} {req.metric} ({direction}): {best[3]}:{best[1]} = {fmt(best[4])} at step {best[5]:,}"
            f" of {len(scored)} runs with the metric"
        )
    else:
        summary = "no runs found"
    return FindBestRunOutput(
        summary=summary,
        ranking=Table(columns=["rank", "id", "name", "source", req.use, "step", "final", "state"], rows=rows),
        considered=len(entries), without_metric=missing, notes=notes[:8],
    )


def _pick(m: MetricRow, use: str, maximize: bool) -> tuple[float, int] | None:
    """The (value, step) a ranking by `use` takes from a metric: its final, highest or lowest finite value."""
    if use == "final":
        value, step = m.final, m.final_step
    else:
        value, step = (m.max, m.max_step) if maximize else (m.min, m.min_step)
    return None if value is None or step is None else (value, step)


def _metric_key(keys: Collection[str], metric: str) -> str | None:
    """The run's key for `metric`: the key itself, else the key playing that role ('val_loss' -> 'val/loss')."""
    if metric in keys:
        return metric
    return find_metric(keys, metric) if metric in ROLES else None
