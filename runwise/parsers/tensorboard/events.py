"""tfevents files: TFRecord framing (runwise.parsers.tensorboard.tfrecord) + `Event` decoding into columns.

Byte layout (each record; see tfrecord for the damage policy and crc32c for the checksum):

    length u64 LE | mask(crc32c(length)) u32 LE | data: Event protobuf | mask(crc32c(data)) u32 LE

Event payloads (field numbers in tensorboard.wire) are decoded per chunk of records, grouped by
length. In each group one record is decoded by the Python wire decoder, and every record that
differs from it only in the wall-time, step and value bytes (tensorboardX `add_scalar`:
`09 <wall f64> [10 <step varint>] 2a L1 0a L2 0a L3 <tag> 15 <f32>`; TF2 tensor scalars with
their metadata) is decoded at once with numpy column slices. The remaining records (first events,
text, hparams, histograms, odd layouts) go through the Python decoder one by one. The result is
columnar: per tag, steps (int64), values (float64) and wall times (float64), in file order.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from runwise.parsers.tensorboard.crc32c import crc32c_many, crc32c_rows, mask_array
from runwise.parsers.tensorboard.tfrecord import (
    CHUNK,
    HEADER,
    Frames,
    FrameStats,
    iter_frames,
    iter_records,
)
from runwise.parsers.tensorboard.wire import Event, decode_event, decode_hparams

__all__ = [
    "EventColumns",
    "FrameStats",
    "Frames",
    "TagColumns",
    "iter_frames",
    "iter_records",
    "merge_columns",
    "read_events",
]

U8 = NDArray[np.uint8]
I64 = NDArray[np.int64]

F64 = NDArray[np.float64]
Part = tuple[I64, I64, F64, F64]  # record index in chunk, steps, values, wall times
MIN_GROUP = 8  # records of one length below this go straight to the Python decoder
MAX_TEMPLATES = 32  # layouts tried per length group before the rest goes to the Python decoder
_DECODE_ERRORS = (ValueError, IndexError, struct.error)


@dataclass(slots=True)
class TagColumns:
    """One tag's points in file order (chunks appended; concatenate with `arrays`)."""

    steps: list[I64] = field(default_factory=list)
    values: list[F64] = field(default_factory=list)
    walls: list[F64] = field(default_factory=list)

    def arrays(self) -> tuple[I64, F64, F64]:
        def cat(parts: list[NDArray[Any]], dtype: type) -> NDArray[Any]:
            return np.concatenate(parts) if parts else np.empty(0, dtype)

        return cat(self.steps, np.int64), cat(self.values, np.float64), cat(self.walls, np.float64)


@dataclass(slots=True)
class EventColumns:
    """Everything runwise keeps from one tfevents file."""

    scalars: dict[str, TagColumns] = field(default_factory=dict)  # simple_value
    tensors: dict[str, TagColumns] = field(default_factory=dict)  # one-element numeric tensors
    plugins: dict[str, str] = field(default_factory=dict)  # tag -> plugin_name (first seen)
    kinds: dict[str, str] = field(default_factory=dict)  # non-numeric tag -> "histogram", "image", ...
    texts: list[tuple[str, int, str]] = field(default_factory=list)  # (tag, step, text)
    hparams: dict[str, Any] = field(default_factory=dict)
    file_version: str | None = None
    first_wall: float | None = None
    last_wall: float | None = None
    purge_steps: list[int] = field(default_factory=list)  # SessionLog START (tensorboardX purge_step)
    undecodable: int = 0  # CRC-valid records that are not a valid Event
    stats: FrameStats = field(default_factory=FrameStats)

    def _walls(self, lo: float, hi: float) -> None:
        if lo > 0:
            self.first_wall = lo if self.first_wall is None else min(self.first_wall, lo)
        if hi > 0:
            self.last_wall = hi if self.last_wall is None else max(self.last_wall, hi)


def read_events(
    fp: BinaryIO,
    *,
    path: str,
    chunk_size: int = CHUNK,
    progress: Callable[[int], None] | None = None,
    check_crc: bool = True,
    start: int = 0,
) -> EventColumns:
    """Read a tfevents stream into columns. Raises UnsupportedFormat if it is not TFRecord.

    With `start`, read from that offset (a record boundary) on: the records a grown file appended
    after a previous read, to be joined to it with `merge_columns`.
    """
    out = EventColumns()
    if start:
        fp.seek(start)
    # data CRCs are checked here, per layout group: bytes shared with the template row cost once
    frames = iter_frames(
        fp, path=path, stats=out.stats, chunk_size=chunk_size, progress=progress, check_crc=False, start=start
    )
    for fr in frames:
        _decode_chunk(fr, out, check_crc)
    return out


MAX_PARTS = 64  # chunk arrays kept per tag before merge_columns joins them


def merge_columns(old: EventColumns, new: EventColumns) -> EventColumns:
    """`old` (a file read up to a record boundary) followed by `new` (the rest, read from there):
    the columns a single read of the whole file gives. Neither input is modified (arrays are shared).
    """
    plugins, kinds = dict(old.plugins), dict(old.kinds)
    for tag, plugin in new.plugins.items():
        plugins.setdefault(tag, plugin)
    for tag, kind in new.kinds.items():
        kinds.setdefault(tag, kind)
    firsts = [w for w in (old.first_wall, new.first_wall) if w is not None]
    lasts = [w for w in (old.last_wall, new.last_wall) if w is not None]
    a, b = old.stats, new.stats
    stats = FrameStats(
        records=a.records + b.records,
        bad_crc=a.bad_crc + b.bad_crc,
        lost_framing=a.lost_framing + b.lost_framing,
        skipped_bytes=a.skipped_bytes + b.skipped_bytes,
        truncated=b.truncated,
        damage_offsets=(a.damage_offsets + b.damage_offsets)[:8],
        size=a.size - a.truncated + b.size,
        resyncing=b.resyncing,
    )
    return EventColumns(
        scalars=_merge_tags(old.scalars, new.scalars),
        tensors=_merge_tags(old.tensors, new.tensors),
        plugins=plugins,
        kinds=kinds,
        texts=old.texts + new.texts,
        hparams={**old.hparams, **new.hparams},
        file_version=old.file_version if old.file_version is not None else new.file_version,
        first_wall=min(firsts) if firsts else None,
        last_wall=max(lasts) if lasts else None,
        purge_steps=old.purge_steps + new.purge_steps,
        undecodable=old.undecodable + new.undecodable,
        stats=stats,
    )


def _merge_tags(old: dict[str, TagColumns], new: dict[str, TagColumns]) -> dict[str, TagColumns]:
    out = dict(old)
    for tag, tc in new.items():
        prev = out.get(tag)
        if prev is None:
            out[tag] = tc
            continue
        joined = TagColumns(prev.steps + tc.steps, prev.values + tc.values, prev.walls + tc.walls)
        if len(joined.steps) > MAX_PARTS:
            steps, values, walls = joined.arrays()
            joined = TagColumns([steps], [values], [walls])
        out[tag] = joined
    return out


def _decode_chunk(fr: Frames, out: EventColumns, check_crc: bool) -> None:
    parts: dict[tuple[bool, str], list[Part]] = {}
    slow: list[int] = []
    lens = fr.lengths
    stored = None
    if check_crc:
        ends = fr.offsets + lens
        stored = (
            np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(fr.buf, 4)[ends])
            .view("<u4")
            .ravel()
        )
    order = np.argsort(lens, kind="stable")
    for idx in np.split(order, np.flatnonzero(np.diff(lens[order])) + 1):
        length = int(lens[idx[0]])
        if idx.size < MIN_GROUP or length > BLOCK_MAX:
            slow.extend(idx.tolist())
        else:
            _decode_group(fr, np.sort(idx), length, parts, out, slow, stored)
    if slow:
        picked = np.array(sorted(slow), dtype=np.int64)
        if stored is not None:
            crc = crc32c_many(fr.buf, fr.offsets[picked], lens[picked])
            picked = picked[_keep_valid(fr, out, picked, mask_array(crc) == stored[picked])]
        _decode_slow(fr, picked.tolist(), parts, out)
    for (is_tensor, tag), plist in parts.items():
        if len(plist) == 1:
            _, steps, values, walls = plist[0]
        else:
            seq = np.concatenate([p[0] for p in plist])
            o = np.argsort(seq, kind="stable")
            steps, values, walls = (np.concatenate([p[k] for p in plist])[o] for k in (1, 2, 3))
        target = (out.tensors if is_tensor else out.scalars).setdefault(tag, TagColumns())
        target.steps.append(steps)
        target.values.append(values)
        target.walls.append(walls)
        seen = walls[walls > 0]
        if seen.size:
            out._walls(float(seen.min()), float(seen.max()))


BLOCK_MAX = 256  # longest record decoded by templates


def _decode_group(
    fr: Frames,
    idx: I64,
    length: int,
    parts: dict[tuple[bool, str], list[Part]],
    out: EventColumns,
    slow: list[int],
    stored: NDArray[np.uint32] | None,
) -> None:
    """Records of one length: decode one with the Python decoder, then every record that differs
    from it only in the wall-time, step and value bytes, all at once; repeat with the rest."""
    rows_all = np.lib.stride_tricks.sliding_window_view(fr.buf, length)[fr.offsets[idx]]
    remaining = np.arange(idx.size)
    for _ in range(MAX_TEMPLATES):
        if remaining.size == 0:
            return
        rows = rows_all if remaining.size == idx.size else rows_all[remaining]
        try:
            ev = decode_event(rows[0].tobytes())
        except _DECODE_ERRORS:
            ev = None
        layout = _layout(ev, length) if ev is not None else None
        if ev is None or layout is None:
            slow.append(int(idx[remaining[0]]))
            remaining = remaining[1:]
            continue
        variable, step_span = layout
        match = np.all((rows == rows[0]) | variable, axis=1)
        if step_span is not None:
            s, k = step_span
            match &= rows[:, s + k - 1] < 0x80
            for c in range(s, s + k - 1):
                match &= rows[:, c] >= 0x80
        sel = rows if match.all() else rows[match]
        seq = idx[remaining[match]]
        remaining = remaining[~match]
        if stored is not None:  # sel[0] is the template: every other byte equals it
            ok = _keep_valid(fr, out, seq, mask_array(crc32c_rows(sel, const_cols=~variable)) == stored[seq])
            if not ok.all():
                sel, seq = sel[ok], seq[ok]
        steps = (
            _varints(sel, step_span) if step_span is not None else np.full(sel.shape[0], ev.step, np.int64)
        )
        if ev.wall_span is not None:
            w = ev.wall_span
            walls = np.ascontiguousarray(sel[:, w : w + 8]).view("<f8").ravel()
        else:
            walls = np.zeros(sel.shape[0])
        for v in ev.values:
            if v.span is None:
                continue
            o, width, fmt = v.span
            values = np.ascontiguousarray(sel[:, o : o + width]).view(fmt).ravel().astype(np.float64)
            parts.setdefault((v.kind != "scalar", v.tag), []).append((seq, steps, values, walls))
            if v.plugin:
                out.plugins.setdefault(v.tag, v.plugin)
    slow.extend(idx[remaining].tolist())


def _keep_valid(fr: Frames, out: EventColumns, seq: I64, ok: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Count and note the records whose data CRC failed; return `ok`."""
    bad = int(ok.size - np.count_nonzero(ok))
    if bad:
        out.stats.bad_crc += bad
        out.stats.records -= bad
        for off in fr.offsets[seq[~ok]][:8].tolist():
            out.stats.note(fr.base + off - HEADER)
    return ok


def _layout(ev: Event, length: int) -> tuple[NDArray[np.bool_], tuple[int, int] | None] | None:
    """Which bytes vary between events shaped like `ev` (None if `ev` cannot serve as a template)."""
    if ev.file_version is not None or ev.other or ev.session_status or not ev.values:
        return None
    if ev.step and ev.step_span is None:
        return None
    variable = np.zeros(length, dtype=bool)
    if ev.wall_span is not None:
        variable[ev.wall_span : ev.wall_span + 8] = True
    if ev.step_span is not None:
        variable[ev.step_span[0] : ev.step_span[0] + ev.step_span[1]] = True
    for v in ev.values:
        if v.number is None or v.span is None:
            return None
        variable[v.span[0] : v.span[0] + v.span[1]] = True
    return variable, ev.step_span


def _varints(rows: U8, span: tuple[int, int]) -> I64:
    s, k = span
    acc = np.zeros(rows.shape[0], dtype=np.uint64)
    for i in range(k):
        acc |= (rows[:, s + i] & np.uint8(0x7F)).astype(np.uint64) << np.uint64(7 * i)
    return acc.view(np.int64)


def _decode_slow(
    fr: Frames, seqs: list[int], parts: dict[tuple[bool, str], list[Part]], out: EventColumns
) -> None:
    """The Python decoder, record by record (first events, text, hparams, histograms, odd layouts)."""
    cols: dict[tuple[bool, str], tuple[list[int], list[int], list[float], list[float]]] = {}
    for i in seqs:
        off = int(fr.offsets[i])
        try:
            ev = decode_event(fr.buf[off : off + int(fr.lengths[i])].tobytes())
        except _DECODE_ERRORS:
            out.undecodable += 1
            out.stats.note(fr.base + off - HEADER)
            continue
        if ev.file_version is not None and out.file_version is None:
            out.file_version = ev.file_version
        if ev.wall_time > 0:
            out._walls(ev.wall_time, ev.wall_time)
        if ev.session_status == 1:
            out.purge_steps.append(ev.step)
        if ev.other:
            out.kinds.setdefault(ev.other, ev.other)
        for v in ev.values:
            if v.plugin:
                out.plugins.setdefault(v.tag, v.plugin)
            if v.number is not None:
                c = cols.setdefault((v.kind != "scalar", v.tag), ([], [], [], []))
                c[0].append(i)
                c[1].append(ev.step)
                c[2].append(v.number)
                c[3].append(ev.wall_time)
            elif v.kind == "hparams":
                out.hparams.update(decode_hparams(v.content))
            else:
                out.kinds.setdefault(v.tag, v.kind if v.kind != "tensor" else (v.plugin or "tensor"))
                if v.kind == "text" and v.text is not None:
                    out.texts.append((v.tag, ev.step, v.text))
    for key, (seq, steps, values, walls) in cols.items():
        parts.setdefault(key, []).append(
            (
                np.array(seq, np.int64),
                np.array(steps, np.int64),
                np.array(values, np.float64),
                np.array(walls),
            )
        )
