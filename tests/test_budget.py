"""Token budgets, measured with the two real tokenizers (o200k and Claude's) on the text the MCP server sends.

On a project holding a 6-metric x 200,000-step run, a 300-metric run, a run of odd names and
numbers, and four short runs to compare (tests/budget_runs.py, written with json.dumps):
- every tool's default answer stays within its default budget;
- budgets of 300, 1,000 and 5,000 tokens are honoured, and an answer that left something out
  says so and how to ask for it;
- runwise.tokens.estimate_tokens is at or above both real counts on every answer, and close;
- get_history's default keeps the planted one-step spike and dip;
- an MCP client passes `budget` like any other argument.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.server import build_server
from runwise.tokens import estimate_tokens
from runwise.tools import TOOLS, TOOLS_BY_NAME
from runwise.tools._common import Out
from tests.budget_runs import dip_step, spike_step, write_project
from tests.tokenizers import answer_text, count_claude, count_o200k

STEPS = 200_000
BUDGETS = (300, 1_000, 5_000)
RUNS = ("long", "wide", "odd")
DEFAULTS = {"summarize_run": 400, "detect_anomalies": 400, "get_history": 2_000, "compare_runs": 2_000}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> RunwiseConfig:
    root = write_project(tmp_path_factory.mktemp("budget"), STEPS)
    runs.clear_cache()
    return RunwiseConfig.load(root, env={})


def args(tool: str, run: str) -> dict[str, Any]:
    """Arguments that point `tool` at `run` (compare_runs: it and three short runs)."""
    if tool == "compare_runs":
        return {"runs": [run, "short_a", "short_b", "short_c"]}
    if tool == "report":  # one run's report: its verdict, findings and key metrics
        return {"runs": [run]}
    if tool == "find_best_run":
        return {"metric": "train/loss"}
    if tool == "list_runs":
        return {}
    return {"run": run}


@pytest.fixture(scope="module")
def answers(cfg: RunwiseConfig) -> dict[tuple[str, str, int | None], str]:
    """(tool, run, budget) -> the answer's text, for every tool, run and budget (None: the default)."""
    out: dict[tuple[str, str, int | None], str] = {}
    for spec in TOOLS:
        for run in RUNS:
            for budget in (None, *BUDGETS, 50_000):
                req = spec.input.model_validate({**args(spec.name, run), "budget": budget})
                answer: Out = spec.run(req, cfg)
                out[spec.name, run, budget] = answer_text(answer)
    return out


def real(text: str) -> int:
    return max(count_o200k(text), count_claude(text))


def test_the_defaults_the_issue_asks_for() -> None:
    for name, most in DEFAULTS.items():
        assert TOOLS_BY_NAME[name].budget <= most
    assert all(spec.budget <= 3_000 for spec in TOOLS)  # "a few thousand tokens at most"


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("tool", [t.name for t in TOOLS])
def test_default_answer_stays_within_the_default(answers: dict[tuple[str, str, int | None], str],
                                                 tool: str, run: str) -> None:
    text = answers[tool, run, None]
    default = TOOLS_BY_NAME[tool].budget
    assert count_o200k(text) <= default and count_claude(text) <= default, (tool, run, text[:300])


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("tool", [t.name for t in TOOLS])
def test_budget_is_honoured_and_cuts_are_named(answers: dict[tuple[str, str, int | None], str],
                                               tool: str, run: str, budget: int) -> None:
    text = answers[tool, run, budget]
    assert count_o200k(text) <= budget and count_claude(text) <= budget, (tool, run, budget, text[:300])
    whole = answers[tool, run, 50_000]
    if real(whole) > budget:  # something had to go: the answer says what, and how to get it back
        said = " ".join(_notes(json.loads(text)))
        assert "budget" in said, (tool, run, budget, said)


def _notes(answer: dict[str, Any]) -> list[str]:
    """The answer's notes, and get_history's sampling note (where it says how to get more points)."""
    notes = answer.get("notes")
    found = list(notes) if isinstance(notes, list) else []
    return found + ([answer["note"]] if isinstance(answer.get("note"), str) else [])


def test_estimate_is_above_both_tokenizers_and_close(answers: dict[tuple[str, str, int | None], str]) -> None:
    ratios = []
    for key, text in sorted(answers.items(), key=lambda kv: str(kv[0])):
        est, o200k, claude = estimate_tokens(text), count_o200k(text), count_claude(text)
        assert est >= max(o200k, claude), (key, est, o200k, claude)
        ratios.append(est / max(o200k, claude, 1))
    assert sum(ratios) / len(ratios) <= 1.2
    assert max(ratios) <= 1.5


@pytest.mark.parametrize("text", [
    "▁▂▃▄▅▆▇█" * 10, "训练/损失 → Verlust/Überprüfung …", "[1000003,1234567,99999999,1e-05,2.022e-05,-3.4e+12]",
    "model/encoder/layer_11/attention/self/query/kernel/grad_norm " * 5, '{"a":"","b":[],"c":{"d":null},"e":[["x",1]]}',
    "train/loss spike 1.86 at step 2,350 (baseline 0.42±0.03); grad_norm 0.7→9.1 at the same step\\nlr unchanged",
])
def test_estimate_is_above_both_tokenizers_on_hard_text(text: str) -> None:
    assert estimate_tokens(text) >= max(count_o200k(text), count_claude(text))


def test_history_default_keeps_the_one_step_spike_and_dip(cfg: RunwiseConfig) -> None:
    spec = TOOLS_BY_NAME["get_history"]
    out = spec.run(spec.input(run="long"), cfg)
    assert spike_step(STEPS) in out.metrics["train/loss"].steps
    assert dip_step(STEPS) in out.metrics["grad_norm"].steps
    assert len(out.metrics) == 6 and real(answer_text(out)) <= 2_000
    assert "more: budget=" in out.note
    assert out.metrics["train/loss"].method == "minmax" and out.metrics["train/loss"].source_points == STEPS


def test_history_points_grow_with_the_budget(cfg: RunwiseConfig) -> None:
    spec = TOOLS_BY_NAME["get_history"]
    answers = [spec.run(spec.input(run="long", budget=b), cfg) for b in BUDGETS]
    points = [sum(len(m.steps) for m in out.metrics.values()) for out in answers]
    assert points[0] < points[1] < points[2]
    # a small budget shows fewer metrics rather than curves of a few points, and names the rest
    assert list(answers[0].metrics) == ["train/loss"] and len(answers[0].metrics["train/loss"].steps) >= 12
    left = "5 metrics left out to fit the budget: val/loss, train/acc, lr, ..."
    assert any(n.startswith(left) for n in answers[0].notes)


def test_explicit_sizes_lift_the_default_budget(cfg: RunwiseConfig) -> None:
    spec = TOOLS_BY_NAME["get_history"]
    asked = spec.run(spec.input(run="long", keys=["train/loss"], max_points=1000), cfg)
    assert len(asked.metrics["train/loss"].steps) > 900  # as asked: no default budget over it
    capped = spec.run(spec.input(run="long", keys=["train/loss"], max_points=1000, budget=1_000), cfg)
    assert real(answer_text(capped)) <= 1_000


@pytest.mark.anyio
async def test_mcp_client_passes_budget(cfg: RunwiseConfig) -> None:
    server = build_server(lambda: cfg)
    async with Client(server) as client:
        small = await client.call_tool("get_stats", {"run": "wide", "budget": 300})
        whole = await client.call_tool("get_stats", {"run": "wide"})
        bad = await client.call_tool("get_stats", {"run": "wide", "budget": 10})
    assert small.structured_content is not None and whole.structured_content is not None
    text = small.content[0].text  # type: ignore[union-attr]
    assert real(text) <= 300 < real(whole.content[0].text)  # type: ignore[union-attr]
    assert small.structured_content["notes"][0].startswith("cut to the 300-token budget: stats.rows: first ")
    assert bad.is_error and "budget: must be an integer from 100 to 50,000" in bad.content[0].text  # type: ignore[union-attr]
