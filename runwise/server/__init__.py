"""runwise's MCP server (stdio): `runwise-mcp`, `python -m runwise.server`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDK is imported when a server is built, not when this package is
    from mcp.server.mcpserver import MCPServer

    from runwise.config import RunwiseConfig


def main(argv: list[str] | None = None) -> int:
    from runwise._root import prefetch
    from runwise.server import options

    args = options.parse(argv)
    prefetch(args.root)  # a root on object storage: its store worker starts before the SDK and the tools are imported
    from runwise.server.app import serve

    return serve(args)


def build_server(load_config: Callable[[], RunwiseConfig] | None = None) -> MCPServer:
    from runwise.server.app import build_server as _build

    return _build(load_config)


__all__ = ["build_server", "main"]
