"""A small protobuf-wire decoder for TensorBoard's `Event` message (no protobuf import).

Field numbers (tensorboard/compat/proto, checked against tensorboard 2.21's descriptors):

    Event           wall_time 1 (double), step 2 (int64), file_version 3, graph_def 4, summary 5,
                    log_message 6, session_log 7 (SessionLog: status 1; START=1), tagged_run_metadata 8
    Summary         value 1 (repeated)
    Summary.Value   tag 1, simple_value 2 (float), image 4, histo 5, audio 6, node_name 7,
                    tensor 8, metadata 9, obsolete_old_style_histogram 3
    SummaryMetadata plugin_data 1 (PluginData: plugin_name 1, content 2), data_class 4
    TensorProto     dtype 1, tensor_shape 2 (dim 2: size 1), tensor_content 4, float_val 5,
                    double_val 6, int_val 7, string_val 8, int64_val 10, bool_val 11, half_val 13,
                    uint32_val 16, uint64_val 17
    HParamsPluginData  session_start_info 3 (SessionStartInfo: hparams 1 = map<string, Value>,
                    group_name 4, start_time_secs 5); google.protobuf.Value: number 2, string 3, bool 4

Besides the values, `decode_event` reports where the fixed-width fields sit in the payload (wall
time, step varint, each scalar's bytes), so the caller can use one decoded event as a template
for thousands of records that differ only in those bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from runwise.parsers._protowire import fields, read_varint

# DataType -> (struct format of one element in tensor_content, numpy dtype) for numeric scalars
DTYPES: dict[int, tuple[str, str]] = {
    1: ("<f", "<f4"),  # DT_FLOAT
    2: ("<d", "<f8"),  # DT_DOUBLE
    3: ("<i", "<i4"),  # DT_INT32
    4: ("<B", "u1"),  # DT_UINT8
    5: ("<h", "<i2"),  # DT_INT16
    6: ("<b", "i1"),  # DT_INT8
    9: ("<q", "<i8"),  # DT_INT64
    10: ("<?", "u1"),  # DT_BOOL
    17: ("<H", "<u2"),  # DT_UINT16
    19: ("<e", "<f2"),  # DT_HALF
    22: ("<I", "<u4"),  # DT_UINT32
    23: ("<Q", "<u8"),  # DT_UINT64
}
DT_STRING, DT_BFLOAT16 = 7, 14
KIND_OF_PLUGIN = {"histograms": "histogram", "images": "image", "audio": "audio", "text": "text"}


@dataclass(slots=True)
class Value:
    """One `Summary.Value`: a scalar, or what kind of non-numeric summary it is."""

    tag: str
    kind: str  # "scalar" (simple_value), "tensor", "histogram", "image", "audio", "text", "hparams", ...
    plugin: str = ""
    number: float | None = None  # simple_value, or the element of a one-element numeric tensor
    text: str | None = None  # text plugin
    content: bytes = b""  # plugin content (hparams)
    span: tuple[int, int, str] | None = None  # (offset, width, numpy dtype) of `number` in the payload


@dataclass(slots=True)
class Event:
    """The parts of an `Event` runwise uses."""

    wall_time: float = 0.0
    step: int = 0
    file_version: str | None = None
    values: list[Value] = field(default_factory=list)
    session_status: int = 0  # SessionLog.status (1 = START, written by tensorboardX's purge_step)
    other: str = ""  # "graph", "run_metadata", ... for events without summaries
    wall_span: int | None = None  # offset of the 8 wall-time bytes
    step_span: tuple[int, int] | None = None  # (offset, length) of the step varint


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_event(b: bytes) -> Event:
    """Decode one Event payload. Raises ValueError (or IndexError) on malformed bytes."""
    ev = Event()
    has_step = False
    for number, wire, a, z in fields(b, 0, len(b)):
        if number == 1 and wire == 1:
            ev.wall_time = struct.unpack_from("<d", b, a)[0]
            ev.wall_span = a
        elif number == 2 and wire == 0:
            ev.step, has_step = _signed(a), True
        elif number == 3 and wire == 2:
            ev.file_version = b[a:z].decode("utf-8", "replace")
        elif number == 5 and wire == 2:
            for n2, w2, a2, z2 in fields(b, a, z):
                if n2 == 1 and w2 == 2:
                    ev.values.append(_decode_value(b, a2, z2))
        elif number == 7 and wire == 2:
            for n2, w2, a2, _ in fields(b, a, z):
                if n2 == 1 and w2 == 0:
                    ev.session_status = a2
        elif number in (4, 9):
            ev.other = "graph"
        elif number == 8:
            ev.other = "run_metadata"
    if has_step:  # `fields` does not report varint spans: find it where writers put it
        ev.step_span = _locate_step(b)
    return ev


def _locate_step(b: bytes) -> tuple[int, int] | None:
    """Where the top-level step varint sits (key 0x10 right after the wall time, as writers emit it)."""
    pos = 9 if b[:1] == b"\x09" else 0
    if b[pos : pos + 1] != b"\x10":
        return None
    _, end = read_varint(b, pos + 1)
    return pos + 1, end - pos - 1


def _decode_value(b: bytes, pos: int, end: int) -> Value:
    tag, kind, plugin, content = "", "", "", b""
    number: float | None = None
    span: tuple[int, int, str] | None = None
    tensor: tuple[int, int] | None = None
    for n, w, a, z in fields(b, pos, end):
        if n == 1 and w == 2:
            tag = b[a:z].decode("utf-8", "replace")
        elif n == 7 and w == 2 and not tag:
            tag = b[a:z].decode("utf-8", "replace")  # TF1 node_name when tag is empty
        elif n == 2 and w == 5:
            kind, number, span = "scalar", struct.unpack_from("<f", b, a)[0], (a, 4, "<f4")
        elif n in (3, 5) and w == 2:
            kind = "histogram"
        elif n == 4 and w == 2:
            kind = "image"
        elif n == 6 and w == 2:
            kind = "audio"
        elif n == 8 and w == 2:
            tensor = (a, z)
        elif n == 9 and w == 2:
            plugin, content = _decode_metadata(b, a, z)
    if plugin == "hparams":  # tensorboardX writes no value at all; TensorBoard an empty tensor
        return Value(tag, "hparams", plugin, content=content)
    value = Value(tag, kind, plugin, number, content=content, span=span)
    if tensor is not None and not kind:
        _decode_tensor(b, tensor[0], tensor[1], value)
    elif not kind:
        value.kind = "other"
    return value


def _decode_metadata(b: bytes, pos: int, end: int) -> tuple[str, bytes]:
    plugin, content = "", b""
    for n, w, a, z in fields(b, pos, end):
        if n == 1 and w == 2:
            for n2, w2, a2, z2 in fields(b, a, z):
                if n2 == 1 and w2 == 2:
                    plugin = b[a2:z2].decode("utf-8", "replace")
                elif n2 == 2 and w2 == 2:
                    content = b[a2:z2]
    return plugin, content


def _decode_tensor(b: bytes, pos: int, end: int, value: Value) -> None:
    """Fill `value` from a TensorProto: a number if it holds one numeric element, text for strings."""
    value.kind = KIND_OF_PLUGIN.get(value.plugin, "tensor")
    dtype, elements = 0, 1
    found: list[tuple[float, tuple[int, int, str] | None]] = []
    strings: list[str] = []
    for n, w, a, z in fields(b, pos, end):
        if n == 1 and w == 0:
            dtype = a
        elif n == 2 and w == 2:
            for n2, w2, a2, z2 in fields(b, a, z):
                if n2 == 2 and w2 == 2:
                    for n3, w3, a3, _ in fields(b, a2, z2):
                        if n3 == 1 and w3 == 0:
                            elements *= _signed(a3)
        elif n == 4 and w == 2:
            fmt = DTYPES.get(dtype)
            if fmt is not None and z - a == struct.calcsize(fmt[0]):
                found.append((float(struct.unpack_from(fmt[0], b, a)[0]), (a, z - a, fmt[1])))
            elif dtype == DT_BFLOAT16 and z - a == 2:
                found.append((struct.unpack("<f", b"\0\0" + b[a:z])[0], None))
            else:
                found.append((math.nan, None))  # several elements: not a scalar
                elements = max(elements, 2)
        elif n == 5 and w in (2, 5):
            found.append((struct.unpack_from("<f", b, a)[0], (a, 4, "<f4") if z - a == 4 else None))
        elif n == 6 and w in (1, 2):
            found.append((struct.unpack_from("<d", b, a)[0], (a, 8, "<f8") if z - a == 8 else None))
        elif n in (7, 10, 11, 13, 16, 17):
            found.append((_first_varint(b, w, a, z, n, dtype), None))
        elif n == 8 and w == 2:
            strings.append(b[a:z].decode("utf-8", "replace"))
    if dtype == DT_STRING or strings:
        value.text = "\n".join(strings)
        return
    if elements == 1 and value.kind in ("tensor",):
        value.number, value.span = found[0] if found else (0.0, None)
        if len(found) > 1:
            value.span = None


def _first_varint(b: bytes, wire: int, a: int, z: int, number: int, dtype: int) -> float:
    v = a if wire == 0 else read_varint(b, a)[0]
    if number == 13:  # half_val: float16 (or bfloat16) bits in an int32
        if dtype == DT_BFLOAT16:
            return float(struct.unpack("<f", struct.pack("<I", (v & 0xFFFF) << 16))[0])
        return float(struct.unpack("<e", struct.pack("<H", v & 0xFFFF))[0])
    if number in (7, 10):
        v = _signed(v)
        if number == 7 and v >= 1 << 31:
            v -= 1 << 32
    return float(v)


def decode_hparams(content: bytes) -> dict[str, Any]:
    """`HParamsPluginData` -> the session's hparams ({name: number | str | bool}), if it has any."""
    out: dict[str, Any] = {}
    for n, w, a, z in fields(content, 0, len(content)):
        if n != 3 or w != 2:
            continue
        for n2, w2, a2, z2 in fields(content, a, z):
            if n2 == 1 and w2 == 2:
                key, val = "", None
                for n3, w3, a3, z3 in fields(content, a2, z2):
                    if n3 == 1 and w3 == 2:
                        key = content[a3:z3].decode("utf-8", "replace")
                    elif n3 == 2 and w3 == 2:
                        val = _decode_struct_value(content, a3, z3)
                if key:
                    out[key] = val
    return out


def _decode_struct_value(b: bytes, pos: int, end: int) -> Any:
    for n, w, a, z in fields(b, pos, end):
        if n == 2 and w == 1:
            number = float(struct.unpack_from("<d", b, a)[0])
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        if n == 3 and w == 2:
            return b[a:z].decode("utf-8", "replace")
        if n == 4 and w == 0:
            return bool(a)
    return None
