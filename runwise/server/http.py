"""`runwise-mcp --http HOST:PORT`: the same MCP server on the SDK's streamable HTTP transport, under uvicorn.

Requests pass, outermost first:

  /healthz      GET or HEAD answers 200 `ok` without a token: the process is up and its lifespan started
                (uvicorn accepts connections only after that). It says nothing about runs.
  bearer token  every other request needs `Authorization: Bearer <token>`, compared in constant time;
                otherwise 401 with an empty body and `WWW-Authenticate: Bearer`. Without a token
                (RUNWISE_TOKEN, --token-file) only a loopback address is served.
  concurrency   a client (its address; behind a proxy on this host, the forwarded one) has at most
                `max_concurrency` POSTs in progress; more wait their turn, in order, and get 429 only
                after waiting a whole call timeout. A long-lived GET stream does not count.
  SDK app       the SDK's streamable HTTP app at /mcp (stateful sessions), which refuses bodies over
                `max_request_bytes` with 413. A call is answered with one JSON response, not an SSE
                stream: a repeated call then answers within a few ms of stdio (an SSE answer cost
                about 20 ms more: the client closes the stream, and so the connection, at each
                answer), and lets a graceful stop wait for calls while ending the GET streams. The
                price: no progress notifications during a call over HTTP.

A tool call that takes longer than the call timeout fails in one line (`runwise.server.app`). On
SIGTERM uvicorn stops accepting connections and waits, up to the call timeout, for calls in
progress to answer, then the process exits 0.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
import signal
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from runwise.config import RunwiseConfig

log = logging.getLogger("runwise.server")

LOOPBACK_NAMES = ("localhost",)


class SetupError(Exception):
    """The HTTP server cannot start as asked (address, token); the text is the one line printed."""


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[IPv6]:PORT' as (host, port). Raises SetupError."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SetupError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token_file: str | None, env: dict[str, str] | os._Environ[str]) -> bytes | None:
    """The bearer token from `token_file` (whitespace around it dropped) or RUNWISE_TOKEN; None if neither is set.

    Raises SetupError for an unreadable or empty file, or an empty RUNWISE_TOKEN set on purpose."""
    if token_file is not None:
        path = Path(token_file).expanduser()
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SetupError(f"--token-file {token_file!r}: {getattr(exc, 'strerror', None) or exc}") from exc
        token = text.strip()
        if not token:
            raise SetupError(f"--token-file {token_file!r} is empty")
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("token file %s is readable by other users (chmod 600 it)", token_file)
        return token.encode()
    if "RUNWISE_TOKEN" in env:
        token = env["RUNWISE_TOKEN"].strip()
        if not token:
            raise SetupError("RUNWISE_TOKEN is set but empty")
        return token.encode()
    return None


async def _plain(send: Send, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole small response."""
    head = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Gate:
    """Pure ASGI middleware: /healthz, the bearer token, per-client concurrency (see the module docstring)."""

    app: ASGIApp
    token: bytes | None
    max_concurrency: int
    wait_limit: float
    _limiters: dict[str, anyio.CapacityLimiter] = field(default_factory=dict)
    _users: dict[str, int] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/healthz" and scope["method"] in ("GET", "HEAD"):
            await _plain(send, 200, b"ok" if scope["method"] == "GET" else b"")
            return
        if self.token is not None and not _authorised(scope, self.token):
            await _plain(send, 401, headers=[(b"www-authenticate", b"Bearer")])
            return
        if scope["method"] != "POST":  # the GET stream lasts as long as its session; DELETE is quick
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = str(client[0]) if client else ""
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = anyio.CapacityLimiter(self.max_concurrency)
        self._users[key] = self._users.get(key, 0) + 1
        try:
            with anyio.move_on_after(self.wait_limit) as waited:
                await limiter.acquire()
            if waited.cancelled_caught:
                await _plain(send, 429, headers=[(b"retry-after", b"5")])
                return
            try:
                await self.app(scope, receive, send)
            finally:
                limiter.release()
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # no request of this client waits or runs: forget it
                del self._users[key], self._limiters[key]


def _authorised(scope: Scope, token: bytes) -> bool:
    """Whether the request's `Authorization: Bearer` credentials are `token` (compared in constant time)."""
    given = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer":
                given = credentials.strip()
            break
    return hmac.compare_digest(given, token)


def build_app(
    load_config: Callable[[], RunwiseConfig], *, host: str, token: bytes | None, max_concurrency: int = 8,
    max_request_bytes: int = 1_048_576, call_timeout: float = 120.0,
) -> Gate:
    """The ASGI app `runwise-mcp --http` serves: the runwise MCP server behind `Gate`."""
    from mcp.server.transport_security import TransportSecuritySettings

    from runwise.server.app import build_server

    server = build_server(load_config, call_timeout=call_timeout)
    # On loopback the SDK accepts only a loopback Host header, against DNS rebinding: a web page
    # reaching a local server through a name of its own. A page cannot know the token, so with one
    # any Host is accepted, as a reverse proxy in front sends the public name.
    security = None if token is None else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    inner = server.streamable_http_app(max_request_body_size=max_request_bytes, host=host, json_response=True,
                                       transport_security=security)
    return Gate(inner, token, max_concurrency, wait_limit=call_timeout)


def main(args: argparse.Namespace, load_config: Callable[[], RunwiseConfig]) -> int:
    """Serve `args.http` until SIGTERM or SIGINT; 2 with one line on stderr if it cannot start as asked."""
    try:
        host, port = parse_address(args.http)
        token = read_token(args.token_file, os.environ)
        if token is None and not is_loopback(host):
            raise SetupError(f"refusing to serve {host} without a token: set RUNWISE_TOKEN or --token-file, "
                             "or bind a loopback address (127.0.0.1, ::1, localhost)")
        for name in ("max_concurrency", "max_request_bytes", "call_timeout"):
            if getattr(args, name) <= 0:
                raise SetupError(f"--{name.replace('_', '-')} must be above 0")
    except SetupError as exc:
        print(f"runwise-mcp: error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    gate = build_app(load_config, host=host, token=token, max_concurrency=args.max_concurrency,
                     max_request_bytes=args.max_request_bytes, call_timeout=args.call_timeout)
    config = uvicorn.Config(gate, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                            timeout_graceful_shutdown=int(args.call_timeout) + 5, lifespan="on")
    server = _graceful_server(config)
    server.run()
    return 0 if server.started else 1


def _graceful_server(config: Any) -> Any:
    """uvicorn's server, exiting 0 when stopped by SIGTERM.

    On SIGTERM uvicorn closes its sockets and waits for the requests in progress: a tool call's
    answer is one JSON response, so calls finish; the sessions' GET streams (SSE) are ended by
    sse-starlette at once. Then uvicorn raises the signal again, for an exit status that says
    "killed"; a stop that was asked for and carried out in full exits 0 instead."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM and sig in self._captured_signals:
                self._captured_signals.remove(sig)

    return Server(config)
