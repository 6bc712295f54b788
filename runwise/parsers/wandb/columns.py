"""Bulk decoding of W&B records with numpy: many records per operation, never one Python call per item.

A window's records are walked as protobuf *in parallel* (`wandb.walk`): each numpy pass reads the
next field of every message still open. History items are grouped by their exact key bytes
(three 8-byte words identify keys of up to 24 bytes; longer ones are hashed, then compared byte
for byte), and each key's value_json texts are parsed at once (`numbers`). Summary records, two
thirds of a log, are walked the same way but only the last update of each key is decoded.
Anything the bulk path does not expect (typed history values, fields out of order, dict values of
old clients) goes to the exact per-item decoder in `wandb.records`, so the bulk path is a
shortcut, never a different answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from runwise.parsers.wandb import records as rec
from runwise.parsers.wandb import walk as ww
from runwise.parsers.wandb.log import Window
from runwise.parsers.wandb.walk import M64, MASKS, same_bytes, u64view, varints, walk

I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]
ONEOF = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 18, 20, 21, 22, 23, 24, 25, 26, 27)
HISTORY, SUMMARY = 2, 3
SKIP = (7, 11, 6, 26, 21)  # stats, telemetry, files, environment, header: not needed
MAX_NUM_WIDTH = 40
INTERNAL = (("_runtime",), ("_timestamp",), ("_step",))


@dataclass(slots=True)
class Columns:
    """What a window (then a whole segment) contributes: per-key chunks of steps and values."""

    steps: dict[str, list[I64]] = field(default_factory=dict)
    values: dict[str, list[NDArray[np.float64]]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # non-numeric keys -> kind
    media: dict[str, str] = field(default_factory=dict)  # media prefix -> _type
    summary: dict[tuple[str, ...], tuple[int, Any]] = field(default_factory=dict)  # path -> (offset, value)
    removed: dict[tuple[str, ...], int] = field(default_factory=dict)
    others: list[tuple[int, int, bytes]] = field(default_factory=list)  # (offset, kind, body) run/config/...
    last_step: int = -1
    rows: int = 0
    undecodable: int = 0
    numbered: int = 0  # rows with no step at all, numbered after the last step seen before them
    key_cache: dict[bytes, tuple[str, ...]] = field(default_factory=dict)

    def add(self, key: str, steps: I64, values: NDArray[np.float64]) -> None:
        if steps.size:
            self.steps.setdefault(key, []).append(steps)
            self.values.setdefault(key, []).append(values)


def add_value(cols: Columns, path: tuple[str, ...], step: int, value: Any) -> None:
    """Add one decoded history value: numbers and booleans to series, the rest noted by kind."""
    key = ".".join(path)
    if isinstance(value, dict):
        if "_type" in value:
            cols.media[key] = str(value["_type"])
        else:
            for k, v in value.items():
                add_value(cols, (*path, str(k)), step, v)
    elif path[-1] == "_type" and len(path) > 1:
        cols.media[".".join(path[:-1])] = str(value)
    elif isinstance(value, (bool, int, float)):
        cols.add(key, np.array([step], np.int64), np.array([float(value)]))
    elif isinstance(value, str):
        cols.kinds.setdefault(key, "string")
    elif isinstance(value, list):
        cols.kinds.setdefault(key, "list")


def _json_numbers(u8: U8, s: I64, ln: I64, out: NDArray[np.float64], idx: I64) -> bool:
    """Parse the texts u8[s:s+ln] as one JSON array into out[idx]; False (nothing set) unless every
    text is one JSON number. orjson parses an array several times faster than numpy casts bytes
    strings to float; NaN and Infinity are not JSON, so logs that hold them take the cast."""
    ends = np.cumsum(ln + 1)
    pos = np.arange(int(ends[-1]), dtype=np.int64) - np.repeat(ends - (ln + 1) - s, ln + 1)
    txt = u8[pos]
    txt[ends - 1] = 44  # a comma after each text, the last one replaced by "]"
    if np.count_nonzero(txt == 44) != idx.size:  # a comma inside a text: not one number each
        return False
    txt[-1] = 93
    try:
        vals = np.array(orjson.loads(b"[" + txt.tobytes()), dtype=np.float64)
    except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
        return False
    if vals.shape != idx.shape:
        return False
    vals[(vals == 0) & (u8[s] == 45)] = -0.0  # JSON "-0" is the integer 0 to orjson
    out[idx] = vals
    return True


def numbers(
    u8: U8, u64: NDArray[np.uint64], vs: I64, ve: I64
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Parse JSON scalars at once: (values, usable). Booleans count as 0/1; other kinds are unusable."""
    n = ve - vs
    c0 = u8[vs]
    out = np.full(vs.size, np.nan)
    num = ((c0 >= 48) & (c0 <= 57)) | (c0 == 45) | (c0 == 78) | (c0 == 73)  # digit - N(aN) I(nfinity)
    num &= (n > 0) & (n <= MAX_NUM_WIDTH)
    t, f = (c0 == 116) & (n == 4), (c0 == 102) & (n == 5)
    out[t], out[f] = 1.0, 0.0
    idx = np.flatnonzero(num)
    if idx.size and not _json_numbers(u8, vs[idx], n[idx], out, idx):
        s, ln = vs[idx], n[idx]
        words = int(ln.max() + 7) // 8
        mat = np.zeros((idx.size, words), dtype="<u8")
        for j in range(words):
            rem = np.clip(ln - 8 * j, 0, 8)
            w = u64[np.minimum(s + 8 * j, u64.size - 1)]  # a word past a short text's end is masked off
            mask = np.where(rem >= 8, M64, (np.uint64(1) << (rem * 8).astype(np.uint64)) - np.uint64(1))
            mat[:, j] = w & mask
        text = mat.view(f"S{8 * words}").ravel()
        try:
            out[idx] = text.astype(np.float64)
        except ValueError:  # something odd among them: parse one by one, keep what parses
            for k, tx in zip(idx.tolist(), text.tolist(), strict=True):
                try:
                    out[k] = float(tx)
                except ValueError:
                    num[k] = False
    return out, num | t | f


def _key_path(sig: bytes, cache: dict[bytes, tuple[str, ...]]) -> tuple[str, ...]:
    path = cache.get(sig)
    if path is None:
        path = rec.item_path(sig)
        cache[sig] = path
    return path


def _key_groups(u8: U8, u64: NDArray[np.uint64], item_s: I64, key_end: I64, idx: I64,
                cache: dict[bytes, tuple[str, ...]]) -> list[tuple[tuple[str, ...], I64]]:
    """Group items `idx` by their exact key bytes: [(key path, item indices in array order)].

    Keys of up to 24 bytes (tags included) are identified exactly by three 8-byte words and the
    length; longer ones are hashed and then compared byte for byte. (wandb writes a row's keys in
    no fixed order, so runs of one key along the items cannot stand in for the hash sort.)
    """
    st = item_s[idx]
    n = key_end[idx] - st
    w0 = u64[st] & MASKS[np.minimum(n, 8)]
    long = n > 16  # the middle word only for keys over 16 bytes (tags included): rare, skip the gather
    w1 = np.where(long, u64[st + 8], np.uint64(0)) if long.any() else np.zeros(st.size, np.uint64)
    w2 = np.where(n > 8, u64[np.maximum(st + n - 8, 0)], np.uint64(0))
    h = n.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for w in (w0, w1, w2):
        h ^= w
        h *= np.uint64(0x100000001B3)
        h ^= h >> np.uint64(29)
    out: list[tuple[tuple[str, ...], I64]] = []
    for g in ww.groups(h):
        while g.size:
            r = g[0]
            a, ln = int(st[r]), int(n[r])
            if ln <= 24:
                same = (n[g] == ln) & (w0[g] == w0[r]) & (w1[g] == w1[r]) & (w2[g] == w2[r])
            else:
                same = same_bytes(u64, st[g], n[g], a, ln)
            path = _key_path(bytes(u8[a : a + ln]), cache)
            if same.all():
                out.append((path, idx[g]))
                break
            out.append((path, idx[g[same]]))
            g = g[~same]
    return out


def _history(u8: U8, u64: NDArray[np.uint64], s: I64, e: I64, cols: Columns) -> None:
    body = walk(u8, s, e)
    items = np.flatnonzero((body.num == 1) & (body.wt == 2))
    steps = np.full(s.size, -1, dtype=np.int64)
    st = np.flatnonzero((body.num == 2) & (body.wt == 2))
    if st.size:
        sf = walk(u8, body.vs[st], body.ve[st])
        steps[body.msg[st]] = 0  # an empty HistoryStep means step 0
        k = np.flatnonzero((sf.num == 1) & (sf.wt == 0))
        steps[body.msg[st][sf.msg[k]]] = varints(u8, sf.vs[k])[0]
    imsg = body.msg[items]
    item_s, item_e = body.vs[items], body.ve[items]
    key_end, val_s, val_e, odd, _ = ww.items(u8, item_s, item_e)
    odd |= body.bad[imsg]
    slow_rows: dict[int, list[tuple[tuple[str, ...], Any]]] = {}
    for i in np.flatnonzero(odd).tolist():  # typed values, odd layouts: decode exactly
        try:
            slow_rows.setdefault(int(imsg[i]), []).append(rec.history_item(bytes(u8[item_s[i] : item_e[i]])))
        except rec.BAD_ITEM:
            cols.undecodable += 1
    groups = _key_groups(u8, u64, item_s, key_end, np.flatnonzero(~odd), cols.key_cache)
    if (steps < 0).any():  # clients without a step field: the _step item gives it
        for path, idx in groups:
            if path == ("_step",):
                v, okv = numbers(u8, u64, val_s[idx], val_e[idx])
                miss = (steps[imsg[idx]] < 0) & okv
                steps[imsg[idx][miss]] = v[miss].astype(np.int64)
        for r, pairs in slow_rows.items():
            for path, v in pairs:
                if path == ("_step",) and steps[r] < 0 and isinstance(v, (int, float)):
                    steps[r] = int(v)
        gap = np.flatnonzero(steps < 0)
        if gap.size:  # no step at all: number those rows after the last known one
            steps[gap] = cols.last_step + 1 + np.arange(gap.size)
            cols.numbered += int(gap.size)
    cols.rows += s.size
    if steps.size:
        cols.last_step = max(cols.last_step, int(steps.max()))
    slot = np.full(s.size, -1, dtype=np.int64)
    for path, idx in groups:
        slot[imsg[idx]] = idx  # order by record without sorting (one item per key and row)
        ordered = slot[slot >= 0]
        if ordered.size == idx.size:
            slot[imsg[idx]] = -1
            idx = ordered
        else:
            slot[:] = -1
            idx = idx[np.argsort(imsg[idx], kind="stable")]
        if path in INTERNAL:  # only the newest value is used (runtime, last write)
            idx = idx[-1:]
        _add_values(cols, path, steps[imsg[idx]], u8, u64, val_s[idx], val_e[idx])
    for r, pairs in sorted(slow_rows.items()):
        for path, v in pairs:
            add_value(cols, path, int(steps[r]), v)


def _add_values(cols: Columns, path: tuple[str, ...], steps: I64, u8: U8, u64: NDArray[np.uint64],
                vs: I64, ve: I64) -> None:
    key = ".".join(path)
    if path[-1] == "_type" and len(path) > 1:
        cols.media[".".join(path[:-1])] = rec.loads(bytes(u8[vs[-1] : ve[-1]]))
        return
    vals, ok = numbers(u8, u64, vs, ve)
    cols.add(key, steps[ok], vals[ok])
    if ok.all():
        return
    rest = np.flatnonzero(~ok)
    c0 = u8[vs[rest]]
    if (c0 == 34).any():
        cols.kinds.setdefault(key, "string")
    if (c0 == 91).any():
        cols.kinds.setdefault(key, "list")
    for i in rest[c0 == 123].tolist():  # dict values (old clients): flatten, or note the media type
        add_value(cols, path, int(steps[i]), rec.loads(bytes(u8[vs[i] : ve[i]])))


def _summary(u8: U8, u64: NDArray[np.uint64], s: I64, e: I64, offs: I64, cols: Columns) -> None:
    body = walk(u8, s, e)
    for i in np.flatnonzero((body.num == 2) & (body.wt == 2)).tolist():
        try:
            path = rec.summary_item(bytes(u8[body.vs[i] : body.ve[i]]))[0]
        except rec.BAD_ITEM:
            cols.undecodable += 1
            continue
        cols.removed[path] = max(cols.removed.get(path, -1), int(offs[body.msg[i]]))
    up = np.flatnonzero((body.num == 1) & (body.wt == 2))
    if not up.size:
        return
    item_s, item_e = body.vs[up], body.ve[up]
    order = offs[body.msg[up]]
    key_end, _, _, odd, _ = ww.items(u8, item_s, item_e)
    for i in np.flatnonzero(odd).tolist():
        _set_summary(cols, bytes(u8[item_s[i] : item_e[i]]), int(order[i]))
    for _, members in _key_groups(u8, u64, item_s, key_end, np.flatnonzero(~odd), cols.key_cache):
        o = order[members]
        top = members[o == o.max()]
        last = int(top[np.argmax(item_s[top])])  # the last update in the newest record
        _set_summary(cols, bytes(u8[item_s[last] : item_e[last]]), int(order[last]))


def _set_summary(cols: Columns, item: bytes, offset: int) -> None:
    try:
        path, value = rec.summary_item(item)
    except rec.BAD_ITEM:
        cols.undecodable += 1
        return
    old = cols.summary.get(path)
    if old is None or old[0] <= offset:
        cols.summary[path] = (offset, value)


def decode_window(win: Window, cols: Columns) -> None:
    """Add a window's history, summary and other records to `cols`."""
    u8 = np.frombuffer(win.buf, np.uint8)
    u64 = u64view(win.buf)
    top = walk(u8, win.starts, win.ends)
    cols.undecodable += int(top.bad.sum())
    one = np.flatnonzero(np.isin(top.num, ONEOF) & (top.wt == 2) & ~top.bad[top.msg])
    kind = np.zeros(win.starts.size, dtype=np.int64)
    bs = np.zeros(win.starts.size, dtype=np.int64)
    be = np.zeros(win.starts.size, dtype=np.int64)
    kind[top.msg[one]], bs[top.msg[one]], be[top.msg[one]] = top.num[one], top.vs[one], top.ve[one]
    hist = np.flatnonzero(kind == HISTORY)
    if hist.size:
        _history(u8, u64, bs[hist], be[hist], cols)
    summ = np.flatnonzero(kind == SUMMARY)
    if summ.size:
        _summary(u8, u64, bs[summ], be[summ], win.offsets[summ], cols)
    rest = np.flatnonzero((kind != HISTORY) & (kind != SUMMARY) & (kind != 0) & ~np.isin(kind, SKIP))
    for i in rest.tolist():
        cols.others.append((int(win.offsets[i]), int(kind[i]), bytes(u8[bs[i] : be[i]])))
