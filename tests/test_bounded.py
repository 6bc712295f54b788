"""Outputs stay bounded by default, whatever the run's size: many metrics, long configs, long notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.tools import TOOLS_BY_NAME
from runwise.tools._bound import (
    NOTE_ROOM,
    TOKEN_NOTE_ROOM,
    answer_size,
    answer_tokens,
    fit,
    fit_tokens,
    model_paths,
)
from runwise.tools._common import Cell, Table
from runwise.tools.metrics import GetHistoryOutput, GetStatsOutput, MetricHistory
from runwise.tools.run import RunContextOutput, RunHeader

LIMIT = 16_000  # characters of structured output: about 4,000 tokens


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> RunwiseConfig:
    """Two runs of 2,000 metrics with long configs, notes and tags; written once, only read by the tests."""
    tmp_path = tmp_path_factory.mktemp("wide")
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("wide_a", "wide_b"):
        config = {f"section_{i}": {"param": "x" * 500, "value": i} for i in range(400)}
        lines = [json.dumps({"config": config}),
                 json.dumps({"_meta": {"notes": "n" * 20_000, "tags": [f"t{i}" for i in range(500)]}})]
        for step in range(300):
            lines.append(json.dumps({"step": step, **{f"group{g}/metric_{m}": step * 0.1 + m
                                                      for g in range(20) for m in range(100)}}))
        (logs / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    runs.clear_cache()
    return RunwiseConfig.load(tmp_path, env={})


ARGS = {
    "list_runs": {}, "summarize_run": {}, "compare_runs": {"runs": ["wide_a", "wide_b"]}, "get_history": {},
    "get_stats": {}, "get_stability": {}, "find_best_run": {"metric": "group0/metric_0"}, "get_config": {},
    "get_run_context": {}, "list_keys": {}, "live_status": {}, "detect_anomalies": {},
}


@pytest.mark.parametrize("tool", sorted(ARGS))
def test_default_output_is_bounded(wide: RunwiseConfig, tool: str) -> None:
    spec = TOOLS_BY_NAME[tool]
    out = spec.handler(spec.input(**ARGS[tool]), wide)
    size = len(out.model_dump_json())
    assert size < LIMIT, f"{tool}: {size} characters"


def test_examples_summaries_are_short() -> None:
    cfg = RunwiseConfig.load(Path(__file__).resolve().parents[1] / "examples", env={})
    spec = TOOLS_BY_NAME["summarize_run"]
    for ref in ("baseline", "lr_warmup"):
        out = spec.handler(spec.input(run=ref), cfg)
        assert len(json.dumps(out.model_dump(mode="json"), ensure_ascii=False)) <= 1500


# ---------------------------------------------------------------- the largest answers


CAP = 40_000  # characters of structured output, whatever the arguments (runwise.tools._bound.ANSWER_CHARS)
GROUPS = [f"group{g}" for g in range(20)]
LARGEST = {
    "list_runs": {"limit": 500}, "summarize_run": {"keys": GROUPS, "max_metrics": 50},
    "compare_runs": {"runs": ["wide_a", "wide_b@150"], "max_metrics": 200, "group": True},
    "get_history": {"keys": GROUPS, "max_points": 5000}, "get_stats": {"keys": GROUPS, "max_metrics": 500},
    "get_stability": {"keys": GROUPS}, "find_best_run": {"metric": "group0/metric_0", "top_n": 50},
    "get_config": {"max_keys": 2000}, "get_run_context": {}, "list_keys": {"max_keys": 5000},
    "live_status": {"keys": GROUPS, "output_lines": 50}, "detect_anomalies": {"keys": GROUPS, "max_anomalies": 200},
}


@pytest.mark.parametrize("tool", sorted(LARGEST))
def test_largest_answer_is_capped_and_says_so(wide: RunwiseConfig, tool: str) -> None:
    spec = TOOLS_BY_NAME[tool]
    out = spec.run(spec.input(**LARGEST[tool]), wide)
    size = answer_size(out)
    assert size <= CAP, f"{tool}: {size} characters"
    uncut = spec.handler(spec.input(**LARGEST[tool]), wide)
    if answer_size(uncut) > CAP:  # the guard cut it: the answer says so
        assert any(n.startswith("answer cut to its 40,000-character cap") for n in out.model_dump()["notes"])


def test_guard_keeps_the_rows_that_fit_and_names_what_it_cut() -> None:
    rows: list[list[Cell]] = [[f"metric_{i:04d}", i, 0.5, i] for i in range(3000)]
    out = GetStatsOutput(run="r", stats=Table(columns=["metric", "points", "final", "final_step"], rows=rows),
                         omitted=0, notes=["run note"])
    cut = fit(out)
    kept = len(cut.stats.rows)
    assert answer_size(cut) <= CAP < answer_size(out)
    assert cut.stats.rows == rows[:kept]  # the first rows, whole
    one_more = out.model_copy(update={"stats": Table(columns=out.stats.columns, rows=rows[: kept + 1])})
    assert answer_size(one_more) > CAP - NOTE_ROOM  # as many rows as fit, not just half
    assert cut.notes[0].startswith(f"answer cut to its 40,000-character cap (stats.rows: first {kept:,} of 3,000)")
    assert cut.notes[1:] == ["run note"]


def test_guard_drops_whole_series_never_their_tails() -> None:
    series = {f"m{i}": MetricHistory(steps=list(range(2000)), values=[0.123456] * 2000, source_points=2000,
                                     method="all") for i in range(8)}
    out = GetHistoryOutput(run="r", note="", metrics=series, notes=[])
    cut = fit(out)
    assert answer_size(cut) <= CAP
    assert 0 < len(cut.metrics) < 8
    assert all(m.steps == list(range(2000)) and len(m.values) == 2000 for m in cut.metrics.values())
    assert "metrics: first" in cut.notes[0]


def test_guard_drops_a_series_too_long_for_the_cap_rather_than_cut_it() -> None:
    long = MetricHistory(steps=list(range(6000)), values=[0.123456] * 6000, source_points=6000, method="all")
    out = GetHistoryOutput(run="r", note="", metrics={"m": long}, notes=[])
    cut = fit(out)
    assert answer_size(cut) <= CAP and cut.metrics == {}
    assert cut.notes[0].startswith("answer cut to its 40,000-character cap (metrics: first 0 of 1)")


def test_guard_cuts_huge_strings_first() -> None:
    out = RunContextOutput(
        run=RunHeader(id="r", name="n" * 100_000, source="jsonl", state="finished", last_step=1, runtime_s=None,
                      started=None),
        path="p", project="", entity="", group="", job_type="", tags=[], notes="", segments=[], exit_code=None)
    cut = fit(out)
    assert answer_size(cut) < 1_500 and cut.run.name == "n" * 999 + "…"


def test_small_answers_pass_unchanged() -> None:
    out = GetStatsOutput(run="r", stats=Table(columns=["metric"], rows=[["a"]]), omitted=0, notes=[])
    assert fit(out) is out


# ---------------------------------------------------------------- token budgets


def test_budget_keeps_the_rows_that_fit_and_names_what_it_left_out() -> None:
    rows: list[list[Cell]] = [[f"metric_{i:04d}", i, 0.5, i] for i in range(300)]
    out = GetStatsOutput(run="r", stats=Table(columns=["metric", "points", "final", "final_step"], rows=rows),
                         omitted=0, notes=["run note"])
    cut = fit_tokens(out, 500, ask="keys=")
    kept = len(cut.stats.rows)
    assert answer_tokens(cut) <= 500 < answer_tokens(out)
    assert 0 < kept < 300 and cut.stats.rows == rows[:kept]  # the first rows, whole
    more = out.model_copy(update={"stats": Table(columns=out.stats.columns, rows=rows[: kept + 5]), "notes": []})
    assert answer_tokens(more) > 500 - TOKEN_NOTE_ROOM  # about as many rows as fit, not just half
    assert cut.notes == [f"cut to the 500-token budget: stats.rows: first {kept} of 300; for more: budget=N "
                         "(up to 50,000) or keys=", "run note"]
    assert fit_tokens(out, 50_000) is out


def test_budget_drops_whole_series_never_their_tails() -> None:
    series = {f"m{i}": MetricHistory(steps=list(range(100)), values=[0.1234] * 100, source_points=100,
                                     method="all") for i in range(8)}
    out = GetHistoryOutput(run="r", note="", metrics=series, notes=[])
    cut = fit_tokens(out, 1_000)
    assert answer_tokens(cut) <= 1_000 and 0 < len(cut.metrics) < 8
    assert all(m.steps == list(range(100)) and len(m.values) == 100 for m in cut.metrics.values())
    assert cut.notes[0].startswith("cut to the 1,000-token budget: metrics: first ")


def test_default_budget_yields_to_an_explicit_size() -> None:
    spec = TOOLS_BY_NAME["get_history"]
    assert spec.budget_for(spec.input()) == spec.budget
    assert spec.budget_for(spec.input(max_points=500)) is None  # asked for a size: gets it
    assert spec.budget_for(spec.input(max_points=500, budget=300)) == 300
    stats = TOOLS_BY_NAME["get_stats"]
    assert stats.budget_for(stats.input(max_metrics=30)) == stats.budget  # the default value is no request


def test_budget_never_cuts_the_fields_of_a_sub_model() -> None:
    header = RunHeader(id="r", name="run name " * 40, source="jsonl", state="finished", last_step=1, runtime_s=None,
                       started=None)
    out = RunContextOutput(run=header, path="p", project="", entity="", group="", job_type="",
                           tags=["a", "b"], notes="", segments=[], exit_code=None)
    cut = fit_tokens(out, 100)  # the header is the largest mapping: its long name is cut, never its fields
    assert cut.run.id == "r" and cut.run.state == "finished" and cut.run.name == header.name[:39] + "…"
    assert answer_tokens(cut) <= 100
    assert "run" in model_paths(out) and "tags" not in model_paths(out)
