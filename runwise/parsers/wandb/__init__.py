"""The W&B source: run directories and their binary `run-<id>.wandb` logs.

Modules, bottom up: `log` (LevelDB-style framing, CRCs, damage), `walk` (protobuf walked in bulk
with numpy), `columns` (history columns from a window of records), `records` (exact per-record
decoding), `live` (state for reading only what a growing log appended), `segment` (one run
directory), `legacy` (the side files of old clients), `run` (discovery, resumed-run merge, the
source functions below).
"""

from __future__ import annotations

from runwise.parsers.wandb.run import discover, display_name, load, load_file, refresh

__all__ = ["discover", "display_name", "load", "load_file", "refresh"]
