"""MCP completions (`completion/complete`) for run references and metric names.

One handler serves every prompt and resource template: it dispatches on the argument's name, so
`run`, `run_a`, `run_b`, `runs` (several references: the last one is completed) and a template's
`ref` complete run references, `metric` completes metric names and `group` a sweep's name prefix.

- A run reference completes to 'latest', run ids and display names (prefix matches first, then
  the ones that hold the text), and `source:` prefixes of the sources the project has runs in;
  after `source:` to that source's 'source:id' keys; after `ref@` to a few steps of that run (its
  last step, round fractions of its range, its first step). With a W&B project set (`wandb_project`),
  'cloud:' and 'wandb-cloud:' are offered too; cloud run ids are not (that would ask W&B's servers).
- A metric name completes from the run index row of the run another argument names (`run`,
  `ref`, `run_b`, `run_a`, the first of `runs`), else of the newest run (of the `group`, if given).

Everything comes from discovery and the run index (runwise.runs.index_rows): a run the index has
not seen is entered the way list_runs enters it (a large log read at its ends only), never read
whole for a completion. At most MAX_VALUES values, with `total` and `has_more`. A reference that
names nothing gives no values, not an error. The work runs in a worker thread. Values are plain
references and names; a resource template's client percent-encodes them into the URI, and a
partial value that comes encoded ('jsonl%3A') is decoded first.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp_types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference

from runwise.config import RunwiseConfig

if TYPE_CHECKING:  # the index and run modules are imported by the handler, not at start-up
    from runwise.index import Row
    from runwise.model import RunEntry

log = logging.getLogger("runwise.server")

MAX_VALUES = 100  # the protocol's cap on values in one completion
RUN_ARGS = frozenset({"run", "run_a", "run_b", "ref"})
LIST_ARGS = frozenset({"runs"})
METRIC_ARGS = frozenset({"metric"})
GROUP_ARGS = frozenset({"group"})
CONTEXT_RUN_ARGS = ("run", "ref", "run_b", "run_a", "runs")  # which run a metric completes from, in this order
STEP_FRACTIONS = (0.25, 0.5, 0.75)
DISCOVERY_SECONDS = 2.0  # completions come per keystroke: one discovery serves the requests of this long
CLOUD_PREFIXES = ("cloud:", "wandb-cloud:")  # runwise.parsers.wandb_cloud
_SEPARATORS = re.compile(r"[\s,]+")
_NAME_BREAKS = re.compile(r"[-_/.]")

_discovered: dict[str, tuple[float, list[RunEntry]]] = {}
_lock = threading.Lock()


def empty() -> Completion:
    return Completion(values=[], total=0, has_more=False)


def bounded(values: Iterable[str]) -> Completion:
    """The first MAX_VALUES of `values` (once each, in order), with the total and whether more are left."""
    unique = list(dict.fromkeys(values))
    return Completion(values=unique[:MAX_VALUES], total=len(unique), has_more=len(unique) > MAX_VALUES)


def matching(partial_value: str, candidates: Iterable[str]) -> list[str]:
    """The candidates that start with `partial_value` (ignoring case), then those that hold it, in order."""
    low = partial_value.lower()
    cands = list(dict.fromkeys(c for c in candidates if c))
    starts = [c for c in cands if c.lower().startswith(low)]
    holds = [c for c in cands if low and low in c.lower() and not c.lower().startswith(low)]
    return starts + holds


def complete(name: str, value: str, context: dict[str, str], cfg: RunwiseConfig) -> Completion:
    """The completion of argument `name` typed so far as `value`, other arguments being `context`."""
    if name in RUN_ARGS:
        return bounded(_run_refs(value, cfg))
    if name in LIST_ARGS:
        parts = _SEPARATORS.split(value)
        last = parts[-1]
        head = value[: len(value) - len(last)]
        given = {p for p in parts[:-1] if p}
        return bounded(head + r for r in _run_refs(last, cfg) if r not in given)
    if name in METRIC_ARGS:
        return bounded(_metrics(value, context, cfg))
    if name in GROUP_ARGS:
        return bounded(_groups(value, cfg))
    return empty()


# ---------------------------------------------------------------- run references


def _entries(cfg: RunwiseConfig) -> list[RunEntry]:
    """The project's runs, newest first; one discovery serves DISCOVERY_SECONDS of requests."""
    from runwise import runs

    key = str(cfg.root)
    now = time.monotonic()
    with _lock:
        kept = _discovered.get(key)
    if kept is not None and now - kept[0] < DISCOVERY_SECONDS:
        return kept[1]
    entries, _ = runs.discover(cfg)
    with _lock:
        _discovered.clear()  # one project per server: nothing older is worth keeping
        _discovered[key] = (now, entries)
    return entries


def _indexed(entries: list[RunEntry], cfg: RunwiseConfig) -> dict[str, Row]:
    """The rows the run index holds for `entries` (unchanged files only); nothing is read."""
    from runwise import runs

    try:
        return runs.run_index(cfg).lookup(entries)
    except (sqlite3.Error, OSError) as exc:
        log.debug("run index not read: %s", exc)
        return {}


def _row(entry: RunEntry, cfg: RunwiseConfig) -> Row | None:
    """`entry`'s index row: looked up, else entered now as list_runs enters it (a large log at its ends only)."""
    from runwise import runs
    from runwise.errors import RunwiseError

    found = _indexed([entry], cfg).get(entry.key)
    if found is not None:
        return found
    try:
        row = runs.index_rows([entry], cfg).get(entry.key)
    except (RunwiseError, OSError, sqlite3.Error) as exc:
        log.debug("no index row for %s: %s", entry.key, exc)
        return None
    return None if row is None or isinstance(row, str) else row


def _names(entry: RunEntry, rows: dict[str, Row]) -> list[str]:
    row = rows.get(entry.key)
    return [n for n in (entry.name, row.name if row is not None else "") if n and n != entry.id]


def _find(ref: str, entries: list[RunEntry], rows: dict[str, Row]) -> RunEntry | None:
    """The run `ref` names, matched as `runs.resolve` matches it but reading nothing; None: none or several."""
    ref = ref.strip()
    if ref == "latest":
        return entries[0] if entries else None
    rules: tuple[Callable[[RunEntry], bool], ...] = (
        lambda e: e.key == ref,
        lambda e: e.id == ref,
        lambda e: ref in _names(e, rows),
        lambda e: e.id.startswith(ref),
        lambda e: any(n.startswith(ref) for n in _names(e, rows)),
    )
    for rule in rules:
        found = {e.key: e for e in entries if rule(e)}
        if found:
            return next(iter(found.values())) if len(found) == 1 else None
    return None


def _run_refs(value: str, cfg: RunwiseConfig) -> list[str]:
    entries = _entries(cfg)
    if "@" in value:
        ref, _, typed = value.rpartition("@")
        return _steps(ref, typed, entries, cfg)
    rows = _indexed(entries, cfg)
    sources = list(dict.fromkeys(e.source for e in entries))
    source, colon, rest = value.partition(":")
    if colon and source in sources:
        return matching(value, (e.key for e in entries if e.source == source))
    candidates = ["latest"] if entries else []
    for e in entries:
        candidates.append(e.id)
        candidates.extend(_names(e, rows))
    candidates.extend(f"{s}:" for s in sources)
    if cfg.wandb_project:  # W&B cloud runs of the set project: their ids are on W&B's servers, not completed
        candidates.extend(CLOUD_PREFIXES)
    return matching(value, candidates)


def _steps(ref: str, typed: str, entries: list[RunEntry], cfg: RunwiseConfig) -> list[str]:
    """`ref@STEP` for a few steps of the run `ref` names: its last, round fractions of its range, its first."""
    entry = _find(ref, entries, _indexed(entries, cfg))
    if entry is None:
        return []
    row = _row(entry, cfg)
    if row is None or row.last_step is None:
        return []
    first = row.first_step if row.first_step is not None else 0
    last = row.last_step
    steps = [last] + [_round_step(first + f * (last - first), last - first) for f in STEP_FRACTIONS] + [first]
    digits = typed.replace("_", "").replace(",", "")
    return [f"{ref}@{s}" for s in dict.fromkeys(steps) if first <= s <= last and str(s).startswith(digits)]


def _round_step(step: float, span: int) -> int:
    """`step` rounded to two significant digits of `span`: 74.75 of 299 steps -> 70, 250,123 of 1M -> 250,000."""
    if span < 10:
        return round(step)
    unit = 10 ** max(0, int(math.log10(span)) - 1)
    return int(round(step / unit) * unit)


def _groups(value: str, cfg: RunwiseConfig) -> list[str]:
    """Name prefixes the runs share, up to a separator ('sweep-lr-' of 'sweep-lr-3e4'), newest runs first."""
    entries = _entries(cfg)
    rows = _indexed(entries, cfg)
    prefixes: list[str] = []
    for e in entries:
        for name in [e.id, *_names(e, rows)]:
            prefixes.extend(name[: m.end()] for m in _NAME_BREAKS.finditer(name))
    return matching(value, prefixes)


# ---------------------------------------------------------------- metric names


def _metrics(value: str, context: dict[str, str], cfg: RunwiseConfig) -> list[str]:
    entries = _entries(cfg)
    if not entries:
        return []
    named = next((context[a].strip() for a in CONTEXT_RUN_ARGS if context.get(a, "").strip()), "")
    if named:
        first = _SEPARATORS.split(named)[0]
        ref = first.rpartition("@")[0] if "@" in first else first
        entry = _find(ref, entries, _indexed(entries, cfg))
    elif context.get("group"):
        group = context["group"]
        rows = _indexed(entries, cfg)
        entry = next((e for e in entries if any(n.startswith(group) for n in [e.id, *_names(e, rows)])), None)
    else:
        entry = entries[0]
    row = _row(entry, cfg) if entry is not None else None
    return matching(value, sorted(row.metrics)) if row is not None else []


# ---------------------------------------------------------------- the handler


def register(server: MCPServer, load_config: Callable[[], RunwiseConfig]) -> None:
    """Serve `completion/complete` on `server` (which advertises the completions capability with it)."""

    async def handle(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        from runwise.errors import RunwiseError

        value, ctx = argument.value, dict(context.arguments or {}) if context is not None else {}
        if isinstance(ref, ResourceTemplateReference):  # a URI segment may come percent-encoded (jsonl%3Aa)
            value, ctx = unquote(value), {k: unquote(v) for k, v in ctx.items()}
        try:
            cfg = load_config()
            return await anyio.to_thread.run_sync(
                partial(complete, argument.name, value, ctx, cfg), abandon_on_cancel=True
            )
        except (RunwiseError, OSError, sqlite3.Error) as exc:  # runs not listable now: no values, no error
            log.debug("completion of %s: %s", argument.name, exc)
            return empty()

    # the SDK's decorator has no annotations; handle's signature is the one it calls with
    decorate = cast(Callable[[Callable[..., Any]], Any], server.completion())  # type: ignore[no-untyped-call]
    decorate(handle)


__all__ = ["MAX_VALUES", "complete", "register"]
