"""A plain reference reader of `.wandb` logs built on wandb's own protobuf classes (tests and bench).

Straightforward on purpose: a Python loop over chunks, `Record.FromString` per record and a JSON
parse per history value. runwise's reader must give the same keys, steps and values.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Iterator
from typing import Any

HIDDEN = ("_runtime", "_timestamp", "_step")


def records(data: bytes) -> Iterator[bytes]:
    """Complete record payloads of a log in file order (stops at a cut tail, skips damage per block)."""
    pos, parts = 7, None
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        crc, ln, typ = struct.unpack_from("<IHB", data, pos)
        if typ == 0 and ln == 0 and crc == 0:
            pos += left
            continue
        end = pos + 7 + ln
        if end > len(data):
            return
        if typ not in (1, 2, 3, 4) or end > pos + left or zlib.crc32(data[pos + 6 : end]) != crc:
            pos += left  # damaged: resync at the next block
            parts = None
            continue
        payload = data[pos + 7 : end]
        pos = end
        if typ == 1:
            parts = None
            yield payload
        elif typ == 2:
            parts = [payload]
        elif parts is not None:
            parts.append(payload)
            if typ == 4:
                yield b"".join(parts)
                parts = None


def _flat(path: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and "_type" not in value:
        for k, v in value.items():
            _flat(f"{path}.{k}", v, out)
    else:
        out[path] = value


def history(data: bytes) -> dict[str, tuple[list[int], list[float]]]:
    """key -> (steps, values) of every numeric history value, as wandb's classes decode them."""
    from wandb.proto import wandb_internal_pb2 as pb

    rows: list[tuple[int, dict[str, Any]]] = []
    media: set[str] = set()
    for payload in records(data):
        r = pb.Record.FromString(payload)
        if r.WhichOneof("record_type") != "history":
            continue
        row: dict[str, Any] = {}
        for item in r.history.item:
            key = ".".join(item.nested_key) if len(item.nested_key) else item.key
            _flat(key, json.loads(item.value_json), row)
        step = r.history.step.num if r.history.HasField("step") else int(row.get("_step", len(rows)))
        for k, v in row.items():
            if k.endswith("._type"):
                media.add(k[: -len("._type")])
            elif isinstance(v, dict):
                media.add(k)
        rows.append((step, row))
    out: dict[str, tuple[list[int], list[float]]] = {}
    for step, row in rows:
        for k, v in row.items():
            if k in HIDDEN or v is None or isinstance(v, (str, list, dict)):
                continue
            if any(k == m or k.startswith(m + ".") for m in media):
                continue
            steps, values = out.setdefault(k, ([], []))
            steps.append(step)
            values.append(float(v))
    return out


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def summary(data: bytes) -> dict[tuple[str, ...], Any]:
    """Key path -> value after every summary record's updates and removes, in file order
    (wandb's classes decode each record in full: the answer the bulk reader must keep)."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[tuple[str, ...], Any] = {}
    for payload in records(data):
        r = pb.Record.FromString(payload)
        if r.WhichOneof("record_type") != "summary":
            continue
        for item in r.summary.update:
            out[tuple(item.nested_key) if len(item.nested_key) else (item.key,)] = json.loads(item.value_json)
        for item in r.summary.remove:
            out.pop(tuple(item.nested_key) if len(item.nested_key) else (item.key,), None)
    return out


def summary_offsets(data: bytes) -> list[int]:
    """File offset of the chunk that starts each summary record held in one FULL chunk, in file order."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: list[int] = []
    pos, first = 7, -1
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        ln, typ = struct.unpack_from("<HB", data, pos + 4)
        if typ == 0:
            pos += left
            continue
        end = pos + 7 + ln
        if end > len(data):
            break
        if typ in (1, 2):
            first = pos
        if typ in (1, 4):
            payload = data[first + 7 : first + 7 + struct.unpack_from("<H", data, first + 4)[0]]
            if typ == 1 and pb.Record.FromString(payload).WhichOneof("record_type") == "summary":
                out.append(first)
        pos = end
    return out
