"""Render any tool output model as text (a terminal), markdown or JSON.

Rendering is generic: the model's fields are walked in order and turned into blocks, which the
text and markdown emitters in `runwise._emit` lay out.

  `verdict` / `summary` / `note` (str)   paragraph, first
  other short str / numbers / bools      "key: value" lines (None and empty are left out)
  `Table` (columns + rows)               aligned table (text) or a `| a | b |` table (markdown)
  nested model (a run header)            "key: value" lines
  dict[str, MetricHistory]               one small step/value table per metric
  dict[str, str] holding CSV             one code block per key
  dict[str, scalar]                      key/value table (a run's config)
  list[str]                              bullet list (or one comma-joined line for short names)
  counts of what was left out            "+N more ..." hint, only when N > 0

A few per-tool touches (by output class name, so this module needs no tool imports) drop what
the summary line already says and split a grouped comparison by metric group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from runwise._emit import Block, emit_md, emit_text
from runwise.formatting import FORMATS, fmt_cell, fmt_duration

if TYPE_CHECKING:
    from runwise.formatting import Format

# Fields counting what an answer left out: shown as a hint, and only when non-zero.
_LEFTOVER = {
    "omitted": "not shown",
    "more_metrics": "more metrics (pick them with -k)",
    "config_omitted": "more config keys differ",
    "without_metric": "runs without the metric",
}
_LABELS = {
    "runtime_s": "runtime",
    "last_write_age_s": "last write",
    "steps_per_s": "steps/s",
    "total_keys": "config keys",
    "last_step": "last step",
    "exit_code": "exit code",
    "job_type": "job type",
    "non_numeric": "non-numeric keys",
    "config_diff": "config differences",
    "checks_skipped": "checks skipped",
    "checks_run": "checks run",
    "recent_anomalies": "recent anomalies",
    "output_tail": "output tail",
}
_DURATIONS = {"runtime_s", "last_write_age_s"}
_AGO = {"last_write_age_s"}
# Header fields a summary line already states.
_IN_SUMMARY = {"id", "name", "source", "state", "last_step", "runtime_s"}
# Header fields the headline of an output without a summary already states.
_IN_HEADLINE = {"id", "name", "source"}
# Fields a tool's summary already covers, per output class.
_SKIP: dict[str, set[str]] = {
    "CompareRunsOutput": {"runs", "at_steps", "groups"},
    "ListRunsOutput": {"total"},
    "LiveStatusOutput": {"last_write_age_s", "steps_per_s"},
}
_CONFIG_TABLES = {"config", "config_diff"}  # values are identifiers: shown as written, no rounding


def label(name: str) -> str:
    """Human label of a field name: 'config_diff' -> 'config differences'."""
    return _LABELS.get(name, name.replace("_", " "))


def render(out: BaseModel, fmt: Format = "text", *, title: str | None = None) -> str:
    """Render a tool output model; `title` (the tool's title) heads the markdown form."""
    if fmt == "json":
        return out.model_dump_json(indent=2)
    blocks = to_blocks(out)
    if fmt == "md":
        return emit_md(blocks, title=title)
    if fmt == "text":
        return emit_text(blocks)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------- model -> blocks


def _is_table(v: object) -> bool:
    return isinstance(v, BaseModel) and isinstance(getattr(v, "columns", None), list) and isinstance(
        getattr(v, "rows", None), list
    )


def _is_history(v: object) -> bool:
    return isinstance(v, BaseModel) and isinstance(getattr(v, "steps", None), list) and isinstance(
        getattr(v, "values", None), list
    )


def _empty(v: object) -> bool:
    return v is None or (isinstance(v, (str, list, dict, tuple)) and not v)


def _scalar_text(name: str, v: object) -> str:
    if name in _DURATIONS and isinstance(v, (int, float)) and not isinstance(v, bool):
        return fmt_duration(float(v)) + (" ago" if name in _AGO else "")
    if isinstance(v, (str, int, float)) or v is None:  # bool is an int
        return v if isinstance(v, str) else fmt_cell(v)
    return str(v)


def to_blocks(out: BaseModel) -> list[Block]:
    """Turn an output model into layout blocks, in field order, summary first."""
    kind = type(out).__name__
    skip = _SKIP.get(kind, set())
    fields = {k: getattr(out, k) for k in type(out).model_fields if k not in skip}
    has_summary = isinstance(fields.get("summary"), str) and bool(fields["summary"])
    blocks: list[Block] = []
    head: list[str] = []
    for key in ("verdict", "summary", "note"):  # a verdict (summarize_run) leads, as in the JSON
        if isinstance(fields.get(key), str) and fields[key]:
            head.append(fields.pop(key))
    if not has_summary:
        headline = _headline(fields)
        if headline:
            head.insert(0, headline)
    if head:
        blocks.append(Block("para", "summary", lines=head))
    pairs: list[tuple[str, str]] = []
    hints: list[str] = []
    main_table_seen = False

    def flush_pairs() -> None:
        if pairs:
            blocks.append(Block("pairs", "", pairs=list(pairs)))
            pairs.clear()

    for name, v in fields.items():
        if _empty(v):
            continue
        if name in _LEFTOVER:
            if isinstance(v, int) and v > 0:
                hints.append(f"+{v:,} {_LEFTOVER[name]}")
            continue
        if name == "run" and isinstance(v, str):
            if has_summary:
                continue
            pairs.append(("run", v))
            continue
        if _is_table(v):
            flush_pairs()
            if not v.rows:  # the summary line already says there is none
                continue
            groups = getattr(out, "groups", None) if kind == "CompareRunsOutput" and name == "metrics" else None
            if isinstance(groups, Mapping) and groups:
                blocks += _grouped(v, groups)
            else:
                blocks.append(_table_block(name, v, main=not main_table_seen, raw=name in _CONFIG_TABLES))
            main_table_seen = True
        elif isinstance(v, BaseModel):
            flush_pairs()
            items = _model_pairs(v, drop=_IN_SUMMARY if has_summary else _IN_HEADLINE)
            if items:
                blocks.append(Block("pairs", label(name) if not has_summary else "", pairs=items))
        elif isinstance(v, Mapping):
            flush_pairs()
            blocks += _mapping_blocks(name, v, main=not main_table_seen)
            main_table_seen = main_table_seen or name in ("config", "metrics")
        elif isinstance(v, (list, tuple)):
            flush_pairs()
            blocks += _list_blocks(name, v)
        elif isinstance(v, str) and ("\n" in v or len(v) > 100):
            flush_pairs()
            blocks.append(Block("para", label(name), lines=v.splitlines() or [v]))
        else:
            pairs.append((label(name), _scalar_text(name, v)))
    flush_pairs()
    if hints:
        blocks.append(Block("hint", "", lines=["; ".join(hints)]))
    return blocks


def _headline(fields: dict[str, Any]) -> str:
    """A first line for outputs without a summary: the run label."""
    run = fields.get("run")
    if isinstance(run, str):
        fields.pop("run")
        return run
    if isinstance(run, BaseModel) and hasattr(run, "id"):
        name = getattr(run, "name", "")
        source = getattr(run, "source", "")
        text = f"{source}:{run.id}" if source else str(run.id)
        return text + (f" '{name}'" if name and name != run.id else "")
    return ""


def _model_pairs(m: BaseModel, *, drop: set[str]) -> list[tuple[str, str]]:
    return [
        (label(k), _scalar_text(k, getattr(m, k)))
        for k in type(m).model_fields
        if k not in drop and not _empty(getattr(m, k))
    ]


def _table_block(name: str, t: Any, *, main: bool, raw: bool = False, title: str | None = None) -> Block:
    return Block(
        "table", title if title is not None else label(name), main=main, columns=[str(c) for c in t.columns],
        rows=[list(r) for r in t.rows], raw=raw,
    )


def _grouped(t: Any, groups: Mapping[str, Sequence[str]]) -> list[Block]:
    """One table per metric group (compare_runs with group=True)."""
    blocks = []
    by_metric = {r[0]: r for r in t.rows}
    for group, metrics in groups.items():
        rows = [by_metric[m] for m in metrics if m in by_metric]
        if rows:
            name = "other" if group in ("(none)", "") else group
            blocks.append(Block("table", name, columns=[str(c) for c in t.columns], rows=rows, literal=True))
    return blocks


def _mapping_blocks(name: str, v: Mapping[Any, Any], *, main: bool) -> list[Block]:
    values = list(v.values())
    if all(_is_history(x) for x in values):
        return [_history_block(str(k), x) for k, x in v.items()]
    if all(isinstance(x, str) and "\n" in x for x in values):
        return [Block("code", str(k), lines=[x], literal=True) for k, x in v.items()]
    if all(isinstance(x, (list, tuple)) for x in values):
        return [Block("pairs", label(name), pairs=[(str(k), ", ".join(map(str, x))) for k, x in v.items()])]
    if name in _CONFIG_TABLES or len(v) > 12:
        rows = [[str(k), x if isinstance(x, (str, int, float, bool)) or x is None else repr(x)]
                for k, x in v.items()]
        return [Block("table", label(name), main=main, columns=["key", "value"], rows=rows, raw=True)]
    return [Block("pairs", label(name), pairs=[(str(k), _scalar_text(str(k), x)) for k, x in v.items()])]


def _history_block(metric: str, h: Any) -> Block:
    source = getattr(h, "source_points", None)
    method = getattr(h, "method", "")
    n = len(h.steps)
    if isinstance(source, int) and source != n:
        what = f"{n:,} of {source:,} points ({method})"
    else:
        what = f"{n:,} points"
    bad = [f"{c} {x}" for x in ("nan", "inf") if (c := getattr(h, x, 0))]
    title = f"{metric}: {what}" + (f"; {', '.join(bad)}" if bad else "")
    if not n:  # values were returned as CSV instead
        return Block("para", title, lines=[], literal=True)
    rows: list[list[Any]] = [[s, x] for s, x in zip(h.steps, h.values, strict=False)]
    return Block("table", title, columns=["step", "value"], rows=rows, literal=True)


def _list_blocks(name: str, v: Sequence[Any]) -> list[Block]:
    items = [x for x in v if x is not None]
    if not items:
        return []
    text = [x if isinstance(x, str) else fmt_cell(x) for x in items]
    short = all(len(x) <= 40 and not any(c.isspace() for c in x) for x in text)  # names, not sentences
    if short and sum(len(x) + 2 for x in text) <= 400:
        return [Block("pairs", "", pairs=[(label(name), ", ".join(text))])]
    return [Block("bullets", label(name), lines=text)]


# ---------------------------------------------------------------- CSV


def _csv_cell(v: object) -> str:
    if v is None:
        return ""
    text = str(v).lower() if isinstance(v, bool) else str(v)
    if any(c in text for c in ',"\n\r'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def table_csv(table: Any) -> str:
    """A Table as CSV: header row, then one row per table row; numbers as returned (no rounding)."""
    lines = [",".join(_csv_cell(c) for c in table.columns)]
    lines += [",".join(_csv_cell(c) for c in row) for row in table.rows]
    return "\n".join(lines)


def history_csv(metrics: Mapping[str, Any]) -> str:
    """Per-metric histories as one long-format CSV: `metric,step,value`."""
    lines = ["metric,step,value"]
    for metric, h in metrics.items():
        name = _csv_cell(metric)
        lines += [f"{name},{s},{_csv_cell(x)}" for s, x in zip(h.steps, h.values, strict=False)]
    return "\n".join(lines)


def rows_as_dicts(table: Any) -> list[dict[str, Any]]:
    """A Table's rows as dicts keyed by column name."""
    cols = [str(c) for c in table.columns]
    return [dict(zip(cols, row, strict=False)) for row in table.rows]


def dicts_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows given as dicts (all with the same keys) as an aligned text table."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[r.get(c) for c in columns] for r in rows]
    return emit_text([Block("table", "", main=True, columns=columns, rows=cells)])
