"""Framing of run-<id>.wandb: real fixture files, cut and flipped in tmp_path."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest

from runwise.errors import UnsupportedFormat
from runwise.parsers.wandb.log import BLOCK, Damage, iter_records, iter_windows

DATA = Path(__file__).parent / "data" / "wandb"
LOGS = sorted(DATA.glob("*/run-*.wandb"))
KILLED = next(DATA.glob("*kil00001/run-kil00001.wandb"))


def chunks(raw: bytes) -> list[tuple[int, int, int]]:
    """(position, length, type) of every chunk, by a plain loop (independent of the numpy walk)."""
    out, pos = [], 7
    while pos + 7 <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        ln, typ = int.from_bytes(raw[pos + 4 : pos + 6], "little"), raw[pos + 6]
        if typ == 0 or pos + 7 + ln > len(raw):
            break
        out.append((pos, ln, typ))
        pos += 7 + ln
    return out


def recs(raw: bytes, **kw: int) -> tuple[list[bytes], Damage]:
    dmg = Damage()
    return list(iter_records(io.BytesIO(raw), path="x", damage=dmg, **kw)), dmg


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.parent.name)
def test_every_fixture_frames_cleanly(path: Path) -> None:
    raw = path.read_bytes()
    got, dmg = recs(raw)
    assert got and not dmg.damaged
    joined, parts = [], []
    for pos, ln, typ in chunks(raw):
        payload = raw[pos + 7 : pos + 7 + ln]
        assert zlib.crc32(raw[pos + 6 : pos + 7 + ln]) == int.from_bytes(raw[pos : pos + 4], "little")
        if typ == 1:
            joined.append(payload)
        else:
            parts.append(payload)
            if typ == 4:
                joined.append(b"".join(parts))
                parts = []
    assert got == joined


def test_small_windows_give_the_same_records() -> None:
    raw = KILLED.read_bytes()
    dmg = Damage()
    small = [w.payload(i) for w in iter_windows(io.BytesIO(raw), path="x", damage=dmg, window=BLOCK)
             for i in range(w.starts.size)]
    assert small == recs(raw)[0]


def test_killed_run_ends_in_a_split_record() -> None:
    raw = KILLED.read_bytes()
    assert len(raw) % BLOCK == 0 and chunks(raw)[-1][2] == 2  # FIRST without its LAST
    got, dmg = recs(raw)
    assert dmg.truncated and not dmg.damaged and dmg.tail_bytes > 0
    assert len(got) == sum(1 for c in chunks(raw) if c[2] in (1, 4))


@pytest.mark.parametrize("cut", [1, 3, 6, 7, 8, 50])
def test_cut_tail_yields_every_complete_record(cut: int) -> None:
    raw = next(DATA.glob("*fin00001/run-fin00001.wandb")).read_bytes()
    full, _ = recs(raw)
    pos, ln, _ = chunks(raw)[-1]
    short = raw[: pos + min(cut, 7 + ln - 1)]
    got, dmg = recs(short)
    assert got == full[:-1]
    assert dmg.truncated and not dmg.damaged


def test_cut_inside_a_multi_chunk_record() -> None:
    raw = KILLED.read_bytes()
    first = next(c for c in chunks(raw) if c[2] == 2)
    last = next(c for c in chunks(raw) if c[2] == 4)
    full, _ = recs(raw)
    got, dmg = recs(raw[: last[0] + 7 + last[1] // 2])  # cut inside the LAST piece
    assert dmg.truncated and len(got) == sum(1 for c in chunks(raw) if c[0] < first[0] and c[2] == 1)
    assert got == full[: len(got)]


def test_flipped_byte_skips_to_the_next_block() -> None:
    raw = bytearray(KILLED.read_bytes())
    cs = chunks(bytes(raw))
    victim = cs[100]
    raw[victim[0] + 7 + victim[1] // 2] ^= 0xFF
    got, dmg = recs(bytes(raw))
    full, _ = recs(KILLED.read_bytes())
    assert dmg.bad_chunks == 1 and dmg.lost_bytes == BLOCK - victim[0]
    assert dmg.dropped_records == 1  # the LAST piece that began in the lost part of block 0
    before = sum(1 for c in cs if c[0] < victim[0] and c[2] == 1)
    after = sum(1 for c in cs if c[0] >= BLOCK and c[2] == 1)
    assert got == full[:before] + full[len(full) - after :]
    assert "damaged log" in dmg.messages()[0]


def test_garbage_mid_file_is_counted() -> None:
    raw = bytearray(KILLED.read_bytes())
    raw[5000:5400] = bytes(range(200)) * 2
    got, dmg = recs(bytes(raw))
    assert dmg.bad_chunks == 1 and dmg.lost_bytes > 0
    assert len(got) < len(recs(KILLED.read_bytes())[0])


def test_not_a_wandb_file() -> None:
    with pytest.raises(UnsupportedFormat):
        recs(b"PK\x03\x04" + bytes(100))
    with pytest.raises(UnsupportedFormat):
        recs(b":W&B\xe1\xbe\x07" + bytes(100))
