"""The MCP server through the official `mcp` client: in memory, and over stdio as a subprocess."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from runwise.config import RunwiseConfig
from runwise.server.app import INSTRUCTIONS, build_server
from runwise.tools import TOOLS

SPIKE_STEP = 1234


def make_project(root: Path) -> Path:
    """Two JSONL runs as a training script writes them (json.dumps per step)."""
    logs = root / "logs"
    logs.mkdir(parents=True)
    for name, lr, spike in (("base", 0.001, False), ("fast", 0.003, True)):
        lines = [json.dumps({"config": {"optimizer": {"lr": lr}, "batch_size": 32}})]
        for step in range(2000):
            loss = 2.0 * math.exp(-step / 500) + 0.1 + 0.01 * math.sin(step * 1.7)
            if spike and step == SPIKE_STEP:
                loss = 9.0
            row: dict[str, Any] = {"step": step, "train/loss": loss, "lr": lr}
            if step % 100 == 0:
                row["val/loss"] = loss + 0.05
            lines.append(json.dumps(row))
        (logs / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def server(tmp_path: Path) -> Any:
    root = make_project(tmp_path)
    return build_server(lambda: RunwiseConfig.load(root, env={}))


@pytest.mark.anyio
async def test_every_tool_is_listed_with_schema_title_and_read_only(server: Any) -> None:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    assert [t.name for t in tools] == [t.name for t in TOOLS]
    for t in tools:
        assert t.title and t.description and t.output_schema
        assert t.annotations is not None and t.annotations.read_only_hint is True
        assert "title" not in json.dumps(t.input_schema)  # compacted
    paid = json.dumps([{"name": t.name, "description": t.description, "inputSchema": t.input_schema} for t in tools])
    assert len(paid) <= 8000
    assert len(INSTRUCTIONS.encode()) < 2048


# one call per tool, with what each must answer
CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("list_runs", {}, "2 runs"),
    ("summarize_run", {"run": "fast"}, f"{SPIKE_STEP:,}"),
    ("compare_runs", {"runs": ["base", "fast"]}, "optimizer.lr"),
    ("get_history", {"run": "fast", "keys": ["train/loss"]}, str(SPIKE_STEP)),
    ("get_stats", {"run": "fast"}, "train/loss"),
    ("get_stability", {"run": "base"}, "verdict"),
    ("find_best_run", {"metric": "val/loss"}, "best by best val/loss"),
    ("get_config", {"run": "base"}, "batch_size"),
    ("get_run_context", {"run": "base"}, "logs/base.jsonl"),
    ("list_keys", {"run": "base"}, "val/loss"),
    ("live_status", {"run": "base"}, "steps"),
    ("detect_anomalies", {"run": "fast"}, "spike"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("tool", "args", "expected"), CALLS, ids=[c[0] for c in CALLS])
async def test_each_tool_answers_in_memory(server: Any, tool: str, args: dict[str, Any], expected: str) -> None:
    async with Client(server) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    text = json.dumps(result.structured_content, ensure_ascii=False)
    assert expected in text
    assert len(text) < 12_000  # bounded by default


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("summarize_run", {"run": "bsae"}, "no run matches 'bsae'; closest: base"),
        ("get_history", {"run": "base", "keys": ["val/los"]}, "unknown metric 'val/los'; closest: val/loss"),
        ("get_stats", {"run": "/etc/passwd"}, "outside the project roots"),
        ("get_history", {"run": "base", "max_points": 2}, "max_points"),
        ("find_best_run", {"metric": "accuracy"}, "unknown metric 'accuracy'"),
        ("get_config", {"run": "base", "nope": 1}, "nope"),
    ],
)
async def test_anticipated_failures_are_tool_errors(server: Any, tool: str, args: dict[str, Any], message: str) -> None:
    async with Client(server) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert message in text
    assert "Traceback" not in text


@pytest.mark.anyio
async def test_progress_is_reported_on_reads(server: Any) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with Client(server) as client:
        result = await client.call_tool("get_stats", {"run": "base"}, progress_callback=on_progress)
    assert not result.is_error
    assert seen and seen[-1][0] == seen[-1][1]  # the last notice says the read is complete


@pytest.mark.anyio
async def test_stdio_subprocess_as_claude_code_starts_it(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    params = StdioServerParameters(command=sys.executable, args=["-m", "runwise.mcp_server"], env={
        "CLAUDE_PROJECT_DIR": str(root), "RUNWISE_NO_CACHE": "1"}, cwd=str(tmp_path))
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        assert len(tools) == len(TOOLS)
        result = await client.call_tool("summarize_run", {"run": "fast"})
        bad = await client.call_tool("summarize_run", {"run": "missing-run"})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["run"]["id"] == "fast"
    assert bad.is_error and "no run matches 'missing-run'" in bad.content[0].text  # type: ignore[union-attr]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
