"""What a read of one `.wandb` log leaves behind so that the next read takes only the appended bytes.

The log is append-only: the writer adds whole chunks and may extend its last, partial block. A
read therefore stops at a `Cursor` (the next chunk header, plus the pieces of a split record still
open there) and keeps everything it accumulated in a `LogState`: the per-key column chunks, the
summary, the run/config/exit/console records applied so far and the damage counters (without the
truncated tail, which the next read works out again). The next read checks that the file is the
same one (`_growth.grown`: device and inode, not shorter, its start and the bytes before the
cursor unchanged), copies the state and frames on from the cursor; decoding does not depend on
where windows begin, so the result equals a read of the whole file. States are never modified
once built: they are shared by the Runs of several threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runwise.parsers._growth import FileMark
from runwise.parsers.wandb import records as rec
from runwise.parsers.wandb.columns import Columns
from runwise.parsers.wandb.log import Cursor, Damage

OUTPUT_KEEP, OUTPUT_DROP = 400, 200  # console pieces kept while reading (then the last lines are used)


@dataclass(slots=True)
class Others:
    """Run, config, exit and console records, applied in file order as they arrive."""

    info: dict[str, Any] = field(default_factory=dict)  # from the first readable run record
    config: dict[tuple[str, ...], Any] = field(default_factory=dict)  # path -> value, in update order
    output: list[str] = field(default_factory=list)  # the newest console pieces
    start_time: float | None = None
    exit_code: int | None = None
    exit_runtime: float | None = None  # the largest runtime an exit record gave
    output_time: float | None = None  # the newest console timestamp

    def apply(self, cols: Columns, *, ordered: bool = False) -> None:
        """Apply (and take out) the records `cols` collected; undecodable ones are counted there.

        They are applied in file order, or as listed if `ordered` (windows already sorted one by
        one: a split record joined in a later window is applied with that window, as in one read).
        """
        for _, kind, body in (cols.others if ordered else sorted(cols.others, key=lambda x: x[0])):
            try:
                self._one(kind, body)
            except rec.BAD_ITEM:
                cols.undecodable += 1
        cols.others.clear()

    def _one(self, kind: int, body: bytes) -> None:
        if kind == rec.RUN and not self.info:
            info = rec.run_info(body)
            for path, value, _ in info.pop("config"):
                self.config[path] = value
            self.info = info
            self.start_time = info.get("start_time")
        elif kind == rec.CONFIG:
            for path, value, removed in rec.config_updates(body):
                if removed:
                    self.config.pop(path, None)
                else:
                    self.config[path] = value
        elif kind == rec.EXIT:
            self.exit_code, runtime = rec.exit_info(body)
            if runtime:
                self.exit_runtime = max(self.exit_runtime or 0.0, runtime)
        elif kind in (rec.OUTPUT_RAW, rec.OUTPUT):
            text, ts = rec.output_line(body)
            self.output.append(text)
            if len(self.output) > OUTPUT_KEEP:
                del self.output[:OUTPUT_DROP]
            if ts is not None:
                self.output_time = max(self.output_time or ts, ts)

    def copy(self) -> Others:
        return Others(dict(self.info), dict(self.config), list(self.output), self.start_time, self.exit_code,
                      self.exit_runtime, self.output_time)


@dataclass(slots=True)
class LogState:
    """Everything read from one log up to `cursor`, to go on from there once the file has grown."""

    log: Path
    cols: Columns = field(default_factory=Columns)
    others: Others = field(default_factory=Others)
    damage: Damage = field(default_factory=Damage)  # mid-file damage only: the tail is worked out anew
    cursor: Cursor = field(default_factory=Cursor)
    mark: FileMark | None = None  # where the last read stopped (cursor.pos), None if it cannot go on

    def fork(self) -> LogState:
        """A copy to read on into (chunk lists and dicts copied, the arrays in them shared)."""
        c = self.cols
        cols = Columns(
            steps={k: list(v) for k, v in c.steps.items()}, values={k: list(v) for k, v in c.values.items()},
            kinds=dict(c.kinds), media=dict(c.media), summary=dict(c.summary), removed=dict(c.removed),
            others=list(c.others), last_step=c.last_step, rows=c.rows, undecodable=c.undecodable, numbered=c.numbered,
            key_cache=dict(c.key_cache),
        )
        d = self.damage
        return LogState(self.log, cols, self.others.copy(),
                        Damage(d.bad_chunks, d.lost_bytes, d.dropped_records), self.cursor, self.mark)


def without_tail(d: Damage) -> Damage:
    """The damage counters that stay true once the file grows (not the truncated tail)."""
    return Damage(d.bad_chunks, d.lost_bytes, d.dropped_records)
