"""TFRecord framing and CRC32C: known answers, truncation, corruption, resynchronisation."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from runwise.errors import UnsupportedFormat
from runwise.parsers.tensorboard.crc32c import crc32c, crc32c_many, crc32c_rows, mask
from runwise.parsers.tensorboard.events import FrameStats, iter_frames, iter_records


def framed(*payloads: bytes) -> bytes:
    """Frame payloads with tensorboard's own record writer (its pure-Python CRC32C)."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    buf = io.BytesIO()
    w = RecordWriter(buf)
    for p in payloads:
        w.write(p)
    return buf.getvalue()


def records(raw: bytes, **kw: int) -> tuple[list[bytes], FrameStats]:
    stats = FrameStats()
    return list(iter_records(io.BytesIO(raw), path="x", stats=stats, **kw)), stats


def test_crc32c_known_answers() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    for data in (b"", b"a", b"\x00" * 8, bytes(range(200))):
        assert mask(crc32c(data)) == masked_crc32c(data)


@pytest.mark.parametrize("length", [4, 5, 8, 31, 255, 256, 257, 300, 1000, 4097, 70000])
def test_vectorised_crc_matches_scalar(length: int) -> None:
    rng = np.random.default_rng(length)
    rows = rng.integers(0, 256, (5, length), dtype=np.uint8)
    got = crc32c_rows(rows)
    assert got.tolist() == [crc32c(r.tobytes()) for r in rows]
    const = np.zeros(length, dtype=bool)
    const[2 : length // 2] = True
    rows[:, const] = rows[0, const]
    got = crc32c_rows(rows, const_cols=const)
    assert got.tolist() == [crc32c(r.tobytes()) for r in rows]


def test_crc_many_mixed_lengths() -> None:
    rng = np.random.default_rng(1)
    buf = rng.integers(0, 256, 20000, dtype=np.uint8)
    offs = rng.integers(0, 15000, 300).astype(np.int64)
    lens = rng.integers(0, 5000, 300).astype(np.int64)
    got = crc32c_many(buf, offs, lens)
    assert got.tolist() == [crc32c(buf[o : o + n].tobytes()) for o, n in zip(offs, lens, strict=True)]


PAYLOADS = [b"first", b"", b"x" * 300, bytes(range(256)) * 3, b"last one"]


@pytest.mark.parametrize("chunk", [16, 64, 1000, 1 << 20])
def test_records_round_trip_across_chunk_sizes(chunk: int) -> None:
    got, stats = records(framed(*PAYLOADS), chunk_size=chunk)
    assert got == PAYLOADS
    assert (stats.records, stats.bad_crc, stats.truncated, stats.lost_framing) == (5, 0, 0, 0)


@pytest.mark.parametrize("cut", [1, 4, 5, 12, 15, 16, 20])
def test_truncated_tail_ends_quietly(cut: int) -> None:
    raw = framed(b"first", b"second record")
    got, stats = records(raw[:-cut])
    assert got == [b"first"]
    assert stats.truncated == len(b"second record") + 16 - cut
    assert stats.bad_crc == stats.lost_framing == 0


def test_empty_stream_is_empty() -> None:
    got, stats = records(b"")
    assert got == [] and stats.truncated == 0


def test_bad_data_crc_skips_that_record_only() -> None:
    raw = bytearray(framed(b"aaaa", b"bbbb", b"cccc"))
    second = 16 + 4
    raw[second + 12] ^= 0x01  # a data byte of the second record
    got, stats = records(bytes(raw))
    assert got == [b"aaaa", b"cccc"]
    assert stats.bad_crc == 1 and stats.damage_offsets == [second]


def test_bad_length_crc_resynchronises() -> None:
    raw = bytearray(framed(b"aaaa", b"bbbbbbbb", b"cccc", b"dddd"))
    second = 20
    raw[second] ^= 0x40  # the length itself: framing is lost here
    got, stats = records(bytes(raw))
    assert got == [b"aaaa", b"cccc", b"dddd"]
    assert stats.lost_framing == 1 and stats.skipped_bytes == 16 + 8


def test_garbage_in_the_middle_is_skipped() -> None:
    good = framed(b"one", b"two")
    raw = good[:19] + b"\x07" * 37 + good[19:]
    got, stats = records(raw, chunk_size=32)
    assert got == [b"one", b"two"]
    assert stats.lost_framing == 1 and stats.skipped_bytes == 37


def test_not_a_tfrecord_is_an_error() -> None:
    with pytest.raises(UnsupportedFormat, match="not a TFRecord"):
        records(b"this is a text file, not event records\n")


def test_record_longer_than_the_chunk() -> None:
    big = bytes(range(256)) * 100
    got, _ = records(framed(b"a", big, b"b"), chunk_size=64)
    assert got == [b"a", big, b"b"]


def test_record_of_16_mib_or_more_uses_the_slow_header_check() -> None:
    big = b"\x01" * (16 << 20)
    got, stats = records(framed(b"a", big, b"b"))
    assert [len(g) for g in got] == [1, len(big), 1] and stats.records == 3


def test_frames_expose_offsets() -> None:
    raw = framed(b"abc", b"defg")
    frames = list(iter_frames(io.BytesIO(raw), path="x"))
    assert len(frames) == 1
    fr = frames[0]
    assert fr.offsets.tolist() == [12, 12 + 3 + 16] and fr.lengths.tolist() == [3, 4]
    assert struct.unpack("<Q", fr.buf[:8].tobytes())[0] == 3


FIXTURE_FILES = sorted((Path(__file__).parent / "data" / "tensorboard").rglob("*tfevents*"))


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.parent.name)
def test_same_records_as_tensorboards_loader(path: Path) -> None:
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

    theirs = list(RawEventFileLoader(str(path)).Load())
    got, stats = records(path.read_bytes())
    assert got == theirs and stats.records == len(theirs)
