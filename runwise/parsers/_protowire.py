"""The protobuf wire format, shared by the W&B and TensorBoard decoders: varints and a field walk.

A message is a run of fields, each a varint tag (field number << 3 | wire type) then its value:
wire type 0 a varint, 1 eight bytes, 2 a varint length then that many bytes, 5 four bytes
(3 and 4, groups, are obsolete and refused). Nothing is copied: `fields` gives spans.
"""

from __future__ import annotations

from collections.abc import Iterator


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode the varint at data[pos]: (value, position after it).

    Raises ValueError if it runs past the end of `data` or is longer than 10 bytes.
    """
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("varint runs past the end of its message")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def fields(b: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, x, y) of the message in b[pos:end].

    For a varint (wire type 0), x is its value and y is 0; otherwise b[x:y] holds the field's
    bytes (a nested message, a string, or the 8 / 4 bytes of a fixed-width number).
    Raises ValueError on a malformed varint, a field running past `end` or a group wire type.
    """
    if end > len(b):
        raise ValueError("message runs past the end of its buffer")
    while pos < end:
        key = b[pos]  # tags of fields 1-15 are one byte: skip the call
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(b, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(b, pos)
            yield number, 0, value, 0
            continue
        if wire == 1:
            size = 8
        elif wire == 5:
            size = 4
        elif wire == 2:
            if pos < end and b[pos] < 0x80:  # lengths under 128: one byte
                size = b[pos]
                pos += 1
            else:
                size, pos = read_varint(b, pos)
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos + size > end:
            raise ValueError("field runs past the end of its message")
        yield number, wire, pos, pos + size
        pos += size
