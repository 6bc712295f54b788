"""Directory listing that stays inside the project roots: every source's discovery goes through it.

Rule (DESIGN.md, "Read-only and contained"): a symbolic link, to a file or to a directory, is
followed only when its target resolves inside one of the roots (`RunwiseConfig.roots`: the project
root and the configured log directories). Any other link is skipped and recorded in `Skipped`,
which becomes one bounded note naming the config key that would include the target. A dangling
link is skipped and recorded too. Links to files no source reads (`debug-core.log` in a W&B run
directory) are ignored without a note.

Each directory is visited once, by its (device, inode): a link loop (a link to its own parent) ends
there, two links to one directory list it once, and a real directory wins over a link to it
(`walk` lists every plain tree first and then follows directory links, breadth first).
`outside_roots` is the same rule applied when a run is loaded (defence in depth: an entry built
some other way is checked before a byte is read).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runwise.parsers.filetypes import is_log_file

SHOWN = 3  # link names quoted in a note; the rest are counted
NAME_CHARS = 80  # of each quoted name
MAX_DIRS = 100_000  # directories visited per walk, whatever the tree holds


@dataclass(slots=True)
class Skipped:
    """Links discovery did not follow, by the path they were seen at."""

    outside: list[str] = field(default_factory=list)
    dangling: list[str] = field(default_factory=list)

    def notes(self, source: str, key: str) -> list[str]:
        """At most two short notes: the links outside the roots (naming `key`), and dangling ones."""
        out: list[str] = []
        if self.outside:
            n = len(self.outside)
            out.append(
                f"{source}: skipped {n} link{'s' if n > 1 else ''} to outside the project roots "
                f"({_names(self.outside)}); to read {'them' if n > 1 else 'it'}, name the target's directory "
                f"in {key} in runwise.json"
            )
        if self.dangling:
            n = len(self.dangling)
            out.append(f"{source}: skipped {n} dangling link{'s' if n > 1 else ''} ({_names(self.dangling)})")
        return out


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(n if len(n) <= NAME_CHARS else n[: NAME_CHARS - 1] + "…" for n in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def is_inside(path: Path, roots: Iterable[Path]) -> bool:
    """Whether `path`, resolved, is one of `roots` or lies under one (roots are taken as resolved)."""
    try:
        p = os.path.realpath(path)
    except (OSError, ValueError):  # a NUL byte
        return False
    return any(p == str(r) or p.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)


def files_stamp(paths: Iterable[str | os.PathLike[str]]) -> tuple[float, int]:
    """(newest mtime, total size) of those of `paths` that can be stat'ed: a run entry's mtime and size."""
    mtime, size = 0.0, 0
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        mtime, size = max(mtime, st.st_mtime), size + st.st_size
    return mtime, size


@dataclass(slots=True)
class Dir:
    """One directory as discovery reached it: `path` is how it was reached (through links)."""

    top: Path  # the root the walk started from
    path: Path
    dirs: list[str]  # child directories (links to directories inside the roots included)
    files: list[str]  # wanted files (links to files inside the roots included)


def list_dir(
    d: Path,
    roots: Sequence[Path],
    *,
    want: Callable[[str], bool],
    skipped: Skipped,
    show: Callable[[Path], str],
    hidden: bool = False,
) -> tuple[list[str], list[str], list[str]]:
    """One directory's (plain child directories, linked child directories, wanted files), by name.

    Links are followed or skipped by the rule above; names starting with "." are left out unless
    `hidden`. An unreadable directory lists as empty.
    """
    _note(d)  # before the listing: a change after it shows as a newer mtime
    items = _entries(d)
    if items is None:
        return [], [], []
    plain: list[str] = []
    linked: list[str] = []
    files: list[str] = []
    for e in items:
        if not hidden and e.name.startswith("."):
            continue
        try:
            if not e.is_symlink():
                if e.is_dir(follow_symlinks=False):
                    plain.append(e.name)
                elif e.is_file(follow_symlinks=False) and want(e.name):
                    files.append(e.name)
                continue
            is_dir = e.is_dir()  # follows the link; False when it dangles
            if not is_dir and not want(e.name):
                continue  # a link to a file no source reads: none of our business
            if not is_dir and not e.is_file():
                skipped.dangling.append(show(Path(e.path)))
                continue
        except OSError:
            continue
        if not is_inside(Path(e.path), roots):
            skipped.outside.append(show(Path(e.path)))
        elif is_dir:
            linked.append(e.name)
        else:
            files.append(e.name)
    return plain, linked, files


def walk(
    tops: Sequence[Path],
    roots: Sequence[Path],
    *,
    want: Callable[[str], bool],
    skipped: Skipped,
    show: Callable[[Path], str],
    hidden: bool = False,
    prune: frozenset[str] = frozenset(),
) -> list[Dir]:
    """Every directory under `tops` (and under links inside the roots), each once, with its wanted files.

    Plain trees first, in name order, then the directories reached through links, breadth first,
    so a directory that is also reachable without a link is listed at its own path. Directories
    named in `prune` are not entered.
    """
    seen: set[tuple[int, int]] = set()  # (device, inode) of every directory listed
    out: list[Dir] = []
    links: list[tuple[Path, Path]] = []

    def visit(top: Path, start: Path) -> None:
        stack = [start]
        while stack and len(seen) < MAX_DIRS:
            d = stack.pop()
            try:
                st = os.stat(d)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            plain, linked, files = list_dir(d, roots, want=want, skipped=skipped, show=show, hidden=hidden)
            out.append(Dir(top, d, sorted(plain + linked), files))
            stack.extend(d / name for name in reversed(plain) if name not in prune)
            links.extend((top, d / name) for name in linked if name not in prune)

    for top in tops:
        if top.is_dir():
            visit(top, top)
        else:
            _note(top)  # its absence: a listing after it is made differs
    while links:
        top, link = links.pop(0)
        visit(top, link)
    return out


def outside_roots(paths: Iterable[Path], roots: Sequence[Path]) -> Path | None:
    """The first of `paths` that resolves outside the roots, or of the log files a reader may open
    in a directory among them (its own, and those one level down: W&B `files/`, TensorBoard
    hparams runs); None when all are inside. A file that does not exist is never read: it passes."""
    for p in paths:
        if not is_inside(p, roots):
            return p
        for f in _log_files(p, depth=1):
            if f.exists() and not is_inside(f, roots):
                return f
    return None


def _log_files(d: Path, *, depth: int) -> Iterator[Path]:
    try:
        children = sorted(d.iterdir())
    except OSError:  # not a directory, or unreadable: nothing is read from it
        return
    for c in children:
        if is_log_file(c.name):
            yield c
        elif depth > 0 and c.is_dir():
            yield from _log_files(c, depth=depth - 1)


# ---------------------------------------------------------------- what a listing looked at

_recorder = threading.local()
_shared = threading.local()


@contextlib.contextmanager
def shared_listings() -> Iterator[None]:
    """Meanwhile, in this thread, each directory is read from the disk once however many sources list it
    (one discovery pass: the JSONL, DVCLive, Hugging Face and CSV sources all walk the project root)."""
    outer = getattr(_shared, "memo", None)
    _shared.memo = {} if outer is None else outer
    try:
        yield
    finally:
        _shared.memo = outer


def _entries(d: Path) -> list[os.DirEntry[str]] | None:
    """The entries of directory `d` by name (None when it cannot be listed), from the shared listings if any."""
    memo: dict[str, list[os.DirEntry[str]] | None] | None = getattr(_shared, "memo", None)
    key = str(d)
    if memo is not None and key in memo:
        return memo[key]
    try:
        with os.scandir(d) as it:
            items: list[os.DirEntry[str]] | None = sorted(it, key=lambda e: e.name)
    except OSError:
        items = None
    if memo is not None:
        memo[key] = items
    return items


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[str, int, int]]]:
    """Collect, in this thread, every directory listed meanwhile (and every top looked for and not
    found), as (path, 0, mtime_ns), or (path, -1, 0) when it does not exist or is not a directory.

    While none of them changed (a stat shows the same), a listing finds the same directories and
    files (runwise.answers checks this instead of listing again).
    """
    seen: list[tuple[str, int, int]] = []
    outer = getattr(_recorder, "seen", None)
    _recorder.seen = seen
    try:
        yield seen
    finally:
        _recorder.seen = outer


def dir_stat(path: str) -> tuple[str, int, int]:
    """`(path, 0, mtime_ns)` of a directory, `(path, -1, 0)` for anything else: what `recording` notes."""
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, 0)
    return (path, 0, st.st_mtime_ns) if stat.S_ISDIR(st.st_mode) else (path, -1, 0)


def _note(d: Path) -> None:
    seen = getattr(_recorder, "seen", None)
    if seen is not None:
        seen.append(dir_stat(str(d)))
