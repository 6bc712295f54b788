"""Following a run in a terminal: `runwise live --follow [RUN]`, alias `runwise watch [RUN]`.

Every `interval` seconds the live_status tool answers again (its handler refreshes a growing run
from the bytes appended since the last read) and the screen is redrawn in place with rich.live:
the step, with a progress bar and ETA when the run's config names its total (max_steps, ...);
steps/s; the time since the last write; the key metrics' latest values with sparklines; the
findings, each new one marked as it appears; and the last console lines.

When the run is no longer running (finished, failed, crashed, or a log without an end record that
went quiet: unknown), the last frame stays on screen, the run's verdict (summarize_run's) is
printed, and the exit code is 0, or 1 for a crashed or failed run. A run that is not running when
asked gets its live status once, then its verdict. Ctrl-C ends following (runwise.cli: exit 130).

When stdout is not a terminal, or the format is md or json, nothing is redrawn: a line (json: one
JSON object, the live_status answer) is written each time the step or the state changes, and the
verdict last, so a log file or another program gets clean text.

This is CLI code: rich is imported here only, never by the server or the tools.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runwise.formatting import Cell, fmt, fmt_cell, fmt_duration
from runwise.model import CRASHED, FAILED, RUNNING

if TYPE_CHECKING:
    from rich.console import JustifyMethod, RenderableType

    from runwise.config import RunwiseConfig
    from runwise.formatting import Format
    from runwise.parsers import Progress
    from runwise.tools.run import LiveStatusOutput
    from runwise.tools.summary import SummarizeRunOutput

SPARK_WIDTH = 24
MAX_FINDINGS = 8  # findings kept on screen, newest last
MAX_SEEN = 1000  # findings remembered, so that one seen before is not announced again
RATE_POLLS = 10  # the pace is measured over the last this many polls
FAILED_STATES = (CRASHED, FAILED)


@dataclass(frozen=True)
class Frame:
    """One poll of the run: the live_status answer and what the screen adds to it."""

    status: LiveStatusOutput
    total: int | None  # the step the run is configured to reach, when its config says
    sparks: dict[str, str]  # metric -> sparkline of its whole history
    rate: float | None  # steps/s: the pace between polls, else the run's own figure
    last_write: float | None  # epoch seconds of the run's newest byte

    @property
    def state(self) -> str:
        return self.status.run.state

    @property
    def step(self) -> int | None:
        return self.status.run.last_step

    @property
    def eta(self) -> float | None:
        """Seconds to the configured total at the current pace, when both are known."""
        if self.total is None or not self.rate or self.step is None or self.step >= self.total:
            return None
        return (self.total - self.step) / self.rate


class Follower:
    """Polls one run through the live_status tool and remembers what earlier polls saw."""

    def __init__(self, ref: str, cfg: RunwiseConfig, *, keys: list[str] | None = None, lines: int = 5,
                 budget: int | None = None) -> None:
        self.ref = ref
        self.cfg = cfg
        self.fields: dict[str, Any] = {"keys": keys, "output_lines": lines}
        if budget is not None:
            self.fields["budget"] = budget
        self.findings: dict[str, bool] = {}  # message -> it appeared while following; oldest first
        self.found = 0  # findings seen in all (`findings` keeps the last MAX_SEEN)
        self.polls = 0
        self.marks: deque[tuple[float, int]] = deque(maxlen=RATE_POLLS)  # (time of the newest write, step)

    def poll(self, progress: Progress | None = None) -> Frame:
        """Ask live_status again; the run read is refreshed from its appended bytes."""
        from runwise import runs
        from runwise.analysis.sparkline import sparkline
        from runwise.tools import TOOLS_BY_NAME
        from runwise.tools.run import _total_steps

        spec = TOOLS_BY_NAME["live_status"]
        status: LiveStatusOutput = spec.run(spec.input.model_validate({"run": self.ref, **self.fields}), self.cfg,
                                            progress)
        if self.ref == "latest":  # follow this run, not whichever run is newest at the next poll
            self.ref = f"{status.run.source}:{status.run.id}"
        run, _ = runs.get_run(self.ref, self.cfg)  # the run live_status just read: from the in-memory cache
        sparks = {}
        for row in status.latest.rows:
            series = run.history.get(str(row[0]))
            if series is not None and len(series):
                sparks[str(row[0])] = sparkline(series.values, width=SPARK_WIDTH)
        for message in status.recent_anomalies:
            if message not in self.findings:
                self.findings[message] = self.polls > 0
                self.found += 1
                if len(self.findings) > MAX_SEEN:
                    del self.findings[next(iter(self.findings))]
        self.polls += 1
        step = status.run.last_step
        if run.last_write is not None and step is not None and (not self.marks or self.marks[-1][1] != step):
            self.marks.append((run.last_write, step))
        return Frame(status, _total_steps(run), sparks, self._rate(status), run.last_write)

    def last_findings(self, n: int) -> list[tuple[str, bool]]:
        """The `n` newest findings, oldest first, each with whether it appeared while following."""
        return list(self.findings.items())[-n:] if n > 0 else []

    def _rate(self, status: LiveStatusOutput) -> float | None:
        """Steps per second between the first and last write these polls saw, else the run's own figure."""
        if len(self.marks) >= 2:
            (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
            if t1 > t0 and s1 > s0:
                return (s1 - s0) / (t1 - t0)
        rate = status.steps_per_s
        return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None

    def verdict(self) -> SummarizeRunOutput:
        """summarize_run's answer for the run followed (its verdict, summary and ending)."""
        from runwise.tools import TOOLS_BY_NAME

        spec = TOOLS_BY_NAME["summarize_run"]
        out: SummarizeRunOutput = spec.run(spec.input.model_validate({"run": self.ref}), self.cfg)
        return out


def exit_code(state: str) -> int:
    """1 for a run that crashed or failed, else 0."""
    return 1 if state in FAILED_STATES else 0


# ---------------------------------------------------------------- following


def follow(follower: Follower, *, interval: float, fmt_name: Format = "text") -> int:
    """Follow the run until it is no longer running; print its verdict; the exit code (0, or 1 if it failed).

    The first read shows a progress bar on stderr if it takes a while and stderr is a terminal.
    """
    from runwise.cli_progress import for_stderr

    progress = for_stderr()
    try:
        frame = follower.poll(progress)
    finally:  # before the live display starts: two displays at once would garble each other
        if progress is not None:
            progress.close()
    if frame.state != RUNNING:  # nothing to follow: its status once, then its verdict
        from runwise.render import render

        if fmt_name == "json":
            print(frame.status.model_dump_json(), flush=True)
        else:
            print(render(frame.status, fmt_name, title="Live status") + "\n", flush=True)
    elif fmt_name == "text" and _is_terminal():
        frame = _follow_on_screen(follower, frame, interval)
    else:
        frame = _follow_in_lines(follower, frame, interval, fmt_name)
    print(_verdict_text(follower.verdict(), fmt_name), flush=True)
    return exit_code(frame.state)


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _follow_on_screen(follower: Follower, frame: Frame, interval: float) -> Frame:
    """Redraw the frame in place until the run stops running; the last frame stays on screen."""
    from rich.console import Console
    from rich.live import Live

    def draw() -> RenderableType:
        return view(frame, follower.last_findings(MAX_FINDINGS))

    with Live(draw(), console=Console(), auto_refresh=False, redirect_stdout=False, redirect_stderr=False,
              vertical_overflow="visible") as live:
        while frame.state == RUNNING:
            deadline = time.monotonic() + interval
            while (left := deadline - time.monotonic()) > 0:  # the age of the last write ticks between polls
                time.sleep(min(left, 0.5))
                live.update(draw(), refresh=True)
            frame = follower.poll()
            live.update(draw(), refresh=True)
    return frame


def _follow_in_lines(follower: Follower, frame: Frame, interval: float, fmt_name: Format) -> Frame:
    """Write a line (json: an object) each time the step or the state changes, until the run stops running."""
    shown: tuple[int | None, str] | None = None
    told = 0  # findings already written
    while True:
        if (frame.step, frame.state) != shown:
            shown = (frame.step, frame.state)
            if fmt_name == "json":
                print(frame.status.model_dump_json(), flush=True)
            else:
                print(_line(frame), flush=True)
        if fmt_name != "json":
            for message, _ in follower.last_findings(follower.found - told):  # findings as they first appear
                print(f"  finding: {message}", flush=True)
        told = follower.found
        if frame.state != RUNNING:
            return frame
        time.sleep(interval)
        frame = follower.poll()


def _line(frame: Frame) -> str:
    """One line about the run: state, step (of the total), pace, ETA, time since the last write."""
    run = frame.status.run
    parts = [f"{run.source}:{run.id}: {run.state}", _step_text(frame)]
    if frame.rate:
        parts.append(f"{fmt(frame.rate)} steps/s")
    if frame.eta is not None and frame.state == RUNNING:
        parts.append(f"ETA {fmt_duration(frame.eta)}")
    if frame.last_write is not None:
        parts.append(f"last write {fmt_duration(max(0.0, time.time() - frame.last_write))} ago")
    return ", ".join(parts)


def _step_text(frame: Frame) -> str:
    """'step 1,200 of 5,000 (24%)', or 'step 1,200' without a known total."""
    if frame.step is None:
        return "no steps yet"
    if frame.total is None:
        return f"step {frame.step:,}"
    return f"step {frame.step:,} of {frame.total:,} ({100 * min(frame.step, frame.total) / frame.total:.0f}%)"


def _verdict_text(out: SummarizeRunOutput, fmt_name: Format) -> str:
    if fmt_name == "json":
        return json.dumps({"run": f"{out.run.source}:{out.run.id}", "state": out.run.state,
                           "last_step": out.run.last_step, "verdict": out.verdict, "ending": out.ending})
    lines = [out.summary, f"verdict: {out.verdict}"]
    if out.ending:
        lines.append(f"ended: {out.ending}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the screen


def view(frame: Frame, findings: list[tuple[str, bool]]) -> RenderableType:
    """One frame of the live display: header, progress, pace, metrics, findings, console."""
    from rich import box
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    st = frame.status
    run = st.run
    parts: list[RenderableType] = []
    style = {"running": "bold green", "finished": "bold blue"}.get(run.state, "bold red")
    parts.append(Text.assemble((f"{run.source}:{run.id}", "bold"), "  ", (run.state, style), "  ",
                               _step_text(frame)))
    if frame.total is not None and frame.step is not None:
        bar = Table.grid(padding=(0, 1))
        done = min(frame.step, frame.total)
        eta = frame.eta if frame.state == RUNNING else None
        bar.add_row(ProgressBar(total=frame.total, completed=done, width=40), f"{100 * done / frame.total:3.0f}%",
                    "" if eta is None else f"ETA {fmt_duration(eta)}")
        parts.append(bar)
    pace = [f"{fmt(frame.rate)} steps/s" if frame.rate else "steps/s: not known yet"]
    if frame.last_write is not None:
        pace.append(f"last write {fmt_duration(max(0.0, time.time() - frame.last_write))} ago")
    parts.append(Text(" · ".join(pace), style="dim"))
    if st.latest.rows:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("metric", "left"), ("step", "right"), ("value", "right"), ("trend", "right"), ("", "left"))
        for name, justify in columns:
            table.add_column(name, justify=justify, no_wrap=True)
        for metric, at, value, trend in (row[:4] for row in st.latest.rows):
            table.add_row(str(metric), _cell(at), _cell(value), _cell(trend), frame.sparks.get(str(metric), ""))
        parts.append(table)
    if findings:
        parts.append(Text("findings", style="bold"))
        for message, new in findings:
            line = Text("  ")
            if new:
                line.append("new ", style="bold yellow")
            line.append(message)
            line.no_wrap, line.overflow = True, "ellipsis"
            parts.append(line)
    if st.output_tail:
        parts.append(Text("console", style="bold"))
        for out in st.output_tail:
            parts.append(Text("  " + out, style="dim", no_wrap=True, overflow="ellipsis"))
    return Group(*parts)


def _cell(value: Cell) -> str:
    """A table cell as the other tables write it (formatting.fmt_cell), an empty one blank."""
    return "" if value is None else fmt_cell(value)
