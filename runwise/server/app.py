"""The MCP front end: registers every tool of `runwise.tools.TOOLS` on an `MCPServer`.

Each tool takes its input model's fields as flat arguments (validated here, against the input
model, so a bad one gets one line naming it and what it accepts), runs `ToolSpec.run` in a worker
thread (cancellable from the client: the thread's result is dropped), reports read progress, and
returns its output model as structured content plus the same JSON, without spaces, as text, then
`resource_link`s to fuller views (`runwise.server.resources`: the run index, run summaries, configs
and metric histories as resources, with subscriptions to a running run). Every failure is a one-line
`ToolError` (`runwise.server.messages`). What runwise needs from the
SDK beyond its documented surface is in `runwise.server.sdk`. stdout carries only the protocol;
logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp_types import CallToolResult, ContentBlock, ResourceLink, TextContent, ToolAnnotations
from pydantic import ValidationError

from runwise.config import RunwiseConfig
from runwise.server import completions, prompts, resources
from runwise.server.messages import ERROR_CHARS, argument_error, error_message
from runwise.server.schema import input_schema, model_schema
from runwise.server.sdk import ToolFn, sdk_tool
from runwise.tools import TOOLS, ToolSpec
from runwise.tools._common import Out

log = logging.getLogger("runwise.server")

INSTRUCTIONS = """\
runwise reads ML training runs on disk (W&B run dirs incl. binary .wandb logs, TensorBoard \
event files, JSONL logs) and answers in few tokens. Runs are named by `run`: 'latest' (default), \
an id, a unique id prefix, a display name, 'source:id', a log file path, or a W&B cloud run \
'wandb-cloud:ENTITY/PROJECT/RUN_ID' ('cloud:RUN_ID' with wandb_project set); in compare_runs \
'ref@STEP' compares at a step. `keys`: metric names or prefixes ('val/'). `budget` (every tool): \
the most tokens the answer may cost; each tool has a default of 400 to 3,000 tokens.
Start with summarize_run (health, anomalies, how it ended) or list_runs. Then: \
detect_anomalies (where it went wrong, with steps), compare_runs (which config change made B \
better than A), get_history (downsampled curves; spikes kept), get_stats / get_stability, \
find_best_run, get_config, get_run_context, list_keys, live_status (a job still running), \
report (one markdown document of runs, for an issue or a notebook).
Outputs are bounded; ask for more with budget, keys, max_points, start_step/end_step, max_metrics. \
`notes` fields say what was sampled, left out, skipped, truncated or still being written: pass them on.
"""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

PROGRESS_INTERVAL = 0.5  # seconds between progress notifications of one call


def _tool_fn(
    spec: ToolSpec[Any, Any], input_schema: dict[str, Any], load_config: Callable[[], RunwiseConfig],
    call_timeout: float | None = None,
) -> ToolFn:
    """The MCP side of one tool: validate the arguments, run the handler in a thread, answer or fail in one line.

    Past `call_timeout` seconds the call fails in one line; its thread runs on, its result dropped."""
    limit = ERROR_CHARS - len(f"Error executing tool {spec.name}: ")  # the SDK puts this before the text

    async def tool(ctx: Context, arguments: dict[str, Any]) -> CallToolResult:
        try:
            req = spec.input.model_validate(_pre_parse(arguments, input_schema))
        except ValidationError as exc:
            raise ToolError(argument_error(exc, input_schema, limit)) from exc
        progress = _progress_reporter(ctx)
        try:
            cfg = load_config()
            with anyio.move_on_after(call_timeout) as deadline:
                out = await anyio.to_thread.run_sync(partial(spec.run, req, cfg, progress), abandon_on_cancel=True)
        except Exception as exc:
            raise ToolError(error_message(exc, limit)) from exc
        if deadline.cancelled_caught:
            raise ToolError(f"no answer within the server's call timeout of {call_timeout:g} s; "
                            "ask for less (keys, a step range, a smaller budget) or try again later")
        return _result(out, resources.links(spec.name, req, out))

    return tool


def _pre_parse(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A list or object argument sent as JSON text ('["a", "b"]'), as some clients do, parsed; the rest as sent."""
    props = schema.get("properties", {})
    out = dict(arguments)
    for name, value in arguments.items():
        kinds = props.get(name, {}).get("type")
        if isinstance(value, str) and value[:1] in ("[", "{") and isinstance(kinds, (str, list)):
            if not {"array", "object"} & set([kinds] if isinstance(kinds, str) else kinds):
                continue
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):
                continue
            if isinstance(parsed, (list, dict)):
                out[name] = parsed
    return out


def _result(out: Out, links: Sequence[ResourceLink] = ()) -> CallToolResult:
    """The answer as structured content and, for clients that read only text, the same JSON without spaces
    (first), then the resource links."""
    text = out.model_dump_json()
    content: list[ContentBlock] = [TextContent(type="text", text=text), *links]
    return CallToolResult(content=content, structured_content=json.loads(text))


def _progress_reporter(ctx: Context) -> Callable[[float, float], None]:
    """A thread-side callback that forwards read progress, at most every PROGRESS_INTERVAL seconds."""
    last = [0.0]
    lock = threading.Lock()

    def report(done: float, total: float) -> None:
        now = time.monotonic()
        with lock:
            if now - last[0] < PROGRESS_INTERVAL and done < total:
                return
            last[0] = now
        try:
            anyio.from_thread.run(ctx.report_progress, done, total, "reading run")
        except Exception:  # progress is best effort: a closed session must not fail the read
            log.debug("progress notification failed", exc_info=True)

    return report


def build_server(
    load_config: Callable[[], RunwiseConfig] | None = None, *, call_timeout: float | None = None
) -> MCPServer:
    """An MCPServer with every runwise tool and resource registered; `load_config` gives each call's config,
    `call_timeout` the seconds a tool call may take (None: no limit)."""
    if load_config is None:
        load_config = RunwiseConfig.load
    from runwise import __version__

    tools = []
    for spec in TOOLS:
        schema = input_schema(spec.input)
        tools.append(sdk_tool(
            _tool_fn(spec, schema, load_config, call_timeout), name=spec.name, title=spec.title,
            description=spec.description, input_schema=schema, output_model=spec.output,
            output_schema=model_schema(spec.output), annotations=READ_ONLY,
        ))
    bus = InMemorySubscriptionBus()  # the SDK's default, held here so resource polls can publish to it
    server: MCPServer[Any] = MCPServer(
        "runwise", title="runwise", instructions=INSTRUCTIONS, version=__version__, tools=tools,
        lifespan=resources.lifespan(load_config), subscriptions=bus,
    )
    resources.install(server, load_config, bus)
    prompts.register(server, load_config)
    completions.register(server, load_config)
    return server


def main(argv: list[str] | None = None) -> int:
    """Console script `runwise-mcp`: serve over stdio, or with `--http HOST:PORT` over streamable HTTP
    (`runwise.server.http`). `--root DIR` sets the project root."""
    from runwise.server import options

    return serve(options.parse(argv))


def serve(args: argparse.Namespace) -> int:
    """Serve with the parsed command line `args` (runwise.server.options) until the client or a signal ends it."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="runwise: %(levelname)s %(message)s")
    load_config = partial(RunwiseConfig.load, args.root)
    if args.http is not None:
        from runwise.server import http as http_server

        return http_server.main(args, load_config)
    try:
        build_server(load_config).run("stdio")
    except KeyboardInterrupt:
        return 130
    return 0
