"""Where runwise relies on the `mcp` SDK beyond its documented surface: `sdk_tool`, `serve_request`,
`connection_of` and `add_middleware`.

tests/test_server.py (`test_sdk_internals_runwise_relies_on`) fails if any of this changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.connection import Connection
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, ConfigDict

ToolFn = Callable[[Context, dict[str, Any]], Awaitable[CallToolResult]]


class RawArguments(ArgModelBase):
    """Accepts any arguments object and hands it on whole, for runwise to validate with the tool's input model."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


def sdk_tool(
    fn: ToolFn,
    *,
    name: str,
    title: str,
    description: str,
    input_schema: dict[str, Any],
    output_model: type[BaseModel],
    output_schema: dict[str, Any],
    annotations: ToolAnnotations,
) -> Tool:
    """The SDK's `Tool` for `fn(ctx, arguments) -> CallToolResult`, passed to `MCPServer(tools=[...])`.

    What is documented: `MCPServer(tools=...)` takes `Tool` objects; a tool returning a
    `CallToolResult` sends it as it is (its text content is runwise's, not the SDK's indented JSON),
    and with an output model its structured content is validated against that model.

    What is internal (mcp 2.3), and why runwise needs it:
    - `Tool(fn, name, title, description, parameters, fn_metadata, is_async, context_kwarg,
      annotations)`: built directly, so `parameters` (the published input schema) can be the
      tool's own compacted input model schema rather than one derived from a signature.
    - `FuncMetadata(arg_model, output_model, output_schema)`, and that `Tool.run` validates the
      arguments with `arg_model.model_validate(...)` then calls `fn(**model_dump_one_level(),
      ctx=...)`: `RawArguments` passes every argument through, so a bad one reaches runwise,
      which answers in one line ("invalid argument max_points: ..."), instead of being refused
      first with pydantic's multi-line text and a documentation link. Unknown arguments are
      refused the same way (the input models forbid extra fields).
    - `output_schema` given to `FuncMetadata` is published as it is (compacted: no titles).
    - A `ToolError` raised by `fn` reaches the client as "Error executing tool <name>: <text>".
    """
    return Tool(
        fn=fn,
        name=name,
        title=title,
        description=description,
        parameters=input_schema,
        fn_metadata=FuncMetadata(arg_model=RawArguments, output_model=output_model, output_schema=output_schema),
        is_async=True,
        context_kwarg="ctx",
        annotations=annotations,
    )


def serve_request(server: MCPServer[Any], method: str, params_type: type[BaseModel], handler: Any) -> None:
    """Serve `method` with the lowlevel `handler(ctx, params)`, replacing MCPServer's own if it has one.

    What is documented: the lowlevel `Server.add_request_handler(method, params_type, handler)`, and
    that the capabilities a client is given derive from the methods served (`resources/subscribe`
    served -> `resources.subscribe: true`).
    What is internal (mcp 2.3): `MCPServer._lowlevel_server`, the lowlevel `Server` it serves through.
    runwise needs it for a `resources/list` that names each run (MCPServer lists only resources
    registered one by one) and for `resources/subscribe` / `resources/unsubscribe`, which MCPServer
    does not serve.
    """
    server._lowlevel_server.add_request_handler(method, params_type, handler)


def add_middleware(server: MCPServer[Any], middleware: Any) -> None:
    """Add `middleware(ctx, call_next)` innermost on every inbound message (`MCPServer.middleware`,
    documented as provisional in mcp 2.3). runwise uses it to see a `subscriptions/listen` stream's
    resource URIs (`ctx.params`, raw) for as long as the stream is open."""
    server.middleware.append(middleware)


def connection_of(ctx: Any) -> Connection:
    """The client connection of a lowlevel handler's request context.

    What is documented: `Connection` (per client; `send_resource_updated(uri)` on its standalone
    channel, best effort; `exit_stack`, unwound when the connection closes, for per-connection
    teardown). What is internal (mcp 2.3): that `ServerRequestContext.session` (a per-request
    `ServerSession`) holds it as `_connection`; the SDK's own `Context.connection` is not handed to
    lowlevel handlers. runwise keys resource subscriptions by it and ends them when it closes.
    """
    connection = ctx.session._connection
    assert isinstance(connection, Connection)
    return connection
