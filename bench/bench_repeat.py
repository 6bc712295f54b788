"""Repeated calls: the second call of each of the 12 tools, default arguments, on a 1,000,000-row run.

    python bench/bench_repeat.py [--sources jsonl,tensorboard,wandb] [--repeat 3] [--limit-ms 100] [--json PATH]

For each source, one MCP session through the official `mcp` client over stdio (`runwise-mcp
--root <project>`, as Claude Code starts it) on a project holding one 1M-row run. Each tool is
called with its default arguments: the first call (the first one to need the run reads it), then
`--repeat` more; the table shows the first call and the median of the repeats, and PASS when the
median is at most `--limit-ms`. The disk cache is a new, empty directory, so the first read is a
real parse. Every answer must be a success, and a repeat must equal the first answer (live_status
aside: its "seconds since the last write" moves with the clock).

Inputs, all git-ignored under bench/_data/:
- jsonl: `jsonl/logs/big.jsonl` (1M rows x 5 metrics, made here with bench_jsonl's generator if absent);
- tensorboard: `tb_1000000/` (made by bench/bench_tensorboard.py), hard-linked into `repeat_tb/runs/big/`;
- wandb: `wandb/offline-run-*` (made by bench/make_wandb_big.py with the real wandb client), hard-linked
  into `repeat_wandb/wandb/`.
A source whose input is missing (other than jsonl) is skipped, saying which command makes it.
compare_runs, which needs two runs, compares the run with itself; find_best_run ranks by train/loss.
`--json PATH` also writes the figures there (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
ROWS = 1_000_000

TOOLS = ("list_runs", "summarize_run", "get_run_context", "get_config", "list_keys", "get_stats", "get_history",
         "get_stability", "detect_anomalies", "live_status", "find_best_run", "compare_runs")


def _arguments(tool: str, run: str) -> dict[str, object]:
    if tool == "compare_runs":
        return {"runs": [run, run]}
    if tool == "find_best_run":
        return {"metric": "train/loss"}
    return {}


def _link_tree(src: Path, dst: Path) -> None:
    """Hard links of `src`'s files under `dst` (no copy of the bytes; inside the project root, unlike a symlink)."""
    if dst.exists():
        return
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=os.link, symlinks=True)
    tmp.rename(dst)


def jsonl_project() -> tuple[Path, str] | str:
    path = DATA / "jsonl" / "logs" / "big.jsonl"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from bench_jsonl import generate  # the JSONL bench's generator: the same run, made once

        print(f"generating {path.relative_to(HERE.parent)} ({ROWS:,} rows) ...", flush=True)
        generate(path, ROWS)
    return DATA / "jsonl", "big"


def tensorboard_project() -> tuple[Path, str] | str:
    src = DATA / f"tb_{ROWS}"
    if not any(src.glob("events.out.tfevents.*")):
        return f"no {src.relative_to(HERE.parent)}: run python bench/bench_tensorboard.py once"
    root = DATA / "repeat_tb"
    _link_tree(src, root / "runs" / "big")
    return root, "big"


def wandb_project() -> tuple[Path, str] | str:
    runs = sorted((DATA / "wandb").glob("offline-run-*"))
    if not runs or not any(runs[-1].glob("run-*.wandb")):
        return "no bench/_data/wandb run: run python bench/make_wandb_big.py once"
    root = DATA / "repeat_wandb"
    _link_tree(runs[-1], root / "wandb" / runs[-1].name)
    return root, runs[-1].name.rsplit("-", 1)[-1]


PROJECTS = {"jsonl": jsonl_project, "tensorboard": tensorboard_project, "wandb": wandb_project}


def _params(root: Path, cache_dir: str) -> StdioServerParameters:
    env = dict(os.environ, RUNWISE_CACHE_DIR=cache_dir)
    env.pop("RUNWISE_NO_CACHE", None)
    exe = shutil.which("runwise-mcp")
    if exe is None:  # not installed as a console script: the module form is the same server
        return StdioServerParameters(command=sys.executable, args=["-m", "runwise.server", "--root", str(root)],
                                     env=env)
    return StdioServerParameters(command=exe, args=["--root", str(root)], env=env)


async def _timed(client: Client, tool: str, args: dict[str, object]) -> tuple[float, Any]:
    t = time.perf_counter()
    result = await client.call_tool(tool, args)
    elapsed = time.perf_counter() - t
    if result.is_error:
        text = " ".join(getattr(b, "text", "") for b in result.content)
        raise RuntimeError(f"{tool} failed: {text[:300]}")
    return elapsed, result.structured_content


async def one_source(name: str, root: Path, run: str, repeat: int, limit_ms: float,
                     figures: list[dict[str, Any]] | None = None) -> bool:
    ok = True
    medians: dict[str, float] = {}
    firsts: dict[str, float] = {}
    print(f"\n{name}: {root.relative_to(HERE.parent)} (run {run}), one MCP session over stdio")
    print(f"  {'tool':18s} {'first':>10s} {'repeat median':>14s} {'repeat max':>11s}")
    with tempfile.TemporaryDirectory(prefix="runwise-bench-cache-") as cache_dir:
        async with Client(_params(root, cache_dir)) as client:
            for tool in TOOLS:
                args = _arguments(tool, run)
                first_s, first = await _timed(client, tool, args)
                again: list[float] = []
                for _ in range(repeat):
                    s, answer = await _timed(client, tool, args)
                    again.append(s)
                    if tool != "live_status" and answer != first:
                        print(f"  {tool}: a repeated answer differs from the first")
                        ok = False
                med = statistics.median(again) * 1000
                medians[tool], firsts[tool] = med, first_s * 1000
                passed = med <= limit_ms
                ok = ok and passed
                print(f"  {tool:18s} {first_s * 1000:8.1f}ms {med:12.1f}ms {max(again) * 1000:9.1f}ms  "
                      f"{'PASS' if passed else 'FAIL'}", flush=True)
    if figures is not None:
        from _common import figure

        slowest = max(medians, key=medians.__getitem__)
        figures.append(figure(f"{name}: slowest repeated call of the 12 tools ({slowest}), median; same answers",
                              medians[slowest], unit="ms", target=f"<= {limit_ms:g} ms",
                              passed=ok))
        figures.append(figure(f"{name}: the 12 first calls together (one of them reads the run)",
                              sum(firsts.values()), unit="ms"))
    return ok


async def main_async(sources: list[str], repeat: int, limit_ms: float, json_path: str | None = None) -> int:
    ok = True
    ran = 0
    figures: list[dict[str, Any]] = []
    for name in sources:
        made = PROJECTS[name]()
        if isinstance(made, str):
            print(f"\n{name}: skipped ({made})")
            figures.append({"what": f"{name}: skipped ({made})", "runwise": None, "pass": None})
            continue
        root, run = made
        ok = await one_source(name, root, run, repeat, limit_ms, figures) and ok
        ran += 1
    if json_path:
        sys.path.insert(0, str(HERE))
        from _common import write_figures

        write_figures(json_path, "repeat", figures, repeat=repeat)
    print(f"\n{'PASS' if ok and ran else 'FAIL'}: the repeated calls of all 12 tools, {ran} source(s), "
          f"limit {limit_ms:g} ms (median of {repeat})")
    return 0 if ok and ran else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", default="jsonl,tensorboard,wandb", help="comma-separated: jsonl, tensorboard, wandb")
    ap.add_argument("--repeat", type=int, default=3, help="calls after the first, per tool")
    ap.add_argument("--limit-ms", type=float, default=100.0)
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    bad = [s for s in sources if s not in PROJECTS]
    if bad or args.repeat < 1:
        ap.error(f"unknown source(s) {bad}; choose from {sorted(PROJECTS)}" if bad else "--repeat must be >= 1")
    return anyio.run(main_async, sources, args.repeat, args.limit_ms, args.json)


if __name__ == "__main__":
    sys.exit(main())
