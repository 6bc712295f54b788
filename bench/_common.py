"""Shared fairness rules of the benches: same repeats for every side, medians, equal results first.

- Every side (runwise and each peer) runs `repeat` times, interleaved (runwise, peer, runwise,
  peer ...), so drift in machine load hits every side alike; each side reports its median and min.
- Every side returns its points, summarised by `digest` (keys, int64 steps and float64 values,
  hashed) and a point count; `same_points` must hold before any ratio is printed.
- Every side states how many processes it used; a ratio says which sides it compares.

Children print one JSON object as their last stdout line: {"seconds": ..., "points": ...,
"digest": ..., "cpu_s": ..., ...}; `run_child` returns it. `cpu_s`, the CPU seconds the timed part
used in all its processes, is shown next to the wall times: on a busy machine it moves less.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Result = dict[str, Any]


def digest(columns: Mapping[str, tuple[Any, Any]]) -> str:
    """16 hex digits of sha256 over each key (sorted), its steps as int64 and its values as float64."""
    import numpy as np

    h = hashlib.sha256()
    for key in sorted(columns):
        steps, values = columns[key]
        h.update(key.encode())
        h.update(np.ascontiguousarray(steps, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def count(columns: Mapping[str, tuple[Any, Any]]) -> int:
    """Total number of points over all keys."""
    return sum(len(steps) for steps, _ in columns.values())


def run_child(code: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 3600) -> Result:
    """Run `python -c code args` from the repository root; its last stdout line, parsed as JSON."""
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full_env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env=full_env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    out: Result = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@dataclass
class Side:
    """One reader under test: a name, how it runs once, and the processes it uses."""

    name: str
    once: Callable[[], Result]
    processes: str  # e.g. "1", "2 (1 + 1 worker)", "1 + Rust threads"
    runs: list[Result] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [float(r["seconds"]) for r in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)


def repeat(sides: Sequence[Side], times: int, *, log: Callable[[str], None] = print) -> None:
    """Run every side `times` times, interleaved, appending each result to `side.runs`."""
    if times < 1:
        raise ValueError(f"repeat must be at least 1, got {times}")
    for i in range(times):
        for side in sides:
            r = side.once()
            side.runs.append(r)
            log(f"  run {i + 1}/{times} {side.name:22s} {float(r['seconds']):8.3f} s  "
                f"{int(r['points']):>10,} points  digest {r['digest']}")


def same_points(sides: Sequence[Side]) -> list[str]:
    """Problems that forbid a ratio: a side whose runs disagree, or sides that disagree with the first."""
    problems: list[str] = []
    for side in sides:
        got = {(r["points"], r["digest"]) for r in side.runs}
        if len(got) != 1:
            problems.append(f"{side.name} returned different points from run to run: {sorted(got)}")
    first = sides[0]
    want = (first.runs[0]["points"], first.runs[0]["digest"])
    for side in sides[1:]:
        got1 = (side.runs[0]["points"], side.runs[0]["digest"])
        if got1 != want:
            problems.append(f"{side.name} returned {got1[0]:,} points (digest {got1[1]}), "
                            f"{first.name} {want[0]:,} (digest {want[1]})")
    return problems


def table(sides: Sequence[Side], *, against: str, extra: Callable[[Side], str] | None = None) -> list[str]:
    """One line per side: median, min, each run, processes, and its ratio to `against` (by median).

    Call only after same_points() returned no problems.
    """
    ref = next(s for s in sides if s.name == against)
    lines = []
    for s in sides:
        ratio = "" if s is ref else (f"  time {s.median / ref.median:.2f}x {against}'s by median, "
                                     f"{s.best / ref.best:.2f}x by min")
        runs = ", ".join(f"{x:.2f}" for x in s.seconds)
        more = extra(s) if extra else ""
        if all("cpu_s" in r for r in s.runs):  # CPU seconds of every process used: less sensitive to load
            more = f"  cpu median {statistics.median(float(r['cpu_s']) for r in s.runs):.2f} s" + more
        lines.append(f"  {s.name:22s} median {s.median:8.3f} s  min {s.best:8.3f} s  [{runs}]  "
                     f"processes: {s.processes}{ratio}{more}")
    return lines


@dataclass
class SourceCalls:
    """What a source was asked to do while watched: refresh results (True: it refreshed) and full reads."""

    refreshed: list[bool] = field(default_factory=list)
    full_reads: int = 0


@contextmanager
def watch_source(name: str) -> Iterator[SourceCalls]:
    """Record the refresh / load / load_file calls the run registry makes to source `name`.

    Patches the object the registry dispatches to (`runwise.parsers.source_module(name)`), not a
    module it happens to re-export from: a spy on the wrong object would see nothing, and a live
    bench would then take any fast second read for a refresh.
    """
    from runwise import parsers

    module: Any = parsers.source_module(name)
    calls = SourceCalls()
    real = {f: getattr(module, f) for f in ("refresh", "load", "load_file")}

    def refresh(*a: Any, **k: Any) -> Any:
        r = real["refresh"](*a, **k)
        calls.refreshed.append(r is not None)
        return r

    def full(f: str) -> Callable[..., Any]:
        def read(*a: Any, **k: Any) -> Any:
            calls.full_reads += 1
            return real[f](*a, **k)
        return read

    module.refresh, module.load, module.load_file = refresh, full("load"), full("load_file")
    try:
        yield calls
    finally:
        for f, fn in real.items():
            setattr(module, f, fn)


def figure(what: str, runwise: Any, *, peer: Any = None, peer_name: str = "", unit: str = "", target: str = "",
           passed: bool | None = None, ratio: float | None = None) -> Result:
    """One row of a bench's `--json` figures (bench/run_all.py makes RESULTS.md of them).

    `runwise` and `peer` are the two sides' figures in `unit`, measured in the same run; `ratio` is
    runwise / peer unless given; `target` says what must hold, `passed` whether it did (None: no target).
    """
    if ratio is None and isinstance(runwise, int | float) and isinstance(peer, int | float) and peer \
            and not isinstance(runwise, bool):
        ratio = runwise / peer
    return {"what": what, "runwise": runwise, "peer": peer, "peer_name": peer_name, "unit": unit, "ratio": ratio,
            "target": target, "pass": passed}


def write_figures(path: str | Path | None, bench: str, rows: Sequence[Result], **extra: Any) -> None:
    """Write `{"bench": bench, "rows": rows, **extra}` to `path` as JSON (nothing when path is None)."""
    if path is None:
        return
    Path(path).write_text(json.dumps({"bench": bench, "rows": list(rows), **extra}, indent=2, default=str))
