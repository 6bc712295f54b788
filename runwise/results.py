"""Analysis results kept per run version, so a repeated question about an unchanged run costs nothing.

A result is keyed by what it was computed from: the numpy arrays it read, by object identity, and
the parameters it was computed with (thresholds, keys, window, points, ...). Each entry holds weak
references to its arrays, and a lookup hits only while those are alive and are the very arrays
asked about, so a recycled `id()` never matches and the memo never keeps a run's data alive.

That identity is the run's version: a run that grew is read into new arrays (a source's refresh
builds new Series from the appended bytes on top of the old columns), so its results are computed
again, and those of the old version age out. A path reference (a shallow copy of the run, see
runwise.runs.load) shares the arrays, so it shares the results.

Bounded: at most MAX_ENTRIES results and MAX_WEIGHT of weight (a downsampled history weighs its
points), the least recently used go first; no result holds a Series or a run's arrays.
A grown run: an analysis that can go on from where it stopped (`grown`, e.g. statistics summed
block by block) is given the state it left for an earlier version whose arrays the new ones begin
with (the same values up to there, checked), and computes only the rest; the result is the same as
computed afresh. Every other analysis computes a new version in full.

Thread-safe, with single flight: a request for a result being computed waits for it instead of
computing it again (the MCP server answers tools in worker threads); a failed computation is not
remembered, and a waiting request then computes it itself.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
S = TypeVar("S")

MAX_ENTRIES = 4096  # results of every kind together; most are small (stats, a report, a verdict line)
MAX_WEIGHT = 2_000_000  # the sum of the entries' weights (a downsampled history weighs its points)


@dataclass(frozen=True)
class _Entry:
    arrays: tuple[weakref.ref[np.ndarray[Any, Any]], ...]
    value: object
    weight: int
    state: object = None  # what `grown`'s compute left, to go on from


@dataclass
class Counts:
    """How often a result was found (hits) and computed (misses), per kind, since the last clear();
    of the misses, how many went on from an earlier version's state (grown)."""

    hits: dict[str, int]
    misses: dict[str, int]
    grown: dict[str, int] = field(default_factory=dict)


_items: OrderedDict[Hashable, _Entry] = OrderedDict()
_pending: dict[Hashable, threading.Event] = {}
_lock = threading.Lock()
_counts = Counts({}, {})
_weight = 0  # the sum of the kept entries' weights
LINEAGE = 8  # per kind, parameters and first values: the most recent entries a grown version looks among
MAX_LINEAGES = 4096
# (kind, params, each array's first item as bytes) -> keys of the entries a grown version may go on from
_lineage: OrderedDict[tuple[str, Hashable, tuple[bytes, ...]], deque[Hashable]] = OrderedDict()


def memo(
    kind: str, arrays: Sequence[np.ndarray[Any, Any]], params: Hashable, compute: Callable[[], T],
    *, weight: Callable[[T], int] | None = None,
) -> T:
    """`compute()`'s result for these arrays and parameters, computed once per version of the arrays.

    `kind` names the analysis (a key's first part, and the counters'); `params` must be hashable
    and hold everything besides `arrays` that the result depends on. `weight` tells how much a
    large result counts against MAX_WEIGHT (1 by default). The result is shared by every caller:
    treat it as read-only.
    """
    return _memo(kind, arrays, params, lambda: (compute(), None), weight=weight, keep_state=False)


def _memo(
    kind: str, arrays: Sequence[np.ndarray[Any, Any]], params: Hashable, compute: Callable[[], tuple[T, Any]],
    *, weight: Callable[[T], int] | None, keep_state: bool,
) -> T:
    global _weight
    key = (kind, tuple(id(a) for a in arrays), params)
    while True:
        with _lock:
            entry = _items.get(key)
            if entry is not None and _same(entry, arrays):
                _items.move_to_end(key)
                _counts.hits[kind] = _counts.hits.get(kind, 0) + 1
                return entry.value  # type: ignore[return-value]  # stored by this function for this key
            waiting = _pending.get(key)
            if waiting is None:
                done = _pending[key] = threading.Event()
                _counts.misses[kind] = _counts.misses.get(kind, 0) + 1
                break
        waiting.wait()
    try:
        value, state = compute()
        entry = _Entry(tuple(weakref.ref(a) for a in arrays), value, 1 if weight is None else max(1, weight(value)),
                       state if keep_state else None)
        with _lock:
            old = _items.pop(key, None)
            _weight -= old.weight if old is not None else 0
            _items[key] = entry
            _weight += entry.weight
            if keep_state:
                head = (kind, params, _heads(arrays))
                line = _lineage.setdefault(head, deque(maxlen=LINEAGE))
                _lineage.move_to_end(head)
                while len(_lineage) > MAX_LINEAGES:
                    _lineage.popitem(last=False)
                if key in line:
                    line.remove(key)
                line.append(key)
            while len(_items) > 1 and (len(_items) > MAX_ENTRIES or _weight > MAX_WEIGHT):
                _weight -= _items.popitem(last=False)[1].weight
        return value
    finally:
        with _lock:
            del _pending[key]
        done.set()


def grown(
    kind: str, arrays: Sequence[np.ndarray[Any, Any]], params: Hashable,
    compute: Callable[[S | None], tuple[T, S]],
) -> T:
    """`memo`, for an analysis that can go on from an earlier version of the arrays.

    `compute(state)` returns the result and the state to go on from later; `state` is that of the
    longest of the recent earlier versions whose arrays these begin with (same dtype, no longer,
    and equal over their length), or None. It must return what it would with None.
    """
    def fresh() -> tuple[T, S]:
        with _lock:
            keys = list(_lineage.get((kind, params, _heads(arrays)), ()))
            found = [e for k in reversed(keys) if (e := _items.get(k)) is not None and e.state is not None]
        olds = [[ref() for ref in e.arrays] for e in found]
        by_size = sorted(range(len(found)), key=lambda i: -sum(a.size for a in olds[i] if a is not None))
        for i in by_size:  # the longest earlier version saves the most
            entry, old = found[i], olds[i]
            if _prefix(old, arrays):
                with _lock:
                    _counts.grown[kind] = _counts.grown.get(kind, 0) + 1
                return compute(entry.state)  # type: ignore[arg-type]  # stored by this function for this kind
        return compute(None)

    return _memo(kind, arrays, params, fresh, weight=None, keep_state=True)


def _prefix(old: Sequence[np.ndarray[Any, Any] | None], new: Sequence[np.ndarray[Any, Any]]) -> bool:
    """Whether each of `new` begins with the (still living, 1-D) array of `old` at its place."""
    for a, b in zip(old, new, strict=True):
        if a is None or a.ndim != 1 or b.ndim != 1 or a.dtype != b.dtype or not 0 < a.size <= b.size:
            return False
    pairs = [(_bits(a), _bits(b[: a.size])) for a, b in zip(old, new, strict=True) if a is not None]
    for a, b in pairs:  # a few samples first: another series of the same length differs at once
        for i in (a.size - 1, 0, a.size // 2):
            if a[i] != b[i]:
                return False
    return all(np.array_equal(a, b) for a, b in pairs)


def _heads(arrays: Sequence[np.ndarray[Any, Any]]) -> tuple[bytes, ...]:
    """Each array's first item, as bytes: a grown version begins as the earlier one did."""
    return tuple(a.reshape(-1)[:1].tobytes() for a in arrays)


def _bits(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The array's bits as unsigned integers: equal exactly when the values are the same (NaN and -0.0 too)."""
    return a.view(f"u{a.itemsize}") if a.itemsize in (1, 2, 4, 8) else a


def _same(entry: _Entry, arrays: Sequence[np.ndarray[Any, Any]]) -> bool:
    """Whether the entry was computed from exactly these (still living) arrays."""
    return all(ref() is a for ref, a in zip(entry.arrays, arrays, strict=True))


def counts() -> Counts:
    """A copy of the hit and miss counters."""
    with _lock:
        return Counts(dict(_counts.hits), dict(_counts.misses), dict(_counts.grown))


def clear() -> None:
    """Forget every result and reset the counters."""
    global _weight
    with _lock:
        _items.clear()
        _lineage.clear()
        _weight = 0
        _counts.hits.clear()
        _counts.misses.clear()
        _counts.grown.clear()


def size() -> tuple[int, int]:
    """How many results are kept, and their total weight."""
    with _lock:
        return len(_items), _weight
