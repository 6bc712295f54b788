"""The answer size cap: no tool answer is longer than ANSWER_CHARS, whatever the arguments or the data.

Handlers keep their answers small by construction (row limits, point budgets, cut strings); `fit`
is the last guard behind them. When an answer is still too long it cuts, in this order, and writes
what it cut into the answer's `notes`:

1. strings longer than LONG_STRING characters (a 100k-character metric name or tag);
2. the largest collection, halved, until the answer fits: a table's rows, a list of strings, a
   mapping (config keys, metric histories). Earlier items are kept: every handler puts what
   matters most first (newest runs, main metrics, worst anomalies);
3. every string to SHORT_STRING characters, if many small pieces are still too long.

A step/value series is never cut inside (dropping its tail would misstate the curve): a whole
metric goes instead. The size is what a client shows the model: the structured content as JSON
(`json.dumps`, non-ASCII as is).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel

ANSWER_CHARS = 40_000
LONG_STRING = 1_000
SHORT_STRING = 120

M = TypeVar("M", bound=BaseModel)

Json = Any  # a JSON value: dict / list / str / number / bool / None


def answer_size(out: BaseModel) -> int:
    """Characters of `out` as the structured content a client shows the model."""
    return json_size(out.model_dump(mode="json"))


def json_size(data: Json) -> int:
    return len(json.dumps(data, ensure_ascii=False))


def fit(out: M, limit: int = ANSWER_CHARS) -> M:
    """`out` if it is at most `limit` characters, else a copy cut to fit, its notes saying what was cut."""
    data = out.model_dump(mode="json")
    if json_size(data) <= limit:
        return out
    cuts: list[str] = []
    if _cut_strings(data, LONG_STRING):
        cuts.append(f"texts over {LONG_STRING:,} characters cut")
    halved: dict[str, tuple[int, int]] = {}  # field path -> (kept, total)
    budget = limit - 400  # room for the note itself
    while json_size(data) > budget:
        found = _largest_collection(data, "")
        if found is None:
            break
        path, parent, key, total = found
        items = parent[key]
        keep = len(items) // 2
        if isinstance(items, dict):
            parent[key] = dict(list(items.items())[:keep])
        else:
            parent[key] = items[:keep]
        _, first_total = halved.get(path, (keep, total))
        halved[path] = (keep, first_total)
    for path, (kept, total) in halved.items():
        cuts.append(f"{path}: first {kept:,} of {total:,}")
    if json_size(data) > budget and _cut_strings(data, SHORT_STRING):
        cuts.append(f"texts cut to {SHORT_STRING} characters")
    note = (
        f"answer cut to its {limit:,}-character cap ({'; '.join(cuts)}); narrow the request "
        "(keys, prefix, a step range, fewer rows or points) to see the rest"
    )
    notes = data.get("notes")
    if isinstance(notes, list):
        data["notes"] = [note, *notes][:8]
    return type(out).model_validate(data)


def _cut_strings(node: Json, limit: int) -> bool:
    """Cut every string under `node` (values and mapping keys) to `limit` characters; True if any was."""
    cut = False
    if isinstance(node, dict):
        for k in list(node):
            v = node[k]
            if isinstance(v, str) and len(v) > limit:
                node[k] = _short(v, limit)
                cut = True
            elif _cut_strings(v, limit):
                cut = True
            if len(k) > limit:
                node[_short(k, limit)] = node.pop(k)
                cut = True
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, str) and len(v) > limit:
                node[i] = _short(v, limit)
                cut = True
            elif _cut_strings(v, limit):
                cut = True
    return cut


def _short(text: str, limit: int) -> str:
    return text[: limit - 1] + "…"


def _is_series(node: dict[str, Json]) -> bool:
    return "steps" in node and "values" in node


def _is_table(node: dict[str, Json]) -> bool:
    return "columns" in node and "rows" in node


def _largest_collection(node: Json, path: str) -> tuple[str, Any, Any, int] | None:
    """The biggest cuttable collection under `node` with 2+ items: (path, parent, key, length)."""
    best: tuple[int, tuple[str, Any, Any, int]] | None = None

    def consider(parent: Any, key: Any, child: Json, child_path: str) -> None:
        nonlocal best
        if isinstance(child, dict) and (_is_series(child) or _is_table(child)):
            pass  # cut inside (a table's rows), never the structure itself
        elif isinstance(child, (dict, list)) and len(child) >= 2 and not _holds_rows(child):
            size = json_size(child)
            if best is None or size > best[0]:
                best = (size, (child_path, parent, key, len(child)))
        inner = _largest_collection(child, child_path) if isinstance(child, (dict, list)) else None
        if inner is not None:
            size = json_size(inner[1][inner[2]])
            if best is None or size > best[0]:
                best = (size, inner)

    if isinstance(node, dict):
        if _is_series(node):
            return None
        if _is_table(node):
            rows = node["rows"]
            return (f"{path}.rows".lstrip("."), node, "rows", len(rows)) if len(rows) >= 2 else None
        for k, v in node.items():
            consider(node, k, v, f"{path}.{k}".lstrip("."))
    elif isinstance(node, list) and not _holds_rows(node):
        for v in node:
            if isinstance(v, (dict, list)):
                inner = _largest_collection(v, path)
                if inner is not None:
                    size = json_size(inner[1][inner[2]])
                    if best is None or size > best[0]:
                        best = (size, inner)
    return best[1] if best is not None else None


def _holds_rows(items: Json) -> bool:
    """A list of lists (a table's rows, or a row): cut only as a table's rows, never elsewhere."""
    return isinstance(items, list) and any(isinstance(x, list) for x in items)
