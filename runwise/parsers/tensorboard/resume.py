"""Reading only what a growing TensorBoard run appended (for `tensorboard.refresh`).

A full load leaves a `TBResume` in `Run.resume`: per event file a `FileState` with a
`_growth.FileMark` (the file's identity, the offset after its last complete record, a digest of
its start and of the bytes before that offset) and the columns read so far. `grow_files` checks that each known file is
the same file grown by appending (same identity, not shorter, those bytes unchanged), reads its
new bytes from the offset on and joins them to its columns (events.merge_columns: the columns a
single read of the whole file gives); the caller then assembles the run exactly as a full load
does (restart rule across files, config, notes, state, warnings). An event file that appeared in
the run directory after the known ones (a restarted writer) is read whole.

Anything else answers None and the caller reads the run in full: a file replaced, shortened or
rewritten; a file whose end framing was still resynchronising through (damage at the end: its
next bytes decide where framing resumes); a known file gone; a new file that sorts before the known
ones or in an hparams child directory; a file that cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runwise.errors import SourceError
from runwise.parsers import Progress
from runwise.parsers._growth import FileMark, grown, take
from runwise.parsers.tensorboard.events import EventColumns, merge_columns, read_events


@dataclass(frozen=True, slots=True)
class FileState:
    """One event file as far as it was read."""

    path: Path
    mark: FileMark  # size: bytes read, a partial last record included; offset: after the last complete one
    cols: EventColumns

    @property
    def size(self) -> int:
        return self.mark.size

    @property
    def offset(self) -> int:
        return self.mark.offset


@dataclass(frozen=True, slots=True)
class TBResume:
    """What a TensorBoard run was built from: its directory and its files in load order."""

    run_dir: Path
    files: tuple[FileState, ...]


def snapshot(fp: BinaryIO, path: Path, cols: EventColumns) -> FileState:
    """The state of the file open as `fp` after reading it into `cols`."""
    mark = take(fp, size=cols.stats.size, offset=cols.stats.size - cols.stats.truncated)
    return FileState(path, mark, cols)


def grow_files(
    paths: tuple[Path, ...],
    run_dir: Path,
    state: TBResume,
    rel: Callable[[Path], str],
    progress: Progress | None = None,
) -> list[FileState] | None:
    """The state of every file of the run now (in load order), reading only appended bytes."""
    if run_dir != state.run_dir:
        return None
    own = [p for p in paths if p.parent == run_dir]
    extra = [p for p in paths if p.parent != run_dir]
    known = [f.path for f in state.files]
    known_own = [p for p in known if p.parent == run_dir]
    if own[: len(known_own)] != known_own or known[len(known_own) :] != extra:
        return None
    added = own[len(known_own) :]
    by_path = {f.path: f for f in state.files}
    sizes: dict[Path, int] = {}
    try:
        for p in own + extra:
            sizes[p] = p.stat().st_size
    except OSError:
        return None
    todo = {p: sizes[p] - (by_path[p].offset if p in by_path else 0) for p in own + extra}
    total = float(sum(n for p, n in todo.items() if p not in by_path or sizes[p] != by_path[p].size))
    done = 0.0
    out: list[FileState] = []
    for p in own + extra:

        def tick(n: int, base: float = done) -> None:
            if progress is not None:
                progress(base + n, total)

        fs = _grow(by_path[p], rel(p), tick) if p in by_path else _read_new(p, rel(p), tick)
        if fs is None:
            return None
        if p in added or fs is not by_path[p]:
            done += todo[p]
        out.append(fs)
    return out


def _grow(fs: FileState, rel: str, tick: Callable[[int], None]) -> FileState | None:
    try:
        with fs.path.open("rb") as fp:
            st = grown(fs.mark, fp)
            if st is None:
                return None
            if st.st_size == fs.size:
                return fs
            if fs.cols.stats.resyncing:
                return None
            new = read_events(fp, path=rel, start=fs.offset, progress=tick)
            return snapshot(fp, fs.path, merge_columns(fs.cols, new))
    except (OSError, SourceError):
        return None


def _read_new(path: Path, rel: str, tick: Callable[[int], None]) -> FileState | None:
    try:
        with path.open("rb") as fp:
            return snapshot(fp, path, read_events(fp, path=rel, progress=tick))
    except (OSError, SourceError):
        return None
