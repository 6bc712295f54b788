"""The MCP front end: registers every tool of `runwise.tools.TOOLS` on an `MCPServer`.

Each tool takes its input model's fields as flat arguments, returns its output model as
structured content, runs its blocking handler in a worker thread (cancellable from the client:
the thread's result is dropped), reports read progress, and turns every anticipated failure
(`RunwiseError`) into a `ToolError` whose text the model can act on. stdout carries only the
protocol; logs go to stderr.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field, ValidationError

from runwise.tools import TOOLS, ToolSpec

log = logging.getLogger("runwise.server")

INSTRUCTIONS = """\
runwise reads ML training runs on disk (W&B run dirs incl. binary .wandb logs, TensorBoard \
event files, JSONL logs) and answers in few tokens. Runs are named by `run`: 'latest' (default), \
an id, a unique id prefix, a display name, 'source:id', or a log file path; in compare_runs \
'ref@STEP' compares at a step.
Start with summarize_run (health, anomalies, how it ended) or list_runs. Then: \
detect_anomalies (where it went wrong, with steps), compare_runs (which config change made B \
better than A), get_history (downsampled curves; spikes kept), get_stats / get_stability, \
find_best_run, get_config, get_run_context, list_keys, live_status (a job still running).
Outputs are bounded; ask for more with keys, max_points, start_step/end_step, max_metrics. \
`notes` fields say what was sampled, skipped, truncated or still being written: pass them on.
"""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

PROGRESS_INTERVAL = 0.5  # seconds between progress notifications of one call


def _compact_schema(schema: Any) -> Any:
    """Shorten a JSON schema without changing what it accepts: the model pays for every character.

    Drops pydantic's generated `title`s and `"default": null`, and writes `anyOf: [{type: T}, {type:
    null}]` as `type: [T, "null"]`.
    """
    if isinstance(schema, list):
        return [_compact_schema(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k == "title" and isinstance(v, str):
            continue
        if k == "default" and v is None:
            continue
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: _compact_schema(p) for name, p in v.items()}
        else:
            out[k] = _compact_schema(v)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = options[0] if options[1] == {"type": "null"} else options[1]
        if isinstance(other, dict) and isinstance(other.get("type"), str):
            del out["anyOf"]
            out = {**other, **out, "type": [other["type"], "null"]}
    return out


def _make_tool_fn(spec: ToolSpec, load_config: Callable[[], Any]) -> Callable[..., Any]:
    async def tool(ctx: Context, **kwargs: Any) -> Any:
        try:
            req = spec.input(**kwargs)
        except ValidationError as exc:
            raise ToolError(_validation_message(exc)) from exc
        progress = _progress_reporter(ctx)
        try:
            cfg = load_config()
            return await anyio.to_thread.run_sync(
                partial(spec.handler, req, cfg, progress), abandon_on_cancel=True
            )
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(error_message(exc)) from exc

    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    for name, field in spec.input.model_fields.items():
        default = inspect.Parameter.empty if field.is_required() else field.get_default(call_default_factory=True)
        annotation: Any = field.annotation
        if field.description or field.metadata:
            annotation = Annotated[(annotation, *field.metadata, Field(description=field.description))]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    tool.__signature__ = inspect.Signature(params, return_annotation=spec.output)  # type: ignore[attr-defined]
    tool.__annotations__ = {"ctx": Context, **{p.name: p.annotation for p in params[1:]}, "return": spec.output}
    tool.__name__ = spec.name
    tool.__doc__ = spec.description
    return tool


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


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "invalid arguments: " + "; ".join(parts)


def error_message(exc: BaseException) -> str:
    """The one-line text an agent or a person gets for any failure."""
    from runwise.errors import RunwiseError

    if isinstance(exc, RunwiseError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return _validation_message(exc)
    if isinstance(exc, OSError):
        return f"cannot read {exc.filename or 'a file'}: {exc.strerror or exc}"
    log.error("unexpected failure", exc_info=exc)
    return f"runwise failed unexpectedly ({type(exc).__name__}: {exc}); the run may be readable with other tools"


def build_server(load_config: Callable[[], Any] | None = None) -> MCPServer:
    """An MCPServer with every runwise tool registered."""
    if load_config is None:
        from runwise.config import RunwiseConfig

        load_config = RunwiseConfig.load
    from runwise import __version__

    server = MCPServer("runwise", title="runwise", instructions=INSTRUCTIONS, version=__version__)
    for spec in TOOLS:
        server.add_tool(
            _make_tool_fn(spec, load_config), name=spec.name, title=spec.title, description=spec.description,
            annotations=READ_ONLY, structured_output=True,
        )
        registered = server._tool_manager.get_tool(spec.name)
        if registered is not None:
            registered.parameters = _compact_schema(registered.parameters)
            # refuse unknown arguments: a misspelt 'key' must not silently fall back to defaults
            arg_model = registered.fn_metadata.arg_model
            arg_model.model_config["extra"] = "forbid"
            arg_model.model_rebuild(force=True)
    return server


def main(argv: list[str] | None = None) -> int:
    """Console script `runwise-mcp`: serve over stdio. `--root DIR` sets the project root."""
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="runwise-mcp", description="runwise MCP server (stdio)")
    parser.add_argument("--root", help="project root (default: RUNWISE_PROJECT_ROOT, CLAUDE_PROJECT_DIR or cwd)")
    args = parser.parse_args(argv)
    if args.root:
        os.environ["RUNWISE_PROJECT_ROOT"] = args.root
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="runwise: %(levelname)s %(message)s")
    try:
        build_server().run("stdio")
    except KeyboardInterrupt:
        return 130
    return 0
