"""A progress bar on stderr for CLI reads that take a while (the CLI only: the server never imports this).

`ReadProgress` is the `progress(done, total)` callback the tool handlers take (`runwise.parsers.Progress`,
bytes read of bytes to read). It draws nothing for the first `delay` seconds, so a quick read leaves
no trace; after that, a rich progress bar on stderr, removed when the read ends. rich is imported
only then: a command whose read is quick never pays for it.

The caller decides whether to show one at all (`for_stderr`: only when stderr is a terminal), so
output piped to another program, or a log, stays free of escape codes.
"""

from __future__ import annotations

import sys
import threading
import time

TYPE_CHECKING = False  # typing is not imported at run time (commands import this module for every read)
if TYPE_CHECKING:
    from typing import IO

    from rich.progress import Progress, TaskID

DELAY = 1.0  # seconds a read runs before its bar appears


class ReadProgress:
    """`progress(done, total)` that shows a rich bar on `file` (default stderr) once a read has run `delay`
    seconds (default DELAY)."""

    def __init__(
        self, file: IO[str] | None = None, *, delay: float | None = None, force_terminal: bool | None = None
    ) -> None:
        self.file = file
        self.delay = DELAY if delay is None else delay
        self.force_terminal = force_terminal
        self.start = time.monotonic()
        self.bar: tuple[Progress, TaskID] | None = None  # the bar and its one task, once drawn
        self.lock = threading.Lock()  # a read may report from more than one thread

    def __call__(self, done: float, total: float) -> None:
        if total <= 0:
            return
        with self.lock:
            if self.bar is None:
                if time.monotonic() - self.start < self.delay:
                    return
                self.bar = self._open(total)
            bar, task = self.bar
            bar.update(task, completed=min(done, total), total=total)

    def _open(self, total: float) -> tuple[Progress, TaskID]:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(file=self.file if self.file is not None else sys.stderr, force_terminal=self.force_terminal)
        bar = Progress(
            TextColumn("runwise: reading"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), DownloadColumn(),
            TimeRemainingColumn(), console=console, transient=True,
        )
        task = bar.add_task("reading", total=total)
        bar.start()
        return bar, task

    def close(self) -> None:
        """Remove the bar, if one was drawn."""
        with self.lock:
            if self.bar is not None:
                self.bar[0].stop()
                self.bar = None


def for_stderr() -> ReadProgress | None:
    """A ReadProgress when stderr is a terminal, else None (piped or redirected output stays clean)."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        tty = False
    return ReadProgress() if tty else None
