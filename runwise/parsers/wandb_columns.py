"""Bulk decoding of W&B records with numpy: many records per operation, never one Python call per item.

A window's records are walked as protobuf *in parallel*: each numpy pass reads the next field of
every message still open (`walk`), so the cost is one pass per field position, not per field.
History items are grouped by their key bytes (hashed 8 bytes at a time, then checked byte for
byte), and each key's value_json texts are parsed at once (`numbers`). Summary records, two thirds
of a log, are walked the same way but only the last update of each key is decoded. Anything the
bulk path does not expect (typed history values, fields out of order, dict values of old clients)
goes to the exact per-item decoder in `wandb_records`, so the bulk path is a shortcut, never a
different answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runwise.parsers import wandb_records as rec
from runwise.parsers.wandb_log import Window

I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]
ONEOF = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 18, 20, 21, 22, 23, 24, 25, 26, 27)
HISTORY, SUMMARY = 2, 3
SKIP = (7, 11, 6, 26, 21)  # stats, telemetry, files, environment, header: not needed
MAX_NUM_WIDTH = 40
INTERNAL = (("_runtime",), ("_timestamp",), ("_step",))
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(slots=True)
class Fields:
    """Every field of a batch of messages: message index, number, wire type, value span, tag start."""

    msg: I64
    num: I64
    wt: I64
    vs: I64
    ve: I64
    fs: I64
    bad: NDArray[np.bool_]  # per message: malformed (field past its end)


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
    key_cache: dict[bytes, tuple[str, ...]] = field(default_factory=dict)

    def add(self, key: str, steps: I64, values: NDArray[np.float64]) -> None:
        if steps.size:
            self.steps.setdefault(key, []).append(steps)
            self.values.setdefault(key, []).append(values)


def _u64view(buf: bytearray) -> NDArray[np.uint64]:
    """Little-endian uint64 starting at every byte offset (unaligned gathers of 8 bytes)."""
    return np.ndarray(shape=(len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))


def varints(u8: U8, p: I64) -> tuple[I64, I64]:
    """Decode the varints starting at positions p: (values, positions after them)."""
    last = u8.size - 1
    b = u8[np.minimum(p, last)].astype(np.int64)
    val = b & 0x7F
    q = p + 1
    more = np.flatnonzero(b >= 0x80)
    shift = 7
    while more.size and shift < 64:
        b = u8[np.minimum(q[more], last)].astype(np.int64)
        val[more] |= (b & 0x7F) << shift
        q[more] += 1
        more = more[b >= 0x80]
        shift += 7
    return val, q


def _skip_varints(u8: U8, q: I64) -> I64:
    """Positions just after the varints starting at q."""
    last = u8.size - 1
    end = q + 1
    more = np.flatnonzero(u8[np.minimum(q, last)] >= 0x80)
    while more.size:
        b = u8[np.minimum(end[more], last)]
        end[more] += 1
        more = more[b >= 0x80]
    return end


def walk(u8: U8, s: I64, e: I64) -> Fields:
    """All fields of the messages u8[s[i]:e[i]], found one field position per numpy pass."""
    out: list[tuple[I64, ...]] = []
    bad = np.zeros(s.size, dtype=bool)
    live = np.flatnonzero(e > s)
    pos = s.copy()
    last = u8.size - 1
    while live.size:
        p = pos[live]
        tag = u8[p].astype(np.int64)
        q = p + 1
        big = np.flatnonzero(tag >= 0x80)  # two-byte tags: fields 16 and up
        if big.size:
            tag[big], q[big] = varints(u8, p[big])
        wt = tag & 7
        ve = np.full(p.size, -1, dtype=np.int64)
        vs = q.copy()
        i2 = np.flatnonzero(wt == 2)
        if i2.size:
            q2 = q[i2]
            ln = u8[np.minimum(q2, last)].astype(np.int64)
            vs2 = q2 + 1
            long = np.flatnonzero(ln >= 0x80)
            if long.size:
                ln[long], vs2[long] = varints(u8, q2[long])
            vs[i2], ve[i2] = vs2, vs2 + ln
        i0 = np.flatnonzero(wt == 0)
        if i0.size:
            ve[i0] = _skip_varints(u8, q[i0])
        i1 = np.flatnonzero(wt == 1)
        ve[i1] = q[i1] + 8
        i5 = np.flatnonzero(wt == 5)
        ve[i5] = q[i5] + 4
        broken = (ve < 0) | (ve > e[live]) | (tag < 8)
        if broken.any():
            bad[live[broken]] = True
            ok = ~broken
            live, tag, wt, vs, ve, p = live[ok], tag[ok], wt[ok], vs[ok], ve[ok], p[ok]
        out.append((live, tag >> 3, wt, vs, ve, p))
        pos[live] = ve
        live = live[ve < e[live]]
    if not out:
        z = np.zeros(0, np.int64)
        return Fields(z, z, z, z, z, z, bad)
    cols = [np.concatenate([o[k] for o in out]) for k in range(6)]
    return Fields(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], bad)


MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def _hash_spans(u64: NDArray[np.uint64], s: I64, n: I64) -> NDArray[np.uint64]:
    """A 64-bit hash of each byte span (s, length n), eight bytes per numpy pass."""
    h = n.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for j in range(int(n.max(initial=0) + 7) // 8):
        w = u64[s + 8 * j] & MASKS[np.clip(n - 8 * j, 0, 8)]
        h ^= w
        h *= np.uint64(0x100000001B3)
        h ^= h >> np.uint64(29)
    return h


def _groups(h: NDArray[np.uint64]) -> list[I64]:
    """Indices of each distinct hash, each in array order."""
    if not h.size:
        return []
    uniq, inv = np.unique(h, return_inverse=True)
    if uniq.size == 1:
        return [np.arange(h.size, dtype=np.int64)]
    order = np.argsort(inv.astype(np.uint16 if uniq.size < 65536 else np.int64), kind="stable")
    cuts = np.cumsum(np.bincount(inv, minlength=uniq.size))[:-1]
    return list(np.split(order, cuts))


def _same_bytes(u64: NDArray[np.uint64], s: I64, n: I64, ref: int, ref_n: int) -> NDArray[np.bool_]:
    """Which spans (s, n) equal the span at `ref` byte for byte (guards against hash collisions)."""
    ok = n == ref_n
    for j in range((ref_n + 7) // 8):
        mask = MASKS[min(8, ref_n - 8 * j)]
        ok &= (u64[s + 8 * j] & mask) == (u64[ref + 8 * j] & mask)
    return np.asarray(ok, dtype=bool)


def _items(u8: U8, s: I64, e: I64) -> tuple[I64, I64, I64, NDArray[np.bool_], NDArray[np.bool_]]:
    """Key span end, value_json span and flags of items u8[s:e]: (key_end, val_s, val_e, odd, typed).

    The key span is s..key_end (tags included, so `key` and `nested_key` never look alike). Items
    shaped `tag len key 0x82 0x01 len value` are read with a few gathers; the rest are walked.
    """
    last = u8.size - 1
    ke = s.copy()
    fast = (u8[s] == 0x0A) | (u8[s] == 0x12)
    live = np.flatnonzero(fast)
    for _ in range(4):  # key or up to four nested_key parts, each `tag len(<128) text`
        ln = u8[np.minimum(ke[live] + 1, last)].astype(np.int64)
        okl = ln < 0x80
        fast[live[~okl]] = False
        live = live[okl]
        ke[live] += 2 + ln[okl]
        live = live[u8[np.minimum(ke[live], last)] == 0x12]
    kc = np.minimum(ke, last - 3)
    v0 = u8[kc + 2].astype(np.int64)
    v1 = u8[kc + 3].astype(np.int64)
    one = v0 < 0x80
    val_s = np.where(one, ke + 3, ke + 4)
    val_e = val_s + np.where(one, v0, (v0 & 0x7F) | (v1 << 7))
    fast &= (u8[kc] == 0x82) & (u8[kc + 1] == 0x01) & (one | (v1 < 0x80)) & (val_e == e)
    key_end = np.where(fast, ke, -1)
    odd = ~fast
    typed = np.zeros(s.size, dtype=bool)
    slow = np.flatnonzero(~fast)
    if slow.size:
        f = walk(u8, s[slow], e[slow])
        n = slow.size
        kend = np.full(n, -1, dtype=np.int64)
        is_key = ((f.num == 1) | (f.num == 2)) & (f.wt == 2)
        np.maximum.at(kend, f.msg[is_key], f.ve[is_key])
        first_other = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_other, f.msg[~is_key], f.fs[~is_key])
        vj = np.flatnonzero((f.num == 16) & (f.wt == 2))
        vs_, ve_ = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
        vs_[f.msg[vj]], ve_[f.msg[vj]] = f.vs[vj], f.ve[vj]
        ty = np.zeros(n, dtype=bool)
        ty[f.msg[(f.num >= 3) & (f.num <= 8)]] = True
        key_end[slow], val_s[slow], val_e[slow], typed[slow] = kend, vs_, ve_, ty
        odd[slow] = ty | f.bad | (kend < 0) | (vs_ < 0) | (first_other < kend)
    return key_end, val_s, val_e, odd, typed


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
    if idx.size:
        s, ln = vs[idx], n[idx]
        words = int(ln.max() + 7) // 8
        mat = np.zeros((idx.size, words), dtype="<u8")
        for j in range(words):
            rem = np.clip(ln - 8 * j, 0, 8)
            w = u64[s + 8 * j]
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
    length; longer ones are hashed and then compared byte for byte.
    """
    st = item_s[idx]
    n = key_end[idx] - st
    w0 = u64[st] & MASKS[np.minimum(n, 8)]
    w1 = np.where(n > 16, u64[st + 8], 0).astype(np.uint64)
    w2 = np.where(n > 8, u64[np.maximum(st + n - 8, 0)], 0).astype(np.uint64)
    h = n.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for w in (w0, w1, w2):
        h ^= w
        h *= np.uint64(0x100000001B3)
        h ^= h >> np.uint64(29)
    out: list[tuple[tuple[str, ...], I64]] = []
    for g in _groups(h):
        while g.size:
            r = g[0]
            a, ln = int(st[r]), int(n[r])
            if ln <= 24:
                same = (n[g] == ln) & (w0[g] == w0[r]) & (w1[g] == w1[r]) & (w2[g] == w2[r])
            else:
                same = _same_bytes(u64, st[g], n[g], a, ln)
            out.append((_key_path(bytes(u8[a : a + ln]), cache), idx[g[same]]))
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
    key_end, val_s, val_e, odd, _ = _items(u8, item_s, item_e)
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
            rec.add_value(cols, path, int(steps[r]), v)


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
        rec.add_value(cols, path, int(steps[i]), rec.loads(bytes(u8[vs[i] : ve[i]])))


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
    key_end, _, _, odd, _ = _items(u8, item_s, item_e)
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
    u64 = _u64view(win.buf)
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
