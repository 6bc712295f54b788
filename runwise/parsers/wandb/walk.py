"""Protobuf walked with numpy: one pass per field *position*, over every message at once.

`walk` finds all fields of a batch of messages (each numpy pass reads the next field of every
message still open); `items` reads W&B history/summary items, taking the common layout
`tag len key [0x12 len key]* 0x82 0x01 len value_json` with a few gathers and walking the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]
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



def u64view(buf: bytearray) -> NDArray[np.uint64]:
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
        tag8 = u8[p]
        ln8 = u8[np.minimum(p + 1, last)]
        if ((tag8 & 0x87) == 2).all() and (ln8 < 0x80).all():
            # the common pass: one-byte tags of length-delimited fields with one-byte lengths
            tag = tag8.astype(np.int64)
            wt = tag & 7
            vs = p + 2
            ve = vs + ln8
        else:
            tag, wt, vs, ve = _any_fields(u8, p, tag8)
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


def _any_fields(u8: U8, p: I64, tag8: U8) -> tuple[I64, I64, I64, I64]:
    """(tag, wire type, value start, value end) of the fields at p, of any wire type (end -1: group)."""
    last = u8.size - 1
    tag = tag8.astype(np.int64)
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
    return tag, wt, vs, ve


MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def groups(h: NDArray[np.uint64]) -> list[I64]:
    """Indices of each distinct hash, each in array order."""
    if not h.size:
        return []
    uniq, inv = np.unique(h, return_inverse=True)
    if uniq.size == 1:
        return [np.arange(h.size, dtype=np.int64)]
    order = np.argsort(inv.astype(np.uint16 if uniq.size < 65536 else np.int64), kind="stable")
    cuts = np.cumsum(np.bincount(inv, minlength=uniq.size))[:-1]
    return list(np.split(order, cuts))


def same_bytes(u64: NDArray[np.uint64], s: I64, n: I64, ref: int, ref_n: int) -> NDArray[np.bool_]:
    """Which spans (s, n) equal the span at `ref` byte for byte (guards against hash collisions)."""
    ok = n == ref_n
    for j in range((ref_n + 7) // 8):
        mask = MASKS[min(8, ref_n - 8 * j)]
        ok &= (u64[s + 8 * j] & mask) == (u64[ref + 8 * j] & mask)
    return np.asarray(ok, dtype=bool)


def items(u8: U8, s: I64, e: I64) -> tuple[I64, I64, I64, NDArray[np.bool_], NDArray[np.bool_]]:
    """Key span end, value_json span and flags of items u8[s:e]: (key_end, val_s, val_e, odd, typed).

    The key span is s..key_end (tags included, so `key` and `nested_key` never look alike). Items
    shaped `tag len key 0x82 0x01 len value` are read with a few gathers; the rest are walked.
    """
    last = u8.size - 1
    b0 = u8[s]
    ln0 = u8[np.minimum(s + 1, last)]
    fast = ((b0 == 0x0A) | (b0 == 0x12)) & (ln0 < 0x80)
    ke = s + 2 + ln0  # after the first key part, on whole arrays (no index lists yet)
    live = np.flatnonzero(fast & (u8[np.minimum(ke, last)] == 0x12))
    for _ in range(3):  # up to three more nested_key parts, each `0x12 len(<128) text`: few items
        if not live.size:
            break
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
