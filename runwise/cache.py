"""On-disk columnar cache of parsed runs, so a second read of a big log is instant across processes.

One `.npz` file per run (its key and files, in the project) under the cache directory (default
`~/.cache/runwise`, `RUNWISE_CACHE_DIR`); never inside run directories. The entry records the
identity (paths, sizes, mtimes) of the files it was read from: the same identity is a hit. A run
whose files changed since finds its entry stale; if the entry holds the source's resume state
(`Run.resume`, encoded by runwise._state), `lookup` hands that back, and the source reads only
what was appended since (it checks first that the files only grew; else the run is read in full).
A new read of the run overwrites its one entry, so old identities do not pile up.
`RUNWISE_NO_CACHE=1`, `"cache": false` or `"cache_max_bytes": 0` in runwise.json turns it off.

Size: after each write the entries are held to `max_bytes` (runwise.json's `cache_max_bytes`,
default 2 GiB) by removing the least recently used first. "Used" is the file's mtime: a write
sets it, and a read that hits touches it (atime is not trusted: many disks mount with noatime).
Entries unused for a week are removed too.

Trust: an entry is used only if it is a readable npz whose `entry` record names this FORMAT,
this SCHEMA (a digest of the Run and Series fields, also in the file name) and the slot its file
name stands for, whose metadata builds a Run with fields of the right kinds, and whose arrays are
1-D int64 steps and float64 values of equal length (every array's bytes matching the CRC-32 the
zip records); a resume state must decode (runwise._state:
only allowlisted kinds of values, never a pickle). Anything else (truncated, random bytes,
another schema, a file renamed or copied from another entry) is a miss, and the file is removed:
the run is parsed again and the entry rebuilt.

Writes go to a temporary file in the cache directory, then `os.replace` it over the entry, so a
reader or a second writer never sees half a file. Hit, miss, resume, write, eviction and discard
counts are kept in `stats.json` (written the same way, under a lock file where the platform has flock).

Layout of an entry `<24 hex>.npz`: `entry` (JSON bytes: format, schema, slot digest, identity
digest, bytes of the files, run key, file paths), `meta` (the Run's metadata as JSON bytes), then
`s:<i>` / `v:<i>` (steps int64 / values float64 of the i-th metric, names in meta["metrics"]),
and, when the source left one, `resume` (the resume state's tree as JSON bytes) with its arrays
`r:<i>` (a state array that is also a metric's steps or values refers to `s:<i>` / `v:<i>`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from runwise import _state
from runwise._files import locked, replacing
from runwise.model import Run, Series

log = logging.getLogger("runwise.cache")

FORMAT = 3  # 3: one entry per run, holding its resume state
MIN_SECONDS = 0.3  # runs that parse faster than this are not worth a cache file
MAX_AGE = 7 * 24 * 3600
DEFAULT_MAX_BYTES = 2 * 1024**3
STATS_FILE = "stats.json"
LOCK_FILE = "stats.lock"
COUNTS = ("hits", "misses", "resumed", "writes", "evicted", "discarded")  # resumed: a stale entry read on from
_SKIP = {"history", "resume"}
_ENTRY = re.compile(r"[0-9a-f]{24}\.npz")
_TEMP = re.compile(r"(?:[0-9a-f]{24}(?:\.npz)?|stats\.json)\.[A-Za-z0-9_]+\.tmp")  # ours, also older versions'
# The kinds a Run field may hold, from its annotation (other annotations are not checked).
_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,), "bool": (bool,), "int | None": (int, type(None)), "float | None": (int, float, type(None)),
    "list[str]": (list,), "dict[str, Any]": (dict,), "dict[str, str]": (dict,),
}


def schema_digest(models: tuple[type, ...] = (Run, Series)) -> str:
    """A digest of the fields (names and types) of the dataclasses a cache file stores."""
    shape = [(cls.__name__, [(f.name, str(f.type)) for f in fields(cls) if f.name not in _SKIP]) for cls in models]
    return hashlib.sha1(repr(shape).encode()).hexdigest()[:12]


SCHEMA = schema_digest()


def _identity_digest(identity: tuple[object, ...]) -> str:
    return hashlib.sha1(repr((FORMAT, SCHEMA, identity)).encode()).hexdigest()


def _described(identity: tuple[object, ...]) -> tuple[str, list[str]]:
    """The run key (the identity's first item, when a string) and the file paths the identity names."""
    key = identity[0] if identity and isinstance(identity[0], str) else ""
    paths = [str(part[0]) for part in identity[1:] if isinstance(part, tuple) and part and isinstance(part[0], str)]
    return key, paths


def identity_bytes(identity: tuple[object, ...]) -> int:
    """The total size of the files an identity names (its (path, size, mtime) items; a missing file counts 0)."""
    return sum(max(0, part[1]) for part in identity[1:]
               if isinstance(part, tuple) and len(part) > 1 and isinstance(part[1], int))


def _slot(identity: tuple[object, ...], slot: object) -> str:
    """The digest an entry's file is named by: of `slot` (what stays the same while a run grows: its
    key and project, say), else of the identity's run key and file paths."""
    return hashlib.sha1(repr((FORMAT, SCHEMA, _described(identity) if slot is None else slot)).encode()).hexdigest()


def _file(cache_dir: Path, identity: tuple[object, ...], slot: object = None) -> Path:
    return cache_dir / f"{_slot(identity, slot)[:24]}.npz"


# ---------------------------------------------------------------- read


@dataclass(frozen=True)
class Found:
    """What `lookup` found: the run of this identity (`exact`), or of an older one, to read on from."""

    run: Run  # exact: the whole Run (without a resume state). Not exact: only its metadata and `resume`
    exact: bool
    bytes: int  # the size of the files the entry was read from


def read(cache_dir: Path, identity: tuple[object, ...], slot: object = None) -> Run | None:
    """The cached Run of `identity`; None if there is none (or only an older one) or it cannot be trusted."""
    found = lookup(cache_dir, identity, slot, stale=False)
    return None if found is None else found.run


def holds(cache_dir: Path, identity: tuple[object, ...], slot: object = None) -> bool:
    """Whether the entry of `slot` is of `identity`, from its `entry` record alone (no history read)."""
    path = _file(cache_dir, identity, slot)
    try:
        with path.open("rb") as fp, np.load(fp, allow_pickle=False) as z:
            entry = orjson.loads(z["entry"].tobytes())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, orjson.JSONDecodeError):
        return False
    return isinstance(entry, dict) and entry.get("identity") == _identity_digest(identity) and (
        entry.get("slot") == _slot(identity, slot))


def lookup(cache_dir: Path, identity: tuple[object, ...], slot: object = None, *, stale: bool = True) -> Found | None:
    """The entry of `slot`: the Run of `identity` (a hit), else, with `stale`, a Run of older files of
    the run holding the source's resume state (to read on from with `parsers.refresh`); None for a
    miss. An entry that cannot be trusted is removed; a hit or a stale entry handed out counts as used.
    """
    path = _file(cache_dir, identity, slot)
    if not path.is_file():
        _count(cache_dir, misses=1)
        return None
    try:
        found = _load(path, identity, slot, stale=stale)
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile, orjson.JSONDecodeError) as exc:
        log.debug("discarding unusable cache file %s: %s", path, exc)  # _state.StateError is a ValueError
        with contextlib.suppress(OSError):
            path.unlink()
        _count(cache_dir, misses=1, discarded=1)
        return None
    if found is None:
        _count(cache_dir, misses=1)
        return None
    with contextlib.suppress(OSError):  # a read-only cache still answers
        os.utime(path)  # recently used: eviction removes the least recently used first
    _count(cache_dir, **({"hits": 1} if found.exact else {"misses": 1, "resumed": 1}))
    return found


def _load(path: Path, identity: tuple[object, ...], slot: object, *, stale: bool) -> Found | None:
    """The entry at `path`, checked from end to end (ValueError & co. when it cannot be trusted); None
    when it is of other files and holds no resume state (or `stale` is off): not wrong, only old."""
    with path.open("rb") as fp, np.load(fp, allow_pickle=False) as z:  # np.load(path) leaks it on BadZipFile
        entry = orjson.loads(z["entry"].tobytes())
        if not isinstance(entry, dict):
            raise ValueError("entry record is not an object")
        if entry.get("format") != FORMAT or entry.get("schema") != SCHEMA:
            raise ValueError(f"of another format or run model: {entry.get('format')}/{entry.get('schema')}")
        if entry.get("slot") != _slot(identity, slot):
            raise ValueError("the entry is of another run (renamed or copied from another entry)")
        size = entry.get("bytes")
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValueError("the entry does not say the size of its files")
        exact = entry.get("identity") == _identity_digest(identity)
        if not exact and (not stale or "resume" not in z.files):
            return None
        meta = orjson.loads(z["meta"].tobytes())
        if not isinstance(meta, dict):
            raise ValueError("metadata is not an object")
        names = meta.pop("metrics")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("metric names are not a list of strings")
        _check_kinds(meta)
        if exact:
            history = {name: _series(name, _array(fp, z, f"s:{i}"), _array(fp, z, f"v:{i}"))
                       for i, name in enumerate(names)}
            return Found(Run(**meta, history=history), True, size)  # TypeError: fields renamed, added or removed
        stored = {f"s:{i}" for i in range(len(names))} | {f"v:{i}" for i in range(len(names))}

        def member(name: str) -> Any:
            if not (name.startswith(_state.PREFIX) or name in stored):
                raise ValueError(f"a resume state refers to {name!r}")
            return _array(fp, z, name)  # KeyError: not in the file

        state = _state.decode(orjson.loads(z["resume"].tobytes()), member)
    if state is None:
        raise ValueError("an empty resume state")
    return Found(Run(**meta, resume=state), False, size)


def _array(fp: BinaryIO, z: Any, name: str) -> Any:
    """The array stored as member `name` of the open npz `z` (file `fp`), read in one piece.

    What `z[name]` gives, without zipfile's reads in small pieces: the member's bytes are read
    whole and their CRC-32 checked against the zip directory's (as zipfile checks it) before its
    header is parsed; ValueError when anything does not fit. A compressed member, or an array in
    Fortran order, is left to `z[name]`.
    """
    info = z.zip.getinfo(f"{name}.npy")  # KeyError: no such member
    if info.compress_type != zipfile.ZIP_STORED:
        return z[name]
    fp.seek(info.header_offset)
    local = fp.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise ValueError(f"member {name!r}: no local header")
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    fp.seek(start)
    prefix = fp.read(12)  # magic, version, header length (2 bytes in version 1, 4 after)
    if len(prefix) != 12 or prefix[:6] != b"\x93NUMPY" or prefix[6] not in (1, 2, 3):
        raise ValueError(f"member {name!r} is not an array")
    head = 10 + int.from_bytes(prefix[8:10], "little") if prefix[6] == 1 else 12 + int.from_bytes(prefix[8:], "little")
    if not 0 < head <= info.file_size:
        raise ValueError(f"member {name!r}: a header longer than the member")
    fp.seek(start)
    header = fp.read(head)
    data = np.empty(info.file_size - head, np.uint8)  # not zeroed first: every byte is read into it
    if len(header) != head or fp.readinto(data.data) != len(data):  # type: ignore[attr-defined]
        raise ValueError(f"member {name!r} is cut short")
    if zlib.crc32(data.data, zlib.crc32(header)) != info.CRC:
        raise ValueError(f"member {name!r}: bad CRC-32")
    try:
        stream = io.BytesIO(header)
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(stream)
    except Exception as exc:  # the header's text is parsed by numpy: any failure there is an unusable entry
        raise ValueError(f"member {name!r}: unreadable header: {exc}") from exc
    if fortran:
        return z[name]
    if dtype.hasobject or len(data) != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"member {name!r}: {dtype}{shape} in {len(data)} bytes")
    return data.view(dtype).reshape(shape)


def _series(name: str, steps: Any, values: Any) -> Series:
    if steps.dtype != np.int64 or values.dtype != np.float64 or steps.ndim != 1 or steps.shape != values.shape:
        raise ValueError(f"metric {name!r}: arrays {steps.dtype}{steps.shape} / {values.dtype}{values.shape}")
    return Series(name, steps, values)


def _check_kinds(meta: dict[str, Any]) -> None:
    for f in fields(Run):
        kinds = _KINDS.get(str(f.type))
        if f.name in meta and kinds is not None:
            value = meta[f.name]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"field {f.name!r} holds a {type(value).__name__}")


# ---------------------------------------------------------------- write and evict


def write(
    cache_dir: Path, identity: tuple[object, ...], run: Run, *, max_bytes: int = DEFAULT_MAX_BYTES, slot: object = None
) -> None:
    """Store `run` (and its resume state, when runwise._state can encode it) as the entry of `slot`,
    replacing the one there, then hold the cache to `max_bytes` (0: store nothing; a run larger than
    that is not stored).

    Failures (read-only home, full disk, a file another process holds open on Windows) are logged
    at debug level and otherwise ignored.
    """
    if max_bytes <= 0:
        return
    key, paths = _described(identity)
    entry = {"format": FORMAT, "schema": SCHEMA, "slot": _slot(identity, slot), "identity": _identity_digest(identity),
             "bytes": identity_bytes(identity), "key": key, "paths": paths}
    meta: dict[str, Any] = {f.name: getattr(run, f.name) for f in fields(Run) if f.name not in _SKIP}
    names = list(run.history)
    meta["metrics"] = names
    arrays: dict[str, Any] = {
        "entry": np.frombuffer(orjson.dumps(entry), dtype=np.uint8),
        "meta": np.frombuffer(orjson.dumps(meta, default=str), dtype=np.uint8),
    }
    shared: dict[int, str] = {}
    for i, name in enumerate(names):
        arrays[f"s:{i}"] = run.history[name].steps
        arrays[f"v:{i}"] = run.history[name].values
        shared[id(run.history[name].steps)], shared[id(run.history[name].values)] = f"s:{i}", f"v:{i}"
    if run.resume is not None:
        try:
            tree, state_arrays = _state.encode(run.resume, shared)
            arrays["resume"] = np.frombuffer(orjson.dumps(tree), dtype=np.uint8)
            arrays.update(state_arrays)
        except (_state.StateError, TypeError) as exc:  # TypeError: orjson (an int over 64 bits, nested too deep)
            log.debug("resume state of %s not stored: %s", key, exc)
    if sum(a.nbytes for a in arrays.values()) > max_bytes:
        return  # it would not fit even alone: evicting everything else for it would not help
    path = _file(cache_dir, identity, slot)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with replacing(path) as fp:
            np.savez(fp, **arrays)
        if path.stat().st_size > max_bytes:  # the arrays fit, the file's framing did not
            path.unlink()
            return
    except OSError as exc:
        log.debug("cache write failed: %s", exc)
        return
    evicted = evict(cache_dir, max_bytes)
    _count(cache_dir, writes=1, evicted=len(evicted))


@dataclass(frozen=True)
class Entry:
    """One cache file as found on disk."""

    path: Path
    size: int
    used: float  # mtime: when it was last written or read


def entries(cache_dir: Path) -> list[Entry]:
    """runwise's entries in `cache_dir` (no other file), least recently used first."""
    found: list[Entry] = []
    try:
        with os.scandir(cache_dir) as it:
            for d in it:
                if _ENTRY.fullmatch(d.name):
                    with contextlib.suppress(OSError):
                        st = d.stat()
                        found.append(Entry(Path(d.path), st.st_size, st.st_mtime))
    except OSError:
        return []
    found.sort(key=lambda e: (e.used, e.path.name))
    return found


def evict(cache_dir: Path, max_bytes: int) -> list[Path]:
    """Remove entries unused for MAX_AGE, then the least recently used until all fit in `max_bytes`."""
    found = entries(cache_dir)
    total = sum(e.size for e in found)
    cutoff = time.time() - MAX_AGE
    removed: list[Path] = []
    for e in found:
        if total <= max_bytes and e.used >= cutoff:
            break
        with contextlib.suppress(OSError):
            e.path.unlink()
            removed.append(e.path)
        total -= e.size  # gone, or going: another process may be removing it at the same time
    return removed


# ---------------------------------------------------------------- info and clear


@dataclass(frozen=True)
class Info:
    """What `runwise cache info` shows."""

    directory: str
    entries: int
    bytes: int
    counts: dict[str, int]


def info(cache_dir: Path) -> Info:
    """The entries' number and total size, and the hit/miss/write/eviction/discard counts."""
    found = entries(cache_dir)
    return Info(str(cache_dir), len(found), sum(e.size for e in found), stats(cache_dir))


def clear(cache_dir: Path, *, key: str | None = None, paths: Sequence[Path] = ()) -> tuple[int, int]:
    """Remove entries; returns (entries removed, bytes freed).

    Without `key` and `paths`: every entry, runwise's temporary files and its counts. Otherwise
    the entries of that run: stored under `key`, or of a file that is one of `paths` or under one.
    Nothing but runwise's own files is touched.
    """
    whole = key is None and not paths
    wanted = [str(p) for p in paths]
    removed, freed = 0, 0
    for e in entries(cache_dir):
        if not whole and not _belongs(e.path, key, wanted):
            continue
        with contextlib.suppress(OSError):
            e.path.unlink()
            removed, freed = removed + 1, freed + e.size
    if whole:
        with contextlib.suppress(OSError), os.scandir(cache_dir) as it:
            for d in it:
                if _TEMP.fullmatch(d.name) or d.name in (STATS_FILE, LOCK_FILE):
                    with contextlib.suppress(OSError):
                        os.unlink(d.path)
    return removed, freed


def _belongs(path: Path, key: str | None, wanted: list[str]) -> bool:
    """Whether the entry at `path` is of the run `key` or of files at or under `wanted`."""
    stored = _stored(path)
    if stored is None:
        return False  # unreadable: no run can claim it (a read removes it, `cache clear` without a run too)
    stored_key, stored_paths = stored
    if key is not None and stored_key == key:
        return True
    return any(p == w or p.startswith(w.rstrip(os.sep) + os.sep) for p in stored_paths for w in wanted)


def entry_key(path: Path) -> str | None:
    """The run key an entry was stored under; None if the file is not a readable entry."""
    stored = _stored(path)
    return None if stored is None else stored[0]


def _stored(path: Path) -> tuple[str, list[str]] | None:
    """The run key and file paths an entry records, without loading its arrays."""
    try:
        with path.open("rb") as fp, np.load(fp, allow_pickle=False) as z:
            entry = orjson.loads(z["entry"].tobytes())
        key, paths = entry["key"], entry["paths"]
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile, orjson.JSONDecodeError):
        return None
    if not isinstance(key, str) or not isinstance(paths, list):
        return None
    return key, [p for p in paths if isinstance(p, str)]


# ---------------------------------------------------------------- counts


def stats(cache_dir: Path) -> dict[str, int]:
    """The counts kept in stats.json (zeros when it is missing or unreadable)."""
    counts = dict.fromkeys(COUNTS, 0)
    try:
        data = orjson.loads((cache_dir / STATS_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return counts
    if isinstance(data, dict):
        counts.update({k: v for k, v in data.items() if k in counts and isinstance(v, int) and v >= 0})
    return counts


def _count(cache_dir: Path, **add: int) -> None:
    """Add to the counts in stats.json: read, add, write a temporary file, replace; never an error."""
    if not any(add.values()):
        return
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with locked(cache_dir / LOCK_FILE):
            counts = stats(cache_dir)
            for k, v in add.items():
                counts[k] += v
            with replacing(cache_dir / STATS_FILE) as fp:
                fp.write(orjson.dumps(counts))
    except OSError as exc:
        log.debug("cache counts not kept: %s", exc)
