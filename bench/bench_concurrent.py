"""Ten concurrent first calls for the same unread 1M-row run cost at most 1.2x the CPU time of one.

    python bench/bench_concurrent.py [--repeat 3] [--calls 10] [--limit 1.2] [--rows 1000000] [--json PATH]

The run is bench_jsonl's 1,000,000-row JSONL log (bench/_data/jsonl/logs/big.jsonl, made with its
generator if absent). Each measurement is one MCP session through the official `mcp` client over
stdio (`runwise-mcp --root <project>`, as bench_repeat.py starts it) with a new, empty disk cache
directory (RUNWISE_CACHE_DIR), so the run is unread when the calls start:
  one   one `get_stats` call on the run
  ten   `--calls` `get_stats` calls on the run, all started together (an anyio task group)
The server's CPU time (user + system) is read from /proc/<pid>/stat before the calls and after the
last answer: its own utime+stime plus cutime+cstime (the JSONL worker processes it started and
reaped), plus utime+stime+cutime+cstime of any of its descendants still alive. Wall time is from
the first request to the last answer. The two sides alternate (one, ten, one, ten, ...) `--repeat`
times each, each in a new server; medians are compared. Every answer must be a success and the
`--calls` answers of a session must be equal (and equal to the single call's answer). PASS when the
median CPU of `ten` is at most `--limit` times the median CPU of `one`. tests/test_single_flight.py
counts the parses themselves; this bench measures what the sharing saves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_repeat import _params  # noqa: E402 - the same server start as the repeated-calls bench

DATA = HERE / "_data"
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime+stime+cutime+cstime in seconds) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # fields after the command name, from field 3 (state)
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / TICK


def tree_cpu(root_pid: int) -> float:
    """CPU seconds of a process and its live descendants, each with its reaped children."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            got = _stat(int(entry))
            if got is not None:
                parents[int(entry)], cpu[int(entry)] = got
    total, frontier = 0.0, [root_pid]
    while frontier:
        pid = frontier.pop()
        total += cpu.get(pid, 0.0)
        frontier += [p for p, pp in parents.items() if pp == pid]
    return total


def server_pid(before: set[int]) -> int:
    """The child this process started since `before` (the MCP server)."""
    me = os.getpid()
    kids = [p for p in _children(me) if p not in before]
    if len(kids) != 1:
        raise RuntimeError(f"expected one new child process (the server), found {kids}")
    return kids[0]


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            got = _stat(int(entry))
            if got is not None and got[0] == pid:
                out.add(int(entry))
    return out


async def session(root: Path, run: str, calls: int) -> dict[str, Any]:
    """One new server, `calls` concurrent get_stats calls: CPU and wall seconds, and the answers."""
    with tempfile.TemporaryDirectory(prefix="runwise-bench-concurrent-") as tmp:
        cache = Path(tmp) / "cache"  # its run index goes beside it (cache-index), inside tmp too
        before = _children(os.getpid())
        async with Client(_params(root, str(cache))) as client:
            pid = server_pid(before)
            answers: list[Any] = [None] * calls
            errors: list[str] = []

            async def call(i: int) -> None:
                result = await client.call_tool("get_stats", {"run": run})
                if result.is_error:
                    errors.append(" ".join(getattr(b, "text", "") for b in result.content)[:300])
                answers[i] = result.structured_content

            cpu0, t0 = tree_cpu(pid), time.perf_counter()
            async with anyio.create_task_group() as tg:
                for i in range(calls):
                    tg.start_soon(call, i)
            wall, cpu = time.perf_counter() - t0, tree_cpu(pid) - cpu0
    if errors:
        raise RuntimeError(f"get_stats failed: {errors[0]}")
    return {"cpu_s": cpu, "seconds": wall, "answers": answers}


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


async def main_async(args: argparse.Namespace) -> int:
    root = DATA / "jsonl" if args.rows == 1_000_000 else DATA / f"jsonl_{args.rows}"
    path = root / "logs" / "big.jsonl"
    if not path.exists():
        from bench_jsonl import generate

        print(f"generating {path.relative_to(HERE.parent)} ({args.rows:,} rows) ...", flush=True)
        generate(path, args.rows)
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # a finished run, not one being written
    print(f"run: {path.relative_to(HERE.parent)} ({path.stat().st_size / 1e6:.0f} MB); one get_stats call vs "
          f"{args.calls} concurrent ones, each side {args.repeat} times alternating, a new server and empty cache "
          f"each time; CPU of the server and its children from /proc", flush=True)
    sides: dict[str, list[dict[str, Any]]] = {"one": [], "ten": []}
    reference: Any = None
    same = True
    for i in range(args.repeat):
        for name, n in (("one", 1), ("ten", args.calls)):
            r = await session(root, "big", n)
            answers = r.pop("answers")
            reference = answers[0] if reference is None else reference
            equal = all(a == reference for a in answers)
            same = same and equal
            sides[name].append(r)
            calls = f"{n:2d} call{'s' if n > 1 else ' '}"
            print(f"  run {i + 1}/{args.repeat} {name:3s} ({calls}): cpu {r['cpu_s']:6.2f} s, "
                  f"wall {r['seconds']:6.2f} s; answers equal: {equal}", flush=True)
    cpu = {k: _med([r["cpu_s"] for r in v]) for k, v in sides.items()}
    wall = {k: _med([r["seconds"] for r in v]) for k, v in sides.items()}
    ratio = cpu["ten"] / cpu["one"] if cpu["one"] > 0 else float("inf")
    wall_ratio = wall["ten"] / wall["one"] if wall["one"] > 0 else float("inf")
    ok = same and ratio <= args.limit
    print(f"  one call      : cpu median {cpu['one']:.2f} s, wall median {wall['one']:.2f} s")
    print(f"  {args.calls} concurrent: cpu median {cpu['ten']:.2f} s, wall median {wall['ten']:.2f} s")
    print(f"  ratio: cpu {ratio:.2f}x (limit {args.limit:g}x), wall {wall_ratio:.2f}x; all answers equal: {same}")
    print("PASS" if ok else "FAIL")
    if args.json:
        rows = [
            {"what": f"CPU s, {args.calls} concurrent first get_stats vs 1 ({args.rows:,}-row JSONL, MCP stdio)",
             "runwise": cpu["ten"], "peer": cpu["one"], "peer_name": "one call", "ratio": ratio,
             "target": f"<= {args.limit:g}x", "pass": ok},
            {"what": f"wall s, {args.calls} concurrent first get_stats vs 1", "runwise": wall["ten"],
             "peer": wall["one"], "peer_name": "one call", "ratio": wall_ratio, "target": "", "pass": None},
            {"what": "all answers equal", "runwise": same, "target": "True", "pass": same},
        ]
        Path(args.json).write_text(json.dumps({"bench": "concurrent", "rows": rows, "runs": sides,
                                               "pass": ok}, indent=2))
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="sessions of each side, alternating (median)")
    ap.add_argument("--calls", type=int, default=10, help="concurrent calls of the second side")
    ap.add_argument("--limit", type=float, default=1.2, help="largest allowed CPU ratio (default 1.2)")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the JSONL run (default 1,000,000)")
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()
    if args.repeat < 1 or args.calls < 2:
        ap.error("--repeat must be >= 1 and --calls >= 2")
    return anyio.run(main_async, args)


if __name__ == "__main__":
    sys.exit(main())
