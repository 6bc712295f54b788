"""A large TensorBoard run read at its ends only, for a run index row (runs.index_rows).

The head (HEAD_BYTES from the start of the event file) holds the file version event, the hparams a
writer puts first and each tag's first points; the tail (about TAIL_BYTES before the end, to the end)
holds each tag's last points, the last wall time, and whether the file ends in a partial record. Both
are read by the reader's own framing and decoder (`events.read_events`), joined as a read of the
whole file would join them (`events.merge_columns`) and assembled by the reader's own rules
(`tensorboard.run`: restart rule, state, config), so a value read here is the value the whole read gives.
The hparams files of child directories are read whole (config), but their metrics are left out of the
row unless the tail holds them too.

Finding the tail: the first offset at or after `size - TAIL_BYTES` where a record header's length
CRC and the record's data CRC both check (`record_start`); the framing from there must then read to
the end without losing its way.

The answer is None, and the caller reads the run whole, whenever the ends cannot be trusted: a run
of several event files (a restarted writer: the restart rule works across them), a file too small to
have a middle, any damage in the head or tail (a bad CRC, lost framing, undecodable events), a purge
(SessionLog START), no record start found, or a tag whose steps go down.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from runwise.config import RunwiseConfig
from runwise.errors import RunwiseError
from runwise.model import Run, RunEntry
from runwise.parsers.tensorboard.crc32c import crc32c, mask
from runwise.parsers.tensorboard.events import EventColumns, TagColumns, merge_columns, read_events
from runwise.parsers.tensorboard.run import _assemble
from runwise.parsers.tensorboard.tfrecord import FOOTER, HEADER

HEAD_BYTES = 256 * 1024
TAIL_BYTES = 2 * 1024 * 1024
SCAN_BYTES = 1024 * 1024  # how far past `size - TAIL_BYTES` a record start is looked for
MAX_RECORD = 16 << 20  # longer lengths are not taken for a record start


def ends_run(entry: RunEntry, cfg: RunwiseConfig) -> tuple[Run, dict[str, int]] | None:
    """The run of a TensorBoard run of one event file from its head and tail, and per tag the first step
    its tail holds (the tags the tail does not hold are not known from the ends); None: read it whole."""
    run_dir = Path(str(entry.extra.get("dir") or entry.paths[0].parent))
    own = [p for p in entry.paths if p.parent == run_dir]
    extra = [p for p in entry.paths if p.parent != run_dir]
    if len(own) != 1:
        return None
    path = own[0]
    rel = cfg.relative(path)
    try:
        with path.open("rb") as fp:
            size = os.fstat(fp.fileno()).st_size
            if size <= HEAD_BYTES + TAIL_BYTES:
                return None
            ends = _read_ends(fp, rel, size)
        if ends is None:
            return None
        head, tail = ends
        hparams: list[EventColumns] = []
        for p in extra:
            with p.open("rb") as fp:
                hparams.append(read_events(fp, path=cfg.relative(p)))
    except (OSError, RunwiseError, ValueError, IndexError, struct.error):
        return None  # the whole read says what is wrong
    firsts: dict[str, int] = {}
    for kind in ("scalars", "tensors"):
        heads: dict[str, TagColumns] = getattr(head, kind)
        for tag, tc in getattr(tail, kind).items():
            steps = tc.arrays()[0]
            if not steps.size:
                continue
            if steps.size > 1 and bool((np.diff(steps) < 0).any()):
                return None  # a step written again lower: the restart rule may drop points we did not read
            before = heads[tag].arrays()[0] if tag in heads else steps[:0]
            if before.size and (int(before.max()) > int(steps[0]) or bool((np.diff(before) < 0).any())):
                return None
            firsts[tag] = int(steps[0])
    # the metrics of hparams files are left out unless the tail has them: the run's own file may log
    # the same tag in its middle, and then its values are the run's
    run = _assemble(entry, cfg, run_dir, [(path, merge_columns(head, tail))], hparams, [])
    return run, {k: v for k, v in firsts.items() if k in run.history}


def _read_ends(fp: BinaryIO, rel: str, size: int) -> tuple[EventColumns, EventColumns] | None:
    head = read_events(io.BytesIO(fp.read(HEAD_BYTES)), path=rel)  # its last record is cut: left out
    if _damaged(head):
        return None
    head_end = head.stats.size - head.stats.truncated
    start = record_start(fp, max(head_end, size - TAIL_BYTES), size)
    if start is None:
        return None
    tail = read_events(fp, path=rel, start=start)
    if _damaged(tail) or tail.stats.resyncing:
        return None
    return head, tail


def _damaged(cols: EventColumns) -> bool:
    st = cols.stats
    return bool(st.bad_crc or st.lost_framing or cols.undecodable or cols.purge_steps)


def record_start(fp: BinaryIO, at: int, size: int) -> int | None:
    """The first offset from `at` (within SCAN_BYTES) where a whole record is: its length CRC and its data
    CRC check. None if there is none (a record longer than the scan, or damage: read the file whole)."""
    fp.seek(at)
    buf = fp.read(min(size - at, SCAN_BYTES + HEADER))
    for p in range(0, max(0, len(buf) - HEADER + 1)):
        if buf[p + 3 : p + 8] != b"\0\0\0\0\0":  # a length below 2**24 has bytes 3..7 zero
            continue
        length, stored = struct.unpack_from("<QI", buf, p)
        if length >= MAX_RECORD or mask(crc32c(buf[p : p + 8])) != stored:
            continue
        end = p + HEADER + length + FOOTER
        if end > len(buf):
            fp.seek(at + p)
            rec = fp.read(HEADER + length + FOOTER)
            if len(rec) < HEADER + length + FOOTER:
                return None  # a partial last record: nothing whole to start from
            data, footer = rec[HEADER:-FOOTER], rec[-FOOTER:]
        else:
            data, footer = buf[p + HEADER : end - FOOTER], buf[end - FOOTER : end]
        if mask(crc32c(data)) == struct.unpack("<I", footer)[0]:
            return at + p
    return None
