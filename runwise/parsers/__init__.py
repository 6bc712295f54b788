"""Source registry: one module per source, imported only when a tool needs it.

Every source module (`jsonl`, `tensorboard`, `wandb`) satisfies the `Source` protocol below; mypy
checks that each does (`_CHECKED`), and `source_module` hands them out typed as `Source`. Which
file names are which kind of log is `parsers.filetypes`; discovery lists directories through
`parsers._walk`, which follows links only inside the project roots.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from runwise.errors import UnsupportedFormat
from runwise.parsers import filetypes

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig
    from runwise.model import Run, RunEntry

# progress(done, total): both in bytes of the file(s) being read
Progress = Callable[[float, float], None]


class Source(Protocol):
    """What a source module provides (modules satisfy a Protocol through their functions)."""

    def discover(self, cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
        """Find the source's runs cheaply (names, sizes, mtimes; no history parsed). Links are
        followed only inside the roots; one line per kind of link skipped is appended to `notes`."""
        ...

    def load(self, entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
        """Parse one run into the run model. Damage is reported in `Run.warnings`, never raised,
        unless nothing at all is readable (then a SourceError naming the file)."""
        ...

    def load_file(self, path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
        """Load a single log file or run directory given by path."""
        ...

    def display_name(self, entry: RunEntry, cfg: RunwiseConfig) -> str:
        """The name a load would give the run, found as cheaply as the source can (run references
        use it when the name discovery found may not be the last word; `entry.extra["name_final"]`
        says it is)."""
        ...

    def refresh(
        self, entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None
    ) -> Run | None:
        """Read only what was appended to the run's files since `previous` was read (from the state
        the source left in `previous.resume`) and return a new Run equal to what a full load would
        give now; None when it cannot (a file replaced, shortened or rewritten, a new file or
        segment), and the caller then loads in full. Never modifies `previous`."""
        ...


if TYPE_CHECKING:  # each source module is a Source: mypy checks these assignments, at no cost at run time
    from runwise.parsers import csvlog as _csvlog
    from runwise.parsers import dvclive as _dvclive
    from runwise.parsers import hf as _hf
    from runwise.parsers import jsonl as _jsonl
    from runwise.parsers import mlflow as _mlflow
    from runwise.parsers import tensorboard as _tensorboard
    from runwise.parsers import trackio as _trackio
    from runwise.parsers import wandb as _wandb
    from runwise.parsers import wandb_cloud as _wandb_cloud

    _CHECKED: tuple[Source, ...] = (
        _jsonl, _tensorboard, _wandb, _wandb_cloud, _mlflow, _dvclive, _trackio, _hf, _csvlog,
    )

SOURCES: dict[str, str] = {
    "wandb": "runwise.parsers.wandb",
    "tensorboard": "runwise.parsers.tensorboard",
    "jsonl": "runwise.parsers.jsonl",
    "mlflow": "runwise.parsers.mlflow",  # MLflow's SQLite and file stores
    "dvclive": "runwise.parsers.dvclive",
    "trackio": "runwise.parsers.trackio",  # Trackio's <project>.db files
    "hf": "runwise.parsers.hf",  # Hugging Face Trainer output directories (trainer_state.json)
    "csv": "runwise.parsers.csvlog",  # Lightning CSVLogger, Ultralytics, SB3/RLlib, Keras CSV logs
    "wandb-cloud": "runwise.parsers.wandb_cloud",  # W&B's servers: discovers nothing (listed when asked)
}


def source_module(name: str) -> Source:
    """Import the module of source `name` (lazily: wandb/tensorboard readers cost nothing until used)."""
    return cast(Source, importlib.import_module(SOURCES[name]))


def import_all() -> None:
    """Import every source's reader now, as discovery will (its `discover` too, which a package may import
    lazily): the CLI and the server call it while the store worker fetches a remote root. A source that
    cannot be imported is left for discovery to report."""
    for name in SOURCES:
        try:
            _ = source_module(name).discover
        except ImportError:
            continue


def discover_all(cfg: RunwiseConfig) -> tuple[list[RunEntry], list[str]]:
    """Every run of every source, plus notes: a source that could not be listed, links not followed."""
    from runwise.parsers._walk import shared_listings

    entries: list[RunEntry] = []
    warnings: list[str] = []
    with shared_listings():  # a directory several sources look into is listed once
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
    """Parse the run `entry` names with its source."""
    return source_module(entry.source).load(entry, cfg, progress)


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    """The source's incremental re-read of a grown run, or None if it has none or cannot."""
    if previous.resume is None:
        return None
    return source_module(entry.source).refresh(entry, cfg, previous, progress)


def sniff_source(path: Path) -> str:
    """Which source reads the file or run directory at `path`, from its name (rules: parsers.filetypes)."""
    name = path.name
    if filetypes.is_wandb_log(name):
        return "wandb"
    if filetypes.is_tfevents(name) or (path.is_dir() and any(filetypes.is_tfevents(p.name) for p in path.iterdir())):
        return "tensorboard"
    if filetypes.is_jsonl(name):
        return "jsonl"
    from runwise.parsers import _sqlite, mlflow, trackio  # standard library only

    if name.endswith(".db") and trackio.is_trackio_db(path):
        return "trackio"

    if mlflow.is_run_dir(path) or (name.endswith(".db") and _sqlite.is_sqlite(path)):
        return "mlflow"
    if path.is_dir() and (
        any(filetypes.is_wandb_log(p.name) for p in path.iterdir()) or (path / filetypes.WANDB_HISTORY).exists()
    ):
        return "wandb"
    if path.is_dir() and (path / "plots" / "metrics").is_dir():
        return "dvclive"
    from runwise.parsers import hf  # standard library only

    if name == hf.STATE or hf.is_output_dir(path):
        return "hf"
    if name.endswith(".csv") or (path.is_dir() and any((path / n).is_file() for n in filetypes.CSV_RUN_FILES)):
        return "csv"
    raise UnsupportedFormat(
        f"no reader for {name!r}: expected a .wandb file, a W&B run directory, a tfevents file, a .jsonl log, "
        "an MLflow store or run, a DVCLive directory, a trackio .db, a Hugging Face Trainer output directory "
        "or a CSV log",
        path=str(path),
    )


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """Load a single log file or run directory given by path."""
    return source_module(sniff_source(path)).load_file(path, cfg, progress)
