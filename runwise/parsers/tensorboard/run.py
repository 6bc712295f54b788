"""TensorBoard runs: directories of `events.out.tfevents.*` files, read without TensorFlow.

Discovery: under each TensorBoard root (`cfg.tensorboard_dirs`: runs/, logs/, lightning_logs/,
tb_logs/ and runwise.json's `tensorboard_dirs`) every directory that directly holds event files is
a run; its id is the directory relative to the root (`run_a`, `version_3`, `exp1/seed2`; a root
that holds event files itself is the run `<root name>`). A later root that yields an id already
taken prefixes it with its own name. `*.profile-empty` files are not event files. A child
directory named like a timestamp (`1700000000.123`) is where tensorboardX's `add_hparams` writes:
its files belong to the parent run (config and hparam metrics), not to a run of their own.

Loading (runwise.parsers.tensorboard.events does the bytes):
- Series: `simple_value` scalars and one-element numeric tensors whose plugin is `scalars` (TF2:
  float, double, half, ints), the plugin remembered per tag across files (TF1 writes it once).
- Restart rule (the one TensorBoard's data server applies): per tag, in file order, a point at
  step s replaces every earlier point at a step >= s. So a restarted writer whose new file
  re-logs steps 500..730 replaces the first file's 500..730, and a step logged twice keeps its
  last write. Points replaced this way are counted in `Run.warnings`; several files show as
  `Run.segments`.
- hparams (plugin `hparams`, session start info) -> `Run.config`; text summaries -> `Run.notes`
  (last text per tag); histograms, images, audio and other plugins -> `Run.non_numeric`.
- Time: `start_time` is the earliest event wall time, `runtime` the span to the latest one
  (downtime between restarts included), `summary["_steps_per_sec"]` the step rate of the most
  logged tag over its own wall times. Other summary keys are each series' last value.
- State: TensorBoard writes no exit record. `running` if an event file changed in the last
  LIVE_SECONDS; else `crashed` if the newest file ends in a partial record (the writer died
  mid-write); else `unknown` (finished and killed look the same).
- Growing runs: a full load leaves per-file state in `Run.resume`; `refresh` reads only the bytes
  appended since (and event files a restarted writer added after the known ones) and assembles
  the run by the same rules (see tensorboard.resume).
- Damage: records that fail their CRC are skipped and counted, lost framing is resynchronised
  (see tfevents); a file that is not a TFRecord becomes a warning when other files of the run are
  readable, and a SourceError naming it when none is.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from runwise.errors import RunwiseError, SourceError
from runwise.model import CRASHED, LIVE_SECONDS, RUNNING, UNKNOWN, Run, RunEntry, Series, make_series
from runwise.parsers import Progress
from runwise.parsers._walk import Skipped, walk
from runwise.parsers.filetypes import is_tfevents
from runwise.parsers.tensorboard.events import EventColumns, TagColumns, read_events
from runwise.parsers.tensorboard.resume import FileState, TBResume, grow_files, snapshot

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig

NOTE_CHARS = 1000  # per text tag in Run.notes
_HPARAMS_DIR = re.compile(r"^\d{9,}\.\d+$")


def discover(cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
    """Every directory holding event files under the TensorBoard roots (names and stats only).

    Links are followed only inside the project roots (parsers._walk); `notes` gets one line about
    the links skipped.
    """
    entries: list[RunEntry] = []
    ids: set[str] = set()
    skipped = Skipped()
    dirs = walk(cfg.tensorboard_dirs, cfg.roots, want=is_tfevents, skipped=skipped, show=cfg.relative)
    by_path = {d.path: d for d in dirs}
    for d in dirs:
        if not d.files:
            continue
        parent = by_path.get(d.path.parent)
        if _HPARAMS_DIR.match(d.path.name) and parent is not None and parent.files:
            continue  # belongs to the parent run
        files = [d.path / f for f in d.files]
        for child in (by_path.get(d.path / c) for c in d.dirs if _HPARAMS_DIR.match(c)):
            if child is not None:
                files += [child.path / f for f in child.files]
        rel = d.path.relative_to(d.top).as_posix()
        run_id = d.top.name if rel == "." else rel
        if run_id in ids:
            run_id = f"{d.top.name}/{run_id}"
        ids.add(run_id)
        try:
            stats = [p.stat() for p in files]
        except OSError:  # removed while listing
            continue
        entries.append(
            RunEntry(
                run_id,
                "tensorboard",
                tuple(files),
                name=run_id,
                mtime=max(s.st_mtime for s in stats),
                size=sum(s.st_size for s in stats),
                extra={"dir": str(d.path), "name_final": True},  # its name is its id
            )
        )
    if notes is not None:
        notes.extend(skipped.notes("tensorboard", "tensorboard_dirs"))
    return entries


def display_name(entry: RunEntry, cfg: RunwiseConfig) -> str:
    """A TensorBoard run's name is its id (event files name no run)."""
    return entry.name or entry.id


def _files(d: Path) -> list[Path]:
    try:
        return [p for p in d.iterdir() if p.is_file()]
    except OSError:
        return []


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Load one tfevents file, or a run directory (its event files and hparams children)."""
    return load(_file_entry(cfg.check_inside(path), cfg), cfg, progress)


def _file_entry(path: Path, cfg: RunwiseConfig) -> RunEntry:
    """The run a tfevents file or a run directory given by path stands for."""
    if path.is_dir():
        files = sorted(p for p in _files(path) if is_tfevents(p.name))
        files += [
            f
            for d in sorted(path.iterdir())
            if d.is_dir() and _HPARAMS_DIR.match(d.name)
            for f in sorted(_files(d))
            if is_tfevents(f.name)
        ]
        if not files:
            raise SourceError(f"no tfevents files in {cfg.relative(path)!r}", path=str(path))
        run_dir = path
    else:
        files, run_dir = [path], path.parent
    run_id = cfg.relative(run_dir)
    return RunEntry(run_id, "tensorboard", tuple(files), name=run_id, extra={"dir": str(run_dir)})


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    """`previous` re-read from the bytes its files appended since (and event files added after
    them): the Run a full load gives now, or None when it cannot (see tensorboard.resume)."""
    state = previous.resume
    if not isinstance(state, TBResume):
        return None
    if entry.extra.get("file"):
        try:
            entry = _file_entry(cfg.check_inside(entry.paths[0]), cfg)
        except (RunwiseError, OSError):
            return None
    run_dir = Path(entry.extra.get("dir") or entry.paths[0].parent)
    files = grow_files(entry.paths, run_dir, state, cfg.relative, progress)
    if files is None:
        return None
    main = [(f.path, f.cols) for f in files if f.path.parent == run_dir]
    run = _assemble(entry, cfg, run_dir, main, [f.cols for f in files if f.path.parent != run_dir], [])
    run.resume = TBResume(run_dir, tuple(files))
    return run


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Parse a run's event files into the run model (see the module docstring for the rules)."""
    run_dir = Path(entry.extra.get("dir") or entry.paths[0].parent)
    own = [p for p in entry.paths if p.parent == run_dir]
    extra = [p for p in entry.paths if p.parent != run_dir]
    sizes = {p: (p.stat().st_size if p.exists() else 0) for p in entry.paths}
    total, done = float(sum(sizes.values())), 0.0
    warnings: list[str] = []
    read: list[tuple[Path, EventColumns]] = []
    states: list[FileState] = []
    errors: list[SourceError] = []
    for p in own + extra:
        rel = cfg.relative(p)

        def tick(n: int, base: float = done) -> None:
            if progress is not None:
                progress(base + n, total)

        try:
            with p.open("rb") as fp:
                cols = read_events(fp, path=rel, progress=tick)
                read.append((p, cols))
                states.append(snapshot(fp, p, cols))
        except SourceError as exc:
            errors.append(exc)
            warnings.append(f"skipped {p.name}: {exc}")
        except OSError as exc:
            errors.append(SourceError(f"cannot read {rel!r}: {exc}", path=rel))
            warnings.append(f"skipped {p.name}: {exc}")
        done += sizes[p]
    main = [(p, c) for p, c in read if p.parent == run_dir]
    if not main and errors:
        raise errors[0]
    run = _assemble(entry, cfg, run_dir, main, [c for p, c in read if p.parent != run_dir], warnings)
    if not errors and len(states) == len(read):
        run.resume = TBResume(run_dir, tuple(states))
    return run


def _assemble(
    entry: RunEntry,
    cfg: RunwiseConfig,
    run_dir: Path,
    files: list[tuple[Path, EventColumns]],
    hparam_files: list[EventColumns],
    warnings: list[str],
) -> Run:
    plugins: dict[str, str] = {}
    for _, cols in files + [(run_dir, c) for c in hparam_files]:
        for tag, plugin in cols.plugins.items():
            plugins.setdefault(tag, plugin)
    history, replaced, rate = _history([c for _, c in files], plugins)
    config: dict[str, Any] = {}
    non_numeric: dict[str, str] = {}
    texts: dict[str, tuple[int, str]] = {}
    for cols in [c for _, c in files] + hparam_files:
        config.update(cols.hparams)
        for tag, kind in cols.kinds.items():
            non_numeric.setdefault(tag, kind)
        for tag in cols.tensors:
            if plugins.get(tag) != "scalars":
                non_numeric.setdefault(tag, plugins.get(tag) or "tensor")
        for tag, step, text in cols.texts:
            texts[tag] = (step, text)
    for cols in hparam_files:  # add_hparams' metric values, unless the run logs the same tag
        extra, _, _ = _history([cols], plugins)
        for tag, series in extra.items():
            history.setdefault(tag, series)
    for tag in history:
        non_numeric.pop(tag, None)

    warnings.extend(_damage_notes(files, replaced))
    truncated = bool(files) and files[-1][1].stats.truncated > 0
    firsts = [c.first_wall for _, c in files if c.first_wall is not None]
    lasts = [c.last_wall for _, c in files if c.last_wall is not None]
    start = min(firsts) if firsts else None
    runtime = (max(lasts) - start) if (lasts and start is not None) else None
    mtimes = [p.stat().st_mtime for p, _ in files if p.exists()]
    last_write = max(mtimes) if mtimes else None
    live = last_write is not None and time.time() - last_write < LIVE_SECONDS
    state = RUNNING if live else (CRASHED if truncated else UNKNOWN)
    summary: dict[str, Any] = {k: float(s.values[-1]) for k, s in history.items() if len(s)}
    if rate is not None:
        summary["_steps_per_sec"] = rate
    notes = "\n".join(f"{tag} (step {step}): {text[:NOTE_CHARS]}" for tag, (step, text) in texts.items())
    rel_dir = cfg.relative(run_dir)
    return Run(
        id=entry.id,
        source="tensorboard",
        path=rel_dir,
        name=entry.name or entry.id,
        state=state,
        group=entry.id.rsplit("/", 1)[0] if "/" in entry.id else "",
        notes=notes,
        config=config,
        summary=summary,
        start_time=start,
        runtime=runtime,
        last_write=last_write,
        segments=[p.name for p, _ in files] if len(files) > 1 else [],
        history=history,
        non_numeric=non_numeric,
        warnings=warnings,
        truncated=truncated,
    )


def _damage_notes(files: list[tuple[Path, EventColumns]], replaced: dict[str, int]) -> list[str]:
    notes: list[str] = []
    for p, cols in files:
        st = cols.stats
        first = f" (first at byte {min(st.damage_offsets)})" if st.damage_offsets else ""
        if st.bad_crc:
            notes.append(f"{p.name}: skipped {st.bad_crc} records whose checksum failed{first}")
        if st.lost_framing:
            notes.append(
                f"{p.name}: record framing lost {st.lost_framing} time(s){first}; "
                f"skipped {st.skipped_bytes} bytes to the next valid record"
            )
        if cols.undecodable:
            notes.append(f"{p.name}: {cols.undecodable} records passed their checksum but are not valid events")
        if st.truncated and p != files[-1][0]:
            notes.append(f"{p.name} ends in a partial record ({st.truncated} bytes): its writer was killed")
    if files and files[-1][1].stats.truncated:
        notes.append(
            f"the last record of {files[-1][0].name} is incomplete ({files[-1][1].stats.truncated} bytes): "
            "the writer is still running or died mid-write"
        )
    if len(files) > 1:
        notes.append(f"restarted writer: {len(files)} event files read in order")
    if replaced:
        notes.append(
            f"{sum(replaced.values())} points of {len(replaced)} tag{'s' if len(replaced) > 1 else ''} were "
            "replaced by later writes at the "
            "same or an earlier step (restart rule: the later write wins)"
        )
    return notes


def _history(
    files: list[EventColumns], plugins: dict[str, str]
) -> tuple[dict[str, Series], dict[str, int], float | None]:
    """Per-tag series across files in order, with the restart rule; replaced counts; step rate."""
    per_tag: dict[str, list[TagColumns]] = {}
    for cols in files:
        for tag, tc in cols.scalars.items():
            per_tag.setdefault(tag, []).append(tc)
        for tag, tc in cols.tensors.items():
            if plugins.get(tag) == "scalars":
                per_tag.setdefault(tag, []).append(tc)
    history: dict[str, Series] = {}
    replaced: dict[str, int] = {}
    best: tuple[int, float | None] = (0, None)
    for tag in sorted(per_tag):
        arrays = [tc.arrays() for tc in per_tag[tag]]
        steps = np.concatenate([a[0] for a in arrays])
        values = np.concatenate([a[1] for a in arrays])
        walls = np.concatenate([a[2] for a in arrays])
        keep = latest_writes(steps)
        if not keep.all():
            replaced[tag] = int(keep.size - np.count_nonzero(keep))
            steps, values, walls = steps[keep], values[keep], walls[keep]
        history[tag] = make_series(tag, steps, values)
        if steps.size > best[0]:
            best = (int(steps.size), _rate(steps, walls))
    return history, replaced, best[1]


def latest_writes(steps: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Points that survive the restart rule: no later point has the same or a smaller step."""
    keep = np.ones(steps.size, dtype=bool)
    if steps.size > 1:
        later_min = np.minimum.accumulate(steps[::-1])[::-1]
        keep[:-1] = steps[:-1] < later_min[1:]
    return keep


def _rate(steps: NDArray[np.int64], walls: NDArray[np.float64]) -> float | None:
    ok = walls > 0
    if np.count_nonzero(ok) < 2:
        return None
    i, j = int(np.argmax(ok)), int(ok.size - 1 - np.argmax(ok[::-1]))  # first and last with a wall time
    span = float(walls[j] - walls[i])
    return float(steps[j] - steps[i]) / span if span > 0 else None
