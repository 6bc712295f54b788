"""Outputs stay bounded by default, whatever the run's size: many metrics, long configs, long notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.tools import TOOLS_BY_NAME

LIMIT = 16_000  # characters of structured output: about 4,000 tokens


@pytest.fixture
def wide(tmp_path: Path) -> RunwiseConfig:
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
