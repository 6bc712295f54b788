"""The same server over streamable HTTP and over stdio: repeated summarize_run on a 1,000,000-row run.

    python bench/bench_http.py [--repeat 20] [--limit-ms 20] [--json PATH]

Two servers of the same code on the same project (bench/_data/jsonl, one 1M-row JSONL run made
with bench_jsonl's generator if absent, as bench_repeat.py does): `runwise-mcp --root <project>`
over stdio, and `runwise-mcp --http 127.0.0.1:<port> --root <project>` with a bearer token, each
reached through the official `mcp` client (legacy handshake, as Claude Code connects). Each side's
first call reads the run (its own new disk cache); then `--repeat` rounds each call summarize_run
once on both sides, the side going first alternating. The medians of the repeats are compared:
PASS when HTTP's is at most `--limit-ms` above stdio's. Every answer must be a success and equal
its side's first answer, and the two sides' answers must be equal.
`--json PATH` also writes the figures there (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_repeat import _timed, jsonl_project  # noqa: E402  (the same 1M-row run and call timing)

TOOL = "summarize_run"


def _env(cache_dir: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWISE_")}
    return {**env, "RUNWISE_CACHE_DIR": cache_dir, **extra}


@asynccontextmanager
async def stdio_session(root: Path, cache_dir: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "runwise.server", "--root", str(root)],
                                   env=_env(cache_dir))
    async with Client(params, mode="legacy") as client:
        yield client


@asynccontextmanager
async def http_session(root: Path, cache_dir: str) -> AsyncIterator[Client]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    proc = subprocess.Popen([sys.executable, "-m", "runwise.server", "--http", f"127.0.0.1:{port}", "--root",
                             str(root)], env=_env(cache_dir, RUNWISE_TOKEN=token))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP server did not start (exit status {proc.poll()})")
            await anyio.sleep(0.05)
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, Client(
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http), mode="legacy"
        ) as client:
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def main_async(repeat: int, limit_ms: float, json_path: str | None) -> int:
    made = jsonl_project()
    assert not isinstance(made, str)
    root, run = made
    args = {"run": run}
    print(f"{TOOL} on {root.relative_to(HERE.parent)} (run {run}): one session over stdio, one over HTTP (loopback)")
    with tempfile.TemporaryDirectory(prefix="runwise-bench-") as tmp:
        (Path(tmp) / "stdio").mkdir()
        (Path(tmp) / "http").mkdir()
        async with stdio_session(root, str(Path(tmp) / "stdio")) as stdio, \
                http_session(root, str(Path(tmp) / "http")) as http:
            sides = {"stdio": stdio, "http": http}
            first: dict[str, Any] = {}
            firsts: dict[str, float] = {}
            for name, client in sides.items():
                firsts[name], first[name] = await _timed(client, TOOL, args)
                print(f"  first call over {name}: {firsts[name] * 1000:.0f} ms (reads the run)", flush=True)
            seconds: dict[str, list[float]] = {"stdio": [], "http": []}
            same = first["stdio"] == first["http"]
            for i in range(repeat):
                for name in (("stdio", "http") if i % 2 == 0 else ("http", "stdio")):
                    s, answer = await _timed(sides[name], TOOL, args)
                    seconds[name].append(s)
                    same = same and answer == first[name]
    med = {name: statistics.median(s) * 1000 for name, s in seconds.items()}
    gap = med["http"] - med["stdio"]
    ok = gap <= limit_ms and same
    for name in ("stdio", "http"):
        print(f"  {name:5s} repeats: median {med[name]:7.1f} ms, min {min(seconds[name]) * 1000:7.1f} ms, "
              f"max {max(seconds[name]) * 1000:7.1f} ms  ({repeat} calls)")
    print(f"  answers equal on both sides and across repeats: {same}")
    print(f"{'PASS' if ok else 'FAIL'}: HTTP median - stdio median = {gap:+.1f} ms (limit {limit_ms:g} ms)")
    if json_path:
        from _common import figure, write_figures

        write_figures(json_path, "http", [
            figure(f"{TOOL} repeated on a 1M-row run over streamable HTTP (token, loopback), median; same answers",
                   med["http"], peer=med["stdio"], peer_name="stdio, same server", unit="ms",
                   target=f"<= stdio + {limit_ms:g} ms", passed=ok),
            figure(f"{TOOL} first call (reads the run) over HTTP", firsts["http"] * 1000,
                   peer=firsts["stdio"] * 1000, peer_name="stdio", unit="ms"),
        ], repeat=repeat)
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20, help="calls after the first, per side")
    ap.add_argument("--limit-ms", type=float, default=20.0, help="how much slower HTTP's median may be")
    ap.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    return anyio.run(main_async, args.repeat, args.limit_ms, args.json)


if __name__ == "__main__":
    sys.exit(main())
