"""The TensorBoard source: directories of `events.out.tfevents.*` files.

Modules, bottom up: `crc32c` (CRC-32C, vectorised), `tfrecord` (framing), `wire` (the `Event`
protobuf decoder), `events` (records into per-tag columns), `resume` (reading only what growing
files appended), `run` (discovery, restarts, hparams, the source functions below).
"""

from __future__ import annotations

from runwise.parsers.tensorboard.run import discover, display_name, load, load_file, refresh

__all__ = ["discover", "display_name", "load", "load_file", "refresh"]
