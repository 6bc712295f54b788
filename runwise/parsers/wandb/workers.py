"""Reading a big `.wandb` log in several processes: split at window boundaries, one child per extra part.

Blocks of the log are independent (a chunk never crosses one), so a part can start at any block:
the split points are multiples of the read window (`log.WINDOW`, itself a multiple of BLOCK), so
every part frames and decodes exactly the windows a single read would. A part owns the records
that *complete* in its windows, as a single read does: a record split across the start of a part
is joined by that part, which first walks back over the blocks before its start (each framed on
its own, CRCs checked) to the record's FIRST chunk, so it starts with the same open record a
single read would have there. A part ends at its end; a record still open there is the next
part's. Damage counts are per block or depend only on that open record, so they add up.

Everything a part decodes goes into its own `Columns`; the parent merges them in file order
(`merge`): column chunks appended, first kind kept, newest media type, the summary entry of the
larger file offset, counters summed. Run/config/exit/console records are not applied in the
parts: each part keeps them sorted window by window, and the parent applies them all in order.
Rows without any step are numbered after the last step before them, which a part cannot know:
a part that had such rows (old clients only) is read again here after the parts before it.

Processes as in `jsonl_workers` (whose spawning helpers are reused): a child is a fresh interpreter
(`python -c WORKER PARENT PATH START END WINDOW`) that writes its pickled Part to a pipe. A child
that cannot be started, fails, returns garbage or something else, or is still running WAIT_SECONDS
(plus a per-byte allowance) after its part is asked for, is killed and its part is read here.
Whatever happens, every child is killed if still running and reaped, and its pipes are closed.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from runwise.parsers import jsonl_workers as jw
from runwise.parsers.wandb import log as wlog
from runwise.parsers.wandb.columns import Columns, decode_window
from runwise.parsers.wandb.log import BLOCK, CHUNK_HEADER, FIRST, FULL, HEADER_LEN, LAST, MIDDLE, Cursor, Damage

log = logging.getLogger("runwise.wandb")

PARALLEL_BYTES = 32 * 1024 * 1024  # logs this big are read by several processes at once
MAX_WORKERS = 3
FIRST_SHARE = 0.52  # of a log split in two, the part this process reads itself (a child starts ~0.4 s late)
WAIT_SECONDS = 60.0  # a child's grace, from when its part is asked for ...
WAIT_BYTES_PER_SECOND = 2 * 1024 * 1024  # ... plus a second per this many bytes of its part

_NO_PART = (OSError, RuntimeError, ValueError, EOFError, TypeError, AttributeError, pickle.UnpicklingError,
            subprocess.TimeoutExpired)

WORKER = (
    "import sys; p = sys.argv[1]; p in sys.path or sys.path.append(p); "
    "from runwise.parsers.wandb.workers import worker_main; sys.exit(worker_main(sys.argv[1:]))"
)

Progress = Callable[[float, float], None]


@dataclass(slots=True)
class Part:
    """What one byte range of the log decoded to. `end` is None unless the part ran to the end of file."""

    start: int
    stop: int  # -1: to the end of the file
    cols: Columns = field(default_factory=Columns)
    damage: Damage = field(default_factory=Damage)
    end: Cursor | None = None


def workers_for(size: int) -> int:
    """How many processes (this one included) read a log of `size` bytes."""
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS + 1, size // PARALLEL_BYTES + 1))


def split(size: int, window: int | None = None) -> list[int]:
    """Start offsets of the parts: 0, then multiples of the window; one part unless the log is big."""
    window = wlog.WINDOW if window is None else window
    n = workers_for(size)
    # this process starts at once; a child first pays its interpreter start-up and the trip of
    # its columns back, and this process merges at the end
    first = FIRST_SHARE if n == 2 else 1 / n
    cuts = [0]
    for i in range(1, n):
        target = first + (1 - first) * (i - 1) / (n - 1)
        c = round(size * target / window) * window
        if cuts[-1] < c < size:
            cuts.append(c)
    return cuts


def open_record_at(fp: BinaryIO, pos: int) -> tuple[tuple[bytes, ...], int]:
    """The pieces and file offset of the split record a single read holds open at block start `pos`.

    Walks back block by block (each framed and CRC-checked on its own, as a single read frames it)
    over the MIDDLE chunks to the record's FIRST; a LAST first, or the file start, means none is open.
    """
    rev: list[bytes] = []
    b = pos - BLOCK
    while b >= 0:
        fp.seek(b)
        buf = bytearray(BLOCK + wlog.PAD)
        n = fp.readinto(memoryview(buf)[:BLOCK])  # type: ignore[attr-defined]
        if n != BLOCK:
            raise OSError(f"short read at {b} while walking back from {pos}")
        scratch = Damage()
        u8 = np.frombuffer(buf, np.uint8)
        cp, cl, ct, broken, _ = wlog._walk_chunks(u8, n, HEADER_LEN if b == 0 else 0, scratch)
        del u8
        cp, cl, ct, _ = wlog._check_crcs(buf, n, cp, cl, ct, broken, scratch)
        for i in range(cp.size - 1, -1, -1):
            t = int(ct[i])
            if t == FULL:
                continue
            if t == LAST:
                return (), -1
            a = int(cp[i]) + CHUNK_HEADER
            rev.append(bytes(buf[a : a + int(cl[i])]))
            if t == FIRST:
                return tuple(reversed(rev)), b + int(cp[i])
            assert t == MIDDLE
        b -= BLOCK
    return (), -1


def read_part(path: str, start: int, stop: int, *, window: int | None = None, cols: Columns | None = None,
              progress: Progress | None = None, total: int = 0) -> Part:
    """Decode the records that complete in [start, stop) (stop -1: to the end of the file).

    `start` is 0 or a block boundary; into `cols` if given (to go on from the parts before).
    Raises OSError, UnsupportedFormat (part 0 only) like a single read.
    """
    part = Part(start, stop, cols if cols is not None else Columns())
    with open(path, "rb") as fp:
        begin = None
        if start > 0:
            parts, offset = open_record_at(fp, start)
            begin = Cursor(pos=start, parts=parts, offset=offset)
        end = Cursor() if stop < 0 else None
        others = part.cols.others
        for win in wlog.iter_windows(fp, path=path, damage=part.damage, window=window, start=begin, end=end,
                                     limit=None if stop < 0 else stop, progress=progress, total=total):
            k = len(others)
            decode_window(win, part.cols)
            others[k:] = sorted(others[k:], key=lambda x: x[0])  # one window's, as Others.apply sorts them
        part.end = end
    return part


def merge(into: Columns, part: Columns) -> None:
    """Add a later part's columns to `into`, as if its windows had been decoded into it."""
    for key, chunks in part.steps.items():
        into.steps.setdefault(key, []).extend(chunks)
        into.values.setdefault(key, []).extend(part.values[key])
    for key, kind in part.kinds.items():
        into.kinds.setdefault(key, kind)
    into.media.update(part.media)
    for path, (off, value) in part.summary.items():
        old = into.summary.get(path)
        if old is None or old[0] <= off:
            into.summary[path] = (off, value)
    for path, off in part.removed.items():
        into.removed[path] = max(into.removed.get(path, -1), off)
    into.others.extend(part.others)
    into.last_step = max(into.last_step, part.last_step)
    into.rows += part.rows
    into.undecodable += part.undecodable
    into.numbered += part.numbered
    for sig, path in part.key_cache.items():
        into.key_cache.setdefault(sig, path)


def add_damage(into: Damage, d: Damage) -> None:
    into.bad_chunks += d.bad_chunks
    into.lost_bytes += d.lost_bytes
    into.dropped_records += d.dropped_records
    into.truncated = into.truncated or d.truncated
    into.tail_bytes += d.tail_bytes


def read_parts(path: str, cuts: list[int], *, window: int | None = None, progress: Progress | None = None,
               total: int = 0) -> tuple[Columns, Damage, Cursor]:
    """Read the log in parts starting at `cuts` (0 first, then multiples of the window): the later
    ones in child processes if possible. The merged columns (run/config/... records not applied,
    in the order to apply them), the damage, and where the read stopped.

    Raises what a single read of the file raises (OSError, UnsupportedFormat).
    """
    window = wlog.WINDOW if window is None else window
    if cuts[0] != 0 or any(c % window or c <= p for p, c in zip(cuts, cuts[1:], strict=False)):
        raise ValueError(f"parts must start at 0 and then at increasing multiples of {window}: {cuts}")
    bounds = list(zip(cuts, [*cuts[1:], -1], strict=True))
    workers = _start(path, bounds[1:], window)
    try:
        first = read_part(path, *bounds[0], window=window, progress=progress, total=total)
        cols, damage, end = first.cols, first.damage, first.end
        for (lo, hi), worker in zip(bounds[1:], workers, strict=True):
            part = None
            if worker is not None:
                budget = WAIT_SECONDS + ((hi if hi >= 0 else max(total, lo)) - lo) / WAIT_BYTES_PER_SECOND
                try:
                    part = worker.result(lo, hi, timeout=budget)
                except _NO_PART as exc:
                    log.debug("worker failed on %s, reading its part here: %s", path, exc)
            if part is not None and part.cols.numbered:  # its step-less rows need the steps before it
                log.debug("part at %d of %s has rows without a step: read here", lo, path)
                part = None
            if part is None:  # read here, going on from the parts before
                numbered = cols.numbered
                part = read_part(path, lo, hi, window=window, cols=cols)
                assert part.cols is cols and cols.numbered >= numbered
            else:
                merge(cols, part.cols)
            add_damage(damage, part.damage)
            end = part.end
    finally:
        for w in workers:
            if w is not None:
                w.close()
    assert end is not None
    if progress is not None:
        progress(float(end.end), float(max(total, end.end)))
    return cols, damage, end


class Worker(jw.Child):
    """A child interpreter reading one part of the log; its pickled Part comes back on a pipe."""

    def __init__(self, path: str, start: int, stop: int, window: int) -> None:
        super().__init__(WORKER, path, str(start), str(stop), str(window))

    def result(self, start: int, stop: int, timeout: float) -> Part:
        """The child's Part; raises TimeoutExpired, RuntimeError or a pickle error if there is none."""
        part = self.answer(timeout)
        if not (isinstance(part, Part) and isinstance(part.cols, Columns) and isinstance(part.damage, Damage)
                and part.start == start and part.stop == stop and (part.end is None) == (stop >= 0)):
            raise RuntimeError("worker returned something else")
        return part


def _start(path: str, bounds: list[tuple[int, int]], window: int) -> list[Worker | None]:
    """Start reading `bounds` in child processes; None where no child could be started."""
    if not bounds:
        return []
    if not jw.can_spawn():
        log.debug("no worker processes: no Python interpreter to start (executable %r)", sys.executable)
        return [None] * len(bounds)
    workers: list[Worker | None] = []
    for lo, hi in bounds:
        try:
            workers.append(Worker(path, lo, hi, window))
        except OSError as exc:  # no processes here (sandbox, limits): this process reads the part
            log.debug("no worker process: %s", exc)
            workers.append(None)
    return workers


def worker_main(argv: list[str]) -> int:
    """The child's side: read PATH from START to STOP in windows of WINDOW bytes and pickle the Part.

    `argv` is PARENT PATH START STOP WINDOW; PARENT is the directory the parent's runwise lives in.
    A child that imported runwise from elsewhere exits jsonl_workers.WRONG_RUNWISE.
    """
    parent, path, start, stop, window = argv
    if Path(jw.PACKAGE_PARENT) != Path(parent).resolve():
        sys.stderr.write(f"runwise imported from {jw.PACKAGE_PARENT}, expected {parent}\n")
        return jw.WRONG_RUNWISE
    part = read_part(path, int(start), int(stop), window=int(window))
    sys.stdout.buffer.write(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    return 0
