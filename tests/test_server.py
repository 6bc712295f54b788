"""The MCP server through the official `mcp` client: in memory, and over stdio as a subprocess."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer

from runwise.config import RunwiseConfig
from runwise.server import app
from runwise.server.app import INSTRUCTIONS, build_server
from runwise.server.messages import ERROR_CHARS
from runwise.tools import TOOLS

SPIKE_STEP = 1234
STEPS = {"base": 1800, "fast": 2000}  # different lengths, so each run has facts the other lacks


def make_project(root: Path) -> Path:
    """Two JSONL runs as a training script writes them (json.dumps per step); only 'fast' has a spike."""
    logs = root / "logs"
    logs.mkdir(parents=True)
    for name, lr, spike in (("base", 0.001, False), ("fast", 0.003, True)):
        lines = [json.dumps({"config": {"optimizer": {"lr": lr}, "batch_size": 32}})]
        for step in range(STEPS[name]):
            loss = 2.0 * math.exp(-step / 500) + 0.1 + 0.01 * math.sin(step * 1.7)
            if spike and step == SPIKE_STEP:
                loss = 9.0
            row: dict[str, Any] = {"step": step, "train/loss": loss, "lr": lr}
            if step % 100 == 0:
                row["val/loss"] = loss + 0.05
            lines.append(json.dumps(row))
        path = logs / f"{name}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        written = time.time() - 3600 + len(name)  # finished an hour ago (not live); 'fast' is the newer
        os.utime(path, (written, written))
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_project(tmp_path)


@pytest.fixture
def server(root: Path) -> MCPServer:
    return build_server(lambda: RunwiseConfig.load(root, env={}))


def error_text(result: Any) -> str:
    assert result.is_error, result.structured_content
    text: str = result.content[0].text
    return text


@pytest.mark.anyio
async def test_every_tool_is_listed_with_schema_title_and_read_only(server: MCPServer) -> None:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    assert [t.name for t in tools] == [t.name for t in TOOLS]
    for t in tools:
        assert t.title and t.description and t.output_schema
        assert t.annotations is not None and t.annotations.read_only_hint is True
        assert '"title"' not in json.dumps(t.input_schema)  # compacted
        assert '"title"' not in json.dumps(t.output_schema)
    paid = json.dumps([{"name": t.name, "description": t.description, "inputSchema": t.input_schema} for t in tools])
    assert len(paid) <= 8000
    assert len(INSTRUCTIONS.encode()) < 2048


@pytest.mark.anyio
async def test_input_schemas_state_their_caps(server: MCPServer) -> None:
    async with Client(server) as client:
        schemas = {t.name: t.input_schema["properties"] for t in (await client.list_tools()).tools}
    for name, props in schemas.items():
        for field, prop in props.items():
            kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
            if "string" in kinds and "enum" not in prop:
                assert prop.get("maxLength"), (name, field)
            if "array" in kinds:
                assert prop.get("maxItems") and prop["items"].get("maxLength"), (name, field)
            if "integer" in kinds or "number" in kinds:
                assert "maximum" in prop and "minimum" in prop, (name, field)


def rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(table["columns"], r, strict=True)) for r in table["rows"]]


def row_of(table: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    found = [r for r in rows(table) if r[key] == value]
    return found[0] if found else {}


def history_has_spike(sc: dict[str, Any]) -> bool:
    h = sc["metrics"]["train/loss"]
    return 9.0 in h["values"] and h["steps"][h["values"].index(9.0)] == SPIKE_STEP


def stability_peaks_after_spike(sc: dict[str, Any]) -> bool:
    r = row_of(sc["stability"], "metric", "train/loss")
    return SPIKE_STEP <= r["rolling_std_max_step"] <= SPIKE_STEP + r["window_steps"]


Check = Callable[[dict[str, Any]], bool]

# one call per tool: what only the right answer has, and arguments whose answer must not have it
CALLS: list[tuple[str, dict[str, Any], dict[str, Any], Check]] = [
    ("list_runs", {}, {"limit": 1},
     lambda sc: sc["total"] == 2 and sorted(r[0] for r in sc["runs"]["rows"]) == ["base", "fast"]),
    ("summarize_run", {"run": "fast"}, {"run": "base"},
     lambda sc: row_of(sc["metrics"], "metric", "train/loss").get("max_step") == SPIKE_STEP
     and row_of(sc["metrics"], "metric", "train/loss")["max"] == 9.0),
    ("compare_runs", {"runs": ["base", "fast"]}, {"runs": ["fast", "base"]},
     lambda sc: sc["config_diff"]["rows"] == [["optimizer.lr", 0.001, 0.003]]
     and row_of(sc["metrics"], "metric", "lr")["delta_pct"] == 200.0),
    ("get_history", {"run": "fast", "keys": ["train/loss"]}, {"run": "base", "keys": ["train/loss"]},
     history_has_spike),
    ("get_stats", {"run": "fast"}, {"run": "base"},
     lambda sc: row_of(sc["stats"], "metric", "train/loss").get("max_step") == SPIKE_STEP),
    ("get_stability", {"run": "fast"}, {"run": "base"}, stability_peaks_after_spike),
    ("find_best_run", {"metric": "train/loss", "mode": "max"}, {"metric": "train/loss", "mode": "min"},
     lambda sc: sc["ranking"]["rows"][0][1:6] == ["fast", "fast", "jsonl", 9.0, SPIKE_STEP]),
    ("get_config", {"run": "base"}, {"run": "fast"}, lambda sc: sc["config"]["optimizer.lr"] == 0.001),
    ("get_run_context", {"run": "base"}, {"run": "fast"}, lambda sc: sc["path"] == "logs/base.jsonl"),
    ("list_keys", {"run": "base"}, {"run": "fast"},
     lambda sc: row_of(sc["metrics"], "key", "train/loss") == {
         "key": "train/loss", "points": 1800, "first_step": 0, "last_step": 1799}),
    ("live_status", {"run": "base"}, {"run": "fast"},
     lambda sc: sc["run"]["last_step"] == 1799 and row_of(sc["latest"], "metric", "train/loss")["step"] == 1799),
    ("detect_anomalies", {"run": "fast"}, {"run": "base"},
     lambda sc: [(r["kind"], r["metric"], r["step"]) for r in rows(sc["anomalies"])]
     == [("spike", "train/loss", SPIKE_STEP)]),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("tool", "args", "wrong", "check"), CALLS, ids=[c[0] for c in CALLS])
async def test_each_tool_answers_in_memory(
    server: MCPServer, tool: str, args: dict[str, Any], wrong: dict[str, Any], check: Check
) -> None:
    async with Client(server) as client:
        result = await client.call_tool(tool, args)
        other = await client.call_tool(tool, wrong)
    assert not result.is_error and not other.is_error, (result.content, other.content)
    assert result.structured_content is not None and other.structured_content is not None
    assert check(result.structured_content)
    assert not check(other.structured_content)  # the check tells this answer from another run's
    # the text is the same JSON, without spaces
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    assert len(result.content[0].text) <= len(json.dumps(  # type: ignore[union-attr]
        result.structured_content, ensure_ascii=False, separators=(",", ":")))  # numbers as pydantic writes them
    assert len(json.dumps(result.structured_content, ensure_ascii=False)) < 12_000  # bounded by default


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("summarize_run", {"run": "bsae"}, "no run matches 'bsae'; closest: base"),
        ("get_history", {"run": "base", "keys": ["val/los"]}, "unknown metric 'val/los'; closest: val/loss"),
        ("get_stats", {"run": "/etc/passwd"}, "outside the project roots"),
        ("find_best_run", {"metric": "accuracy"}, "unknown metric 'accuracy'"),
        ("get_history", {"run": "base", "max_points": 2},
         "invalid argument max_points: must be an integer from 4 to 5,000 (got 2)"),
        ("get_config", {"run": "base", "nope": 1}, "unknown argument 'nope'; arguments: run, prefix, max_keys, budget"),
        ("get_stability", {"run": "base", "window_steps": 1e30},
         "invalid argument window_steps: must be an integer from 2 to 9,007,199,254,740,992 (got 1e+30)"),
        ("get_stats", {"run": "logs/base\x00.jsonl"}, "invalid argument run: must not contain a NUL byte"),
        ("get_stats", {"run": "x" * 100_000}, "invalid argument run: must be a string of at most 500 characters"),
        ("compare_runs", {}, "missing argument runs: a list of 2 to 16 items"),
        ("compare_runs", {"runs": ["base@-5", "fast"]}, "invalid argument runs[0]: the step after '@' must be from 0"),
        ("get_history", {"run": "base", "start_step": 500, "end_step": 100},
         "invalid arguments: start_step 500 is after end_step 100"),
        ("list_runs", {"limit": "many"}, "invalid argument limit: must be an integer from 1 to 500 (got 'many')"),
        ("get_history", {"run": "base", "keys": ["v" * 200]},
         "unknown metric '" + "v" * 58 + "…'; available: lr, train/loss, val/loss"),
    ],
)
async def test_anticipated_failures_are_one_line_tool_errors(
    server: MCPServer, tool: str, args: dict[str, Any], message: str
) -> None:
    async with Client(server) as client:
        result = await client.call_tool(tool, args)
    text = error_text(result)
    assert message in text
    assert len(text) <= ERROR_CHARS and "\n" not in text
    assert "Traceback" not in text and "pydantic" not in text


@pytest.mark.anyio
async def test_only_echoed_inputs_are_cut_in_an_error(tmp_path: Path) -> None:
    # the echoed metric is cut once; the text after it (here a long logged name, then one with a quote) is kept
    logs = tmp_path / "logs"
    logs.mkdir()
    long_name = "a" * 70
    (logs / "q.jsonl").write_text(json.dumps({"step": 0, long_name: 1.0, "z'quote": 2.0}) + "\n")
    async with Client(build_server(lambda: RunwiseConfig.load(tmp_path, env={}))) as client:
        result = await client.call_tool("get_history", {"run": "q", "keys": ["v" * 200]})
    text = error_text(result)
    assert text.endswith(f"unknown metric '{'v' * 58}…'; available: {long_name}, z'quote"), text
    assert len(text) <= ERROR_CHARS


@pytest.mark.anyio
async def test_unexpected_failure_carries_an_id_that_the_log_has(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_config() -> RunwiseConfig:
        raise KeyError("something runwise did not foresee")

    with caplog.at_level(logging.ERROR, logger="runwise.server"):
        async with Client(build_server(broken_config)) as client:
            result = await client.call_tool("list_runs", {})
    text = error_text(result)
    assert text.startswith("Error executing tool list_runs: internal error ")
    incident = text.split("internal error ")[1].split(":")[0]
    assert len(incident) == 6 and text.endswith("please report it (the server log has details)")
    logged = [r for r in caplog.records if incident in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the log, under the same id


@pytest.mark.anyio
async def test_ranges_that_hold_nothing_say_so(server: MCPServer) -> None:
    async with Client(server) as client:
        window = await client.call_tool("get_history", {"run": "base", "start_step": 5000, "end_step": 6000})
        late = await client.call_tool("compare_runs", {"runs": ["base", "fast"], "step": 1900})
        early = await client.call_tool("compare_runs", {"runs": ["base@1900", "fast@1900"]})
        wide = await client.call_tool("get_stability", {"run": "base", "keys": ["train/loss"], "window_steps": 5000})
        unused = await client.call_tool("summarize_run", {"run": "base@500"})
    assert window.structured_content is not None and late.structured_content is not None
    assert "no metric has points in steps 5,000..6,000 (train/loss, val/loss, lr: steps 0..1,799)" in (
        window.structured_content["notes"])
    assert all(m["steps"] == [] for m in window.structured_content["metrics"].values())
    expected = "base: step 1,900 is past its last step 1,799: its values are from its last steps"
    assert late.structured_content["notes"] == [expected]  # fast has step 1,900: no note about it
    assert early.structured_content is not None and early.structured_content["notes"] == [expected]
    assert wide.structured_content is not None and wide.structured_content["notes"] == [
        "window_steps 5,000 is wider than the steps of train/loss: one window holds every point"]
    assert unused.structured_content is not None and unused.structured_content["notes"] == [
        "the step in 'base@500' is used by compare_runs only: this answer covers the whole run"]


@pytest.mark.anyio
async def test_big_history_request_is_cut_to_budget_and_says_so(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [json.dumps({"step": s, **{f"grad/layer_{m:02d}": s * 0.001 + m for m in range(40)}})
             for s in range(6000)]
    (logs / "wide.jsonl").write_text("\n".join(lines) + "\n")
    server = build_server(lambda: RunwiseConfig.load(tmp_path, env={}))
    async with Client(server) as client:
        result = await client.call_tool("get_history", {"run": "wide", "keys": ["grad"], "max_points": 5000})
    sc = result.structured_content
    assert sc is not None and len(sc["metrics"]) == 40
    assert len(json.dumps(sc, ensure_ascii=False)) <= 40_000
    assert all(len(m["steps"]) <= 50 for m in sc["metrics"].values())
    assert "max_points lowered to 50 per metric: at most 2,000 points per answer" in sc["notes"]


@pytest.mark.anyio
async def test_progress_is_reported_on_reads(server: MCPServer) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with Client(server) as client:
        result = await client.call_tool("get_stats", {"run": "base"}, progress_callback=on_progress)
    assert not result.is_error
    assert seen and seen[-1][0] == seen[-1][1]  # the last notice says the read is complete


def test_sdk_internals_runwise_relies_on() -> None:
    """Fails when the SDK changes what `runwise.server.sdk` relies on (see its docstring)."""
    import inspect

    from mcp.server.mcpserver.tools import Tool
    from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata

    assert {"fn", "name", "title", "description", "parameters", "fn_metadata", "is_async", "context_kwarg",
            "annotations"} <= set(Tool.model_fields)
    assert {"arg_model", "output_model", "output_schema"} <= set(FuncMetadata.model_fields)
    assert "model_dump_one_level" in vars(ArgModelBase)
    assert "tools" in inspect.signature(MCPServer).parameters
    run = inspect.getsource(Tool.run)
    assert "validate_arguments" in run and "call_fn" in run
    validate = inspect.getsource(FuncMetadata.validate_arguments)
    assert "arg_model.model_validate" in validate and "model_dump_one_level" in validate
    assert 'f"Error executing tool {self.name}: {exc}"' in run  # the prefix ERROR_CHARS leaves room for


def test_sdk_internals_runwise_resources_rely_on(server: MCPServer) -> None:
    """Fails when the SDK changes what `serve_request`, `connection_of` and `add_middleware` rely on."""
    import inspect

    from mcp.server import runner
    from mcp.server.connection import Connection
    from mcp.server.lowlevel.server import Server
    from mcp.server.session import ServerSession
    from mcp_types import SubscriptionFilter

    lowlevel = server._lowlevel_server
    assert isinstance(lowlevel, Server) and "add_request_handler" in vars(Server)
    for method in ("resources/list", "resources/subscribe", "resources/unsubscribe"):  # runwise's, served
        entry = lowlevel.get_request_handler(method)
        assert entry is not None and entry.handler.__module__ == "runwise.server.resources", method
    # the 2025 capability derives from the method being served; 2026 from subscriptions/listen
    assert 'subscribe = "resources/subscribe" in self._request_handlers' in inspect.getsource(Server.get_capabilities)
    # a lowlevel handler's ctx.session is per request, and holds the connection as _connection
    assert "ServerSession(dctx, self.connection" in inspect.getsource(runner)
    assert "self._connection = connection" in inspect.getsource(ServerSession.__init__)
    assert inspect.iscoroutinefunction(Connection.send_resource_updated)
    assert "self.exit_stack = AsyncExitStack()" in inspect.getsource(Connection.__init__)
    # middleware sees a listen request's raw params, with the filter's wire name
    assert server.middleware is lowlevel.middleware
    assert SubscriptionFilter.model_fields["resource_subscriptions"].alias == "resourceSubscriptions"


@pytest.mark.anyio
async def test_sdk_hands_bad_and_unknown_arguments_to_runwise(server: MCPServer) -> None:
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        unknown = await client.call_tool("get_stats", {"run": "base", "key": ["train/loss"]})
        bad = await client.call_tool("get_stats", {"run": "base", "max_metrics": 0})
        as_text = await client.call_tool("get_stats", {"run": "base", "keys": '["train/loss"]'})
    assert error_text(unknown) == (
        "Error executing tool get_stats: unknown argument 'key'; arguments: run, keys, max_metrics, budget")
    assert error_text(bad) == (
        "Error executing tool get_stats: invalid argument max_metrics: must be an integer from 1 to 500 (got 0)")
    assert as_text.structured_content is not None  # a list sent as JSON text, as some clients do
    assert [r[0] for r in as_text.structured_content["stats"]["rows"]] == ["train/loss"]
    assert tools["get_stats"].input_schema == {
        "properties": {
            "run": {"maxLength": 500, "type": "string"},  # 'latest' by default, as the instructions say
            "keys": {"items": {"maxLength": 200, "type": "string"}, "maxItems": 50, "type": "array"},
            "max_metrics": {"default": 30, "maximum": 500, "minimum": 1, "type": "integer"},
            "budget": {"maximum": 50000, "minimum": 100, "type": "integer"},  # inherited: last
        },
        "type": "object",
    }


@pytest.mark.anyio
async def test_root_option_reaches_the_config_without_the_environment(
    root: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[MCPServer] = []
    monkeypatch.setattr(MCPServer, "run", lambda self, transport: built.append(self))
    monkeypatch.delenv("RUNWISE_PROJECT_ROOT", raising=False)
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert app.main(["--root", str(root)]) == 0
    assert "RUNWISE_PROJECT_ROOT" not in os.environ
    async with Client(built[0]) as client:
        result = await client.call_tool("list_runs", {})
    assert result.structured_content is not None and result.structured_content["total"] == 2


@pytest.mark.parametrize("argv", [["--root", "s3://bucket/served"], ["--ro", "s3://bucket/served"],
                                  ["--root=s3://bucket/other", "--root", "s3://bucket/served"]])
def test_the_root_mirrored_at_start_up_is_the_root_served(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`runwise-mcp` parses its options once: the store worker begins on the very root the server then serves
    (argparse's abbreviations and last-one-wins included)."""
    import runwise._root
    from runwise import server

    begun: list[str | None] = []
    served: list[str | None] = []
    monkeypatch.setattr(runwise._root, "prefetch", lambda root, **_: begun.append(root))
    monkeypatch.setattr(app, "serve", lambda args: served.append(args.root) or 0)
    assert server.main(argv) == 0
    assert begun == served == ["s3://bucket/served"]


def test_root_option_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        app.main(["--root", str(tmp_path / "missing")])
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.anyio
async def test_stdio_subprocess_as_claude_code_starts_it(root: Path, tmp_path: Path) -> None:
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
    assert "no run matches 'missing-run'" in error_text(bad)

