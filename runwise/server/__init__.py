"""runwise's MCP server (stdio): `runwise-mcp`, `python -m runwise.server`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDK is imported when a server is built, not when this package is
    from mcp.server.mcpserver import MCPServer

    from runwise.config import RunwiseConfig


def main(argv: list[str] | None = None) -> int:
    from runwise.server.app import main as _main

    return _main(argv)


def build_server(load_config: Callable[[], RunwiseConfig] | None = None) -> MCPServer:
    from runwise.server.app import build_server as _build

    return _build(load_config)


__all__ = ["build_server", "main"]
