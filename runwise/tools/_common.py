"""Helpers shared by the tool handlers: number rounding, metric selection, common fields."""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from runwise import results, runs
from runwise.analysis.aliases import ROLES, find_metric, is_validation
from runwise.analysis.stats import SeriesStats, grown_stats
from runwise.config import RunwiseConfig
from runwise.errors import UnknownMetric
from runwise.formatting import Cell as Cell
from runwise.formatting import fmt as fmt
from runwise.formatting import fmt_duration as fmt_duration
from runwise.formatting import fmt_step as fmt_step
from runwise.formatting import iso as iso
from runwise.model import Run, Series
from runwise.parsers import Progress

# A number in an output: rounded float, "nan" / "inf" / "-inf" for non-finite values, None if absent.
Num = float | str | None

# Input field types (run references, keys, steps) and their caps: runwise.tools._fields


MIN_BUDGET = 100
MAX_BUDGET = 50_000


class In(BaseModel):
    """Base of tool inputs: unknown fields are refused, so a typo is an error, not silently ignored.

    `budget` (every tool takes it) is the most tokens the answer may cost, counted on the compact
    JSON text the MCP server sends; None means the tool's default (`ToolSpec.budget`).
    """

    model_config = ConfigDict(extra="forbid")

    budget: Annotated[int | None, Field(ge=MIN_BUDGET, le=MAX_BUDGET)] = None  # described in the server instructions


class Out(BaseModel):
    """Base of tool outputs."""

    model_config = ConfigDict(ser_json_inf_nan="strings")


def num(x: float | int | None, digits: int = 5) -> Num:
    """Round to `digits` significant digits; non-finite values as strings so JSON stays valid."""
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return 0.0
    return float(f"{x:.{digits}g}")


def age(ts: float | None) -> float | None:
    return None if ts is None else max(0.0, time.time() - ts)


def roles(keys: Iterable[str], cfg: RunwiseConfig) -> dict[str, str]:
    """Role -> metric key for the roles this run has (loss, val_loss, grad_norm, ...)."""
    keys = list(keys)
    preferred = {"loss": cfg.schema.loss_key}
    out = {}
    for role in ROLES:
        key = find_metric(keys, role, preferred=preferred.get(role))
        if key is not None:
            out[role] = key
    return out


def main_metrics(run: Run, cfg: RunwiseConfig, limit: int) -> list[str]:
    """The metrics a summary shows first: loss, validation loss, primary metric, then the rest."""
    keys = sorted(run.history)
    r = roles(keys, cfg)
    order: list[str] = []
    for k in (r.get("loss"), r.get("val_loss"), cfg.schema.primary_metric, r.get("accuracy"), r.get("val_accuracy")):
        if k and k in run.history and k not in order:
            order.append(k)
    for g in cfg.schema.groups:
        order += [k for k in g.metrics if k in run.history and k not in order]
    rest = [k for k in keys if k not in order]
    # validation metrics before the rest; then other metrics, then learning-rate/gradient/system ones
    order += [k for k in rest if is_validation(k, cfg.schema.validation_sets)]
    order += [k for k in rest if k not in order and k not in (r.get("lr"), r.get("grad_norm"), r.get("throughput"))]
    order += [k for k in (r.get("lr"), r.get("grad_norm"), r.get("throughput")) if k and k not in order]
    return order[:limit]


def select_keys(run: Run, keys: Sequence[str] | None, cfg: RunwiseConfig, *, default_limit: int) -> list[str]:
    """Resolve requested names: exact key, else prefix ('val/'), else role alias ('loss')."""
    if not keys:
        return main_metrics(run, cfg, default_limit)
    available = list(run.history)
    chosen: list[str] = []
    for want in keys:
        if want in run.history:
            found = [want]
        else:
            # a prefix names a group ('val' or 'val/' -> 'val/loss'), never part of a name ('val/los')
            group = want if want.endswith("/") else want + "/"
            found = sorted(k for k in available if k.startswith(group))
            if not found:
                alias = find_metric(available, want) if want in ROLES else None
                found = [alias] if alias else []
        if not found:
            raise unknown_metric(want, available)
        chosen += [k for k in found if k not in chosen]
    return chosen


def unknown_metric(name: str, available: Iterable[str]) -> UnknownMetric:
    """The error for a metric no run has, naming the closest names there are."""
    names = sorted(available)
    return UnknownMetric(name, names, closest=difflib.get_close_matches(name, names, n=5, cutoff=0.4))


VALUE_CHARS = 120  # longer config values (prompts, file lists) are cut, with "…" saying so


def short_value(v: object) -> str | int | float | bool | None:
    """A config value for an answer: scalars as they are, anything else as text of at most VALUE_CHARS."""
    if isinstance(v, (bool, int, float)) or v is None:
        return v
    text = v if isinstance(v, str) else repr(v)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "…"




def run_label(run: Run) -> str:
    name = f" '{run.name}'" if run.name and run.name != run.id else ""
    return f"{run.source}:{run.id}{name}"


def clip(items: list[Any], limit: int) -> tuple[list[Any], int]:
    """First `limit` items and how many were left out."""
    return items[:limit], max(0, len(items) - limit)




class Table(BaseModel):
    """A compact table: column names once, then one list per row."""

    columns: list[str]
    rows: list[list[Cell]]


def run_notes(run: Run) -> list[str]:
    """What an answer about `run` must say: still running, truncated, damaged or skipped data."""
    notes = list(run.warnings)
    if run.state == "running":
        notes.insert(0, "run is still being written: numbers are as of the last write")
    elif run.truncated and not any("truncat" in w for w in notes):
        notes.append("the log ends in a cut-off record (crashed, killed or still writing)")
    return notes[:6]


def request_budget(req: In, default: int, sizes: Sequence[str]) -> int | None:
    """The token budget `req` gets: its own `budget`; else `default`, unless it sets one of the
    size arguments `sizes` (max_points=500) itself, which then asks for that size instead."""
    budget: int | None = getattr(req, "budget", None)
    if budget is not None:
        return budget
    fields = type(req).model_fields
    if any(getattr(req, k) != fields[k].default for k in sizes if k in fields):
        return None
    return default


def anomaly_report(run: Run, cfg: RunwiseConfig, *, keys: Sequence[str] | None = None, max_anomalies: int = 20) -> Any:
    """Run every anomaly check on full-resolution history (once per run version, keys and thresholds)."""
    from runwise.analysis.anomalies import detect_anomalies

    series = {k: s for k, s in run.history.items() if keys is None or k in keys}
    history = {k: (s.steps, s.values) for k, s in series.items()}
    r = {role: k for role, k in roles(run.history, cfg).items() if k in history}
    thresholds = cfg.anomaly.thresholds()
    arrays = [a for s in series.values() for a in (s.steps, s.values)]
    params = (tuple(history), thresholds, tuple(sorted(r.items())), max_anomalies, config_key(run.config))
    return results.memo("anomalies", arrays, params, lambda: detect_anomalies(
        history, thresholds=thresholds, roles=r, max_anomalies=max_anomalies, config=run.config
    ))


def stats_of(s: Series) -> SeriesStats:
    """`series_stats` of a series, once per version of its columns; a grown series sums only its new blocks."""
    return results.grown("stats", (s.steps, s.values), (), lambda known: grown_stats(s.steps, s.values, known or ()))


def config_key(config: dict[str, Any]) -> str:
    """The config as a memo key part: results that read it (schedule hints) change when it does."""
    return repr(sorted(config.items(), key=lambda kv: str(kv[0])))


def one_run(ref: str, cfg: RunwiseConfig, progress: Progress | None = None) -> tuple[Run, list[str]]:
    """The run `ref` names, for a tool about one run, and a note when the step `ref@STEP` asks for goes unused."""
    run, step = runs.get_run(ref, cfg, progress)
    if step is None:
        return run, []
    return run, [f"the step in '{ref[-40:]}' is used by compare_runs only: this answer covers the whole run"]
