"""The one run model every source produces.

A run is metadata (`Run`) plus its history: one `Series` per metric, each with its own steps, so
metrics logged on different cadences (validation every N steps) keep their own points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Run states, the same words for every source.
FINISHED, FAILED, CRASHED, RUNNING, UNKNOWN = "finished", "failed", "crashed", "running", "unknown"
# A run with no end record whose files changed this recently is taken to be running (every source;
# wandb flushes at least every 15 s while a run is alive).
LIVE_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Series:
    """One metric as parallel columns, sorted by step (stable: a repeated step keeps write order)."""

    metric: str
    steps: NDArray[np.int64]
    values: NDArray[np.float64]  # NaN/inf kept: they are findings, not noise

    def __len__(self) -> int:
        return int(self.steps.shape[0])


def make_series(metric: str, steps: Any, values: Any, *, dedupe: bool = False) -> Series:
    """Build a Series from array-likes: converts once, sorts by step (stable).

    With `dedupe`, a step written more than once keeps its last write.
    """
    s = np.asarray(steps, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if s.shape != v.shape or s.ndim != 1:
        raise ValueError(f"steps and values must be 1-D of equal length, got {s.shape} and {v.shape}")
    if s.size > 1 and not bool(np.all(s[1:] >= s[:-1])):
        order = np.argsort(s, kind="stable")
        s, v = s[order], v[order]
    if dedupe and s.size > 1:
        keep = np.ones(s.size, dtype=bool)
        keep[:-1] = s[1:] != s[:-1]  # the last of each run of equal steps wins
        if not keep.all():
            s, v = s[keep], v[keep]
    return Series(metric, s, v)


@dataclass(slots=True)
class RunEntry:
    """A run found on disk, not yet parsed: enough to list and resolve it cheaply.

    `key` is unique across sources ("<source>:<id>"); `paths` are the files or directories the
    source needs to load it (several segments for a resumed W&B run or a restarted writer).
    """

    id: str
    source: str  # "jsonl" | "wandb" | "tensorboard" | "wandb-cloud" | "mlflow" | "dvclive" | "trackio" | "hf" | "csv"
    paths: tuple[Path, ...]
    name: str = ""
    mtime: float = 0.0  # newest modification time of its files (epoch s), for `latest`
    size: int = 0  # total bytes of its files
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific hints

    @property
    def key(self) -> str:
        return f"{self.source}:{self.id}"


@dataclass(slots=True)
class Run:
    """A loaded run: metadata plus per-metric history."""

    id: str
    source: str
    path: str  # the main file or directory, relative to the project root where possible
    name: str = ""
    state: str = UNKNOWN
    project: str = ""
    entity: str = ""
    group: str = ""
    job_type: str = ""
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # flattened: "optimizer.lr" -> 0.001
    summary: dict[str, Any] = field(default_factory=dict)  # flattened final values
    start_time: float | None = None  # epoch seconds
    runtime: float | None = None  # seconds
    last_write: float | None = None  # epoch seconds of the newest byte on disk
    exit_code: int | None = None
    segments: list[str] = field(default_factory=list)  # resumed runs / restarted writers
    history: dict[str, Series] = field(default_factory=dict)
    non_numeric: dict[str, str] = field(default_factory=dict)  # key -> kind ("histogram", "string")
    output_tail: list[str] = field(default_factory=list)  # last console lines, oldest first
    warnings: list[str] = field(default_factory=list)  # what was skipped, truncated or lost
    truncated: bool = False  # the last record was cut short (crashed or still being written)
    # Source-private state for reading only what is appended later (see parsers.__init__: refresh).
    # Stored in the disk cache by runwise._state's allowlisted encoding; None when the source cannot resume.
    resume: Any = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.source}:{self.id}"

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def last_step(self) -> int | None:
        ends = [int(s.steps[-1]) for s in self.history.values() if len(s)]
        return max(ends) if ends else None
