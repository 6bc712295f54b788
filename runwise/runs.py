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
from runwise.errors import AmbiguousRun, NegativeStep, OutsideRoot, RunNotFound, RunwiseError
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
# Runs larger than this are listed (tools.runs.list_runs) and searched by name (resolve) from their
# metadata only, unless already loaded: a listing must stay fast with many 600 MB logs around.
LIST_LOAD_BYTES = 64 * 1024 * 1024
LIST_MAX_RUNS = 500  # the most runs one listing shows (per source, with list_runs' `source`)
# (run key, mtime, size) -> the display name its load (or Source.display_name) gave: names shown resolve
_loaded_names: dict[tuple[str, float, int], str] = {}
_NAMES_SIZE = 10_000


def split_step(ref: str) -> tuple[str, int | None]:
    """`'abc@5000'` -> `('abc', 5000)`; `'abc@12k'` -> `('abc', 12000)`; no `@step` -> `(ref, None)`.

    Raises NegativeStep for `'abc@-5'`: steps start at 0, and a negative one would only match nothing.
    """
    m = _AT_STEP.match(ref.strip())
    if not m:
        return ref.strip(), None
    step = int(m["step"].replace("_", "").replace(",", ""))
    step *= {"": 1, "k": 1_000, "m": 1_000_000}[m["k"].lower()]
    if step < 0:
        raise NegativeStep(f"the step after '@' must be from 0 upwards, got {step:,}")
    return m["ref"], step


def discover(cfg: RunwiseConfig) -> tuple[list[RunEntry], list[str]]:
    """All runs of all sources, newest first, plus warnings about sources that could not be listed."""
    entries, warnings = parsers.discover_all(cfg)
    entries.sort(key=lambda e: e.mtime, reverse=True)
    return entries, warnings


def resolve(ref: str, cfg: RunwiseConfig, entries: list[RunEntry] | None = None) -> RunEntry:
    """Find the one run `ref` names (without `@step`); RunNotFound / AmbiguousRun name candidates.

    Every id and display name `list_runs` shows resolves: names come from discovery (cheap: W&B's
    first block, a JSONL log's `_meta` rows near its ends) and from every run loaded in this process.
    When nothing matches, the runs whose name only a load can tell (not final at discovery, and
    small enough that `list_runs` reads them) are loaded once, and the names are matched again.
    """
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
    found = _match(ref, entries)
    if found is not None:
        return found
    missing_path = False
    if looks_like_path(ref) or "/" in ref:
        path = cfg.check_inside(Path(ref))
        if path.exists():
            return _file_entry(path, cfg)
        missing_path = looks_like_path(ref)
    if not looks_like_path(ref) and _learn_names(entries, cfg):
        found = _match(ref, entries)
        if found is not None:
            return found
    names = list(dict.fromkeys([e.id for e in entries] + [n for e in entries for n in _names(e) if n]))
    close = difflib.get_close_matches(ref, names, n=5, cutoff=0.5)
    raise RunNotFound(ref, close, total=len(entries), missing_path=missing_path)


def _match(ref: str, entries: list[RunEntry]) -> RunEntry | None:
    """The entry `ref` names by id, name, id prefix or name prefix (the first rule that matches)."""
    matchers: tuple[Callable[[RunEntry], bool], ...] = (
        lambda e: e.id == ref,
        lambda e: ref in _names(e),
        lambda e: e.id.startswith(ref),
        lambda e: any(n.startswith(ref) for n in _names(e) if n),
    )
    for match in matchers:
        found = [e for e in entries if match(e)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            if all(e.source == found[0].source and e.id == found[0].id for e in found):
                return found[0]
            raise AmbiguousRun(ref, [e.key for e in found])
    return None


def _name_key(entry: RunEntry) -> tuple[str, float, int]:
    return (entry.key, entry.mtime, entry.size)


def _names(entry: RunEntry) -> tuple[str, ...]:
    """The names `entry` is shown by: the one discovery found, and the one its load gave (if loaded)."""
    loaded = _loaded_names.get(_name_key(entry))
    return (entry.name, loaded) if loaded and loaded != entry.name else (entry.name,)


def _learn_names(entries: list[RunEntry], cfg: RunwiseConfig) -> bool:
    """Learn the display names only the runs' files tell (`Source.display_name`); True if any was.

    Never more runs than the largest listing reads: of each source's LIST_MAX_RUNS newest runs,
    those of at most LIST_LOAD_BYTES whose name discovery could not tell and that are not known yet.
    """
    learned = False
    per_source: dict[str, int] = {}
    for e in sorted(entries, key=lambda e: e.mtime, reverse=True):
        per_source[e.source] = n = per_source.get(e.source, 0) + 1
        if n > LIST_MAX_RUNS or e.extra.get("name_final") or e.size > LIST_LOAD_BYTES:
            continue
        key = _name_key(e)
        if key in _loaded_names or outside_roots(e.paths, cfg.roots) is not None:
            continue
        try:
            name = parsers.source_module(e.source).display_name(e, cfg)
        except (RunwiseError, OSError):
            continue  # unreadable: list_runs shows no name for it either
        with _lock:
            _loaded_names[key] = name
        learned = True
    return learned


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
            _loaded_names[_name_key(entry)] = cached.name
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
        _loaded_names[_name_key(entry)] = run.name
        while len(_loaded_names) > _NAMES_SIZE:
            del _loaded_names[next(iter(_loaded_names))]
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
        _loaded_names.clear()


def is_cached(entry: RunEntry) -> bool:
    """Whether `entry` is loaded in memory with its files unchanged (so reading it costs nothing)."""
    ident = _identity(entry)
    with _lock:
        return ident in _cache
