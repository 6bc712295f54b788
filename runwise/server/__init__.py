"""runwise's MCP server (stdio): `runwise-mcp`, `python -m runwise.server`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDK is imported when a server is built, not when this package is
    from mcp.server.mcpserver import MCPServer

    from runwise.config import RunwiseConfig


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    root = next((w.split("=", 1)[1] for w in words if w.startswith("--root=")), None)
    if "--root" in words[:-1]:
        root = words[words.index("--root") + 1]
    from runwise._root import prefetch

    prefetch(root)  # a root on object storage: its store worker starts before the SDK and the tools are imported
    from runwise.server.app import main as _main

    return _main(argv)


def build_server(load_config: Callable[[], RunwiseConfig] | None = None) -> MCPServer:
    from runwise.server.app import build_server as _build

    return _build(load_config)


__all__ = ["build_server", "main"]
