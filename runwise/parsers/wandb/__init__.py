"""The W&B source: run directories and their binary `run-<id>.wandb` logs.

Modules, bottom up: `log` (LevelDB-style framing, CRCs, damage), `walk` (protobuf walked in bulk
with numpy), `columns` (history columns from a window of records), `records` (exact per-record
decoding), `live` (state for reading only what a growing log appended), `segment` (one run
directory), `legacy` (the side files of old clients), `run` (discovery, resumed-run merge, the
source functions below). `workers` reads a big log in several processes.

The source functions are imported from `run` on first use, so that a worker child (which imports
only `workers`) does not pay for the run model and the configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runwise.parsers.wandb.run import discover, display_name, load, load_file, refresh

__all__ = ["discover", "display_name", "load", "load_file", "refresh"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from runwise.parsers.wandb import run

        value = getattr(run, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
