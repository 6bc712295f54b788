"""Exact per-message decoding of the few W&B records runwise needs one at a time.

Field numbers (wandb_internal.proto, checked against wandb 0.15 and 0.31 files):

    RunRecord       run_id 1, entity 2, project 3, config 4, run_group 6, job_type 7,
                    display_name 8, notes 9, tags 10 (repeated), host 13, starting_step 14,
                    start_time 17 (Timestamp: seconds 1, nanos 2), resumed 18, runtime 20
    ConfigRecord    update 1, remove 2 (ConfigItem: key 1, nested_key 2 repeated, value_json 16)
    HistoryItem     key 1, nested_key 2, none 3, boolean 4, integer 5 (zigzag), number 6
                    (double), text 7, json 8, value_json 16
    SummaryItem     key 1, nested_key 2, value_json 16
    RunExitRecord   exit_code 1 (int32), runtime 2 (int32)
    OutputRawRecord output_type 1 (0 stderr, 1 stdout), timestamp 2, line 3 (also OutputRecord)

Nested keys are joined with "." (wandb's own `path_from_root`), so a flat "train/loss" keeps its
slash and `{"opt": {"lr": x}}` becomes "opt.lr"; config is flattened the same way.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import orjson

from runwise import _flat
from runwise.errors import CorruptRecord
from runwise.parsers.wandb.log import as_double, as_int32, fields

BAD_ITEM = (CorruptRecord, ValueError, UnicodeDecodeError, struct.error)
RUN, CONFIG, OUTPUT, OUTPUT_RAW, METRIC, EXIT, FINAL, FOOTER = 17, 5, 4, 13, 12, 18, 20, 22


def loads(raw: bytes) -> Any:
    """Decode wandb's JSON, which writes NaN, Infinity and -Infinity as bare tokens."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _text(v: int | bytes) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _blob(v: int | bytes) -> bytes:
    if not isinstance(v, bytes):
        raise ValueError("expected a length-delimited field")
    return v


def item_path(item: bytes) -> tuple[str, ...]:
    """The key path of a history/summary/config item (or of just its key fields)."""
    key: str | None = None
    nested: list[str] = []
    for num, v in fields(item):
        if num == 1:
            key = _text(v)
        elif num == 2:
            nested.append(_text(v))
    if nested:
        return tuple(nested)
    if key is None:
        raise ValueError("item without a key")
    return (key,)


def history_item(item: bytes) -> tuple[tuple[str, ...], Any]:
    """(key path, Python value) of one HistoryItem, typed values included."""
    value: Any = None
    typed = False
    raw: bytes | None = None
    for num, v in fields(item):
        if num == 3:
            value, typed = None, True
        elif num == 4:
            value, typed = bool(v), True
        elif num == 5 and isinstance(v, int):
            value, typed = (v >> 1) ^ -(v & 1), True
        elif num == 6:
            value, typed = as_double(_blob(v)), True
        elif num == 7:
            value, typed = _text(v), True
        elif num == 8:
            value, typed = loads(_blob(v)), True
        elif num == 16:
            raw = _blob(v)
    if not typed and raw is not None:
        value = loads(raw)
    return item_path(item), value


def summary_item(item: bytes) -> tuple[tuple[str, ...], Any]:
    """(key path, value) of a SummaryItem or ConfigItem (value None when absent, as in removes)."""
    raw = next((_blob(v) for num, v in fields(item) if num == 16), None)
    return item_path(item), (loads(raw) if raw is not None else None)


def flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    """Put `value` into `out` under `prefix`, nested dicts as "prefix.a.b" keys (runwise._flat, W&B rule:
    media objects and empty dicts stay whole; lists and scalars stay as they are)."""
    if not prefix and isinstance(value, dict) and not _flat.media_or_empty(value):
        _flat.flatten(value, out=out, whole=_flat.media_or_empty)  # no leading "." for an empty key
    else:
        _flat.flatten({prefix: value}, out=out, whole=_flat.media_or_empty)


def _timestamp(v: int | bytes) -> float:
    sec = nanos = 0
    for num, x in fields(_blob(v)):
        if num == 1 and isinstance(x, int):
            sec = as_int32(x)
        elif num == 2 and isinstance(x, int):
            nanos = x
    return sec + nanos / 1e9


def config_updates(body: bytes) -> list[tuple[tuple[str, ...], Any, bool]]:
    """(path, value, removed) of each item of a ConfigRecord, in order."""
    out = []
    for num, v in fields(body):
        if num in (1, 2):
            path, value = summary_item(_blob(v))
            out.append((path, value, num == 2))
    return out


def run_info(body: bytes) -> dict[str, Any]:
    """The fields of a RunRecord runwise shows; `config` holds its initial config updates."""
    info: dict[str, Any] = {"tags": [], "config": []}
    names = {1: "id", 2: "entity", 3: "project", 6: "group", 7: "job_type", 8: "name", 9: "notes", 13: "host"}
    for num, v in fields(body):
        if num in names:
            info[names[num]] = _text(v)
        elif num == 10:
            info["tags"].append(_text(v))
        elif num == 4:
            info["config"] = config_updates(_blob(v))
        elif num == 17:
            info["start_time"] = _timestamp(v)
        elif num == 14 and isinstance(v, int):
            info["starting_step"] = v
        elif num == 18 and isinstance(v, int):
            info["resumed"] = bool(v)
        elif num == 20 and isinstance(v, int):
            info["runtime"] = as_int32(v)
    return info


def exit_info(body: bytes) -> tuple[int, float | None]:
    """(exit code, runtime in seconds or None) of a RunExitRecord."""
    code, runtime = 0, None
    for num, v in fields(body):
        if num == 1 and isinstance(v, int):
            code = as_int32(v)
        elif num == 2 and isinstance(v, int) and v:
            runtime = float(as_int32(v))
    return code, runtime


def output_line(body: bytes) -> tuple[str, float | None]:
    """(text, timestamp) of an OutputRawRecord or OutputRecord; text may hold several lines."""
    text, ts = "", None
    for num, v in fields(body):
        if num == 3:
            text = _text(v)
        elif num == 2:
            ts = _timestamp(v)
    return text, ts


def console_tail(chunks: list[str], limit: int = 20) -> list[str]:
    """The last `limit` console lines from raw output pieces (carriage returns keep the last redraw)."""
    lines = "".join(chunks).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = [ln.rsplit("\r", 1)[-1] if "\r" in ln.rstrip("\r") else ln.rstrip("\r") for ln in lines]
    return [ln for ln in out if ln.strip()][-limit:]
