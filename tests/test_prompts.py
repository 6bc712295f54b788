"""MCP prompts through the official `mcp` client: in memory, over stdio, and as the MCP Inspector CLI lists them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.server.app import build_server
from runwise.server.prompts import split_refs
from runwise.tools import TOOLS_BY_NAME
from tests.conftest import runwise_mcp

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"  # pinned: its CLI output is what the test reads

ARGUMENTS = {
    "diagnose_run": [("run", True)],
    "explain_difference": [("run_a", True), ("run_b", True)],
    "watch_run": [("run", True)],
    "best_of_sweep": [("metric", True), ("group", False)],
    "write_report": [("runs", True)],
}


@pytest.fixture
def server(project: Path) -> MCPServer:
    return build_server(lambda: RunwiseConfig.load(project, env={}))


async def prompt_text(server: MCPServer, name: str, arguments: dict[str, str]) -> str:
    async with Client(server) as client:
        got = await client.get_prompt(name, arguments)
    assert got.messages and all(m.role == "user" for m in got.messages)
    return "\n".join(m.content.text for m in got.messages if m.content.type == "text")


def in_order(text: str, *parts: str) -> bool:
    """Each part occurs in `text`, after the one before it."""
    at = 0
    for p in parts:
        at = text.find(p, at)
        if at < 0:
            return False
        at += len(p)
    return True


@pytest.mark.anyio
async def test_all_five_prompts_are_listed_with_their_arguments(server: MCPServer) -> None:
    async with Client(server) as client:
        prompts = (await client.list_prompts()).prompts
        assert client.server_capabilities.prompts is not None
    assert {p.name: [(a.name, a.required) for a in p.arguments or []] for p in prompts} == ARGUMENTS
    for p in prompts:
        assert p.title and p.description
        assert all(a.description for a in p.arguments or [])


@pytest.mark.anyio
async def test_diagnose_names_the_run_and_the_tools_in_order(server: MCPServer) -> None:
    text = await prompt_text(server, "diagnose_run", {"run": "run_b"})
    assert "`run_b` is jsonl:run_b." in text
    assert in_order(text, "summarize_run run='run_b'", "verdict", "detect_anomalies run='run_b'", "step",
                    "get_history", "get_config")
    assert "`notes`" in text and "truncated" in text


@pytest.mark.anyio
async def test_explain_difference_names_both_runs_and_the_config_diff(server: MCPServer) -> None:
    text = await prompt_text(server, "explain_difference", {"run_a": "run_a", "run_b": "jsonl:run_b@150"})
    assert "`run_a` is jsonl:run_a." in text
    assert "`jsonl:run_b@150` is jsonl:run_b, at step 150." in text
    assert in_order(text, "compare_runs runs=['run_a', 'jsonl:run_b@150']", "divergence", "config_diff",
                    "summarize_run on 'run_a' and on 'jsonl:run_b'")
    assert "summarize_run on 'run_a' and on 'jsonl:run_b@150'" not in text  # summarize_run takes no @STEP


@pytest.mark.anyio
async def test_watch_uses_live_status_until_the_run_ends(server: MCPServer) -> None:
    text = await prompt_text(server, "watch_run", {"run": "latest"})
    assert "`latest` is jsonl:run_b." in text  # the newer of the two
    assert in_order(text, "live_status run='latest'", "recent_anomalies", "Repeat live_status",
                    "summarize_run run='latest'")


@pytest.mark.anyio
async def test_best_of_sweep_ranks_by_the_metric_and_compares_the_leaders(server: MCPServer) -> None:
    text = await prompt_text(server, "best_of_sweep", {"metric": "val/loss", "group": "run_"})
    assert "among runs whose id or name starts with 'run_'" in text
    assert in_order(text, "list_runs", "find_best_run metric='val/loss'", "ranking", "compare_runs", "config_diff",
                    "summarize_run")
    plain = await prompt_text(server, "best_of_sweep", {"metric": "val/loss"})
    assert "among all runs" in plain


@pytest.mark.anyio
async def test_report_calls_the_report_tool_with_every_run(server: MCPServer) -> None:
    text = await prompt_text(server, "write_report", {"runs": "run_a, run_b"})
    assert "`run_a` is jsonl:run_a." in text and "`run_b` is jsonl:run_b." in text
    assert "report runs=['run_a', 'run_b']" in text
    assert "config diff" in text  # several runs: the comparison is asked for
    one = await prompt_text(server, "write_report", {"runs": "run_a"})
    assert "report runs=['run_a']" in one and "config diff" not in one


@pytest.mark.anyio
async def test_a_reference_that_names_no_run_is_said_so_in_the_prompt(server: MCPServer) -> None:
    text = await prompt_text(server, "diagnose_run", {"run": "no_such_run"})
    assert "`no_such_run` names no run now: no run matches 'no_such_run'" in text
    assert "summarize_run run='no_such_run'" in text  # the plan is still given


@pytest.mark.anyio
async def test_a_cloud_reference_is_not_looked_up(server: MCPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookup(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cloud reference was looked up while rendering a prompt")

    monkeypatch.setattr(runs, "resolve", no_lookup)
    text = await prompt_text(server, "explain_difference", {"run_a": "cloud:abc123", "run_b": "wandb-cloud:e/p/xyz"})
    assert "`cloud:abc123` is a W&B cloud run" in text and "`wandb-cloud:e/p/xyz` is a W&B cloud run" in text
    assert "compare_runs runs=['cloud:abc123', 'wandb-cloud:e/p/xyz']" in text


@pytest.mark.anyio
async def test_every_tool_a_prompt_names_exists(server: MCPServer) -> None:
    args = {"run": "run_a", "run_a": "run_a", "run_b": "run_b", "metric": "val/loss", "runs": "run_a run_b"}
    named: set[str] = set()
    for name, arguments in ARGUMENTS.items():
        text = await prompt_text(server, name, {a: args[a] for a, required in arguments if required})
        called = set(re.findall(r"\b([a-z]+_[a-z_]+|report) (?:run=|runs=|metric=|on ')", text))
        assert called, name
        named |= called
    assert named <= set(TOOLS_BY_NAME), named - set(TOOLS_BY_NAME)
    assert {"summarize_run", "detect_anomalies", "compare_runs", "live_status", "find_best_run", "report"} <= named


def test_split_refs() -> None:
    assert split_refs(" run_a, run_b  jsonl:run_a@10k,,run_a ") == ["run_a", "run_b", "jsonl:run_a@10k"]


@pytest.mark.anyio
async def test_prompts_over_stdio(project: Path, tmp_path: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "runwise.server", "--root", str(project)],
                                   env={"RUNWISE_NO_CACHE": "1"}, cwd=str(tmp_path))
    async with Client(params) as client:
        names = [p.name for p in (await client.list_prompts()).prompts]
        got = await client.get_prompt("explain_difference", {"run_a": "run_a", "run_b": "run_b"})
    assert names == list(ARGUMENTS)
    text = got.messages[0].content.text  # type: ignore[union-attr]
    assert "`run_a` is jsonl:run_a." in text and "`run_b` is jsonl:run_b." in text


def test_inspector_cli_lists_the_prompts(project: Path, tmp_path: Path) -> None:
    """`npx @modelcontextprotocol/inspector --cli runwise-mcp --method prompts/list`, as the issue asks."""
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("no npx on PATH (install Node.js)")
    script = Path(runwise_mcp())
    try:
        done = subprocess.run(
            [npx, "-y", INSPECTOR, "--cli", str(script), "--root", str(project), "--method", "prompts/list"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
            env={"PATH": f"{script.parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()),
                 "RUNWISE_NO_CACHE": "1", "npm_config_update_notifier": "false"},
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npx {INSPECTOR} did not finish in 300 s (no network to fetch it?)")
    start = done.stdout.find("{")
    if done.returncode != 0 and start < 0:
        pytest.skip(f"npx {INSPECTOR} could not run: {(done.stderr.strip().splitlines() or ['?'])[-1][:300]}")
    listed = json.loads(done.stdout[start:])
    assert [p["name"] for p in listed["prompts"]] == list(ARGUMENTS)
    by_name = {p["name"]: p for p in listed["prompts"]}
    assert [(a["name"], a.get("required", False)) for a in by_name["best_of_sweep"]["arguments"]] == ARGUMENTS[
        "best_of_sweep"]
