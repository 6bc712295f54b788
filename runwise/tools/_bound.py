"""The answer size cap: no tool answer is longer than ANSWER_CHARS, whatever the arguments or the data.

Handlers keep their answers small by construction (row limits, point budgets, cut strings); `fit`
is the last guard behind them. When an answer is still too long it cuts, in this order, and writes
what it cut into the answer's `notes`:

1. strings longer than LONG_STRING characters (a 100k-character metric name or tag);
2. the largest collection, to as many leading items as fit (or half, when cutting it alone cannot
   make the answer fit, and then the next largest): a table's rows, a list of strings, a mapping
   (config keys, metric histories). Earlier items are kept: every handler puts what matters most
   first (newest runs, main metrics, worst anomalies);
3. every string to SHORT_STRING characters, if many small pieces are still too long.

A step/value series is never cut inside (dropping its tail would misstate the curve): a whole
metric goes instead. The size is what a client shows the model: the structured content as JSON
(`json.dumps`, non-ASCII as is).

Token budgets work the same way, one level finer (`fit_tokens`): when the estimated tokens of the
text the MCP server sends (the compact JSON of the answer, `runwise.tokens.estimate_tokens`) exceed
the budget, the largest collection is cut to the leading items that fit, then the next, and a note
first in `notes` names what was left out and how to ask for it (a larger `budget`, or the tool's
narrowing arguments). Handlers that shape their answer for the budget themselves (fewer points,
shorter text) make this a safety net that rarely cuts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import to_json

from runwise.tokens import estimate_tokens

ANSWER_CHARS = 40_000
NOTE_ROOM = 400  # characters kept free for the note saying what was cut
LONG_STRING = 1_000
SHORT_STRING = 120
TINY_STRING = 40  # texts under a budget too small for the answer's fixed fields

M = TypeVar("M", bound=BaseModel)

Json = Any  # a JSON value: dict / list / str / number / bool / None


def answer_size(out: BaseModel) -> int:
    """Characters of `out` as the structured content a client shows the model."""
    return json_size(out.model_dump(mode="json"))


def json_size(data: Json) -> int:
    return len(json.dumps(data, ensure_ascii=False))


def answer_tokens(out: BaseModel) -> int:
    """Estimated tokens of the text the MCP server sends for `out` (its compact JSON)."""
    return estimate_tokens(out.model_dump_json())


def json_tokens(data: Json) -> int:
    """Estimated tokens of `data` (an answer's `model_dump(mode="json")`) as the server sends it."""
    return estimate_tokens(to_json(data).decode())  # the same text as model_dump_json: numbers written alike


def fit(out: M, limit: int = ANSWER_CHARS) -> M:
    """`out` if it is at most `limit` characters, else a copy cut to fit, its notes saying what was cut."""
    data = out.model_dump(mode="json")
    if json_size(data) <= limit:
        return out
    cuts: list[str] = []
    if _cut_strings(data, LONG_STRING):
        cuts.append(f"texts over {LONG_STRING:,} characters cut")
    budget = limit - NOTE_ROOM
    kept = _cut_collections(data, model_paths(out), budget, json_size,
                            lambda parent, key: _most_that_fit(data, parent, key, budget, json_size))
    for path, (n, total) in kept.items():
        cuts.append(f"{path}: first {n:,} of {total:,}")
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


TOKEN_NOTE_ROOM = 70  # tokens kept free for the note saying what a budget cut left out


def fit_tokens(out: M, budget: int, *, ask: str = "") -> M:
    """`out` if its text is estimated at most `budget` tokens, else a copy cut to fit, with a note.

    The note (first in `notes`) names each cut collection ('stats.rows: first 12 of 30') and how to
    get the rest: a larger `budget`, or `ask` (the tool's narrowing arguments, e.g. "keys=").
    Estimates stay at or above the real counts of o200k and Claude, so the real answer fits too.
    What cannot be cut (the fixed fields of an answer) may leave it over a very small budget.
    """
    if answer_tokens(out) <= budget:
        return out
    cut, note = _cut_to_tokens(out, budget, TOKEN_NOTE_ROOM, ask)
    if note and note + 4 < TOKEN_NOTE_ROOM:  # the note took less room than was kept for it: fill that room
        again, _ = _cut_to_tokens(out, budget, note + 4, ask)
        if answer_tokens(again) <= budget:
            return again
    return cut


def _cut_to_tokens(out: M, budget: int, note_room: int, ask: str) -> tuple[M, int]:
    """`out` cut to `budget` tokens less `note_room` for the note; also the tokens the note took (0: none)."""
    data = out.model_dump(mode="json")
    notes = data.get("notes")
    has_notes = isinstance(notes, list)
    own: list[Json] = notes if isinstance(notes, list) else []
    if has_notes:
        data["notes"] = []  # the answer's own notes are kept, after the cuts' note, as far as they fit
    target = budget - (note_room if has_notes else 0)
    kept = _cut_collections(data, model_paths(out), target, json_tokens,
                            lambda parent, key: _most_tokens_that_fit(data, parent, key, target))
    cuts = [f"{path}: first {n:,} of {total:,}" for path, (n, total) in kept.items()]
    for chars in (SHORT_STRING, TINY_STRING):  # a very small budget: what is left is text
        if json_tokens(data) > target and _cut_strings(data, chars):
            cuts = [c for c in cuts if not c.startswith("texts cut")] + [f"texts cut to {chars} characters"]
    note_tokens = 0
    if has_notes:
        more = f"budget=N (up to 50,000){' or ' + ask if ask else ''}"
        note = f"cut to the {budget:,}-token budget: {'; '.join(cuts) or 'nothing cuttable'}; for more: {more}"
        data["notes"] = [note]
        over = json_tokens(data)
        if over > budget:  # the fields no cut can remove: say so rather than pretend it fits
            data["notes"] = [f"{note}; the answer's fixed fields alone take about {over:,} tokens"]
        note_tokens = json_tokens(data["notes"])
        for n in own:  # the answer's own notes that still fit
            data["notes"].append(n)
            if json_tokens(data) > budget:
                data["notes"].pop()
                break
    return type(out).model_validate(data), note_tokens


def _cut_collections(
    data: Json,
    fixed: Collection[str],
    target: int,
    measure: Callable[[Json], int],
    most_that_fit: Callable[[Any, Any], int],
) -> dict[str, tuple[int, int]]:
    """Cut the largest collection of `data` in place until `measure(data)` <= `target` or nothing is left to cut.

    `most_that_fit(parent, key)` cuts `parent[key]` and returns the items it kept. Returns field path ->
    (items kept, items there were); `fixed` holds the paths of nested models no cut may touch.
    """
    kept: dict[str, tuple[int, int]] = {}
    while measure(data) > target:
        found = _largest_collection(data, "", fixed)
        if found is None:
            break
        _, path, parent, key, total = found
        keep = most_that_fit(parent, key)
        kept[path] = (keep, kept.get(path, (0, total))[1])
    return kept


def _most_tokens_that_fit(data: Json, parent: Any, key: Any, budget: int) -> int:
    """Cut `parent[key]` to the most leading items with which `data` fits `budget` tokens (half, if none would do).

    Each item's tokens are estimated once, on its own text, and added up (so a 300k-character
    answer is measured in one pass, not once per bisection step); one exact measure checks the sum.
    """
    items = parent[key]
    pairs = list(items.items()) if isinstance(items, dict) else list(items)

    def cut_to(n: int) -> int:
        parent[key] = dict(pairs[:n]) if isinstance(items, dict) else pairs[:n]
        return json_tokens(data)

    room = budget - cut_to(0)
    if room < 0:  # this collection alone cannot make the answer fit: halve it, then cut the next
        keep = len(pairs) // 2
    else:
        keep = 0
        for item in pairs:
            text = f"{to_json(item[0]).decode()}:{to_json(item[1]).decode()}" if isinstance(items, dict) else (
                to_json(item).decode())
            room -= estimate_tokens(text + ",")
            if room < 0:
                break
            keep += 1
        while keep > 0 and cut_to(keep) > budget:  # punctuation that merges across items: rarely needed
            keep -= 1
    cut_to(keep)
    return keep


def _most_that_fit(data: Json, parent: Any, key: Any, budget: int, measure: Callable[[Json], int]) -> int:
    """Cut `parent[key]` to the most leading items with which `measure(data)` fits `budget` (half, if none would do)."""
    items = parent[key]

    def cut_to(n: int) -> int:
        parent[key] = dict(list(items.items())[:n]) if isinstance(items, dict) else items[:n]
        return measure(data)

    if cut_to(0) > budget:  # this collection alone cannot make the answer fit: halve it, then cut the next
        keep = len(items) // 2
    else:
        lo, hi = 0, len(items) - 1  # bisect: the largest n that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if cut_to(mid) <= budget else (lo, mid - 1)
        keep = lo
    cut_to(keep)
    return keep


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


def model_paths(value: Any, path: str = "", found: set[str] | None = None) -> set[str]:
    """Paths (as `_largest_collection` names them) of the sub-models in `value`: their fields are never cut.

    A mapping in an answer is either a model (a run header: every field required) or data with
    keys of its own (config keys, metric histories); only data may lose keys.
    """
    found = set() if found is None else found
    if isinstance(value, BaseModel):
        found.add(path)
        for name in type(value).model_fields:
            model_paths(getattr(value, name), f"{path}.{name}".lstrip("."), found)
    elif isinstance(value, dict):
        for k, v in value.items():
            model_paths(v, f"{path}.{k}".lstrip("."), found)
    elif isinstance(value, (list, tuple)) and value and isinstance(value[0], (BaseModel, dict, list, tuple)):
        for v in value:
            model_paths(v, path, found)
    return found


def _largest_collection(node: Json, path: str, fixed: Collection[str] = ()) -> tuple[int, str, Any, Any, int] | None:
    """The biggest cuttable collection under `node` with items: (its JSON size, path, parent, key, length).

    Mappings at a path in `fixed` (a sub-model's fields, see `model_paths`) are searched, never cut.
    """
    best: tuple[int, str, Any, Any, int] | None = None

    def take(found: tuple[int, str, Any, Any, int] | None) -> None:
        nonlocal best
        if found is not None and (best is None or found[0] > best[0]):
            best = found

    if isinstance(node, dict):
        if _is_series(node):
            return None
        if _is_table(node):
            rows = node["rows"]
            return (json_size(rows), f"{path}.rows".lstrip("."), node, "rows", len(rows)) if rows else None
        for k, child in node.items():
            if not isinstance(child, (dict, list)):
                continue
            child_path = f"{path}.{k}".lstrip(".")
            structure = isinstance(child, dict) and (_is_series(child) or _is_table(child))
            model = isinstance(child, dict) and child_path in fixed
            if not structure and not model and len(child) >= 1 and not _holds_rows(child):  # tables: cut in rows
                take((json_size(child), child_path, node, k, len(child)))
            take(_largest_collection(child, child_path, fixed))
    elif isinstance(node, list) and not _holds_rows(node):
        for v in node:
            if isinstance(v, (dict, list)):
                take(_largest_collection(v, path, fixed))
    return best


def _holds_rows(items: Json) -> bool:
    """A list of lists (a table's rows, or a row): cut only as a table's rows, never elsewhere."""
    return isinstance(items, list) and any(isinstance(x, list) for x in items)
