"""MCP resources: the run index, and each run's summary, config and metric histories, as JSON text.

  runwise://runs                          the run index (what list_runs answers)
  runwise://run/{ref}/summary             summarize_run of one run
  runwise://run/{ref}/config              get_config of one run
  runwise://run/{ref}/history/{metric}    get_history of one metric (or key prefix) of one run

`ref` and `metric` are percent-encoded as one URI segment each (`urllib.parse.quote(ref, safe="")`:
'logs/a.jsonl' -> 'logs%2Fa.jsonl', 'jsonl:a' -> 'jsonl%3Aa'); the SDK decodes them once. Every read
goes through the tool's `ToolSpec.run` in a worker thread, so a resource is bounded and downsampled
exactly as the tool's answer is; a failure is one line (`runwise.server.messages`).

`resources/list` names runwise://runs and the summary of each of the newest LISTED_RUNS runs.
Subscriptions: `resources/subscribe` to a run's resource (2025-era clients), or a
`subscriptions/listen` stream naming it (2026-era clients), polls the identity of the run's files
(`runwise.index.file_stats`: path, size, mtime) every POLL_SECONDS in a background task, and sends
`notifications/resources/updated` when it changes. Only subscribed runs are polled; a poll stops on
unsubscribe, when its listen stream ends, or when the session ends (the server's lifespan, or a
notification that cannot be sent). Tool answers carry `resource_link`s to these (`links`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import quote, unquote

import anyio
import anyio.abc
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.resources import ResourceSecurity
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, Resource, ResourceLink
from pydantic import ValidationError

from runwise.config import RunwiseConfig
from runwise.errors import RunNotFound
from runwise.server.messages import argument_error, error_message, one_line
from runwise.server.schema import input_schema
from runwise.tools import TOOLS_BY_NAME
from runwise.tools._common import Out

log = logging.getLogger("runwise.server")

RUNS_URI = "runwise://runs"
RUN_PREFIX = "runwise://run/"
JSON = "application/json"
LISTED_RUNS = 20  # runs whose summary resources/list names (newest first)
LINKED_METRICS = 10  # history links one get_history answer carries at most
POLL_SECONDS = 2.0  # how often a subscribed run's files are checked
MAX_SUBSCRIPTIONS = 64  # subscribed URIs per session (and per listen stream)
WATCHER = "runwise.watcher"  # the lifespan context key of the server run's `Watcher`

ENCODING = ("ref and metric are percent-encoded, one URI segment each "
            "(logs/a.jsonl -> logs%2Fa.jsonl, jsonl:a -> jsonl%3Aa)")


def segment(value: str) -> str:
    """`value` as one URI segment: every reserved character percent-encoded ('/' -> %2F, ':' -> %3A)."""
    return quote(value, safe="")


def run_uri(ref: str, part: str = "summary") -> str:
    return f"{RUN_PREFIX}{segment(ref)}/{part}"


def history_uri(ref: str, metric: str) -> str:
    return f"{RUN_PREFIX}{segment(ref)}/history/{segment(metric)}"


def run_of(uri: str) -> str | None:
    """The (decoded) run reference of a runwise://run/... URI; None for any other URI."""
    if not uri.startswith(RUN_PREFIX):
        return None
    head, sep, rest = uri[len(RUN_PREFIX):].partition("/")
    if not head or not sep or not (rest in ("summary", "config") or rest.startswith("history/")):
        return None
    return unquote(head)


# ---------------------------------------------------------------- resource links in tool answers


def _link_ref(asked: str, source: str, run_id: str) -> str:
    """The reference a link names: the one asked (without @step), or the run's key when 'latest' was asked
    (a link must keep naming this run when a newer one starts)."""
    from runwise.runs import split_step

    try:
        ref = split_step(asked)[0]
    except Exception:  # noqa: BLE001 - an unusable ref: name the run by its key
        ref = ""
    return ref if ref and ref != "latest" else f"{source}:{run_id}"


def links(tool: str, req: Any, out: Out) -> list[ResourceLink]:
    """The resource links a tool's answer carries: where a fuller or standing view of it exists."""
    found: list[ResourceLink] = []
    if tool == "list_runs":
        found.append(ResourceLink(type="resource_link", uri=RUNS_URI, name="runs", mime_type=JSON,
                                  description="the run index"))
    elif tool == "summarize_run":
        run = getattr(out, "run", None)
        if run is not None:
            ref = _link_ref(req.run, run.source, run.id)
            for part in ("summary", "config"):
                found.append(ResourceLink(type="resource_link", uri=run_uri(ref, part), name=f"{ref} {part}",
                                          mime_type=JSON, description=f"the run's {part}; subscribable"
                                          if part == "summary" else f"the run's {part}"))
    elif tool == "get_history":
        key = str(getattr(out, "run", ""))
        source, _, run_id = key.partition(":")
        ref = _link_ref(req.run, source, run_id)
        for metric in list(getattr(out, "metrics", {}))[:LINKED_METRICS]:
            found.append(ResourceLink(type="resource_link", uri=history_uri(ref, metric), name=f"{ref} {metric}",
                                      mime_type=JSON, description="this metric's history"))
    return found


# ---------------------------------------------------------------- reads


class Reader:
    """Reads resources through the tools' handlers (`ToolSpec.run`), in worker threads."""

    def __init__(self, load_config: Callable[[], RunwiseConfig]) -> None:
        self.load_config = load_config
        self._schemas: dict[str, dict[str, Any]] = {}

    async def answer(self, tool: str, args: dict[str, Any]) -> str:
        """The tool's answer to `args` as JSON text; any failure a one-line ResourceError."""
        spec = TOOLS_BY_NAME[tool]
        try:
            req = spec.input.model_validate(args)
        except ValidationError as exc:
            schema = self._schemas.get(tool) or self._schemas.setdefault(tool, input_schema(spec.input))
            raise ResourceNotFoundError(argument_error(exc, schema)) from exc
        try:
            cfg = self.load_config()
            out = await anyio.to_thread.run_sync(partial(spec.run, req, cfg), abandon_on_cancel=True)
        except RunNotFound as exc:
            raise ResourceNotFoundError(error_message(exc)) from exc
        except Exception as exc:
            raise ResourceError(error_message(exc)) from exc
        text: str = out.model_dump_json()
        return text

    async def newest(self) -> list[Resource]:
        """The summary resource of each of the newest LISTED_RUNS runs (none when the listing fails)."""
        try:
            text = await self.answer("list_runs", {"limit": LISTED_RUNS, "sparklines": False})
        except ResourceError as exc:
            log.warning("resources/list: runs not listed: %s", exc)
            return []
        table = json.loads(text)["runs"]
        found = []
        for row in table["rows"]:
            r = dict(zip(table["columns"], row, strict=False))
            key = f"{r['source']}:{r['id']}"
            state = r.get("state") or "unknown"
            step = r.get("last_step")
            found.append(Resource(
                uri=run_uri(key), name=key, title=f"{r.get('name') or r['id']} summary", mime_type=JSON,
                description=f"summary of {r['source']} run {r['id']!r}: {state}"
                + (f", last step {step:,}" if isinstance(step, int) else ""),
            ))
        return found


def register(server: MCPServer[Any], reader: Reader) -> None:
    """runwise://runs and the three run templates, through the SDK's documented `MCPServer.resource`."""
    ref_ok = ResourceSecurity(exempt_params={"ref"})  # a ref may be an absolute log path: runwise checks roots

    @server.resource(RUNS_URI, name="runs", title="Runs", mime_type=JSON,
                     description=f"The run index, newest first (list_runs; at most {LISTED_RUNS * 5} runs).")
    async def runs_index() -> str:
        return await reader.answer("list_runs", {"limit": LISTED_RUNS * 5})

    @server.resource(RUN_PREFIX + "{ref}/summary", name="run_summary", title="Run summary", mime_type=JSON,
                     security=ref_ok,
                     description=f"summarize_run of one run: verdict, findings, main metrics. {ENCODING}. "
                     "Subscribe to be notified when a running run's files change.")
    async def run_summary(ref: str) -> str:
        return await reader.answer("summarize_run", {"run": ref})

    @server.resource(RUN_PREFIX + "{ref}/config", name="run_config", title="Run config", mime_type=JSON,
                     security=ref_ok, description=f"get_config of one run: flattened hyperparameters. {ENCODING}.")
    async def run_config(ref: str) -> str:
        return await reader.answer("get_config", {"run": ref})

    @server.resource(RUN_PREFIX + "{ref}/history/{metric}", name="run_history", title="Metric history",
                     mime_type=JSON, security=ref_ok,
                     description=f"get_history of one metric (or key prefix) of one run, downsampled with "
                     f"spikes kept. {ENCODING}.")
    async def run_history(ref: str, metric: str) -> str:
        return await reader.answer("get_history", {"run": ref, "keys": [metric]})

    del runs_index, run_summary, run_config, run_history  # registered: the server holds them


# ---------------------------------------------------------------- subscriptions

Notify = Callable[[str], Awaitable[None]]


class Watcher:
    """The polls of one server run: one task per subscribed (session, URI), in the lifespan's task group."""

    def __init__(self, tg: anyio.abc.TaskGroup, load_config: Callable[[], RunwiseConfig]) -> None:
        self.tg = tg
        self.load_config = load_config
        self.polls: dict[tuple[int, str], anyio.CancelScope] = {}

    async def entry_of(self, uri: str) -> Any:
        """The run entry a subscribable URI names (its canonical entry); a one-line MCPError if none."""
        ref = run_of(uri)
        if ref is None:
            raise MCPError(INVALID_PARAMS, one_line(f"cannot subscribe to {uri!r}: only a run's resources "
                                                    f"({RUN_PREFIX}...) change"))
        from runwise import runs

        def find() -> Any:
            return runs.canonical_entry(runs.resolve(runs.split_step(ref)[0], self.load_config()))

        try:
            entry = await anyio.to_thread.run_sync(find, abandon_on_cancel=True)
        except Exception as exc:
            raise MCPError(INVALID_PARAMS, error_message(exc)) from exc
        if not entry.paths:  # a cloud run: nothing on this machine changes when it does
            raise MCPError(INVALID_PARAMS, one_line(f"cannot subscribe to {entry.key!r}: it has no local files "
                                                    "to watch; read the resource again to see it grow"))
        return entry

    async def subscribe(self, owner: object, uri: str, notify: Notify) -> None:
        """Poll the run `uri` names for `owner` (a connection, or a listen stream) until `unsubscribe`."""
        key = (id(owner), uri)
        if key in self.polls:
            return
        if sum(1 for k in self.polls if k[0] == id(owner)) >= MAX_SUBSCRIPTIONS:
            raise MCPError(INVALID_PARAMS, f"at most {MAX_SUBSCRIPTIONS} subscriptions per session")
        entry = await self.entry_of(uri)
        scope = anyio.CancelScope()
        self.polls[key] = scope
        self.tg.start_soon(self._poll, key, entry, notify, scope)

    def unsubscribe(self, owner: object, uri: str) -> None:
        scope = self.polls.pop((id(owner), uri), None)
        if scope is not None:
            scope.cancel()

    def drop(self, owner: object) -> None:
        """Stop every poll of `owner` (its connection closed)."""
        for key in [k for k in self.polls if k[0] == id(owner)]:
            self.unsubscribe(owner, key[1])

    async def _poll(self, key: tuple[int, str], entry: Any, notify: Notify, scope: anyio.CancelScope) -> None:
        from runwise.index import file_stats

        try:
            with scope:
                last = await anyio.to_thread.run_sync(file_stats, entry, abandon_on_cancel=True)
                while True:
                    await anyio.sleep(POLL_SECONDS)
                    now = await anyio.to_thread.run_sync(file_stats, entry, abandon_on_cancel=True)
                    if now != last:
                        last = now
                        await notify(key[1])
        except Exception:  # the session is gone (or the files cannot be read): stop polling
            log.debug("subscription to %s ended", key[1], exc_info=True)
        finally:
            if self.polls.get(key) is scope:
                del self.polls[key]


def lifespan(load_config: Callable[[], RunwiseConfig]) -> Callable[[MCPServer[Any]], Any]:
    """The server's lifespan: a task group for the polls of this run, cancelled when the run ends."""

    @asynccontextmanager
    async def span(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as tg:
            try:
                yield {WATCHER: Watcher(tg, load_config)}
            finally:
                tg.cancel_scope.cancel()

    return span


def watcher_of(lifespan_context: Any) -> Watcher:
    watcher = lifespan_context.get(WATCHER) if isinstance(lifespan_context, dict) else None
    if not isinstance(watcher, Watcher):
        raise MCPError(INVALID_PARAMS, "subscriptions are not available on this connection")
    return watcher


def listen_uris(params: Any) -> list[str]:
    """The runwise run URIs a `subscriptions/listen` request's raw params name."""
    notes = params.get("notifications") if isinstance(params, dict) else None
    uris = notes.get("resourceSubscriptions") if isinstance(notes, dict) else None
    if not isinstance(uris, list):
        return []
    return [u for u in uris if isinstance(u, str) and run_of(u) is not None][:MAX_SUBSCRIPTIONS]


def bus_notifier(bus: InMemorySubscriptionBus) -> Notify:
    async def notify(uri: str) -> None:
        await bus.publish(ResourceUpdated(uri=uri))

    return notify


def install(server: MCPServer[Any], load_config: Callable[[], RunwiseConfig], bus: InMemorySubscriptionBus) -> None:
    """Resources, templates, the dynamic resources/list, and subscriptions (both eras) on `server`.

    `server` must be built with `lifespan=lifespan(load_config)` and `subscriptions=bus`.
    """
    from mcp_types import (
        EmptyResult,
        ListResourcesResult,
        PaginatedRequestParams,
        SubscribeRequestParams,
        UnsubscribeRequestParams,
    )

    from runwise.server.sdk import add_middleware, connection_of, serve_request

    reader = Reader(load_config)
    register(server, reader)

    async def list_resources(ctx: Any, params: PaginatedRequestParams) -> ListResourcesResult:
        return ListResourcesResult(resources=[*await server.list_resources(), *await reader.newest()])

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        watcher, connection = watcher_of(ctx.lifespan_context), connection_of(ctx)
        if not any(k[0] == id(connection) for k in watcher.polls):  # its first: stop them all when it closes
            connection.exit_stack.callback(watcher.drop, connection)
        await watcher.subscribe(connection, str(params.uri), connection.send_resource_updated)
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        watcher_of(ctx.lifespan_context).unsubscribe(connection_of(ctx), str(params.uri))
        return EmptyResult()

    async def listen(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """Around a `subscriptions/listen` stream: poll the runs it names while it is open."""
        uris = listen_uris(ctx.params) if ctx.method == "subscriptions/listen" else []
        if not uris:
            return await call_next(ctx)
        watcher = watcher_of(ctx.lifespan_context)
        owner = object()
        for uri in uris:
            try:
                await watcher.subscribe(owner, uri, bus_notifier(bus))
            except MCPError as exc:  # the stream still serves the other URIs, as the SDK's ack says
                log.info("listen: %s not polled: %s", uri, exc)
        try:
            return await call_next(ctx)
        finally:
            for uri in uris:
                watcher.unsubscribe(owner, uri)

    serve_request(server, "resources/list", PaginatedRequestParams, list_resources)
    serve_request(server, "resources/subscribe", SubscribeRequestParams, subscribe)
    serve_request(server, "resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    add_middleware(server, listen)
