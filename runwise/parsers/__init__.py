"""Source registry: one module per source, imported only when a tool needs it.

Every source module provides two functions:

    discover(cfg: RunwiseConfig) -> list[RunEntry]
        Find the source's runs cheaply (names and mtimes; no history parsing).
    load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run
        Parse one run into the run model. Damage is reported in `Run.warnings`, never raised,
        unless nothing at all is readable (then a SourceError naming the file).

and optionally `load_file(path: Path, cfg, progress=None) -> Run` for a single log file given by
path, and

    refresh(entry: RunEntry, cfg, previous: Run, progress: Progress | None = None) -> Run | None
        Read only what was appended to the run's files since `previous` was read (from the state
        the source left in `previous.resume`) and return a new Run equal to what a full load
        would give now; None when it cannot (a file replaced, shortened or rewritten, a new
        file or segment), and the caller then loads in full. Never modifies `previous`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from runwise.errors import UnsupportedFormat
from runwise.parsers import filetypes

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig
    from runwise.model import Run, RunEntry

# progress(done, total): both in bytes of the file(s) being read
Progress = Callable[[float, float], None]

SOURCES: dict[str, str] = {
    "wandb": "runwise.parsers.wandb",
    "tensorboard": "runwise.parsers.tensorboard",
    "jsonl": "runwise.parsers.jsonl",
}


def source_module(name: str) -> ModuleType:
    """Import the module of source `name` (lazily: wandb/tensorboard readers cost nothing until used)."""
    return importlib.import_module(SOURCES[name])


def discover_all(cfg: RunwiseConfig) -> tuple[list[RunEntry], list[str]]:
    """Every run of every source, plus notes: a source that could not be listed, links not followed."""
    entries: list[RunEntry] = []
    warnings: list[str] = []
    for name in SOURCES:
        try:
            mod = source_module(name)
        except ModuleNotFoundError as exc:  # a source whose reader is not installed
            warnings.append(f"{name} runs not listed: {exc}")
            continue
        try:
            entries.extend(mod.discover(cfg, warnings))
        except OSError as exc:
            warnings.append(f"{name} runs not listed: {exc}")
    return entries, warnings


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    run: Run = source_module(entry.source).load(entry, cfg, progress)
    return run


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    """The source's incremental re-read of a grown run, or None if it has none or cannot."""
    if previous.resume is None:
        return None
    fn = getattr(source_module(entry.source), "refresh", None)
    if fn is None:
        return None
    run: Run | None = fn(entry, cfg, previous, progress)
    return run


def sniff_source(path: Path) -> str:
    """Which source reads the file or run directory at `path`, from its name (rules: parsers.filetypes)."""
    name = path.name
    if filetypes.is_wandb_log(name):
        return "wandb"
    if filetypes.is_tfevents(name) or (path.is_dir() and any(filetypes.is_tfevents(p.name) for p in path.iterdir())):
        return "tensorboard"
    if filetypes.is_jsonl(name):
        return "jsonl"
    if path.is_dir() and (
        any(filetypes.is_wandb_log(p.name) for p in path.iterdir()) or (path / filetypes.WANDB_HISTORY).exists()
    ):
        return "wandb"
    raise UnsupportedFormat(
        f"no reader for {name!r}: expected a .wandb file, a W&B run directory, a tfevents file or a .jsonl log",
        path=str(path),
    )


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Load a single log file or run directory given by path."""
    run: Run = source_module(sniff_source(path)).load_file(path, cfg, progress)
    return run
