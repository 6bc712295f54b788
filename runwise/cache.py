"""On-disk columnar cache of parsed runs, so a second read of a big log is instant across processes.

One `.npz` file per run and file identity (paths, sizes, mtimes) under the cache directory
(default `~/.cache/runwise`, `RUNWISE_CACHE_DIR`); never inside run directories. A changed
file has a new identity, so a growing run is re-read. `RUNWISE_NO_CACHE=1`, `"cache": false` or
`"cache_max_bytes": 0` in runwise.json turns it off.

Size: after each write the entries are held to `max_bytes` (runwise.json's `cache_max_bytes`,
default 2 GiB) by removing the least recently used first. "Used" is the file's mtime: a write
sets it, and a read that hits touches it (atime is not trusted: many disks mount with noatime).
Entries unused for a week are removed too.

Trust: an entry is used only if it is a readable npz whose `entry` record names this FORMAT,
this SCHEMA (a digest of the Run and Series fields, also in the file name) and this identity,
whose metadata builds a Run with fields of the right kinds, and whose arrays are 1-D int64 steps
and float64 values of equal length. Anything else (truncated, random bytes, another schema, a
file renamed or copied from another entry) is a miss, and the file is removed: the run is parsed
again and the entry rebuilt.

Writes go to a temporary file in the cache directory, then `os.replace` it over the entry, so a
reader or a second writer never sees half a file. Hit, miss, write, eviction and discard counts
are kept in `stats.json` (written the same way, under a lock file where the platform has flock).

Layout of an entry `<24 hex>.npz`: `entry` (JSON bytes: format, schema, identity digest, run key,
file paths), `meta` (the Run's metadata as JSON bytes), then `s:<i>` / `v:<i>` (steps int64 /
values float64 of the i-th metric, names in meta["metrics"]).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from runwise.model import Run, Series

log = logging.getLogger("runwise.cache")

FORMAT = 2
MIN_SECONDS = 0.3  # runs that parse faster than this are not worth a cache file
MAX_AGE = 7 * 24 * 3600
DEFAULT_MAX_BYTES = 2 * 1024**3
STATS_FILE = "stats.json"
LOCK_FILE = "stats.lock"
COUNTS = ("hits", "misses", "writes", "evicted", "discarded")
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


def _file(cache_dir: Path, identity: tuple[object, ...]) -> Path:
    return cache_dir / f"{_identity_digest(identity)[:24]}.npz"


def _described(identity: tuple[object, ...]) -> tuple[str, list[str]]:
    """The run key (the identity's first item, when a string) and the file paths the identity names."""
    key = identity[0] if identity and isinstance(identity[0], str) else ""
    paths = [str(part[0]) for part in identity[1:] if isinstance(part, tuple) and part and isinstance(part[0], str)]
    return key, paths


# ---------------------------------------------------------------- read


def read(cache_dir: Path, identity: tuple[object, ...]) -> Run | None:
    """The cached Run of `identity`; None if there is none or it cannot be trusted (a miss).

    A hit makes the entry the most recently used; an entry that cannot be trusted is removed.
    """
    path = _file(cache_dir, identity)
    if not path.is_file():
        _count(cache_dir, misses=1)
        return None
    try:
        run = _load(path, identity)
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile, orjson.JSONDecodeError) as exc:
        log.debug("discarding unusable cache file %s: %s", path, exc)
        with contextlib.suppress(OSError):
            path.unlink()
        _count(cache_dir, misses=1, discarded=1)
        return None
    with contextlib.suppress(OSError):  # a read-only cache still answers
        os.utime(path)  # recently used: eviction removes the least recently used first
    _count(cache_dir, hits=1)
    return run


def _load(path: Path, identity: tuple[object, ...]) -> Run:
    """The Run stored at `path`, checked from end to end; ValueError & co. when it cannot be trusted."""
    with path.open("rb") as fp, np.load(fp, allow_pickle=False) as z:  # np.load(path) leaks it on BadZipFile
        entry = orjson.loads(z["entry"].tobytes())
        if not isinstance(entry, dict):
            raise ValueError("entry record is not an object")
        if entry.get("format") != FORMAT or entry.get("schema") != SCHEMA:
            raise ValueError(f"of another format or run model: {entry.get('format')}/{entry.get('schema')}")
        if entry.get("identity") != _identity_digest(identity):
            raise ValueError("the entry is of other files (renamed or copied from another entry)")
        meta = orjson.loads(z["meta"].tobytes())
        if not isinstance(meta, dict):
            raise ValueError("metadata is not an object")
        names = meta.pop("metrics")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("metric names are not a list of strings")
        history = {name: _series(name, z[f"s:{i}"], z[f"v:{i}"]) for i, name in enumerate(names)}
    _check_kinds(meta)
    return Run(**meta, history=history)  # TypeError: fields renamed, added or removed since


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


def write(cache_dir: Path, identity: tuple[object, ...], run: Run, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Store `run`, then hold the cache to `max_bytes` (0: store nothing; a run larger than that is not stored).

    Failures (read-only home, full disk, a file another process holds open on Windows) are logged
    at debug level and otherwise ignored.
    """
    if max_bytes <= 0:
        return
    key, paths = _described(identity)
    entry = {"format": FORMAT, "schema": SCHEMA, "identity": _identity_digest(identity), "key": key, "paths": paths}
    meta: dict[str, Any] = {f.name: getattr(run, f.name) for f in fields(Run) if f.name not in _SKIP}
    names = list(run.history)
    meta["metrics"] = names
    arrays: dict[str, Any] = {
        "entry": np.frombuffer(orjson.dumps(entry), dtype=np.uint8),
        "meta": np.frombuffer(orjson.dumps(meta, default=str), dtype=np.uint8),
    }
    for i, name in enumerate(names):
        arrays[f"s:{i}"] = run.history[name].steps
        arrays[f"v:{i}"] = run.history[name].values
    if sum(a.nbytes for a in arrays.values()) > max_bytes:
        return  # it would not fit even alone: evicting everything else for it would not help
    path = _file(cache_dir, identity)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with _replacing(path) as fp:
            np.savez(fp, **arrays)
        if path.stat().st_size > max_bytes:  # the arrays fit, the file's framing did not
            path.unlink()
            return
    except OSError as exc:
        log.debug("cache write failed: %s", exc)
        return
    evicted = evict(cache_dir, max_bytes)
    _count(cache_dir, writes=1, evicted=len(evicted))


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` in one step when the block ends without error.

    The temporary file has a name of its own per writer (pid and thread alike), in the same
    directory, so `os.replace` is a rename on one file system.
    """
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fp:
            yield fp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
        with _locked(cache_dir / LOCK_FILE):
            counts = stats(cache_dir)
            for k, v in add.items():
                counts[k] += v
            with _replacing(cache_dir / STATS_FILE) as fp:
                fp.write(orjson.dumps(counts))
    except OSError as exc:
        log.debug("cache counts not kept: %s", exc)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` where the platform has flock (else none: a count may be lost, never the file)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with path.open("a") as fp:
        fcntl.flock(fp.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fp.fileno(), fcntl.LOCK_UN)
