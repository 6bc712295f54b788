"""Parsing a big JSONL file in several processes: split at line boundaries, one child per extra part.

`read_parts` owns the whole parallel read: the split, starting the children, collecting their
parts, reading here every part a child did not deliver, and cleaning up. A child is a fresh
interpreter (`python -c WORKER PARENT PATH START END`), not fork() (unsafe in the MCP server's
threads) nor multiprocessing's spawn (which re-runs the caller's main script). It writes its
pickled Part to a pipe.

No children at all when no interpreter can be started: `sys.executable` empty or None (an
embedded interpreter), a frozen application (its executable is the application itself, not
Python), or an OS that refuses the process. A child that fails, returns garbage, imports another
copy of runwise, or is still running WAIT_SECONDS (plus a per-byte allowance) after this process
asked for its part, is killed and its part is read here. Whatever happens, including an
exception while this process reads its own part, every child is killed if still running and
reaped, and its pipes are closed.

The child's environment is this process's environment, unchanged: the package's parent directory
(site-packages when installed) is appended to the child's `sys.path` only if it is not there
already, so it never goes ahead of the standard library. On Windows a child opens no console
window.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from runwise._spawn import PACKAGE_PARENT as PACKAGE_PARENT  # the readers' workers use these from here
from runwise._spawn import WRONG_RUNWISE as WRONG_RUNWISE
from runwise._spawn import can_spawn as can_spawn
from runwise._spawn import creation_flags as creation_flags
from runwise.parsers import Progress
from runwise.parsers.jsonl_rows import Part, read_part

log = logging.getLogger("runwise.jsonl")

PARALLEL_BYTES = 32 * 1024 * 1024  # files this big are parsed by several processes at once
MAX_WORKERS = 3
FIRST_SHARE = 0.6  # of a file split in two, the part this process reads itself
WAIT_SECONDS = 60.0  # a child's grace, from when its part is asked for ...
WAIT_BYTES_PER_SECOND = 2 * 1024 * 1024  # ... plus a second per this many bytes of its part

# what a child that did not deliver its part raises here: failed, hung, or wrote something else
_NO_PART = (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError, subprocess.TimeoutExpired)

# argv[1] is the directory holding this copy of runwise: appended, so the standard library and the
# child's own site-packages keep their places ahead of it
WORKER = (
    "import sys; p = sys.argv[1]; p in sys.path or sys.path.append(p); "
    "from runwise.parsers.jsonl_workers import worker_main; sys.exit(worker_main(sys.argv[1:]))"
)


def read_parts(path: str, size: int, *, progress: Progress | None = None) -> list[Part]:
    """Parse `path` (`size` bytes) into consecutive Parts; the later ones in child processes if possible.

    Raises OSError if the file cannot be read here.
    """
    with open(path, "rb") as fp:
        bounds = split(fp, size)
    workers = _start(path, bounds[1:])
    try:
        parts = [read_part(path, *bounds[0], progress=progress, total_size=size)]
        for (lo, hi), worker in zip(bounds[1:], workers, strict=True):
            part = None
            if worker is not None:
                try:
                    part = worker.result(timeout=WAIT_SECONDS + (hi - lo) / WAIT_BYTES_PER_SECOND)
                except _NO_PART as exc:
                    log.debug("worker failed on %s, reading its part here: %s", path, exc)
            parts.append(part if part is not None else read_part(path, lo, hi))
    finally:
        for worker in workers:
            if worker is not None:
                worker.close()
    return parts


def split(fp: BinaryIO, size: int) -> list[tuple[int, int]]:
    """Byte ranges (start, end) that begin at line starts; one range unless the file is big."""
    n = min(os.cpu_count() or 1, MAX_WORKERS + 1, size // PARALLEL_BYTES + 1)
    # this process starts at once; a worker first pays its interpreter start-up (~0.15 s) and
    # the trip of its columns back, so the first part is larger than the others
    first = FIRST_SHARE if n == 2 else 1 / n
    cuts = [0]
    for i in range(1, n):
        target = first + (1 - first) * (i - 1) / (n - 1)
        fp.seek(max(int(size * target), cuts[-1]))
        fp.readline()  # to the start of the next line
        pos = fp.tell()
        if pos >= size:
            break
        if pos > cuts[-1]:
            cuts.append(pos)
    return list(zip(cuts, [*cuts[1:], size], strict=True))



class Child:
    """A child interpreter running `code` (argv: PACKAGE_PARENT, then `args`); it writes its pickled
    answer to its stdout pipe. The readers' workers are Children."""

    def __init__(self, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, PACKAGE_PARENT, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            creationflags=creation_flags(),
        )

    def answer(self, timeout: float) -> object:
        """What the child wrote; raises TimeoutExpired, RuntimeError or a pickle error if there is nothing."""
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"worker exited with {self.proc.returncode}: {err.decode(errors='replace')[-300:]}")
        return pickle.loads(out)  # our own child's output

    def close(self) -> None:
        """Kill the child if it still runs, close its pipes, reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.proc.wait()


class Worker(Child):
    """A child interpreter parsing one byte range of the file; its pickled Part comes back on a pipe."""

    def __init__(self, path: str, start: int, end: int) -> None:
        super().__init__(WORKER, path, str(start), str(end))

    def result(self, timeout: float) -> Part:
        """The child's Part; raises TimeoutExpired, RuntimeError or a pickle error if there is none."""
        part = self.answer(timeout)
        if not isinstance(part, Part):
            raise RuntimeError("worker returned something else")
        return part


def _start(path: str, bounds: list[tuple[int, int]]) -> list[Worker | None]:
    """Start parsing `bounds` in child processes; None where no child could be started."""
    if not bounds:
        return []
    if not can_spawn():
        log.debug("no worker processes: no Python interpreter to start (executable %r)", sys.executable)
        return [None] * len(bounds)
    workers: list[Worker | None] = []
    for lo, hi in bounds:
        try:
            workers.append(Worker(path, lo, hi))
        except OSError as exc:  # no processes here (sandbox, limits): this process reads the part
            log.debug("no worker process: %s", exc)
            workers.append(None)
    return workers


def worker_main(argv: list[str]) -> int:
    """The child's side: parse PATH from byte START to END and pickle the Part.

    `argv` is PARENT PATH START END; PARENT is the directory the parent's runwise lives in. A child
    that imported runwise from elsewhere (another version ahead on its path) exits WRONG_RUNWISE.
    """
    parent, path, start, end = argv
    here = Path(PACKAGE_PARENT)
    if here != Path(parent).resolve():
        sys.stderr.write(f"runwise imported from {here}, expected {parent}\n")
        return WRONG_RUNWISE
    part = read_part(path, int(start), int(end))
    sys.stdout.buffer.write(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    return 0
