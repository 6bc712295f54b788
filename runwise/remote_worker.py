"""The store worker: a child interpreter that does runwise.remote's listings and downloads for this process.

Why a process of its own: importing fsspec and the store's package (s3fs brings aiobotocore, aiohttp and
botocore) and making its client cost about a second of CPU. In a child that second runs on another core
while this process starts up: the CLI and the MCP server `begin` the sync as soon as they know the project
root is a URL, before they import their own tools. This process then never holds the SDK (about 50 MB),
its event-loop thread, or a call stuck in it; the child's environment is this one's.

The child reads one JSON request per line on its stdin, {"url", "cache_dir", "env"} (`env`: the variables
the SDKs read, as set in this process now, so a changed endpoint or credential is seen), runs
`remote.sync_here` and writes one JSON answer per line on its stdout, in the same order: {"synced": fields
of remote.Synced} or {"error": one line}. It exits at the end of its stdin: when this process closes it
(at exit, or after the answer to a request made with `last`) or dies.

Nothing here is required: where no child can be started (runwise._spawn.can_spawn), or the child fails
(exits, writes something else), `sync` returns None and the caller syncs in this process, which it then
does for the rest of this process's life.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import sys
import threading
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwise.remote import Synced

log = logging.getLogger("runwise.remote")

# argv[1] is the directory holding this copy of runwise: appended, as for the readers' workers
CODE = (
    "import sys; p = sys.argv[1]; p in sys.path or sys.path.append(p); "
    "from runwise.remote_worker import main; sys.exit(main(sys.argv[1:]))"
)
EXIT_SECONDS = 2.0  # at exit: how long a worker still downloading may take to finish before it is killed


class Gone(Exception):
    """The worker cannot answer: it exited, or wrote something that is not an answer."""


class Worker:
    """One child process and the requests sent to it whose answers are not read yet."""

    def __init__(self) -> None:
        from runwise._spawn import PACKAGE_PARENT, creation_flags

        self.proc = subprocess.Popen(
            [sys.executable, "-c", CODE, PACKAGE_PARENT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            creationflags=creation_flags(),
        )
        self.sent: deque[str] = deque()  # `_key`s of the requests sent, in the order their answers come
        self.answers: dict[str, dict[str, Any]] = {}
        self.closed = False  # stdin closed: it answers what was sent, then exits

    def send(self, url: str, cache_dir: Path, env: dict[str, str], *, last: bool = False) -> None:
        """Ask it to sync `url` into `cache_dir`'s mirror; with `last`, it exits after answering."""
        stdin = self._pipe(self.proc.stdin)
        line = json.dumps({"url": url, "cache_dir": str(cache_dir), "env": env}) + "\n"
        try:
            stdin.write(line.encode())
            stdin.flush()
        except (OSError, ValueError) as exc:  # a broken or closed pipe: the child is gone
            raise Gone(f"cannot write to it: {exc}") from exc
        self.sent.append(_key(url, cache_dir))
        if last:
            self.close()

    def answer(self, key: str) -> dict[str, Any]:
        """The answer to the request `key` (sent before); the answers before it are kept for their callers."""
        stdout = self._pipe(self.proc.stdout)
        while key not in self.answers:
            if not self.sent:
                raise Gone("no request for it was sent")
            try:
                line = stdout.readline()
            except (OSError, ValueError) as exc:  # a pipe closed here already
                raise Gone(f"cannot read from it: {exc}") from exc
            if not line:
                raise Gone(f"it exited ({self.proc.wait()})")
            try:
                reply = json.loads(line)
            except ValueError as exc:
                raise Gone(f"it wrote something else: {line[:100]!r}") from exc
            if not isinstance(reply, dict) or not ({"synced", "error"} & reply.keys()):
                raise Gone(f"it wrote something else: {line[:100]!r}")
            self.answers[self.sent.popleft()] = reply
        return self.answers.pop(key)

    def usable(self) -> bool:
        """Whether it can take another request."""
        return not self.closed and self.proc.poll() is None

    def close(self) -> None:
        """Close its stdin: it answers what it was sent, then exits (reaped by `stop` or at exit)."""
        self.closed = True
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def stop(self, wait: float) -> None:
        """Close its stdin, give it `wait` seconds to finish, then kill it; close its pipes and reap it."""
        self.close()
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    @staticmethod
    def _pipe(pipe: IO[bytes] | None) -> IO[bytes]:
        if pipe is None:
            raise Gone("it has no pipe")
        return pipe


_lock = threading.Lock()
_worker: Worker | None = None
_retired: list[Worker] = []  # closed workers still answering or exiting: reaped at exit
_here: str | None = None  # why this process syncs by itself from now on (a worker failed, or none can start)


def _current() -> Worker | None:
    """The worker to send a request to, started if there is none; None when this process syncs by itself."""
    global _worker, _here
    if _here is not None:
        return None
    if _worker is not None and _worker.usable():
        return _worker
    if _worker is not None:  # closed after its last request, or exited
        _retired.append(_worker)
        _worker = None
    for w in list(_retired):
        if not w.sent and w.proc.poll() is not None:  # exited, nothing more to read: its pipes are closed
            _retired.remove(w)
            w.stop(0.0)
    from runwise._spawn import can_spawn

    if not can_spawn():
        _here = f"no Python interpreter to start (executable {sys.executable!r})"
        return None
    try:
        _worker = Worker()
    except OSError as exc:  # no processes here (a sandbox, limits)
        _here = f"cannot start it: {exc}"
        log.debug("no store worker: %s", _here)
        return None
    return _worker


def _fail(worker: Worker, exc: Exception) -> None:
    """`worker` failed: stop it; this process syncs by itself from now on."""
    global _worker, _here
    _here = f"the store worker failed: {exc}"
    log.debug("%s; syncing in this process", _here)
    worker.stop(0.0)
    worker.sent.clear()  # nothing more is read from it: a request it held is synced here by its caller
    worker.answers.clear()
    if worker in _retired:
        _retired.remove(worker)
    if _worker is worker:
        _worker = None


def _key(url: str, cache_dir: Path) -> str:
    """What a request is known by: its mirror (a URL mirrored beside one cache directory)."""
    return f"{url} {cache_dir}"


def _pending(key: str) -> Worker | None:
    """The worker (current or closed) holding an unread answer to request `key`, if any."""
    for w in (_worker, *_retired):
        if w is not None and (key in w.sent or key in w.answers):
            return w
    return None


def begin(url: str, cache_dir: Path, env: dict[str, str], *, last: bool = False) -> None:
    """Ask the worker to sync `url` now; `sync` takes the answer. Nothing if it was asked already."""
    with _lock:
        if _pending(_key(url, cache_dir)) is not None:
            return
        worker = _current()
        if worker is None:
            return
        try:
            worker.send(url, cache_dir, env, last=last)
        except Gone as exc:
            _fail(worker, exc)


def sync(url: str, cache_dir: Path, env: dict[str, str]) -> Synced | None:
    """The worker's sync of `url` (the answer to an earlier `begin`, or to a request made now); None when
    there is no worker to ask: the caller syncs in this process. ConfigError with the worker's line."""
    from runwise.errors import ConfigError
    from runwise.remote import Synced

    key = _key(url, cache_dir)
    with _lock:
        worker = _pending(key)
        try:
            if worker is None:
                worker = _current()
                if worker is None:
                    return None
                worker.send(url, cache_dir, env)
            reply = worker.answer(key)
        except Gone as exc:
            if worker is not None:
                _fail(worker, exc)
            return None
    if "error" in reply:
        raise ConfigError(str(reply["error"]))
    return Synced(**reply["synced"])


@atexit.register
def shutdown() -> None:
    """Stop every worker: each finishes what it is doing within EXIT_SECONDS, else it is killed."""
    global _worker
    with _lock:
        workers = [w for w in (_worker, *_retired) if w is not None]
        _worker = None
        _retired.clear()
    for w in workers:
        w.stop(EXIT_SECONDS)


def main(argv: list[str]) -> int:
    """The child's side: answer requests on stdin until it ends. `argv` is PARENT, the directory the
    parent's runwise lives in; a child that imported runwise from elsewhere exits WRONG_RUNWISE."""
    from runwise._spawn import PACKAGE_PARENT, WRONG_RUNWISE

    if Path(PACKAGE_PARENT) != Path(argv[0]).resolve():
        sys.stderr.write(f"runwise imported from {PACKAGE_PARENT}, expected {argv[0]}\n")
        return WRONG_RUNWISE
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing the SDKs print can get between the answers
    from runwise import remote
    from runwise.errors import ConfigError

    for line in sys.stdin.buffer:
        request = json.loads(line)
        url = str(request["url"])
        _use_env(request["env"])
        try:
            reply: dict[str, Any] = {"synced": asdict(remote.sync_here(url, Path(request["cache_dir"])))}
        except ConfigError as exc:
            reply = {"error": str(exc)}
        except Exception as exc:  # one line for the parent, whatever it was
            reply = {"error": f"cannot sync {url}: {type(exc).__name__}: {exc}"[:400]}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
    out.close()
    # every answer is written and every file closed: skip the SDK's teardown (its event loop, its connection
    # pools), a fifth of a second of CPU taken from the parent, which is reading what was fetched by then
    os._exit(0)


def _use_env(env: dict[str, str]) -> None:
    """Make the SDKs' variables here what they are in the parent now (set, changed or removed)."""
    from runwise.remote import sdk_env

    for name in sdk_env().keys() - env.keys():
        del os.environ[name]
    os.environ.update(env)
