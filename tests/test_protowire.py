"""The one protobuf field walk (parsers._protowire.fields) on bytes made by protobuf's own encoder,
and the W&B view of it (parsers.wandb.log.fields)."""

from __future__ import annotations

import struct

import pytest
from google.protobuf import descriptor_pb2, wrappers_pb2

from runwise.errors import CorruptRecord
from runwise.parsers._protowire import fields
from runwise.parsers.wandb import log

# name 1 (string), number 3 (int32: -3 is a 10-byte varint), json_name 10 (200 bytes: a two-byte
# length), proto3_optional 17 (a two-byte tag)
MSG = descriptor_pb2.FieldDescriptorProto(name="lr", number=-3, json_name="x" * 200, proto3_optional=True)
RAW = MSG.SerializeToString()


def decoded(b: bytes) -> list[tuple[int, int, object]]:
    return [(n, w, x if w == 0 else b[x:y]) for n, w, x, y in fields(b, 0, len(b))]


def test_varints_lengths_and_two_byte_tags() -> None:
    assert decoded(RAW) == [(1, 2, b"lr"), (3, 0, (1 << 64) - 3), (10, 2, b"x" * 200), (17, 0, 1)]


def test_fixed_width_numbers() -> None:
    double = wrappers_pb2.DoubleValue(value=2.5).SerializeToString()
    (n, w, x, y), = fields(double, 0, len(double))
    assert (n, w, struct.unpack("<d", double[x:y])[0]) == (1, 1, 2.5)
    single = wrappers_pb2.FloatValue(value=1.5).SerializeToString()
    (n, w, x, y), = fields(single, 0, len(single))
    assert (n, w, struct.unpack("<f", single[x:y])[0]) == (1, 5, 1.5)


def test_a_nested_message_is_walked_in_place() -> None:
    outer = descriptor_pb2.DescriptorProto(name="M", field=[MSG]).SerializeToString()
    (_, _, _, _), (n, w, x, y) = fields(outer, 0, len(outer))
    assert n == 2 and w == 2
    assert [(a, b_, c if b_ == 0 else outer[c:d]) for a, b_, c, d in fields(outer, x, y)] == decoded(RAW)


@pytest.mark.parametrize("cut", range(1, len(RAW)))
def test_a_cut_message_raises_value_error_or_gives_the_whole_fields_before_the_cut(cut: int) -> None:
    try:
        got = decoded(RAW[:cut])
    except ValueError:
        return
    assert got == decoded(RAW)[: len(got)]
    assert cut in (4, 15, 218)  # exactly at a field boundary


def test_a_span_past_the_buffer_and_group_wire_types_are_refused() -> None:
    with pytest.raises(ValueError, match="past the end of its buffer"):
        list(fields(RAW, 0, len(RAW) + 1))
    with pytest.raises(ValueError, match="wire type 3"):
        list(fields(b"\x0b", 0, 1))  # field 1, start group


def test_wandb_view_gives_values_and_corrupt_records() -> None:
    assert list(log.fields(RAW)) == [(1, b"lr"), (3, (1 << 64) - 3), (10, b"x" * 200), (17, 1)]
    with pytest.raises(CorruptRecord, match="past the end"):
        list(log.fields(RAW[:-1]))
