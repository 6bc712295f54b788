"""JSONL lines -> per-key columns: the parsing half of the JSONL source.

Lines are parsed by orjson in blocks of BLOCK lines; rows that share a key set become columns in
one C-level pass (itemgetter over the rows, numpy.fromiter over the values); anything else
(missing keys, null, strings, nested objects) goes key by key. A block with a damaged, blank,
NaN-bearing or non-object line is re-read line by line, and what is skipped is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain, islice
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from runwise import _flat
from runwise.parsers import Progress

BLOCK = 20_000
MAX_SHAPES = 8  # distinct key sets per block handled by the fast path
MAX_LINE = 8 * 1024 * 1024
META_KEYS = ("_meta",)
CONFIG_KEYS = ("config", "_config")
_NONFINITE = (b"NaN", b"Infinity")


class Columns:
    """Accumulates per-key (row index, value) columns block by block."""

    def __init__(self) -> None:
        self.rows: dict[str, list[np.ndarray]] = {}
        self.vals: dict[str, list[np.ndarray]] = {}
        self.non_numeric: dict[str, str] = {}
        self.config: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}

    def add_block(self, objs: list[dict[str, Any]], line_numbers: np.ndarray) -> None:
        """Columns from parsed rows: rows sharing a key set go through one C-level pass."""
        lens = np.fromiter(map(len, objs), dtype=np.int64, count=len(objs))
        todo = np.arange(len(objs))
        for _ in range(MAX_SHAPES):
            if not todo.size:
                return
            ref = tuple(objs[todo[0]])
            cand = todo[lens[todo] == len(ref)]
            rows = [objs[i] for i in cand.tolist()]
            values = numeric_rows(rows, ref)
            if values is None:  # a missing key, null, string or nested value: key by key instead
                break
            for j, key in enumerate(ref):
                self._add_numeric(key, values[:, j], line_numbers[cand])
            todo = todo[lens[todo] != len(ref)]
        if todo.size:
            rows = [objs[i] for i in todo.tolist()]
            keys: dict[str, None] = {}
            for obj in rows:
                keys.update(dict.fromkeys(obj))
            for key in keys:
                self._add_column(key, [o.get(key) for o in rows], line_numbers[todo])

    def _add_numeric(self, key: str, values: np.ndarray, rows: np.ndarray) -> None:
        if key in CONFIG_KEYS or key in META_KEYS:
            self._note(key, 0.0)
            return
        self.rows.setdefault(key, []).append(rows)
        self.vals.setdefault(key, []).append(values)

    def _add_column(self, key: str, col: list[Any], line_numbers: np.ndarray) -> None:
        if key in CONFIG_KEYS or key in META_KEYS:
            for v in col:
                if isinstance(v, dict):
                    (self.config if key in CONFIG_KEYS else self.meta).update(v)
                elif v is not None:
                    self._note(key, v)
            return
        if any(isinstance(v, str) for v in col):  # numpy would silently turn "2.5" into 2.5
            self._add_mixed(key, col, line_numbers)
            return
        try:
            values = np.array(col, dtype=np.float64)
        except (ValueError, TypeError):
            self._add_mixed(key, col, line_numbers)
            return
        if values.ndim != 1:  # lists of equal length become 2-D
            self._add_mixed(key, col, line_numbers)
            return
        present = np.fromiter((v is not None for v in col), dtype=bool, count=len(col))
        if not present.all():
            values = values[present]
            rows = line_numbers[present]
        else:
            rows = line_numbers
        if values.size:
            self.rows.setdefault(key, []).append(rows)
            self.vals.setdefault(key, []).append(values)

    def _add_mixed(self, key: str, col: list[Any], line_numbers: np.ndarray) -> None:
        """Slow path for a column holding strings, lists or nested objects."""
        per_key: dict[str, tuple[list[int], list[float]]] = {}
        for row, v in zip(line_numbers.tolist(), col, strict=True):
            # nested objects: "/" joins, an empty one gives no key
            pairs = _flat.flatten({key: v}, sep="/", whole=_flat.never).items() if isinstance(v, dict) else ((key, v),)
            for k, x in pairs:
                num = as_number(x)
                if num is None:
                    if x is not None:
                        self._note(k, x)
                    continue
                rows, vals = per_key.setdefault(k, ([], []))
                rows.append(row)
                vals.append(num)
        for k, (rows, vals) in per_key.items():
            self.rows.setdefault(k, []).append(np.asarray(rows, dtype=np.int64))
            self.vals.setdefault(k, []).append(np.asarray(vals, dtype=np.float64))

    def _note(self, key: str, value: Any) -> None:
        if key not in self.non_numeric:
            kind = "string" if isinstance(value, str) else "list" if isinstance(value, list) else type(value).__name__
            self.non_numeric[key] = kind


def numeric_rows(rows: list[dict[str, Any]], ref: tuple[str, ...]) -> np.ndarray | None:
    """A (rows, keys) float array if every row has exactly the keys `ref` with numeric values, else None.

    Rows were chosen with len(row) == len(ref), so a row that has every key of `ref` has no other.
    """
    if not ref:
        return np.empty((len(rows), 0))
    get = itemgetter(*ref)
    flat = chain.from_iterable(map(get, rows)) if len(ref) > 1 else map(get, rows)
    try:
        values = np.fromiter(flat, dtype=np.float64, count=len(rows) * len(ref))
    except (KeyError, TypeError, ValueError):
        return None
    if any(type(rows[0][k]) is str for k in ref):  # fromiter parses numeric strings; they are not numbers
        return None
    return values.reshape(len(rows), len(ref))


def as_number(x: Any) -> float | None:
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)):
        return float(x)
    return None


def loads_line(line: bytes) -> Any:
    """Parse one line; bare NaN/Infinity tokens go through the stdlib parser, which accepts them."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        if not any(tok in line for tok in _NONFINITE):
            raise
    import json

    return json.loads(line.decode("utf-8"), parse_constant=lambda c: float(c.replace("Infinity", "inf")))


class Part:
    """What one stretch of lines gave; line numbers are relative to its first line."""

    def __init__(self) -> None:
        self.cols = Columns()
        self.lines = 0
        self.skipped: dict[str, int] = {}
        self.first_bad: dict[str, int] = {}

    def skip(self, reason: str, line_no: int) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.first_bad.setdefault(reason, line_no)


def read_part(
    path: str, start: int, end: int, *, progress: Progress | None = None, total_size: int = 0
) -> Part:
    """Parse the lines in bytes [start, end) of `path`.

    Bytes past `end` are never parsed, even if the file has grown since: a line that crosses
    `end` is cut there (and so counts as half-written), which keeps every row read exactly once
    when a later read starts from where this one stopped.
    """
    part = Part()
    done_bytes = 0
    with open(path, "rb") as fp:
        fp.seek(start)
        while done_bytes < end - start and (block := list(islice(fp, BLOCK))):
            size = sum(map(len, block))
            if done_bytes + size > end - start:
                block, size = _cut(block, end - start - done_bytes)
            done_bytes += size
            first = part.lines
            part.lines += len(block)
            objs: list[Any] | None = None
            if size <= MAX_LINE or max(map(len, block)) <= MAX_LINE:
                try:
                    objs = list(map(orjson.loads, block))
                    if set(map(type, objs)) != {dict}:
                        objs = None
                except orjson.JSONDecodeError:
                    objs = None
            if objs is not None:
                part.cols.add_block(objs, np.arange(first, first + len(block), dtype=np.int64))
            else:
                good, numbers = parse_slowly(block, first, part.skip)
                if good:
                    part.cols.add_block(good, np.asarray(numbers, dtype=np.int64))
            if progress is not None and total_size:
                # the first part reports for all: the others run alongside at the same pace
                share = (end - start) / total_size
                progress(float(min(done_bytes / share, total_size)), float(total_size))
    return part


def _cut(block: list[bytes], budget: int) -> tuple[list[bytes], int]:
    """The lines of `block` within `budget` bytes, the last one cut at the budget."""
    kept: list[bytes] = []
    used = 0
    for line in block:
        if used + len(line) >= budget:
            kept.append(line[: budget - used])
            return kept, budget
        kept.append(line)
        used += len(line)
    return kept, used


def merge(parts: list[Part]) -> tuple[Columns, dict[str, int], dict[str, int], int]:
    """One set of columns from consecutive parts, line numbers made global."""
    if len(parts) == 1:
        p = parts[0]
        return p.cols, p.skipped, p.first_bad, p.lines
    cols = Columns()
    skipped: dict[str, int] = {}
    first_bad: dict[str, int] = {}
    offset = 0
    for p in parts:
        for key, arrays in p.cols.rows.items():
            cols.rows.setdefault(key, []).extend(a + offset for a in arrays)
            cols.vals.setdefault(key, []).extend(p.cols.vals[key])
        for key, kind in p.cols.non_numeric.items():
            cols.non_numeric.setdefault(key, kind)
        cols.config.update(p.cols.config)
        cols.meta.update(p.cols.meta)
        for reason, n in p.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
            first_bad.setdefault(reason, p.first_bad[reason] + offset)
        offset += p.lines
    return cols, skipped, first_bad, offset


def parse_slowly(
    block: list[bytes], start: int, skip: Callable[[str, int], None]
) -> tuple[list[dict[str, Any]], list[int]]:
    """Line by line, for a block with a damaged, blank, NaN-bearing or non-object line."""
    good: list[dict[str, Any]] = []
    numbers: list[int] = []
    for i, raw in enumerate(block, start):
        if not raw.strip():
            continue
        # only the file's last line can lack its newline; unparsable, it is still being written
        unterminated = not raw.endswith(b"\n") and i == start + len(block) - 1
        if len(raw) > MAX_LINE:
            skip("half-written last line" if unterminated else "line too long", i)
            continue
        try:
            obj = loads_line(raw)
        except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError):
            if unterminated:
                skip("half-written last line", i)
            elif is_utf8(raw):
                skip("not JSON", i)
            else:
                skip("not UTF-8", i)
            continue
        if not isinstance(obj, dict):
            skip("not a JSON object", i)
            continue
        good.append(obj)
        numbers.append(i)
    return good, numbers


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
