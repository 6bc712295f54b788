"""A large W&B run read at its ends only, for a run index row (runs.index_rows): its head and its tail.

The head (HEAD_BYTES from the start of `run-<id>.wandb`) holds the run record (name, tags, the
initial config) and the first rows; the tail (about TAIL_BYTES before the end, to the end) holds the
last rows, the last summaries and, when the run ended, its exit record. Both go through the reader's
own framing (`wandb.log.iter_windows`) and decoders (`wandb.columns`, `wandb.live.Others`, the segment
builder), so a value read here is the value the whole read gives.

Finding the tail: blocks are 32 KiB and every block starts with a chunk header, so the read starts at
the block boundary at or before `size - TAIL_BYTES` and walks that block's chunks (each checked: type,
length, CRC) to the first FULL or FIRST chunk, where a record starts. Chunks before it (the end of a
record that began earlier) are skipped.

The answer is None, and the caller reads the log whole, whenever the ends cannot be trusted: a run of
several segments (resumed), a log too small to have a middle, damage in the head or tail (a bad CRC,
an impossible chunk header, pieces of a split record), no record start found, rows without a step
(the reader numbers those by counting rows from the start), or a metric whose steps go down.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from runwise.config import RunwiseConfig
from runwise.errors import RunwiseError
from runwise.model import Run, RunEntry
from runwise.parsers.wandb.columns import decode_window
from runwise.parsers.wandb.live import LogState
from runwise.parsers.wandb.log import BLOCK, CHUNK_HEADER, FIRST, FULL, HEADER_LEN, LAST, Cursor, Damage, iter_windows
from runwise.parsers.wandb.run import merge
from runwise.parsers.wandb.segment import _build, log_file

HEAD_BYTES = 2 * BLOCK  # the run record and the initial config come first
TAIL_BYTES = 2 * 1024 * 1024  # a few thousand rows with their summaries, and the exit record
# a step below any real one: rows the tail numbers itself (no step field, no _step item) come out negative
_UNNUMBERED = -(1 << 62)


def ends_run(entry: RunEntry, cfg: RunwiseConfig) -> tuple[Run, dict[str, int]] | None:
    """The run of a one-segment W&B log from its head and tail, and per metric the first step its tail
    holds (the metrics the tail does not hold are not known from the ends); None: read it whole."""
    if len(entry.paths) != 1:
        return None  # a resumed run: its segments' steps interleave, and the reader merges them whole
    p = entry.paths[0]
    d, log = (p.parent, p) if p.is_file() else (p, log_file(p))
    if log is None or log.suffix != ".wandb":
        return None
    try:
        with log.open("rb") as fp:
            size = os.fstat(fp.fileno()).st_size
            if size <= HEAD_BYTES + TAIL_BYTES:
                return None
            return _read_ends(fp, d, log, size, cfg)
    except (OSError, RunwiseError, ValueError, IndexError, struct.error):
        return None  # the whole read says what is wrong


def _read_ends(fp: BinaryIO, d: Path, log: Path, size: int, cfg: RunwiseConfig) -> tuple[Run, dict[str, int]] | None:
    state = LogState(log)
    cols = state.cols
    head = Damage()
    for win in iter_windows(fp, path=str(log), damage=head, limit=HEAD_BYTES):
        decode_window(win, cols)
        state.others.apply(cols)
    if head.damaged:
        return None
    before = {k: len(v) for k, v in cols.steps.items()}
    head_last = {k: int(v[-1][-1]) for k, v in cols.steps.items() if v and v[-1].size}
    start = record_start(fp, max(HEAD_BYTES, size - TAIL_BYTES), size)
    if start is None:
        return None
    cols.last_step = _UNNUMBERED
    tail = Damage()
    for win in iter_windows(fp, path=str(log), damage=tail, start=Cursor(pos=start)):
        decode_window(win, cols)
        state.others.apply(cols)
    if tail.damaged:
        return None
    firsts: dict[str, int] = {}
    for key, chunks in cols.steps.items():
        new = [c for c in chunks[before.get(key, 0):] if c.size]
        if not new:
            continue
        steps = np.concatenate(new)
        if steps.min() < 0 or (steps.size > 1 and bool((np.diff(steps) < 0).any())):
            return None  # rows numbered by counting (wrong from the middle), or steps going down
        if key in head_last and int(steps[0]) < head_last[key]:
            return None
        firsts[key] = int(steps[0])
    seg = _build(d, log, state, tail, size)
    run = merge([seg], cfg)
    return run, {k: v for k, v in firsts.items() if k in run.history}


def record_start(fp: BinaryIO, at: int, size: int) -> int | None:
    """The offset of the first record that starts in the block holding offset `at` or in a later one:
    its first FULL or FIRST chunk, every chunk before it in that block well-formed (type, length, CRC).
    None when a block has a bad chunk before one (damage: read the log whole) or none is found."""
    b = at - at % BLOCK
    while b < size:
        fp.seek(b)
        block = fp.read(BLOCK)
        p = HEADER_LEN if b == 0 else 0
        while p + CHUNK_HEADER <= len(block):
            crc, length, kind = struct.unpack_from("<IHB", block, p)
            if crc == 0 and length == 0 and kind == 0:
                break  # zero padding: the block ends here
            end = p + CHUNK_HEADER + length
            if not FULL <= kind <= LAST or end > len(block) or zlib.crc32(block[p + 6 : end]) != crc:
                return None
            if kind in (FULL, FIRST):
                return b + p
            p = end
        b += BLOCK
    return None
