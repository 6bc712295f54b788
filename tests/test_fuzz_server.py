"""Fuzz every tool through the official MCP client with 1,000 random and hostile argument sets.

The argument sets are drawn with hypothesis from the input schemas the server lists (what an
agent sees), mixed with hostile values: huge and negative numbers, 1e30 / NaN / inf, NUL bytes,
100,000-character strings, wrong types, unknown keys and paths out of the project. Every answer
must be a result of at most 40,000 characters or a one-line error of at most 300 characters, and
none may be an internal error. The project holds all three sources (the committed W&B and
TensorBoard fixtures, JSONL logs written as a training script writes them). One client session
serves every call. The examples are derandomized so CI sees the same 1,000 each time; set
RUNWISE_FUZZ_RANDOM=1 to draw new ones.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.server import build_server

DATA = Path(__file__).resolve().parent / "data"
OLD = 1_700_000_000
EXAMPLES = 1_000
VALID_EXAMPLES = 25  # more sets per tool, each within its schema
ANSWER_CHARS = 40_000
ERROR_CHARS = 300
INTERNAL = re.compile(r"internal error [0-9a-f]{6}: ")

HOSTILE_STRINGS = [
    "", " ", "\x00", "logs/base\x00.jsonl", "x" * 100_000, "../../etc/passwd", "/etc/passwd", "/etc/shadow",
    "~root/.ssh/id_rsa", "~nobody_runwise/x.jsonl", "logs/../../outside.jsonl", "logs/../logs/base.jsonl",
    "base@-5", "base@99999999999999999999999", "base@1e30", "fast@12k", "@", "@5", "jsonl:", "wandb:",
    "tensorboard:../../", "*", "%s%n", "{}", "[]", "null", "' OR 1=1", "\u202e\u0000\ud7ff", "名前/损失",
    "a" * 501, "val/", "/", "latest@0", "C:\\Windows\\win.ini", "\\\\server\\share", "file:///etc/passwd",
]
HOSTILE_VALUES: list[Any] = [
    10**30, -(10**30), 2**63, 2**53 + 1, -1, -5, 0, 1e30, -1e30, math.nan, math.inf, -math.inf, 0.5, -0.0,
    True, False, None, [], {}, [None], {"a": 1}, ["x"] * 60, [["nested"]], [1, 2, 3], "5", "1e30", '["a"]',
]


def write_project(root: Path) -> Path:
    shutil.copytree(DATA / "wandb", root / "wandb", symlinks=True)
    shutil.copytree(DATA / "tensorboard" / "runs", root / "runs")
    logs = root / "logs"
    logs.mkdir()
    for name, lr, bad in (("base", 0.001, None), ("fast", 0.003, "spike"), ("nan_run", 0.01, "nan")):
        lines = [json.dumps({"config": {"optimizer": {"lr": lr}, "batch_size": 32, "note": "n" * 300}})]
        for step in range(400):
            loss = 2.0 * math.exp(-step / 100) + 0.1 + 0.01 * math.sin(step * 1.7)
            if bad == "spike" and step == 234:
                loss = 9.0
            row: dict[str, Any] = {"step": step, "train/loss": loss, "lr": lr, "grad_norm": 1.0 + step % 7}
            if bad == "nan" and step >= 300:
                row["train/loss"] = math.nan
            if step % 50 == 0:
                row["val/loss"] = loss + 0.05
                row["val/acc"] = 1 - loss / 3
            lines.append(json.dumps(row))
        (logs / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    # a wide run: many metrics and config keys, so large arguments meet the answer cap
    wide = [json.dumps({"config": {f"section_{i}": {"value": "v" * 100, "n": i} for i in range(300)}})]
    wide += [json.dumps({"step": s, **{f"group{g}/metric_{m:02d}": s * 0.01 + m for g in range(8) for m in range(40)}})
             for s in range(100)]
    (logs / "wide.jsonl").write_text("\n".join(wide) + "\n")
    for p in root.rglob("*"):
        os.utime(p, (OLD, OLD), follow_symlinks=False)
    return root


class Session:
    """One client session on one server, driven from synchronous hypothesis examples through a portal."""

    def __init__(self, portal: BlockingPortal, client: Client) -> None:
        self.portal, self.client = portal, client

    def call(self, tool: str, args: dict[str, Any]) -> Any:
        return self.portal.call(self.client.call_tool, tool, args)

    def tools(self) -> list[Any]:
        return list(self.portal.call(self.client.list_tools).tools)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = write_project(tmp_path_factory.mktemp("fuzz"))
    runs.clear_cache()
    server = build_server(lambda: RunwiseConfig.load(root, env={}))
    with start_blocking_portal(backend="asyncio") as portal, portal.wrap_async_context_manager(
        Client(server)
    ) as client:
        yield Session(portal, client)


def names(session: Session) -> tuple[list[str], list[str]]:
    """Run references and metric names that exist in the project, for valid draws."""
    listing = session.call("list_runs", {"limit": 100}).structured_content["runs"]
    refs = ["latest", "logs/base.jsonl", "jsonl:fast", "fast@200", "base@0", "fas", "nan_run@1k", "wide", "wide"]
    metrics = ["train/loss", "val/loss", "val", "val/", "loss", "lr", "grad_norm", "accuracy", "val_loss"]
    metrics += [f"group{g}" for g in range(8)] * 3
    for row in listing["rows"]:
        refs += [row[0], row[1], f"{row[2]}:{row[0]}"]
    for ref in ("fin00001", "txb", "base", "wide"):
        keys = session.call("list_keys", {"run": ref}).structured_content["metrics"]["rows"]
        metrics += [k[0] for k in keys]
    return sorted(set(refs)), sorted(set(metrics))


def strategy_for(name: str, prop: dict[str, Any], refs: list[str], metrics: list[str],
                 required: bool = False, known_only: bool = False) -> st.SearchStrategy[Any]:
    """Values a schema property allows: in its range, of its length, from its enum; names that exist, or not
    (with `known_only`, names that exist only)."""
    kinds = prop.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    options: list[st.SearchStrategy[Any]] = []
    if "null" in kinds or ("default" not in prop and not required):  # a null default is published without null
        options.append(st.none())
    if "enum" in prop:
        options.append(st.sampled_from(prop["enum"]))
    elif "integer" in kinds or "number" in kinds:
        lo, hi = int(prop.get("minimum", -(2**31))), int(prop.get("maximum", 2**31))
        options += [st.integers(lo, min(hi, lo + 3000)), st.integers(lo, hi), st.sampled_from([lo, hi])]
        if "number" in kinds:
            options.append(st.floats(float(lo), float(hi), allow_nan=False))
    elif "string" in kinds:
        known = refs if name == "run" else metrics
        options += [st.sampled_from(known)] * 3
        if not known_only:
            options.append(st.text(max_size=min(prop.get("maxLength", 50), 60)))
    elif "array" in kinds:
        known = refs if name == "runs" else metrics
        size = {"min_size": prop.get("minItems", 0), "max_size": prop.get("maxItems", 10)}
        item = st.sampled_from(known) if known_only else st.one_of(*[st.sampled_from(known)] * 6, st.text(max_size=40))
        options.append(st.lists(item, **size))
    elif "boolean" in kinds:
        options.append(st.booleans())
    return st.one_of(options) if options else st.none()


def out_of_bounds(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values just past what a property allows: one past its range, one character or item too many."""
    values: list[Any] = []
    if "minimum" in prop:
        values.append(prop["minimum"] - 1)
    if "maximum" in prop:
        values.append(prop["maximum"] + 1)
    if "maxLength" in prop:
        values.append("a" * (prop["maxLength"] + 1))
    if "maxItems" in prop:
        values.append(["train/loss"] * (prop["maxItems"] + 1))
    if "items" in prop and "maxLength" in prop["items"]:
        values.append(["x" * (prop["items"]["maxLength"] + 1)])
    return st.sampled_from(values) if values else hostile(prop)


def biggest(name: str, prop: dict[str, Any]) -> Any:
    """The value of a property that asks for the most: the widest run, every group, each limit at its maximum."""
    if name in ("run", "metric"):
        return {"run": "wide", "metric": "group0/metric_00"}[name]
    if name == "runs":
        return ["wide", "base", "wide@50"]
    if name == "keys":
        return [f"group{g}" for g in range(8)]
    if name.startswith("max_") or name in ("limit", "top_n", "output_lines", "spark_width"):
        return prop.get("maximum")
    return None


HOSTILE_NUMBERS: list[Any] = [10**30, -(10**30), 2**63, 2**53 + 1, 1e30, -1e30, math.nan, math.inf, -math.inf,
                               -1, -5, 0.5, "7", "1e30", True]


def hostile(prop: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values no tool should accept as they are, the ones aimed at `prop`'s type first."""
    kinds = (prop or {}).get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    anything = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.sampled_from(HOSTILE_VALUES),
                         st.integers(), st.floats(), st.text(max_size=300))
    if "integer" in kinds or "number" in kinds:
        return st.one_of(st.sampled_from(HOSTILE_NUMBERS), anything)
    if "string" in kinds:
        return st.one_of(st.sampled_from(HOSTILE_STRINGS), anything)
    if "array" in kinds:
        return st.one_of(st.lists(st.sampled_from(HOSTILE_STRINGS), max_size=8), anything)
    return anything


def arguments(schema: dict[str, Any], refs: list[str], metrics: list[str],
              modes: tuple[str, ...] = ("valid", "valid", "valid", "big", "attack", "attack"),
              ) -> st.SearchStrategy[dict[str, Any]]:
    """Half the sets are what the schema allows; the other half have hostile values or unknown keys."""
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))

    @st.composite
    def draw(d: st.DrawFn) -> dict[str, Any]:
        mode = d(st.sampled_from(modes))
        if mode == "big":  # the largest request on the widest run: the answer cap has to hold
            return {name: biggest(name, prop) for name, prop in props.items() if biggest(name, prop) is not None}
        attack, known_only = mode == "attack", mode == "known"
        args: dict[str, Any] = {}
        for name, prop in props.items():
            if name not in required and d(st.integers(0, 2)) == 0:
                continue  # left to its default
            how = d(st.sampled_from(["valid", "hostile", "hostile", "past"])) if attack else "valid"
            if how == "valid":
                args[name] = d(strategy_for(name, prop, refs, metrics, name in required, known_only))
            else:
                args[name] = d(hostile(prop) if how == "hostile" else out_of_bounds(prop))
        if attack and d(st.integers(0, 3)) == 0:
            args[d(st.sampled_from(["key", "metrics", "Run", "max_point", "\x00", "x" * 1000]))] = d(hostile())
        return args

    return draw()


def valid_calls(tool: str, args: st.SearchStrategy[dict[str, Any]], check: Any) -> None:
    """Check VALID_EXAMPLES calls of `tool` drawn from `args` with `check` (the fuzz test's own)."""

    @settings(max_examples=VALID_EXAMPLES, deadline=None, database=None, derandomize=not os.environ.get(
        "RUNWISE_FUZZ_RANDOM"), suppress_health_check=list(HealthCheck), print_blob=True)
    @given(args)
    def valid_call(drawn: dict[str, Any]) -> None:
        check((tool, drawn))

    valid_call()


def test_every_answer_is_bounded_or_one_line(session: Session) -> None:
    tools = {t.name: t.input_schema for t in session.tools()}
    refs, metrics = names(session)
    calls = st.sampled_from(sorted(tools)).flatmap(
        lambda tool: st.tuples(st.just(tool), arguments(tools[tool], refs, metrics)))
    seen: Counter[str] = Counter()
    largest: list[tuple[int, str, str]] = [(0, "", "")]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not os.environ.get(
        "RUNWISE_FUZZ_RANDOM"), suppress_health_check=list(HealthCheck), print_blob=True)
    @given(calls)
    def one_call(call: tuple[str, dict[str, Any]]) -> None:
        tool, args = call
        result = session.call(tool, args)
        seen["calls"] += 1
        if result.is_error:
            text = result.content[0].text
            assert len(text) <= ERROR_CHARS and "\n" not in text, (tool, text)
            # a crash is "Error executing tool X" alone (the SDK) or "...: internal error <id>: ..." (runwise)
            assert text.startswith(f"Error executing tool {tool}: ") and len(text) > len(tool) + 24, text
            assert not INTERNAL.match(text.split(": ", 1)[1]), (tool, args, text)
            seen["errors"] += 1
            seen["error: " + " ".join(text.split(": ", 1)[1].split()[:2])] += 1
            return
        size = len(json.dumps(result.structured_content, ensure_ascii=False))
        assert size <= ANSWER_CHARS, (tool, args, size)
        assert json.loads(result.content[0].text) == result.structured_content
        seen[f"ok {tool}"] += 1
        notes = result.structured_content.get("notes")
        seen["cut by the cap"] += isinstance(notes, list) and any(n.startswith("answer cut") for n in notes)
        largest[0] = max(largest[0], (size, tool, repr(args)[:200]))

    one_call()
    # every tool is reached past its argument checks: VALID_EXAMPLES sets each drawn from its schema alone (names
    # that exist, or its biggest request); the mixed draws above depend on every schema: reaching a handler is chance
    for tool in sorted(tools):
        valid_calls(tool, arguments(tools[tool], refs, metrics, modes=("known", "known", "known", "big")),
                    one_call.hypothesis.inner_test)
    print("\n" + ", ".join(f"{k}: {n}" for k, n in seen.most_common()))
    print(f"fuzz: {seen['calls']} calls, {seen['errors']} one-line errors, largest answer {largest[0][0]:,} "
          f"characters ({largest[0][1]} {largest[0][2]})")
    assert seen["calls"] >= EXAMPLES + VALID_EXAMPLES * len(tools)
    # the draws reach the handlers of every tool, not only the argument checks, and meet the cap
    assert all(seen[f"ok {tool}"] >= 5 for tool in tools), seen
    assert seen["cut by the cap"] >= 1, seen
