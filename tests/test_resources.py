"""MCP resources through the official `mcp` client: in memory (both protocol eras), over stdio, and
through the MCP Inspector CLI (`npx @modelcontextprotocol/inspector --cli`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import ServerNotification

from runwise import index
from runwise.config import RunwiseConfig
from runwise.server import resources
from runwise.server.app import build_server
from runwise.server.messages import ERROR_CHARS
from tests.conftest import SPIKE_STEP, runwise_mcp, training_rows, write_jsonl

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
TEMPLATES = ["runwise://run/{ref}/summary", "runwise://run/{ref}/config", "runwise://run/{ref}/history/{metric}"]
MODES = ["auto", "legacy"]  # 2026-07-28 (per-request, no handshake) and the 2025 handshake Claude Code uses


def server_for(root: Path) -> MCPServer:
    return build_server(lambda: RunwiseConfig.load(root, env={}))


def text_of(result: Any) -> str:
    (content,) = result.contents
    assert content.mime_type == "application/json"
    text: str = content.text
    return text


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_resources_and_templates_are_listed(project: Path, mode: str) -> None:
    async with Client(server_for(project), mode=mode) as client:
        caps = client.server_capabilities.resources
        listed = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
    assert caps is not None and caps.subscribe is True
    # the index, then each run's summary, newest first, named by the run's key
    assert [r.uri for r in listed] == [
        "runwise://runs", "runwise://run/jsonl%3Arun_b/summary", "runwise://run/jsonl%3Arun_a/summary"]
    assert listed[1].name == "jsonl:run_b" and "last step 299" in (listed[1].description or "")
    assert [t.uri_template for t in templates] == TEMPLATES
    for t in templates:
        assert t.mime_type == "application/json"
        assert "percent-encoded" in (t.description or "") and "logs%2Fa.jsonl" in (t.description or "")


def test_listing_is_bounded(tmp_path: Path) -> None:
    for i in range(resources.LISTED_RUNS + 5):
        write_jsonl(tmp_path / "logs" / f"r{i:02d}.jsonl", training_rows(steps=5), age_s=3600 + i)

    async def listed() -> list[str]:
        async with Client(server_for(tmp_path)) as client:
            return [r.uri for r in (await client.list_resources()).resources]

    uris = anyio.run(listed)
    assert len(uris) == 1 + resources.LISTED_RUNS
    assert uris[1] == "runwise://run/jsonl%3Ar00/summary"  # the newest


# each template read on the fixture project, against the tool that answers the same question
READS = [
    ("runwise://run/" + quote("logs/run_a.jsonl", safe="") + "/summary", "summarize_run", {"run": "logs/run_a.jsonl"}),
    ("runwise://run/jsonl%3Arun_a/config", "get_config", {"run": "jsonl:run_a"}),
    ("runwise://run/jsonl:run_b/config", "get_config", {"run": "jsonl:run_b"}),  # ':' may also stay as it is
    ("runwise://run/run_b/history/train%2Floss", "get_history", {"run": "run_b", "keys": ["train/loss"]}),
    ("runwise://runs", "list_runs", {"limit": resources.LISTED_RUNS * 5}),
]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("uri", "tool", "args"), READS, ids=[r[1] + "-" + r[0][14:30] for r in READS])
async def test_each_resource_reads_what_its_tool_answers(
    project: Path, mode: str, uri: str, tool: str, args: dict[str, Any]
) -> None:
    async with Client(server_for(project), mode=mode) as client:
        read = json.loads(text_of(await client.read_resource(uri)))
        answer = await client.call_tool(tool, args)
    assert read == answer.structured_content


@pytest.mark.anyio
async def test_resources_name_the_run_asked_and_are_bounded(project: Path) -> None:
    async with Client(server_for(project)) as client:
        a = json.loads(text_of(await client.read_resource("runwise://run/logs%2Frun_a.jsonl/summary")))
        b = json.loads(text_of(await client.read_resource("runwise://run/jsonl%3Arun_b/config")))
        h = json.loads(text_of(await client.read_resource("runwise://run/jsonl%3Arun_b/history/train%2Floss")))
    assert a["run"]["name"] == "run_a" and a["run"]["last_step"] == 199
    assert b["config"]["warmup"] == 20  # only run_b has it
    loss = h["metrics"]["train/loss"]
    assert len(loss["steps"]) < 300  # downsampled (300 points logged)
    assert loss["steps"][loss["values"].index(max(loss["values"]))] == SPIKE_STEP  # the spike survives


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("runwise://run/run_c/summary", "no run matches 'run_c'; closest: "),
        ("runwise://run/run_b/history/val%2Flos", "unknown metric 'val/los'; closest: val/loss"),
        ("runwise://run/%2Fetc%2Fpasswd/config", "outside the project roots"),
        ("runwise://run/" + "x" * 600 + "/summary", "invalid argument run: must be a string of at most 500"),
        ("runwise://run/run_b/nothing", "Unknown resource"),
    ],
)
async def test_failures_are_one_line(project: Path, uri: str, message: str) -> None:
    async with Client(server_for(project)) as client:
        with pytest.raises(MCPError) as failed:
            await client.read_resource(uri)
    text = str(failed.value)
    assert message in text, text
    assert "\n" not in text and len(text) <= ERROR_CHARS + len(uri) and "Traceback" not in text


def _notes(seen: list[str]) -> Callable[[Any], Any]:
    async def handler(message: Any) -> None:
        if isinstance(message, ServerNotification) and message.method == "notifications/resources/updated":
            seen.append(str(message.params.uri))

    return handler


async def _wait_for(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    with anyio.move_on_after(seconds):
        while not check():
            await anyio.sleep(0.02)
    return check()


def append_rows(path: Path, first: int, n: int = 5) -> None:
    with path.open("a") as fp:
        for s in range(first, first + n):
            fp.write(json.dumps({"step": s, "train/loss": 1.0 / (s + 1)}) + "\n")


@pytest.fixture
def running(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run being written now (logs/live.jsonl), polled every 50 ms."""
    monkeypatch.setattr(resources, "POLL_SECONDS", 0.05)
    path = project / "logs" / "live.jsonl"
    write_jsonl(path, training_rows(steps=20))
    return path


async def legacy_call(fn: Callable[..., Any], *args: Any) -> Any:
    with warnings.catch_warnings():  # resources/subscribe is deprecated from 2026-07-28 on; 2025 clients use it
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        return await fn(*args)


@pytest.mark.anyio
async def test_subscription_notifies_on_appended_rows_until_unsubscribed(project: Path, running: Path) -> None:
    uri = resources.run_uri("logs/live.jsonl")
    seen: list[str] = []
    async with Client(server_for(project), mode="legacy", message_handler=_notes(seen)) as client:
        live = json.loads(text_of(await client.read_resource(uri)))
        assert live["run"]["state"] == "running" and live["run"]["last_step"] == 19
        await legacy_call(client.subscribe_resource, uri)
        await anyio.sleep(0.3)
        assert seen == []  # unchanged files: no notice
        append_rows(running, 20)
        assert await _wait_for(lambda: seen == [uri]), seen
        grown = json.loads(text_of(await client.read_resource(uri)))
        assert grown["run"]["last_step"] == 24  # the notice means a read now sees the new rows
        append_rows(running, 25)
        assert await _wait_for(lambda: len(seen) == 2), seen
        await legacy_call(client.unsubscribe_resource, uri)
        append_rows(running, 30)
        await anyio.sleep(0.5)  # ten polls
        assert seen == [uri, uri]


@pytest.mark.anyio
async def test_subscribing_to_what_cannot_change_fails_in_one_line(project: Path, running: Path) -> None:
    async with Client(server_for(project), mode="legacy") as client:
        with pytest.raises(MCPError, match="no run matches 'nope'"):
            await legacy_call(client.subscribe_resource, "runwise://run/nope/summary")
        with pytest.raises(MCPError, match="only a run's resources"):
            await legacy_call(client.subscribe_resource, "runwise://runs")


@pytest.mark.anyio
async def test_a_run_without_local_files_is_not_subscribable(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runwise import runs
    from runwise.model import RunEntry

    cloud = RunEntry(id="team/proj/abc123", source="wandb-cloud", paths=())
    monkeypatch.setattr(runs, "resolve", lambda ref, cfg, entries=None: cloud)
    async with Client(server_for(project), mode="legacy") as client:
        with pytest.raises(MCPError, match="cannot subscribe to 'wandb-cloud:team/proj/abc123': it has no local files"):
            await legacy_call(client.subscribe_resource, resources.run_uri("wandb-cloud:team/proj/abc123"))


@pytest.mark.anyio
async def test_listen_stream_notifies_while_open(project: Path, running: Path) -> None:
    uri = resources.run_uri("jsonl:live", "summary")
    events: list[str] = []
    async with Client(server_for(project)) as client:
        async with client.listen(resource_subscriptions=[uri]) as sub:

            async def collect() -> None:
                async for event in sub:
                    events.append(str(getattr(event, "uri", "")))

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                await anyio.sleep(0.3)
                assert events == []
                append_rows(running, 20)
                assert await _wait_for(lambda: events == [uri]), events
                tg.cancel_scope.cancel()


LINKED = [
    ("list_runs", {}, ["runwise://runs"]),
    ("summarize_run", {"run": "logs/run_a.jsonl"},
     ["runwise://run/logs%2Frun_a.jsonl/summary", "runwise://run/logs%2Frun_a.jsonl/config"]),
    ("summarize_run", {}, ["runwise://run/jsonl%3Arun_b/summary", "runwise://run/jsonl%3Arun_b/config"]),  # latest
    ("get_history", {"run": "run_b", "keys": ["val/", "lr"]},
     ["runwise://run/run_b/history/val%2Floss", "runwise://run/run_b/history/lr"]),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("tool", "args", "uris"), LINKED, ids=[f"{t[0]}-{i}" for i, t in enumerate(LINKED)])
async def test_tool_results_link_to_readable_resources(
    project: Path, tool: str, args: dict[str, Any], uris: list[str]
) -> None:
    async with Client(server_for(project)) as client:
        result = await client.call_tool(tool, args)
        first, *links = result.content
        assert first.type == "text" and json.loads(first.text) == result.structured_content  # first, unchanged
        assert [link.type for link in links] == ["resource_link"] * len(uris)
        assert [str(link.uri) for link in links] == uris  # type: ignore[union-attr]
        for link in links:
            read = await client.read_resource(str(link.uri))  # type: ignore[union-attr]
            assert json.loads(text_of(read))


@pytest.mark.anyio
async def test_other_tools_carry_no_links(project: Path) -> None:
    async with Client(server_for(project)) as client:
        result = await client.call_tool("get_stats", {"run": "run_a"})
    assert [c.type for c in result.content] == ["text"]


@pytest.mark.anyio
async def test_stdio_subprocess_serves_resources_and_subscriptions(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = project / "logs" / "live.jsonl"
    write_jsonl(live, training_rows(steps=20))
    uri = resources.run_uri("logs/live.jsonl")
    params = StdioServerParameters(command=runwise_mcp(), args=["--root", str(project)], cwd=str(tmp_path),
                                   env={"RUNWISE_NO_CACHE": "1", "PATH": os.environ.get("PATH", "")})
    seen: list[str] = []
    async with Client(params, mode="legacy", message_handler=_notes(seen)) as client:
        listed = [r.uri for r in (await client.list_resources()).resources]
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        config = json.loads(text_of(await client.read_resource("runwise://run/jsonl%3Arun_b/config")))
        with pytest.raises(MCPError, match="no run matches 'nope'"):
            await client.read_resource("runwise://run/nope/summary")
        await legacy_call(client.subscribe_resource, uri)
        await anyio.sleep(0.2)
        append_rows(live, 20)
        notified = await _wait_for(lambda: seen == [uri], 4 * resources.POLL_SECONDS + 5)
    assert listed[:2] == ["runwise://runs", "runwise://run/jsonl%3Alive/summary"]
    assert templates == TEMPLATES
    assert config["config"]["warmup"] == 20
    assert notified, seen


def inspector(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    npx = shutil.which("npx")
    assert npx is not None
    return subprocess.run([npx, "--yes", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "npm_config_update_notifier": "false"})


@pytest.mark.slow
@pytest.mark.parametrize("method", ["resources/list", "resources/templates/list"])
def test_inspector_cli_lists_resources(project: Path, tmp_path: Path, method: str) -> None:
    if shutil.which("npx") is None:
        pytest.skip("no npx on PATH (install Node.js)")
    fetched = inspector(f"--package={INSPECTOR}", "--", "node", "-e", "0", cwd=tmp_path)
    if fetched.returncode != 0:
        pytest.skip(f"{INSPECTOR} could not be fetched: {fetched.stderr.strip()[-200:]}")
    done = inspector(INSPECTOR, "--cli", runwise_mcp(), "--root", str(project), "--method", method, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    if method == "resources/list":
        assert [r["uri"] for r in answer["resources"]] == [
            "runwise://runs", "runwise://run/jsonl%3Arun_b/summary", "runwise://run/jsonl%3Arun_a/summary"]
    else:
        assert [t["uriTemplate"] for t in answer["resourceTemplates"]] == TEMPLATES



@pytest.mark.anyio
async def test_polls_of_an_http_session_stop_when_it_ends_while_the_server_runs_on(
    project: Path, running: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # over streamable HTTP one server (one lifespan) serves many sessions: a closed session's polls must stop
    import socket

    calls: list[float] = []
    real = index.file_stats

    def counted(entry: Any) -> Any:
        calls.append(time.monotonic())
        return real(entry)

    monkeypatch.setattr(index, "file_stats", counted)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = server_for(project)
    uri = resources.run_uri("logs/live.jsonl")
    seen: list[str] = []
    import uvicorn

    http = uvicorn.Server(uvicorn.Config(server.streamable_http_app(), host="127.0.0.1", port=port, log_level="error"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(http.serve)
        url = f"http://127.0.0.1:{port}/mcp"
        with anyio.fail_after(10):
            while True:  # until it listens
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.05)
        async with Client(url, mode="legacy", message_handler=_notes(seen)) as client:
            await legacy_call(client.subscribe_resource, uri)
            await anyio.sleep(0.2)
            append_rows(running, 20)
            assert await _wait_for(lambda: seen == [uri]), seen  # delivered on the session's own stream
        assert await _wait_for(lambda: not calls or time.monotonic() - calls[-1] > 0.3, 5)
        ended = len(calls)
        await anyio.sleep(0.4)
        assert len(calls) == ended  # the server runs on; the closed session's run is no longer polled
        async with Client(url, mode="legacy") as other:  # and it still serves new sessions
            assert (await other.list_resources()).resources
        http.should_exit = True  # a graceful stop: uvicorn closes its sockets
