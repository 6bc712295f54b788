"""runwise's MCP server (stdio): `runwise-mcp`, `python -m runwise.server`."""

from __future__ import annotations

from typing import Any


def main(argv: list[str] | None = None) -> int:
    from runwise.server.app import main as _main

    return _main(argv)


def build_server(*args: Any, **kwargs: Any) -> Any:
    from runwise.server.app import build_server as _build

    return _build(*args, **kwargs)


__all__ = ["build_server", "main"]
