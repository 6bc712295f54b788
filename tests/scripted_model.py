"""A scripted stand-in for the Messages API on 127.0.0.1, so the real `claude` CLI can run a turn offline.

It plays the model's part by rule: while runwise's tools are missing from the request it calls
WaitForMcpServers (Claude Code's tool for servers still connecting; up to 3 times), then it calls
`mcp__runwise__<tool>` once, then it answers "done". Every request body is kept in `requests`, so
a test can read what Claude Code sent the model, including the tool result runwise produced.
Claude Code is pointed at it with ANTHROPIC_BASE_URL; the key it is given is a dummy.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WAIT_TOOL = "WaitForMcpServers"
MAX_WAITS = 3  # a slow start on a busy machine may need more than one wait


class ScriptedModel:
    """The rules above, for one tool call with fixed arguments."""

    def __init__(self, tool: str, arguments: dict[str, Any]) -> None:
        self.tool, self.arguments = tool, arguments
        self.requests: list[dict[str, Any]] = []

    def tool_results(self, tool_use_id: str) -> list[dict[str, Any]]:
        """Every tool_result block with that id that Claude Code sent back to the model."""
        return [
            block
            for body in self.requests
            for message in body.get("messages", [])
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if block.get("type") == "tool_result" and block.get("tool_use_id") == tool_use_id
        ]

    def next_blocks(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        offered = {tool.get("name") for tool in body.get("tools", [])}
        called = [
            block.get("name")
            for message in body.get("messages", [])
            if message.get("role") == "assistant" and isinstance(message.get("content"), list)
            for block in message["content"]
            if block.get("type") == "tool_use"
        ]
        waits = called.count(WAIT_TOOL)
        if self.tool not in offered and WAIT_TOOL in offered and waits < MAX_WAITS:
            return [tool_use(f"toolu_wait{waits}", WAIT_TOOL, {"servers": ["runwise"]})], "tool_use"
        if self.tool in offered and self.tool not in called:
            return [tool_use("toolu_runwise", self.tool, self.arguments)], "tool_use"
        return [{"type": "text", "text": "done"}], "end_turn"


def tool_use(id_: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": id_, "name": name, "input": arguments}


def stream(blocks: list[dict[str, Any]], stop: str) -> bytes:
    """The blocks as the Messages API's server-sent events."""
    usage = {"input_tokens": 1, "output_tokens": 1}
    start = {"id": "msg_scripted", "type": "message", "role": "assistant", "model": "scripted", "content": []}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**start, "stop_reason": None, "stop_sequence": None, "usage": usage}}
    ]
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            events.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            events.append({"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            {"type": "content_block_delta", "index": i, "delta": delta},
            {"type": "content_block_stop", "index": i},
        ]
    events.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage})
    events.append({"type": "message_stop"})
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


@contextmanager
def serving(model: ScriptedModel) -> Iterator[str]:
    """Serve `model` on a free port of 127.0.0.1; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass

        def do_GET(self) -> None:
            self.reply(b"{}", "application/json")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            if "count_tokens" in self.path:
                self.reply(b'{"input_tokens": 1}', "application/json")
                return
            model.requests.append(body)
            blocks, stop = model.next_blocks(body)
            if body.get("stream"):
                self.reply(stream(blocks, stop), "text/event-stream")
            else:
                message = {"id": "msg_scripted", "type": "message", "role": "assistant", "model": "scripted"}
                usage = {"input_tokens": 1, "output_tokens": 1}
                full = {**message, "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage}
                self.reply(json.dumps(full).encode(), "application/json")

        def reply(self, data: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
