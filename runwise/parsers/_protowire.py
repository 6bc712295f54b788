"""The protobuf wire format's varint, shared by the W&B and TensorBoard decoders."""

from __future__ import annotations


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
