"""Parsing a big JSONL file in several processes: split at line boundaries, one child per extra part.

A child is a fresh interpreter (`python -c WORKER PATH START END`), not fork() (unsafe in the MCP
server's threads) nor multiprocessing's spawn (which re-runs the caller's main script). It writes
its pickled Part to a pipe; a child that cannot start or fails leaves its part to this process.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from runwise.parsers.jsonl_rows import Part, read_part

log = logging.getLogger("runwise.jsonl")

PARALLEL_BYTES = 32 * 1024 * 1024  # files this big are parsed by several processes at once
MAX_WORKERS = 3
FIRST_SHARE = 0.6  # of a file split in two, the part this process reads itself


def split(fp: Any, size: int) -> list[tuple[int, int]]:
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


WORKER = "import sys; from runwise.parsers.jsonl_workers import worker_main; sys.exit(worker_main(sys.argv[1:]))"


class Worker:
    """A child interpreter parsing one byte range of the file; its pickled Part comes back on a pipe."""

    def __init__(self, path: str, start: int, end: int) -> None:
        package_parent = str(Path(__file__).resolve().parents[2])
        path_list = [package_parent, os.environ.get("PYTHONPATH")]  # importable also from a source tree
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path_list if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, path, str(start), str(end)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )

    def result(self) -> Part:
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            raise RuntimeError(f"worker exited with {self.proc.returncode}: {err.decode(errors='replace')[-300:]}")
        part = pickle.loads(out)  # our own child's output
        if not isinstance(part, Part):
            raise RuntimeError("worker returned something else")
        return part


def submit(path: str, bounds: list[tuple[int, int]]) -> list[Worker | None]:
    """Start parsing `bounds` in worker processes; None where no worker could be started."""
    workers: list[Worker | None] = []
    for lo, hi in bounds:
        try:
            workers.append(Worker(path, lo, hi))
        except OSError as exc:  # no processes here (sandbox, limits): this process reads the part
            log.debug("no worker process: %s", exc)
            workers.append(None)
    return workers


def worker_main(argv: list[str]) -> int:
    """The child's side: parse PATH from byte START to END and pickle the Part."""
    path, start, end = argv
    part = read_part(path, int(start), int(end))
    sys.stdout.buffer.write(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    return 0
