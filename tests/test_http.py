"""`runwise-mcp --http`: a real uvicorn server in a subprocess, through the official `mcp` client's streamable
HTTP transport (and raw HTTP where the client would hide the status): tokens, limits, shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from runwise.config import RunwiseConfig
from runwise.server import http
from runwise.server.app import build_server
from runwise.server.messages import ERROR_CHARS
from runwise.tools import TOOLS
from tests.conftest import training_rows, write_jsonl
from tests.test_server import CALLS, make_project

TOKEN = "s3cret-token-for-tests"

# The server as `runwise-mcp` runs it, with one test-only change made from outside: reading a run whose
# name has "held" in it waits until the file HOLD_DIR/release exists (after touching HOLD_DIR/entered),
# so a call is mid-way for as long as a test needs, without sleeps in runwise itself.
LAUNCH = """\
import os, sys, time
from pathlib import Path
from runwise import parsers
hold = os.environ.get("HOLD_DIR")
if hold:
    real = parsers.load
    def held(entry, cfg, progress=None):
        if "held" in entry.key:
            Path(hold, "entered").touch()
            deadline = time.monotonic() + 60
            while not Path(hold, "release").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return real(entry, cfg, progress)
    parsers.load = held
from runwise.server.app import main
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWISE_") or k == "RUNWISE_CACHE_DIR"}
    return {**env, "RUNWISE_NO_CACHE": "1", **extra}


class Served:
    """A `runwise-mcp --http` subprocess on a free loopback port."""

    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/mcp"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "--http", f"127.0.0.1:{self.port}", "--root", str(root), *args],
            env=env if env is not None else server_env(RUNWISE_TOKEN=TOKEN),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def serving(root: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    served = Served(root, *args, env=env)
    try:
        yield served
    finally:
        served.stop()


@asynccontextmanager
async def connect(url: str, token: str | None = TOKEN) -> AsyncIterator[Client]:
    """The official client over streamable HTTP, sending `Authorization: Bearer <token>`."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    async with create_mcp_http_client(headers=headers) as http, Client(
        streamable_http_client(url, http_client=http), mode="legacy"
    ) as client:
        yield client


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("http"))


@pytest.fixture(scope="module")
def served(root: Path) -> Iterator[Served]:
    with serving(root) as s:
        yield s


def held_project(tmp_path: Path) -> Path:
    """make_project's two runs plus a run named 'held' (see LAUNCH)."""
    root = make_project(tmp_path / "proj")
    write_jsonl(root / "logs" / "held.jsonl", training_rows(steps=50, loss0=2.0, loss_end=1.0, lr=1e-3, seed=3),
                age_s=7200)
    return root


async def wait_for(path: Path, seconds: float = 20) -> None:
    with anyio.fail_after(seconds):
        while not path.exists():
            await anyio.sleep(0.01)


# test_server's one call per tool, and report, which it checks elsewhere
EVERY_CALL: list[tuple[str, dict[str, Any], Any]] = [(tool, args, check) for tool, args, _, check in CALLS] + [
    ("report", {"runs": ["base", "fast"]},
     lambda sc: sc["runs"] == ["jsonl:base", "jsonl:fast"] and sc["verdicts"] == ["healthy", "watch"]
     and "# Training report: 2 runs" in sc["markdown"]),
]


def steady(answers: dict[str, Any]) -> dict[str, Any]:
    """`answers` without what changes as time passes (how long ago a run was written)."""
    live = {k: v for k, v in answers["live_status"].items() if k not in ("last_write_age_s", "summary")}
    return {**answers, "live_status": live}


def run_data_in(text: str) -> bool:
    """Whether `text` holds anything of the served runs: their names, metric names or answers."""
    return any(word in text for word in ("base", "fast", "train/loss", "val/loss", "summarize", "structured"))


# ---------------------------------------------------------------- authorised calls


@pytest.mark.anyio
async def test_authorised_client_lists_tools_and_summarizes(served: Served) -> None:
    async with connect(served.url) as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("summarize_run", {"run": "fast"})
    assert [t.name for t in tools] == [t.name for t in TOOLS]
    assert not result.is_error and result.structured_content is not None
    check = dict((c[0], c[3]) for c in CALLS)["summarize_run"]
    assert result.structured_content["run"]["id"] == "fast" and check(result.structured_content)


def test_healthz_answers_ok_without_a_token_and_nothing_else(served: Served) -> None:
    done = httpx.get(served.base + "/healthz")
    assert (done.status_code, done.text) == (200, "ok")
    assert httpx.head(served.base + "/healthz").status_code == 200
    assert httpx.post(served.base + "/healthz").status_code == 401  # only GET/HEAD go without a token


# ---------------------------------------------------------------- unauthorised requests

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "summarize_run", "arguments": {}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}",
    TOKEN, f"Bearer {TOKEN.upper()}",
], ids=repr)
@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/mcp", INITIALIZE), ("POST", "/mcp", CALL), ("GET", "/mcp", None), ("DELETE", "/mcp", None),
    ("GET", "/", None), ("POST", "/mcp/", INITIALIZE), ("GET", "/runs", None),
], ids=lambda v: v if isinstance(v, str) else "")
def test_every_unauthorised_request_gets_401_and_no_run_data(
    served: Served, authorization: str | None, method: str, path: str, body: dict[str, Any] | None
) -> None:
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    done = httpx.request(method, served.base + path, headers=headers, content=json.dumps(body) if body else None)
    assert done.status_code == 401
    assert done.content == b""
    assert done.headers["www-authenticate"] == "Bearer"
    assert "mcp-session-id" not in done.headers


def test_a_session_opened_with_the_token_is_refused_without_it(served: Served) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
    opened = httpx.post(served.url, headers=headers, content=json.dumps(INITIALIZE))
    assert opened.status_code == 200 and "runwise" in opened.text
    session = opened.headers["mcp-session-id"]
    for authorization in (None, "Bearer wrong"):
        sent = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
        if authorization:
            sent["Authorization"] = authorization
        done = httpx.post(served.url, headers=sent, content=json.dumps(CALL))
        assert (done.status_code, done.content) == (401, b"")


def test_with_the_token_a_proxy_may_send_its_public_host_name(served: Served) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Host": "runs.example.org"}
    done = httpx.post(served.url, headers=headers, content=json.dumps(INITIALIZE))
    assert done.status_code == 200 and '"serverInfo"' in done.text


@pytest.mark.anyio
@pytest.mark.parametrize("token", [None, "wrong"])
async def test_the_mcp_client_without_the_right_token_gets_nothing(served: Served, token: str | None) -> None:
    with pytest.raises(Exception) as caught:  # noqa: B017 - whichever error the client raises for a 401
        async with connect(served.url, token) as client:
            await client.call_tool("summarize_run", {"run": "fast"})
    # the SDK reports the 401 as "Server returned an error response"; the raw tests above see the status
    assert "error response" in repr(caught.value) or "401" in repr(caught.value)
    assert not run_data_in(repr(caught.value))


# ---------------------------------------------------------------- limits


def test_a_request_over_the_size_limit_gets_413(served: Served) -> None:
    big = dict(CALL, params={"name": "summarize_run", "arguments": {"run": "x" * 1_100_000}})
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(served.url, headers=headers, content=json.dumps(big)).status_code == 413
    no_token = httpx.post(served.url, headers=MCP_HEADERS, content=json.dumps(big))
    assert no_token.status_code == 401  # the token is checked before the body is read


def expected_answers(root: Path) -> dict[str, Any]:
    async def collect() -> dict[str, Any]:
        async with Client(build_server(lambda: RunwiseConfig.load(root, env={}))) as client:
            return {tool: (await client.call_tool(tool, args)).structured_content for tool, args, _ in EVERY_CALL}

    return anyio.run(collect)


@pytest.mark.slow
@pytest.mark.anyio
async def test_50_concurrent_clients_calling_every_tool_get_the_in_memory_answers(
    served: Served, root: Path
) -> None:
    assert sorted(c[0] for c in EVERY_CALL) == sorted(t.name for t in TOOLS)
    expected = await anyio.to_thread.run_sync(expected_answers, root)
    answers: dict[int, dict[str, Any]] = {}

    async def one_client(n: int) -> None:
        async with connect(served.url) as client:
            got = {}
            for tool, args, _ in EVERY_CALL[n % 13:] + EVERY_CALL[: n % 13]:  # each starts elsewhere
                result = await client.call_tool(tool, args)
                assert not result.is_error, result.content
                got[tool] = result.structured_content
            answers[n] = got

    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(one_client, n)
    assert len(answers) == 50
    for got in answers.values():
        assert steady(got) == steady(expected)
    for tool, _, check in EVERY_CALL:
        assert check(expected[tool]), tool


@pytest.mark.anyio
async def test_a_call_past_the_call_timeout_fails_in_one_line(tmp_path: Path) -> None:
    root = held_project(tmp_path)
    with serving(root, "--call-timeout", "1", env=server_env(RUNWISE_TOKEN=TOKEN, HOLD_DIR=str(tmp_path))) as s:
        try:
            async with connect(s.url) as client:
                started = time.monotonic()
                result = await client.call_tool("summarize_run", {"run": "held"})
                took = time.monotonic() - started
                other = await client.call_tool("summarize_run", {"run": "fast"})
        finally:
            (tmp_path / "release").touch()
    assert result.is_error and 0.9 < took < 10
    text = result.content[0].text  # type: ignore[union-attr]
    assert "no answer within the server's call timeout of 1 s" in text
    assert "\n" not in text and len(text) <= ERROR_CHARS
    assert not other.is_error and other.structured_content is not None  # the server serves on


@pytest.mark.anyio
async def test_a_client_that_disconnects_mid_call_leaves_the_server_serving(tmp_path: Path) -> None:
    root = held_project(tmp_path)
    with serving(root, env=server_env(RUNWISE_TOKEN=TOKEN, HOLD_DIR=str(tmp_path))) as s:
        try:
            async with anyio.create_task_group() as tg:
                async def leaving() -> None:
                    async with connect(s.url) as client:
                        await client.call_tool("summarize_run", {"run": "held"})

                tg.start_soon(leaving)
                await wait_for(tmp_path / "entered")
                tg.cancel_scope.cancel()  # the client goes away mid-call
            async with connect(s.url) as client:
                result = await client.call_tool("summarize_run", {"run": "fast"})
            assert not result.is_error and result.structured_content is not None
            assert result.structured_content["run"]["id"] == "fast"
        finally:
            (tmp_path / "release").touch()
        async with connect(s.url) as client:  # and once the abandoned read ends, the held run answers too
            held = await client.call_tool("summarize_run", {"run": "held"})
        assert not held.is_error and held.structured_content is not None
        assert held.structured_content["run"]["id"] == "held"


@pytest.mark.anyio
async def test_sigterm_mid_call_lets_the_call_answer_then_exits_0(tmp_path: Path) -> None:
    root = held_project(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    token_file.chmod(0o600)
    env = server_env(HOLD_DIR=str(tmp_path))
    with serving(root, "--token-file", str(token_file), env=env) as s:
        results: list[Any] = []
        seen: dict[str, Any] = {}
        with contextlib.suppress(Exception):  # leaving a session of a server that is gone fails: not the point
            async with connect(s.url) as client, anyio.create_task_group() as tg:
                await client.list_tools()  # the client checks answers against the tools' schemas: fetch them now

                async def call() -> None:
                    results.append(await client.call_tool("summarize_run", {"run": "held"}))

                tg.start_soon(call)
                await wait_for(tmp_path / "entered")
                s.proc.send_signal(signal.SIGTERM)
                await anyio.sleep(1)
                seen["running"] = s.proc.poll() is None
                try:
                    await anyio.to_thread.run_sync(lambda: httpx.get(s.base + "/healthz", timeout=2))
                except httpx.ConnectError:
                    seen["refusing"] = True
                (tmp_path / "release").touch()
                started = time.monotonic()
        assert seen == {"running": True, "refusing": True}  # a call in progress: no longer accepting, not yet gone
        assert len(results) == 1, "the call in progress got no answer"
        [result] = results
        assert not result.is_error and result.structured_content is not None
        assert result.structured_content["run"]["id"] == "held"
        assert await anyio.to_thread.run_sync(lambda: s.proc.wait(timeout=20)) == 0
        assert time.monotonic() - started < 10  # not the graceful-shutdown timeout


# ---------------------------------------------------------------- start-up refusals


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runwise.server", *args], env=env or server_env(),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "[::]", "example.com"])
def test_no_token_and_not_loopback_exits_2_in_one_line(tmp_path: Path, host: str) -> None:
    done = start("--http", f"{host}:{free_port()}", "--root", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "refusing to serve" in done.stderr and "RUNWISE_TOKEN" in done.stderr


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--token-file", "{tmp}/empty"], {}, "is empty"),
    (["--token-file", "{tmp}/missing"], {}, "No such file"),
    ([], {"RUNWISE_TOKEN": "  "}, "RUNWISE_TOKEN is set but empty"),
    (["--max-concurrency", "0"], {"RUNWISE_TOKEN": TOKEN}, "--max-concurrency must be above 0"),
], ids=["empty-file", "missing-file", "empty-env", "zero-concurrency"])
def test_bad_token_settings_exit_2_in_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    (tmp_path / "empty").write_text("\n \n")
    (tmp_path / "empty").chmod(0o600)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = start("--http", "127.0.0.1:1", "--root", str(tmp_path), *argv, env=server_env(**env))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert TOKEN not in done.stderr


def test_stdio_start_imports_no_http_server_module() -> None:
    code = ("import sys\nfrom runwise.server import app\nfrom runwise.server.app import build_server\n"
            "build_server()\nprint('runwise.server.http' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                          env=server_env())
    assert done.stdout.strip() == "False"


def test_token_file_is_stripped_and_a_readable_one_warned_of(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "token"
    path.write_text(f"\n  {TOKEN} \n")
    path.chmod(0o600)
    assert http.read_token(str(path), {"RUNWISE_TOKEN": "other"}) == TOKEN.encode()  # the file first
    assert not caplog.records
    path.chmod(0o644)
    assert http.read_token(str(path), {}) == TOKEN.encode()
    assert "readable by other users" in caplog.text and TOKEN not in caplog.text
    assert http.read_token(None, {"RUNWISE_TOKEN": f" {TOKEN}\n"}) == TOKEN.encode()
    assert http.read_token(None, {}) is None


@pytest.mark.parametrize(("text", "address"), [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)), ("[::1]:80", ("::1", 80)), ("localhost:0", ("localhost", 0)),
    ("0.0.0.0:65535", ("0.0.0.0", 65535)),
])
def test_addresses(text: str, address: tuple[str, int]) -> None:
    assert http.parse_address(text) == address


@pytest.mark.parametrize("text", ["8000", ":8000", "host:", "host:port", "host:70000", "[::1]"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(http.SetupError, match="expected HOST:PORT"):
        http.parse_address(text)


def test_loopback() -> None:
    assert all(map(http.is_loopback, ["127.0.0.1", "127.8.0.1", "::1", "localhost", "LOCALHOST"]))
    assert not any(map(http.is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.example.com"]))


@pytest.mark.anyio
async def test_a_client_over_its_concurrency_waits_its_turn_then_gets_429() -> None:
    running: list[str] = []
    most = [0]
    go = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        running.append(scope["client"][0])
        most[0] = max(most[0], running.count("10.0.0.1"))
        await go.wait()
        running.remove(scope["client"][0])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def request(gate: http.Gate, host: str, statuses: list[int]) -> None:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [], "client": (host, 5000)}
        await gate(scope, receive, send)
        statuses.append(sent[0]["status"])

    gate = http.Gate(app, None, max_concurrency=2, wait_limit=30)
    statuses: list[int] = []
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(request, gate, "10.0.0.1", statuses)
        tg.start_soon(request, gate, "10.0.0.2", statuses)
        await anyio.sleep(0.3)
        assert running.count("10.0.0.1") == 2 and running.count("10.0.0.2") == 1  # three wait; others are not held
        go.set()
    assert statuses == [200] * 6 and most[0] == 2
    assert not gate._limiters  # nothing kept of clients with nothing in progress

    go = anyio.Event()
    gate = http.Gate(app, None, max_concurrency=1, wait_limit=0.2)
    statuses = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(request, gate, "10.0.0.1", statuses)
        await anyio.sleep(0.05)
        with anyio.fail_after(5):
            await request(gate, "10.0.0.1", statuses)  # waited its 0.2 s for a turn
        go.set()
    assert statuses == [429, 200]
