"""The one place runwise talks to W&B's servers: `wandb.Api`, imported only here and only when used.

Every call runs in a worker thread watched by a deadline: the call must show progress (an answer,
a history row) at least every `cfg.wandb_timeout` seconds (runwise.json `wandb_timeout`,
`RUNWISE_WANDB_TIMEOUT`), else it is given up with a CloudError; the thread is left to end on its
own. wandb's own GraphQL retries are held to a few short ones, so a server error answers within the
deadline too. Every failure becomes one line: a RunwiseError (CloudError, RunNotFound), never
wandb's exception or traceback.

The `Api` is made once per (server, key, timeout) and shared: making one starts wandb's service
process, which takes seconds.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from runwise.errors import CloudError, RunNotFound, RunwiseError

T = TypeVar("T")
INSTALL = "pip install 'runwise[wandb]'"
RETRIES = 1  # wandb's own GraphQL retries of a failed request (its default waits minutes)
_apis: dict[tuple[str, str, float], Any] = {}
_lock = threading.Lock()


def import_wandb() -> Any:
    """The `wandb` module, or a CloudError saying how to install it."""
    try:
        import wandb
    except ImportError as exc:
        raise CloudError(f"W&B cloud runs need the wandb package: {INSTALL}") from exc
    return wandb


def base_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")


def _api_key(wandb: Any, url: str) -> str:
    """The API key wandb would use for `url` (environment, then netrc), found without prompting."""
    key = os.environ.get("WANDB_API_KEY", "").strip()
    if key:
        return key
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth

        found = read_netrc_auth(host=url)
    except Exception:  # an unreadable or invalid netrc: the same advice as no key at all
        found = None
    if not found:
        raise CloudError("no W&B API key: run `wandb login` or set WANDB_API_KEY")
    return str(found)


def api(timeout: float) -> Any:
    """The shared `wandb.Api` for the configured server and key (made within `timeout` seconds)."""
    wandb = import_wandb()
    url = base_url()
    key = _api_key(wandb, url)
    ident = (url, key, timeout)
    with _lock:
        made = _apis.get(ident)
    if made is not None:
        return made

    def make() -> Any:
        _few_retries(wandb, timeout)
        return wandb.Api(timeout=max(1, int(timeout)), api_key=key)

    made = call(make, timeout, what=f"connecting to W&B at {url}")
    with _lock:
        _apis[ident] = made
    return made


def _few_retries(wandb: Any, timeout: float) -> None:
    """Hold wandb's GraphQL retries to RETRIES short ones (the settings its Api copies when made)."""
    try:
        from wandb.sdk import wandb_setup

        settings = wandb_setup.singleton().settings
        settings.x_graphql_retry_max = RETRIES
        settings.x_graphql_retry_wait_min_seconds = 0.5
        settings.x_graphql_retry_wait_max_seconds = 1.0
        settings.x_graphql_timeout_seconds = timeout
    except Exception:  # another wandb version: its own retry policy, still bounded by our deadline
        return


class Beat:
    """What a call reports while it makes progress: each `beat()` moves its deadline on."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()


def call(fn: Callable[[], T], timeout: float, *, what: str, beat: Beat | None = None) -> T:
    """`fn()` in a worker thread; a CloudError when it shows no progress for `timeout` seconds, and
    wandb's errors as one-line RunwiseErrors (see `translate`)."""
    beat = beat or Beat()
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="runwise-wandb", daemon=True).start()
    while not done.wait(0.05):
        if time.monotonic() - beat.last > timeout:
            raise _timed_out(timeout, what)
    if "error" in box:
        raise translate(box["error"], what, timeout) from box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _timed_out(timeout: float, what: str) -> CloudError:
    return CloudError(f"W&B did not answer within {timeout:g} s ({what}); "
                      "raise wandb_timeout in runwise.json or RUNWISE_WANDB_TIMEOUT")


# a status 401/403 as a word (not inside a port or a number) or the words of a refusal
_DENIED = re.compile(r"(?<![\w.:/])40[13](?![\w.])|permission|unauthorized|forbidden|api key|authenticat")


def translate(exc: BaseException, what: str, timeout: float) -> BaseException:
    """One-line runwise errors for what wandb raises (RunwiseErrors and interrupts pass through)."""
    if isinstance(exc, (RunwiseError, KeyboardInterrupt, SystemExit)):
        return exc
    text = " ".join(str(exc).split()) or type(exc).__name__
    low = text.lower()
    if any(w in low for w in ("did not respond in time", "timed out", "timeout", "deadline exceeded")):
        return _timed_out(timeout, what)  # wandb's own request timeout (the Api is made with ours)
    if "could not find run" in low or "not found" in low and "run" in low:
        return RunNotFound(what, ())
    if "could not find project" in low or "project" in low and "not found" in low:
        return CloudError(f"W&B has no such project, or it is private ({what}): {text[:200]}")
    if _DENIED.search(low):
        return CloudError(f"W&B refused access ({what}): check the API key, entity and project; {text[:200]}")
    if any(w in low for w in ("connection refused", "name resolution", "connecterror", "no such host",
                              "network is unreachable", "dial tcp")):
        return CloudError(f"cannot reach W&B at {base_url()} ({what}): {text[:200]}")
    return CloudError(f"W&B request failed ({what}): {text[:300]}")
