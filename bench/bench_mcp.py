"""The MCP server as Claude Code meets it: spawn over stdio, list tools, start-up time.

    python bench/bench_mcp.py [--repeat 9] [--json PATH]

Checks what the foundation issue asks:
- the official `mcp` client lists all 13 tools over stdio, each with an output schema, a title
  and readOnlyHint;
- what the model pays for on every turn (names, descriptions and input schemas of all tools, as
  JSON: `json.dumps` with its default separators, non-ASCII unescaped, as JSON.stringify
  writes it) is at most 8,000 characters;
- spawn-to-initialized time of `runwise-mcp` is at most 1.3x that of a bare MCPServer with one
  tool (bench/bare_server.py), measured side by side, alternating, median of --repeat runs.

It also prints, per tool on the example project, what a client reads: the structured content as
JSON (what Claude Code gives the model), the text content (what clients that read `content`
show, e.g. the Inspector's text view), and the SDK's default text for the same answer (indented
JSON, what runwise sent before), in characters. Output schemas are listed too (sent with
tools/list, not counted per turn). `--json PATH` also writes the figures there (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import anyio
import pydantic_core
from mcp import Client
from mcp.client.stdio import StdioServerParameters

HERE = Path(__file__).resolve().parent


def runwise_params(root: Path) -> StdioServerParameters:
    exe = shutil.which("runwise-mcp")
    if exe is None:  # not installed as a console script: the module form is the same server
        return StdioServerParameters(command=sys.executable, args=["-m", "runwise.server", "--root", str(root)])
    return StdioServerParameters(command=exe, args=["--root", str(root)])


def bare_params() -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(HERE / "bare_server.py")])


async def time_to_initialized(params: StdioServerParameters) -> float:
    t = time.perf_counter()
    async with Client(params) as client:
        elapsed = time.perf_counter() - t
        await client.list_tools()
    return elapsed


async def listing(root: Path) -> tuple[list[dict[str, object]], int]:
    async with Client(runwise_params(root)) as client:
        tools = (await client.list_tools()).tools
    rows = []
    for t in tools:
        rows.append({
            "name": t.name,
            "title": t.title,
            "read_only": bool(t.annotations and t.annotations.read_only_hint),
            "output_schema": t.output_schema is not None,
            "input_chars": len(json.dumps(t.input_schema, ensure_ascii=False)),
        })
    payload = [{"name": t.name, "description": t.description, "inputSchema": t.input_schema} for t in tools]
    return rows, len(json.dumps(payload, ensure_ascii=False))


# default arguments per tool on the example project (two JSONL runs)
EXAMPLE_CALLS: dict[str, dict[str, object]] = {
    "list_runs": {}, "summarize_run": {}, "compare_runs": {"runs": ["baseline", "lr_warmup"]}, "get_history": {},
    "get_stats": {}, "get_stability": {}, "find_best_run": {"metric": "val/loss"}, "get_config": {},
    "get_run_context": {}, "list_keys": {}, "live_status": {}, "detect_anomalies": {},
    "report": {"runs": ["baseline", "lr_warmup"]},
}


async def content_sizes(root: Path) -> None:
    print("what a client reads per answer (characters): structured JSON | text content | SDK default text")
    totals = [0, 0, 0]
    async with Client(runwise_params(root)) as client:
        tools = (await client.list_tools()).tools
        for name, args in EXAMPLE_CALLS.items():
            result = await client.call_tool(name, args)
            structured = len(json.dumps(result.structured_content, ensure_ascii=False))
            text = sum(len(getattr(block, "text", "")) for block in result.content)
            indented = len(pydantic_core.to_json(result.structured_content, indent=2).decode())
            totals = [totals[0] + structured, totals[1] + text, totals[2] + indented]
            print(f"  {name:18s} {structured:7,d} | {text:7,d} | {indented:7,d}"
                  + ("  (error)" if result.is_error else ""))
    print(f"  {'all ' + str(len(EXAMPLE_CALLS)):18s} {totals[0]:7,d} | {totals[1]:7,d} | {totals[2]:7,d}  "
          f"text/structured {totals[1] / totals[0]:.2f}x (SDK default {totals[2] / totals[0]:.2f}x)")
    out_schemas = sum(len(json.dumps(t.output_schema, ensure_ascii=False)) for t in tools)
    print(f"output schemas, all tools: {out_schemas:,} chars (sent with tools/list)")


async def main_async(repeat: int, json_path: str | None = None) -> int:
    root = HERE.parent / "examples"
    await content_sizes(root)
    rows, paid = await listing(root)
    print(f"tools listed over stdio: {len(rows)}")
    for r in rows:
        print(f"  {r['name']:18s} title={r['title']!r:24s} readOnly={r['read_only']} "
              f"outputSchema={r['output_schema']} inputSchema={r['input_chars']} chars")
    print(f"per-turn cost (names + descriptions + input schemas, JSON): {paid:,} chars (limit 8,000)")
    await time_to_initialized(bare_params())  # warm the file cache for both
    await time_to_initialized(runwise_params(root))
    bare: list[float] = []
    ours: list[float] = []
    for _ in range(repeat):
        bare.append(await time_to_initialized(bare_params()))
        ours.append(await time_to_initialized(runwise_params(root)))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"spawn-to-initialized, median of {repeat}: bare MCPServer {b:.3f}s, runwise-mcp {o:.3f}s, "
          f"ratio {o / b:.2f}x (limit 1.30x)")
    ok = (
        len(rows) == len(EXAMPLE_CALLS) and all(r["read_only"] and r["output_schema"] and r["title"] for r in rows)
        and paid <= 8000 and o <= 1.3 * b
    )
    print("PASS" if ok else "FAIL")
    if json_path:
        sys.path.insert(0, str(HERE))
        from _common import figure, write_figures

        every = len(EXAMPLE_CALLS)
        listed = len(rows) == every and all(r["read_only"] and r["output_schema"] and r["title"] for r in rows)
        write_figures(json_path, "mcp", [
            figure("tools listed over stdio, with title, readOnlyHint, output schema", len(rows), target=str(every),
                   passed=listed),
            figure("per-turn cost: names + descriptions + input schemas", paid, unit="chars", target="<= 8,000",
                   passed=paid <= 8000),
            figure(f"spawn-to-initialized over stdio, median of {repeat}", o, peer=b, peer_name="bare MCPServer",
                   unit="s", target="<= 1.3x", passed=o <= 1.3 * b),
        ], repeat=repeat)
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()
    return anyio.run(main_async, args.repeat, args.json)


if __name__ == "__main__":
    sys.exit(main())
