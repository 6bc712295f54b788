"""A loopback stand-in for W&B's GraphQL server: answers the requests the real `wandb.Api` sends.

The real client (wandb 0.31: Python `wandb.Api` -> its wandb-core service -> HTTP) is pointed at it with
`WANDB_BASE_URL=http://127.0.0.1:PORT`. The requests it answers are the ones `record_requests.py`
recorded from that client (kept in `requests.json`): the operation is told by the name after `query`.

  Viewer, GetDefaultEntity   the logged-in user and entity
  Run, RunHistoryKeys        one run's metadata (RunFragment), its historyKeys
  Runs                       a project's runs, paged by cursor (filters: {"state": ...})
  RunParquetHistory          no parquet files: wandb-core then pages with SampledHistoryPage
  SampledHistoryPage         rows of [minStep, maxStep] (both inclusive, as wandb-core asks) holding the keys

Runs are served from `CloudRun`s built from a runwise `Run` read locally (`CloudRun.of`): the same
config, summary, tags, notes, state and history, in the shapes W&B's server gives them. Failures are
injected per operation: `status` (an HTTP error code), `delay` (seconds before answering), `private`
(run ids answered as not found, as W&B does for a run the key may not see). `calls` counts requests
per operation; `log` keeps (operation, variables) of each and `queries` each operation's query text,
for `record_requests.py`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runwise.model import Run

_OP = re.compile(r"\b(?:query|mutation)\s+(\w+)")
_MESSAGES = {401: "unauthorized", 403: "permission denied", 404: "not found", 500: "Internal Server Error"}


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": 1} -> {"a": {"b": 1}} (W&B's server keeps config and summary nested)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def _iso(epoch: float | None) -> str:
    t = dt.datetime.fromtimestamp(epoch or 0.0, tz=dt.timezone.utc)
    return t.replace(tzinfo=None).isoformat()


@dataclass
class CloudRun:
    """One run as W&B's server holds it."""

    entity: str
    project: str
    attrs: dict[str, Any]  # the RunFragment fields
    rows: dict[int, dict[str, Any]]  # step -> the row logged at that step ("_step" included)

    @property
    def id(self) -> str:
        return str(self.attrs["name"])

    @classmethod
    def of(cls, run: Run, entity: str, project: str, *, upto: int | None = None, state: str | None = None) -> CloudRun:
        """The run W&B would hold after syncing `run` (read by runwise's local reader), cut after step `upto`."""
        rows: dict[int, dict[str, Any]] = {}
        for key, s in run.history.items():
            for step, value in zip(s.steps.tolist(), s.values.tolist(), strict=True):
                if upto is None or step <= upto:
                    rows.setdefault(step, {"_step": step})[key] = value
        last = max(rows, default=-1)
        keys: dict[str, Any] = {k: {"typeCounts": [{"type": "number", "count": len(s)}]}
                                for k, s in run.history.items()}
        keys["_step"] = {"typeCounts": [{"type": "number", "count": len(rows)}]}
        for k, kind in run.non_numeric.items():
            keys[k] = {"typeCounts": [{"type": kind, "count": 1}]}
        summary = dict(run.summary)
        if upto is not None:
            summary = {k: v for k, v in summary.items() if k not in run.history} | {"_step": last}
            for k, s in run.history.items():
                kept = [v for st, v in zip(s.steps.tolist(), s.values.tolist(), strict=True) if st <= upto]
                if kept:
                    summary[k] = kept[-1]
        runtime = summary.get("_runtime")
        end = (run.start_time or 0.0) + (runtime if isinstance(runtime, (int, float)) else 0.0)
        attrs = {
            "id": base64.b64encode(f"Run:v1:{run.id}:{project}:{entity}".encode()).decode(),
            "projectId": "1", "name": run.id, "displayName": run.name, "sweepName": None,
            "state": state or run.state, "tags": list(run.tags), "group": run.group or None,
            "jobType": run.job_type or None, "commit": None, "readOnly": False,
            "createdAt": _iso(run.start_time), "heartbeatAt": _iso(end),
            "description": run.notes or None, "notes": run.notes or None,
            "config": json.dumps({k: {"value": v, "desc": None} for k, v in _nest(run.config).items()}),
            "summaryMetrics": json.dumps(_nest(summary)), "systemMetrics": "{}",
            "historyLineCount": len(rows), "user": {"name": entity, "username": entity},
            "historyKeys": {"lastStep": last, "keys": keys},
        }
        return cls(entity, project, attrs, rows)


@dataclass
class Loopback:
    """The server's state: its runs, the failures to inject, what it was asked."""

    entity: str = "me"
    runs: dict[tuple[str, str, str], CloudRun] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # operation -> HTTP status to answer with
    delay: dict[str, float] = field(default_factory=dict)  # operation -> seconds to wait first
    private: set[str] = field(default_factory=set)  # run ids answered as not found
    calls: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, Any]] = field(default_factory=list)
    queries: dict[str, str] = field(default_factory=dict)  # operation -> the query text the client sent
    port: int = 0

    def add(self, run: CloudRun) -> None:
        self.runs[(run.entity, run.project, run.id)] = run

    def reset(self) -> None:
        self.runs.clear()
        self.status.clear()
        self.delay.clear()
        self.private.clear()
        self.calls.clear()
        self.log.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- answers

    def _run(self, v: dict[str, Any], name_key: str = "name") -> CloudRun | None:
        run = self.runs.get((v.get("entity", ""), v.get("project", ""), v.get(name_key, "")))
        return None if run is None or run.id in self.private else run

    def answer(self, op: str, v: dict[str, Any]) -> dict[str, Any]:
        if op in ("Viewer", "GetDefaultEntity"):
            return {"viewer": {"id": "VXNlcjox", "entity": self.entity, "username": self.entity, "email": None,
                               "flags": None, "teams": {"edges": []}}}
        if op == "Run":
            run = self._run(v)
            return {"project": {"run": None if run is None else run.attrs}}
        if op == "RunHistoryKeys":
            run = self._run(v)
            return {"project": {"run": None if run is None else {"historyKeys": run.attrs["historyKeys"]}}}
        if op == "RunParquetHistory":
            run = self._run(v, "runName")
            return {"project": {"run": None if run is None else
                                {"parquetHistory": {"parquetUrls": [], "liveData": []}}}}
        if op == "SampledHistoryPage":
            run = self._run(v, "run")
            if run is None:
                return {"project": {"run": None}}
            spec = json.loads(v["spec"])
            keys = [k for k in spec["keys"] if k != "_step"]
            lo, hi, n = int(spec["minStep"]), int(spec["maxStep"]), int(spec["samples"])
            rows = [{k: row[k] for k in ("_step", *keys)} for step, row in sorted(run.rows.items())
                    if lo <= step <= hi and all(k in row for k in keys)][:n]
            return {"project": {"run": {"sampledHistory": [rows]}}}
        if op == "Runs":
            found = [r for (e, p, _), r in self.runs.items() if (e, p) == (v["entity"], v["project"])]
            if not found:
                return {"project": None}
            state = json.loads(v.get("filters") or "{}").get("state")
            found = [r for r in found if state in (None, r.attrs["state"]) and r.id not in self.private]
            found.sort(key=lambda r: str(r.attrs["createdAt"]), reverse=str(v.get("order", "")).startswith("-"))
            start = int(v.get("cursor") or 0)
            page = found[start: start + int(v.get("perPage") or 50)]
            end = start + len(page)
            return {"project": {"internalId": "1", "runCount": len(found), "readOnly": False, "runs": {
                "edges": [{"node": r.attrs, "cursor": str(start + i + 1)} for i, r in enumerate(page)],
                "pageInfo": {"endCursor": str(end), "hasNextPage": end < len(found)}}}}
        return {}

    # -- serving

    def start(self) -> ThreadingHTTPServer:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.startswith("/graphql"):  # wandb-core's telemetry: accepted, ignored
                    self._send(200, b"{}")
                    return
                req = json.loads(body)
                m = _OP.search(req.get("query", ""))
                op = m.group(1) if m else ""
                variables = req.get("variables") or {}
                state.calls[op] += 1
                state.log.append((op, variables))
                state.queries.setdefault(op, req.get("query", ""))
                if op in state.delay:
                    time.sleep(state.delay[op])
                if op in state.status:
                    code = state.status[op]
                    message = _MESSAGES.get(code, "injected failure")
                    self._send(code, json.dumps({"errors": [{"message": message}]}).encode())
                    return
                self._send(200, json.dumps({"data": state.answer(op, variables)}).encode())

            def _send(self, code: int, data: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="wandb-loopback", daemon=True).start()
        return server
