"""Finding, resolving and loading runs: the one place every tool gets a Run from.

Run references people and agents type:
  latest            the most recently written run (the default)
  <id>              an exact run id, e.g. `3kx9a2bq`, `exp1/seed2`
  <source>:<id>     source-qualified, when an id exists in several sources (`wandb:abc`)
  <name>            a display name
  <prefix>          a unique prefix of an id
  <path>            a log file or run directory inside the project roots
  <ref>@<step>      any of the above, at a step (for step-matched comparison)

Every reference to one run names one canonical run: a path to a log or run directory that a
discovered run reads resolves to an entry that keeps the path as its id but loads through that
run's entry (`extra["canonical"]`). Loaded runs are cached in memory, keyed by the canonical
run's key and the identity (path, size, mtime) of its files, so the second question about a run
is instant however it is named, and a growing file is re-read (only its appended bytes, where the
source can). Runs that were slow to parse are also kept in the on-disk cache (runwise.cache) for
the next process, with the state their source reads on from: a process that finds the run grown
since reads only the bytes appended since that entry (`_read`).

Every run a listing or ranking reads (`index_rows`) is entered in the run index (runwise.index): its
metadata, final values and sparklines, kept beside the cache directory while its files are
unchanged. Listings and rankings come from there, and so do names only a load can tell (`resolve`),
so a project of thousands of runs is listed without reading a log once each run has been read.

Single flight: requests for a run that is being read (from server worker threads, or threads of
the Python API) wait for that read instead of starting their own, and all get its run, or its
error; a failed read is not remembered, so the next request reads again. Reads of different runs
go on in parallel: no lock is held while a run is read.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runwise import cache, index, parsers
from runwise._bounded import Bounded
from runwise.config import RunwiseConfig
from runwise.errors import AmbiguousRun, NegativeStep, OutsideRoot, RunNotFound, RunwiseError, SourceError
from runwise.model import Run, RunEntry
from runwise.parsers import Progress
from runwise.parsers._walk import outside_roots
from runwise.parsers.filetypes import looks_like_path

_AT_STEP = re.compile(r"^(?P<ref>.+)@(?P<step>-?\d[\d_,]*)(?P<k>[kKmM]?)$")
_CACHE_SIZE = 16
_cache: OrderedDict[tuple[object, ...], Run] = OrderedDict()
# (run key, project root) -> the newest Run read for it, for reading only what was appended since
_latest: dict[tuple[object, ...], Run] = {}
_lock = threading.Lock()
log = logging.getLogger("runwise.runs")
# Runs larger than this are not read to learn a name (resolve), and a run larger than this is
# indexed for a listing from its first and last records (index_rows): a listing must stay fast with many
# 600 MB logs around.
LIST_LOAD_BYTES = 64 * 1024 * 1024
LIST_MAX_RUNS = 500  # the most runs one listing shows (per source, with list_runs' `source`)
# (run key, mtime, size) -> the display name its load (or Source.display_name) gave: names shown resolve
_NAMES_SIZE = 10_000
_loaded_names: Bounded[tuple[str, float, int], str] = Bounded(_NAMES_SIZE)


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
    """All runs of all sources, newest first, plus warnings about sources that could not be listed.

    Directories on object storage (runwise.remote) are synced first, at most every few seconds.
    """
    notes: list[str] = []
    if cfg.remotes:
        from runwise import remote

        notes = remote.refresh(cfg)
    entries, warnings = parsers.discover_all(cfg)
    warnings = notes + warnings
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
    if ref.startswith(("wandb-cloud:", "cloud:")):  # W&B cloud runs (runwise.parsers.wandb_cloud): no discovery
        from runwise.parsers import wandb_cloud

        return wandb_cloud.resolve(ref, cfg)
    if entries is None:
        entries, _ = discover(cfg)
    url = cfg.remote_url
    if url and ref.startswith(url + "/"):  # an object under a root on object storage: its file in the mirror
        ref = ref[len(url) + 1:]
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
            return _file_entry(path, cfg, entries)
        missing_path = looks_like_path(ref)
    for learn in () if looks_like_path(ref) else (_index_names, _learn_names):  # the index first: no read
        if learn(entries, cfg):
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
    names = (entry.name, loaded) if loaded and loaded != entry.name else (entry.name,)
    aliases = entry.extra.get("aliases")  # other names a source gives the run (an MLflow run id)
    return names + tuple(aliases) if aliases else names


def _index_names(entries: list[RunEntry], cfg: RunwiseConfig) -> bool:
    """Learn the display names the run index holds for runs whose files are unchanged; True if any was new."""
    unknown = [e for e in entries if _name_key(e) not in _loaded_names and not e.extra.get("name_final")]
    try:
        rows = run_index(cfg).lookup(unknown)
    except (sqlite3.Error, OSError) as exc:
        log.debug("run index not read: %s", exc)
        return False
    learned = False
    with _lock:
        for e in unknown:
            row = rows.get(e.key)
            if row is not None:
                _loaded_names.put(_name_key(e), row.name)
                learned = learned or row.name != e.name
    return learned


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
            _loaded_names.put(key, name)
        learned = True
    return learned


def _file_entry(path: Path, cfg: RunwiseConfig, entries: list[RunEntry]) -> RunEntry:
    """The run a log file or run directory given by path stands for; its id is the path.

    When a discovered run reads exactly what loading the path reads, the entry points to it
    (`extra["canonical"]`), so the path and the run's id, name or prefix share one read.
    """
    source = parsers.sniff_source(path)
    st = path.stat()
    run_id = cfg.relative(path)
    extra: dict[str, object] = {"file": True}
    canonical = _discovered_as(path, source, entries)
    if canonical is not None:
        extra["canonical"] = canonical
    return RunEntry(run_id, source, (path,), name=path.name, mtime=st.st_mtime, size=st.st_size, extra=extra)


def _discovered_as(path: Path, source: str, entries: list[RunEntry]) -> RunEntry | None:
    """The discovered run whose load reads exactly what loading `path` reads, if there is one.

    That is: the run's only file or directory is `path` (a JSONL log, a single tfevents file, a W&B
    run directory of one segment); a TensorBoard run whose directory is `path`; or a W&B run of
    one segment whose `.wandb` log is `path`. A directory of a W&B run resumed in several segments
    is one segment of it, read alone, so it maps to nothing.
    """
    target = path.resolve()
    for e in entries:
        if e.source != source:
            continue
        run_dir = e.extra.get("dir") if source == "tensorboard" else None
        if run_dir and Path(str(run_dir)).resolve() == target:
            return e
        if len(e.paths) != 1:
            continue
        only = e.paths[0].resolve()
        if only == target:
            return e
        if source == "wandb" and only == target.parent:
            from runwise.parsers.wandb.segment import log_file  # W&B's reader, only for a W&B path

            wandb_log = log_file(e.paths[0])
            if wandb_log is not None and wandb_log.resolve() == target:
                return e
    return None


def canonical_entry(entry: RunEntry) -> RunEntry:
    """The entry whose key and files a run is loaded and cached under: the discovered run a path
    reference reads (see `_file_entry`), else `entry` itself."""
    canonical = entry.extra.get("canonical")
    return canonical if isinstance(canonical, RunEntry) else entry


def _latest_key(entry: RunEntry, cfg: RunwiseConfig) -> tuple[object, ...]:
    # by project too: the same run id in two projects is two runs (sources also check their files)
    return (entry.key, str(cfg.root))


def _identity(entry: RunEntry) -> tuple[object, ...]:
    """The run key and the (path, size, mtime_ns) of the files its reading depends on: never media,
    so a run directory full of images costs no more to check than its log (index.file_stats)."""
    return (entry.key, *index.file_stats(entry))


class _Flight:
    """One read of a run in progress: the requests that arrive meanwhile wait for its outcome."""

    def __init__(self, ident: tuple[object, ...], progress: Progress | None) -> None:
        self.ident = ident
        self.done = threading.Event()
        self.run: Run | None = None
        self.error: Exception | None = None
        self.listeners: list[Progress] = []  # the waiters' progress callbacks
        self.progress = progress

    def report(self, done: float, total: float) -> None:
        """The read's progress, to the request that reads and to every one that waits."""
        if self.progress is not None:
            self.progress(done, total)
        for listener in list(self.listeners):
            try:
                listener(done, total)
            except Exception:  # a waiter's display must not fail the read the others wait for
                log.debug("progress callback failed", exc_info=True)


# (run key, project root) -> the read of that run in progress
_flights: dict[tuple[object, ...], _Flight] = {}


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Load (or take from the in-memory cache, or wait for the read in progress of) the run `entry` names.

    An entry made from a path that a discovered run reads (see `_file_entry`) is loaded as that
    run and returned with the path as its id. Refuses (OutsideRoot) an entry with a file that
    resolves outside the project roots, however the entry was made: discovery never lists one, and
    this check keeps it so.
    """
    canonical = canonical_entry(entry)
    for e in {id(entry): entry, id(canonical): canonical}.values():
        bad = outside_roots(e.paths, cfg.roots)
        if bad is not None:
            raise OutsideRoot(cfg.relative(bad), [str(r) for r in cfg.roots])
    run = _load_once(canonical, cfg, progress)
    if canonical is entry:
        return run
    with _lock:
        _loaded_names.put(_name_key(entry), run.name)
    return dataclasses.replace(run, id=entry.id)  # a shallow copy: the history is shared, not copied


def _load_once(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None) -> Run:
    """The run of `entry` from the cache, from the read of it in progress, or read now (once)."""
    ident = _identity(entry)
    key = _latest_key(entry, cfg)
    while True:
        with _lock:
            cached = _cache.get(ident)
            if cached is not None:
                _cache.move_to_end(ident)
                _loaded_names.put(_name_key(entry), cached.name)
                return cached
            flight = _flights.get(key)
            if flight is None:
                flight = _flights[key] = _Flight(ident, progress)
                previous = _latest.get(key)
                break
            if progress is not None:
                flight.listeners.append(progress)
        flight.done.wait()
        if flight.error is not None:
            raise flight.error  # the same error for every request that waited for the read
        if flight.run is not None and flight.ident == ident:
            return flight.run
        # the files changed since that read began (or it was interrupted): look again, and read
        # what was appended since, from the run that read left

    run: Run | None = None
    try:
        run = _read(entry, cfg, ident, previous, flight.report)
    except Exception as exc:
        flight.error = exc
        raise
    finally:
        with _lock:
            if run is not None:
                _remember(entry, cfg, ident, run)
                flight.run = run
            del _flights[key]  # a failed read is not remembered: the next request reads again
        flight.done.set()
    return run


def run_index(cfg: RunwiseConfig) -> index.RunIndex:
    """The run index of the project `cfg` names: beside the cache directory, or in memory with the cache off."""
    return index.RunIndex(index.index_path(cfg.cache_dir) if cfg.cache_enabled else None, str(cfg.root))


def index_rows(
    entries: list[RunEntry], cfg: RunwiseConfig, progress: Progress | None = None, *, whole: bool = False
) -> dict[str, index.Row | str]:
    """Each entry's index row by its key; the runs the index has not seen (or whose files changed) are
    read now and entered. An unreadable run maps to the one-line reason instead.

    A run of over LIST_LOAD_BYTES not in memory (a JSONL log, a W&B run of one segment, a TensorBoard
    run of one event file) is read at its ends only (`_ends_run`): the row then has the run's state,
    steps and the final values of the metrics its tail holds, but no counts, extremes or sparklines
    (`Row.partial`). With `whole`, such rows are read whole (and entered whole) instead.
    Only these callers enter runs: a read for any other question does not pay for a row.
    """
    idx = run_index(cfg)
    canonical = {e.key: canonical_entry(e) for e in entries}
    try:
        found = idx.lookup(canonical.values())
    except (sqlite3.Error, OSError) as exc:
        log.debug("run index not read: %s", exc)
        found = {}
    out: dict[str, index.Row | str] = {}
    new: list[tuple[str, index.Row]] = []
    for e in entries:
        c = canonical[e.key]
        row = found.get(c.key)
        if row is None or (whole and row.partial):
            files = index.files_identity(c)  # before the read: a row is never newer than its files
            try:
                # is_cached stats the run's files: asked only of the logs an ends-only read is for
                ends = None if whole or not _read_at_ends(c) or is_cached(c) else _ends_run(c, cfg)
                if ends is not None:
                    row = index.partial_row(ends[0], c.key, tail=ends[1])
                else:
                    row = index.row_of(load(c, cfg, progress), c.key)
            except RunwiseError as exc:
                out[e.key] = f"unreadable: {exc}"
                continue
            except OSError as exc:
                out[e.key] = f"unreadable: {exc.strerror or type(exc).__name__}"
                continue
            except Exception as exc:  # a reader's bug on one run's bytes: the listing still shows every other run
                incident = secrets.token_hex(3)
                log.error("internal error %s reading %s", incident, c.key, exc_info=exc)
                out[e.key] = f"unreadable: internal error {incident} ({type(exc).__name__}); please report it"
                continue
            new.append((files, row))
            if len(new) >= _INDEX_BATCH:
                _index_put(idx, new)
        if c is not e:
            row = dataclasses.replace(row, key=e.key, id=e.id)
        out[e.key] = row
    _index_put(idx, new)
    return out


_HEAD_BYTES = 64 * 1024  # of a large JSONL log read at its ends: its config and _meta rows are at the start
_TAIL_BYTES = 1024 * 1024  # ... and its last rows, final values and state at the end


def _read_at_ends(entry: RunEntry) -> bool:
    """Whether a listing reads `entry` at its ends only: a run of over LIST_LOAD_BYTES that is one JSONL log,
    one W&B run directory (segment) or a TensorBoard run (its reader declines a run of several event files)."""
    if entry.size <= LIST_LOAD_BYTES:
        return False
    if entry.source == "jsonl":
        return len(entry.paths) == 1
    if entry.extra.get("file"):  # a path reference that maps to no discovered run: its load names it its own way
        return False
    return entry.source == "tensorboard" or (entry.source == "wandb" and len(entry.paths) == 1)


def _ends_run(entry: RunEntry, cfg: RunwiseConfig) -> tuple[Run, dict[str, int]] | None:
    """The run of a large log from its first and last records only (see `_read_at_ends`), as its source's
    reader reads them, and per metric the first step the tail holds: the metrics whose final values the
    ends tell (a metric seen only in the head may have gone on in the middle: its row leaves it out).

    None (read the run whole) when the source's ends reader declines (runwise.parsers.wandb.ends,
    runwise.parsers.tensorboard.ends: damage, a run of several files or segments, steps going down ...),
    for a JSONL log whose steps are line numbers or whose last line is too long to find, and when a
    metric's last finite value is not in the tail (its tail is all NaN or inf: the final value is earlier).
    """
    if not _read_at_ends(entry):
        return None
    ends: tuple[Run, dict[str, int]] | None
    if entry.source == "jsonl":
        ends = _jsonl_ends(entry, cfg)
    elif entry.source == "wandb":
        from runwise.parsers.wandb.ends import ends_run

        ends = ends_run(entry, cfg)
    else:
        from runwise.parsers.tensorboard.ends import ends_run as tb_ends_run

        ends = tb_ends_run(entry, cfg)
    if ends is None:
        return None
    run, tail = ends
    for name, first in tail.items():
        s = run.history[name]
        finite = s.steps[np.isfinite(s.values)]
        if not finite.size or int(finite[-1]) < first:
            return None
    run.resume = None  # it did not read the middle: nothing may resume from it
    return run, tail


def _jsonl_ends(entry: RunEntry, cfg: RunwiseConfig) -> tuple[Run, dict[str, int]] | None:
    from runwise.parsers import jsonl
    from runwise.parsers.jsonl_rows import merge, read_part

    path = entry.paths[0]
    try:
        st = path.stat()
        with path.open("rb") as fp:
            head_end = fp.read(_HEAD_BYTES).rfind(b"\n") + 1
            tail_from = max(head_end, st.st_size - _TAIL_BYTES)
            fp.seek(max(0, tail_from - 1))
            newline = fp.read(_HEAD_BYTES).find(b"\n")  # a longer line: read the log whole
        if newline < 0:
            return None
        tail_from = max(head_end, tail_from - 1 + newline + 1)
        parts = [read_part(str(path), 0, head_end), read_part(str(path), tail_from, st.st_size)]
    except OSError as exc:
        raise SourceError(f"cannot read {path.name}: {exc.strerror or exc}", path=str(path)) from exc
    merged = merge(parts)
    step_key = jsonl._step_key(cfg)
    if not any(k in merged[0].vals for k in ((step_key,) if step_key else ()) + jsonl.STEP_KEYS):
        return None
    last = merge(parts[1:])
    if not any(k in last[0].vals for k in ((step_key,) if step_key else ()) + jsonl.STEP_KEYS):
        return None  # its rows would be numbered from the tail's first line
    run = jsonl._finish(path, st, merged, step_key)
    tail = jsonl._finish(path, st, last, step_key)  # which metrics the tail holds, from which step
    run.id, run.name, run.path = entry.id, run.name or entry.name, cfg.relative(path)
    return run, {k: int(s.steps[0]) for k, s in tail.history.items() if len(s) and k in run.history}


_INDEX_BATCH = 100  # rows entered in one transaction while a listing reads runs


def _index_put(idx: index.RunIndex, new: list[tuple[str, index.Row]]) -> None:
    """Enter the runs read (and empty `new`); a failure to write is logged: the runs themselves were read."""
    if not new:
        return
    try:
        idx.put_many(new)
    except (sqlite3.Error, OSError) as exc:
        log.debug("run index not written: %s", exc)
    new.clear()


def forget_missing(entries: list[RunEntry], cfg: RunwiseConfig) -> int:
    """Remove from the index the project's runs not among `entries` (all that discovery found): they are gone."""
    try:
        return run_index(cfg).prune(e.key for e in entries)
    except (sqlite3.Error, OSError) as exc:
        log.debug("run index not pruned: %s", exc)
        return 0


# slot (see _slot) -> bytes of the files its disk cache entry was read from, as this process last wrote or read it
_on_disk: Bounded[tuple[object, ...], int] = Bounded(_NAMES_SIZE)
_BEHIND_BYTES = 4 * 1024 * 1024  # an entry this far behind its files (and _BEHIND_SHARE of them) is written again
_BEHIND_SHARE = 0.1


def _slot(entry: RunEntry, cfg: RunwiseConfig) -> tuple[object, ...]:
    """What names a run's one disk cache entry while its files grow: its key, project and file paths."""
    return (*_latest_key(entry, cfg), tuple(str(p) for p in entry.paths))


def _read(
    entry: RunEntry, cfg: RunwiseConfig, ident: tuple[object, ...], previous: Run | None, progress: Progress
) -> Run:
    """Read the run: the appended bytes on top of `previous`, else the disk cache (the entry of these
    files, or the run's entry from before it grew: then the bytes appended since on top of it), else
    the whole log.

    A run read whole is written to the disk cache when that was slow, running or not, so the next
    process reads on from it; a run read on from an entry far behind its files (`_behind`) is written
    again, so the next processes do not read the same appended bytes again and again.
    """
    slot = _slot(entry, cfg)
    run: Run | None = None
    if previous is not None:  # the same run, read before it grew: read only what was appended
        run = _refreshed(entry, cfg, previous, progress)
    if run is None and cfg.cache_enabled:
        found = cache.lookup(cfg.cache_dir, ident, slot)
        if found is not None:
            _on_disk.put(slot, found.bytes)
            if found.exact:
                return found.run
            run = _refreshed(entry, cfg, found.run, progress, stored=True)
    remote = bool(entry.extra.get("remote"))  # a W&B cloud run: every fetch is worth keeping on disk
    if run is not None:
        if cfg.cache_enabled and (remote or _behind(slot, ident)):
            _store(cfg, ident, run, slot)
        return run
    started = time.perf_counter()
    if entry.extra.get("file"):
        run = parsers.load_file(entry.paths[0], cfg, progress)
        run.id = entry.id
    else:
        run = parsers.load(entry, cfg, progress)
    if cfg.cache_enabled and (remote or time.perf_counter() - started >= cache.MIN_SECONDS):
        _store(cfg, ident, run, slot)
    return run


def _refreshed(
    entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress, *, stored: bool = False
) -> Run | None:
    """`previous` read on with what its files appended since (parsers.refresh); None when it cannot be.

    A `stored` state came from the disk cache: it decoded into the sources' own classes, but its
    values are not trusted to fit, so any failure to read on from it means a full read instead.
    """
    try:
        run = parsers.refresh(entry, cfg, previous, progress)
    except Exception:
        if not stored:
            raise
        log.debug("cache entry of %s not read on from", entry.key, exc_info=True)
        return None
    if run is not None and entry.extra.get("file"):
        run.id = entry.id
    return run


def _behind(slot: tuple[object, ...], ident: tuple[object, ...]) -> bool:
    """Whether the run's disk cache entry (as this process knows it) is far behind its files now."""
    on_disk = _on_disk.get(slot)
    if on_disk is None:  # none: the run was quick to read whole, and is not worth an entry
        return False
    now = cache.identity_bytes(ident)
    return now - on_disk >= max(_BEHIND_BYTES, _BEHIND_SHARE * now)


def _store(cfg: RunwiseConfig, ident: tuple[object, ...], run: Run, slot: tuple[object, ...]) -> None:
    """Write `run` as the run's disk cache entry (replacing the one there)."""
    cache.write(cfg.cache_dir, ident, run, max_bytes=cfg.cache_max_bytes, slot=slot)
    _on_disk.put(slot, cache.identity_bytes(ident))


def _remember(entry: RunEntry, cfg: RunwiseConfig, ident: tuple[object, ...], run: Run) -> None:
    """Keep `run` in the in-memory cache (call with `_lock` held)."""
    _cache[ident] = run
    _latest[_latest_key(entry, cfg)] = run
    _loaded_names.put(_name_key(entry), run.name)
    while len(_cache) > _CACHE_SIZE:
        _, dropped = _cache.popitem(last=False)
        for k in [k for k, v in _latest.items() if v is dropped]:
            del _latest[k]


def get_run(ref: str, cfg: RunwiseConfig, progress: Progress | None = None) -> tuple[Run, int | None]:
    """Resolve and load `ref`; returns the run and the `@step` it asked for (or None)."""
    name, step = split_step(ref)
    return load(resolve(name, cfg), cfg, progress), step


def clear_cache() -> None:
    """Forget every run read in this process (the disk cache and the index file stay)."""
    with _lock:
        _cache.clear()
        _latest.clear()
        _loaded_names.clear()
    index.clear_memory()


def cached_on_disk(entry: RunEntry, cfg: RunwiseConfig) -> bool:
    """Whether the disk cache holds the run of `entry` as its files (or cloud version) are now."""
    return cache.holds(cfg.cache_dir, _identity(entry), _slot(entry, cfg))


def is_cached(entry: RunEntry) -> bool:
    """Whether `entry` is loaded in memory with its files unchanged (so reading it costs nothing)."""
    ident = _identity(canonical_entry(entry))
    with _lock:
        return ident in _cache
