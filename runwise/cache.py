"""On-disk columnar cache of parsed runs, so a second read of a big log is instant across processes.

One `.npz` file per run and file identity (paths, sizes, mtimes) under the cache directory
(default `~/.cache/runwise`, `RUNWISE_CACHE_DIR`); never inside run directories. A changed
file has a new identity, so a growing run is re-read; entries unused for a week are removed.
A corrupt or unreadable cache file is ignored (and replaced). The file name also holds a digest
of the Run and Series fields (SCHEMA), so a cache written by a runwise whose run model had other
fields is a miss, and a cache file whose metadata does not build a Run is ignored too: either way
the run is parsed again and the entry rebuilt. `RUNWISE_NO_CACHE=1` or `"cache": false` in
runwise.json turns it off.

Layout of a cache file: `meta` (the Run's metadata as JSON bytes), then `s:<i>` / `v:<i>`
(steps int64 / values float64 of the i-th metric, names in meta["metrics"]).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from runwise.model import Run, Series

log = logging.getLogger("runwise.cache")

FORMAT = 1
MIN_SECONDS = 0.3  # runs that parse faster than this are not worth a cache file
MAX_AGE = 7 * 24 * 3600
_SKIP = {"history", "resume"}


def schema_digest(models: tuple[type, ...] = (Run, Series)) -> str:
    """A digest of the fields (names and types) of the dataclasses a cache file stores."""
    shape = [(cls.__name__, [(f.name, str(f.type)) for f in fields(cls) if f.name not in _SKIP]) for cls in models]
    return hashlib.sha1(repr(shape).encode()).hexdigest()[:12]


SCHEMA = schema_digest()


def _file(cache_dir: Path, identity: tuple[object, ...]) -> Path:
    digest = hashlib.sha1(repr((FORMAT, SCHEMA, identity)).encode()).hexdigest()[:24]
    return cache_dir / f"{digest}.npz"


def read(cache_dir: Path, identity: tuple[object, ...]) -> Run | None:
    """The cached Run of `identity`; None if there is none or it cannot be read or built (a miss)."""
    path = _file(cache_dir, identity)
    if not path.is_file():
        return None
    try:
        with path.open("rb") as fp, np.load(fp, allow_pickle=False) as z:  # np.load(path) leaks it on BadZipFile
            meta = orjson.loads(z["meta"].tobytes())
            if not isinstance(meta, dict):
                raise ValueError("metadata is not an object")
            names = meta.pop("metrics")
            history = {name: Series(name, z[f"s:{i}"], z[f"v:{i}"]) for i, name in enumerate(names)}
        run = Run(**meta, history=history)  # TypeError: fields renamed, added or removed since
        os.utime(path)
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile, orjson.JSONDecodeError) as exc:
        log.debug("ignoring unreadable cache file %s: %s", path, exc)
        return None
    return run


def write(cache_dir: Path, identity: tuple[object, ...], run: Run) -> None:
    """Store `run`; failures (read-only home, full disk) are logged and otherwise ignored."""
    meta: dict[str, Any] = {f.name: getattr(run, f.name) for f in fields(Run) if f.name not in _SKIP}
    names = list(run.history)
    meta["metrics"] = names
    arrays: dict[str, Any] = {"meta": np.frombuffer(orjson.dumps(meta, default=str), dtype=np.uint8)}
    for i, name in enumerate(names):
        arrays[f"s:{i}"] = run.history[name].steps
        arrays[f"v:{i}"] = run.history[name].values
    path = _file(cache_dir, identity)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fp:
            np.savez(fp, **arrays)
        tmp.replace(path)
        _prune(cache_dir)
    except OSError as exc:
        log.debug("cache write failed: %s", exc)
        tmp.unlink(missing_ok=True)


def _prune(cache_dir: Path) -> None:
    cutoff = time.time() - MAX_AGE
    for p in cache_dir.glob("*.npz"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
        except OSError:
            pass
