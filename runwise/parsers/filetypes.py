"""Which file names are which kind of training log: the one place these rules live.

Cheap to import (no numpy, no pydantic): the CLI, the run references and every source's
discovery ask here.

- JSONL log: a name ending in `.jsonl` or `.ndjson`.
- TensorBoard event file: a name containing `tfevents` (TensorBoard's own rule), except the
  `*.profile-empty` markers the profiler writes.
- W&B transaction log: a name ending in `.wandb` (`run-<id>.wandb` inside a run directory).
- W&B side files: the text files old clients (and runs without a log) keep in a run directory or
  its `files/`; `wandb-history.jsonl` holds the history of wandb <= 0.10 runs.
"""

from __future__ import annotations

import re

JSONL_SUFFIXES = (".jsonl", ".ndjson")
WANDB_SUFFIX = ".wandb"
WANDB_HISTORY = "wandb-history.jsonl"
WANDB_SIDE_FILES = (WANDB_HISTORY, "wandb-summary.json", "config.yaml", "wandb-metadata.json", "output.log")
# <wandb_dir>/{run|offline-run|dryrun}-YYYYMMDD_HHMMSS-<id>[-N]
# the file names of CSV logs whose writer is known (runwise.parsers.csvlog): Lightning, Ultralytics, SB3/RLlib
CSV_RUN_FILES = ("metrics.csv", "results.csv", "progress.csv")
WANDB_RUN_DIR = re.compile(r"^(?:run|offline-run|dryrun)-(\d{8}_\d{6})-(.+)$")


def is_jsonl(name: str) -> bool:
    """A JSONL log file name (`*.jsonl`, `*.ndjson`)."""
    return name.endswith(JSONL_SUFFIXES)


def is_tfevents(name: str) -> bool:
    """A TensorBoard event file name (it contains `tfevents`; `*.profile-empty` markers are not)."""
    return "tfevents" in name and not name.endswith(".profile-empty")


def is_wandb_log(name: str) -> bool:
    """A W&B binary transaction log (`run-<id>.wandb`)."""
    return name.endswith(WANDB_SUFFIX)


def is_wandb_side_file(name: str) -> bool:
    """A text file runwise reads from a W&B run directory (old clients, runs without a log)."""
    return name in WANDB_SIDE_FILES


def is_log_file(name: str) -> bool:
    """Any file name some source reads: a JSONL log, an event file, a W&B log or side file."""
    return is_jsonl(name) or is_tfevents(name) or is_wandb_log(name) or is_wandb_side_file(name)


def looks_like_path(ref: str) -> bool:
    """Whether a run reference is meant as a path (`./x`, `/x`, `~/x`, or a log file name)."""
    return ref.startswith((".", "/", "~")) or is_jsonl(ref) or is_wandb_log(ref) or "tfevents" in ref
