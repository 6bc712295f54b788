"""Finding, resolving and loading runs: the one place every tool gets a Run from.

Run references people and agents type:
  latest            the most recently written run (the default)
  <id>              an exact run id, e.g. `3kx9a2bq`, `exp1/seed2`
  <source>:<id>     source-qualified, when an id exists in several sources (`wandb:abc`)
  <name>            a display name
  <prefix>          a unique prefix of an id
  <path>            a log file or run directory inside the project roots
  <ref>@<step>      any of the above, at a step (for step-matched comparison)

Loaded runs are cached in memory, keyed by the identity (path, size, mtime) of their files, so
the second question about a run is instant and a growing file is re-read; runs that were slow
to parse are also kept in the on-disk cache (runwise.cache) for the next process.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from runwise import cache, parsers
from runwise.config import RunwiseConfig
from runwise.errors import AmbiguousRun, OutsideRoot, RunNotFound
from runwise.model import RUNNING, Run, RunEntry
from runwise.parsers import Progress
from runwise.parsers._walk import outside_roots
from runwise.parsers.filetypes import looks_like_path

_AT_STEP = re.compile(r"^(?P<ref>.+)@(?P<step>-?\d[\d_,]*)(?P<k>[kKmM]?)$")
_CACHE_SIZE = 16
_cache: OrderedDict[tuple[object, ...], Run] = OrderedDict()
# (run key, project root) -> the newest Run read for it, for reading only what was appended since
_latest: dict[tuple[object, ...], Run] = {}
_lock = threading.Lock()


def split_step(ref: str) -> tuple[str, int | None]:
    """`'abc@5000'` -> `('abc', 5000)`; `'abc@12k'` -> `('abc', 12000)`; no `@step` -> `(ref, None)`."""
    m = _AT_STEP.match(ref.strip())
    if not m:
        return ref.strip(), None
    step = int(m["step"].replace("_", "").replace(",", ""))
    step *= {"": 1, "k": 1_000, "m": 1_000_000}[m["k"].lower()]
    return m["ref"], step


def discover(cfg: RunwiseConfig) -> tuple[list[RunEntry], list[str]]:
    """All runs of all sources, newest first, plus warnings about sources that could not be listed."""
    entries, warnings = parsers.discover_all(cfg)
    entries.sort(key=lambda e: e.mtime, reverse=True)
    return entries, warnings


def resolve(ref: str, cfg: RunwiseConfig, entries: list[RunEntry] | None = None) -> RunEntry:
    """Find the one run `ref` names (without `@step`); RunNotFound / AmbiguousRun name candidates."""
    ref = ref.strip() or "latest"
    if entries is None:
        entries, _ = discover(cfg)
    if ref == "latest":
        if not entries:
            raise RunNotFound(ref, total=0)
        return entries[0]
    by_key = [e for e in entries if e.key == ref]
    if by_key:
        return by_key[0]
    matchers: tuple[Callable[[RunEntry], bool], ...] = (
        lambda e: e.id == ref,
        lambda e: bool(e.name) and e.name == ref,
        lambda e: e.id.startswith(ref),
        lambda e: bool(e.name) and e.name.startswith(ref),
    )
    for match in matchers:
        found = [e for e in entries if match(e)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            if all(e.source == found[0].source and e.id == found[0].id for e in found):
                return found[0]
            raise AmbiguousRun(ref, [e.key for e in found])
    missing_path = False
    if looks_like_path(ref) or "/" in ref:
        path = cfg.check_inside(Path(ref))
        if path.exists():
            return _file_entry(path, cfg)
        missing_path = looks_like_path(ref)
    names = list(dict.fromkeys([e.id for e in entries] + [e.name for e in entries if e.name]))
    close = difflib.get_close_matches(ref, names, n=5, cutoff=0.5)
    raise RunNotFound(ref, close, total=len(entries), missing_path=missing_path)


def _file_entry(path: Path, cfg: RunwiseConfig) -> RunEntry:
    source = parsers.sniff_source(path)
    st = path.stat()
    run_id = cfg.relative(path)
    return RunEntry(run_id, source, (path,), name=path.name, mtime=st.st_mtime, size=st.st_size,
                    extra={"file": True})


def _latest_key(entry: RunEntry, cfg: RunwiseConfig) -> tuple[object, ...]:
    # by project too: the same run id in two projects is two runs (sources also check their files)
    return (entry.key, str(cfg.root))


def _identity(entry: RunEntry) -> tuple[object, ...]:
    parts: list[object] = [entry.key]
    for p in entry.paths:
        files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            parts.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(parts)


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Load (or take from the in-memory cache) the run `entry` names.

    Refuses (OutsideRoot) an entry with a file that resolves outside the project roots, however the
    entry was made: discovery never lists one, and this check keeps it so.
    """
    bad = outside_roots(entry.paths, cfg.roots)
    if bad is not None:
        raise OutsideRoot(cfg.relative(bad), [str(r) for r in cfg.roots])
    ident = _identity(entry)
    with _lock:
        cached = _cache.get(ident)
        if cached is not None:
            _cache.move_to_end(ident)
            return cached
        previous = _latest.get(_latest_key(entry, cfg))
    run: Run | None = None
    if previous is not None:  # the same run, read before it grew: read only what was appended
        run = parsers.refresh(entry, cfg, previous, progress)
        if run is not None and entry.extra.get("file"):
            run.id = entry.id
    if run is None and cfg.cache_enabled:
        run = cache.read(cfg.cache_dir, ident)
    if run is None:
        started = time.perf_counter()
        if entry.extra.get("file"):
            run = parsers.load_file(entry.paths[0], cfg, progress)
            run.id = entry.id
        else:
            run = parsers.load(entry, cfg, progress)
        slow = time.perf_counter() - started >= cache.MIN_SECONDS
        if cfg.cache_enabled and slow and run.state != RUNNING:
            cache.write(cfg.cache_dir, ident, run)
    with _lock:
        _cache[ident] = run
        _latest[_latest_key(entry, cfg)] = run
        while len(_cache) > _CACHE_SIZE:
            _, dropped = _cache.popitem(last=False)
            for k in [k for k, v in _latest.items() if v is dropped]:
                del _latest[k]
    return run


def get_run(ref: str, cfg: RunwiseConfig, progress: Progress | None = None) -> tuple[Run, int | None]:
    """Resolve and load `ref`; returns the run and the `@step` it asked for (or None)."""
    name, step = split_step(ref)
    return load(resolve(name, cfg), cfg, progress), step


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _latest.clear()


def is_cached(entry: RunEntry) -> bool:
    """Whether `entry` is loaded in memory with its files unchanged (so reading it costs nothing)."""
    ident = _identity(entry)
    with _lock:
        return ident in _cache
