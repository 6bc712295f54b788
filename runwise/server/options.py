"""`runwise-mcp`'s command line, in a module of its own (argparse and os only): `runwise.server.main` parses
it before it imports the SDK and the tools, so a root on object storage starts its store worker at once."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def parser() -> argparse.ArgumentParser:
    """The parser of `runwise-mcp`'s options."""
    parser = argparse.ArgumentParser(prog="runwise-mcp", description="runwise MCP server (stdio, or HTTP with --http)")
    parser.add_argument("--root", help="project root, a directory or s3://BUCKET/PREFIX, gs://... "
                        "(default: RUNWISE_PROJECT_ROOT, CLAUDE_PROJECT_DIR or cwd)")
    http = parser.add_argument_group("streamable HTTP (the options after --http also as RUNWISE_<NAME>)")
    http.add_argument("--http", metavar="HOST:PORT",
                      help="serve MCP over streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    http.add_argument("--token-file", metavar="PATH", default=os.environ.get("RUNWISE_TOKEN_FILE") or None,
                      help="file holding the bearer token (default: the RUNWISE_TOKEN variable); "
                      "without a token only a loopback address is served")
    http.add_argument("--max-concurrency", metavar="N", type=int, default=_env_number("RUNWISE_MAX_CONCURRENCY", 8),
                      help="requests one client (address) may have in progress; more wait their turn (default 8)")
    http.add_argument("--max-request-bytes", metavar="N", type=int,
                      default=_env_number("RUNWISE_MAX_REQUEST_BYTES", 1_048_576),
                      help="largest request body; larger ones get 413 (default 1 MiB)")
    http.add_argument("--call-timeout", metavar="SECONDS", type=float,
                      default=_env_number("RUNWISE_CALL_TIMEOUT", 120.0),
                      help="longest a tool call may take before it fails in one line (default 120)")
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The options of `argv` (default: the process's); exits 2 with argparse's message on a bad one, or on a
    `--root` that is neither a URL nor a directory."""
    p = parser()
    args = p.parse_args(argv)
    if args.root is not None and "://" not in args.root and not Path(args.root).expanduser().is_dir():
        p.error(f"--root {args.root!r} is not a directory")
    return args


def _env_number(name: str, default: float) -> Any:
    """An option's default from the environment; a value that is no number is left for argparse to refuse."""
    return os.environ.get(name) or default
