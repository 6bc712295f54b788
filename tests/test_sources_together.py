"""One project holding all three sources, as a user has it: list, compare across sources, crashed runs.

Built from the committed fixtures (real wandb and TensorBoard writers, see tests/data/make_*.py)
plus a JSONL log written the way a training script writes it. Known answers come from the
fixture scripts: wandb fin00001 logs train/loss = 1/(s+1) for s < 60; the tensorboardX run
logs train/loss = 2.5*exp(-s/20) + 0.05*sin(s) for s < 60; the killed run logs loss = 1/(s+1)
and prints "step N" every 100 steps until SIGKILL after step 300.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.tools import TOOLS_BY_NAME

DATA = Path(__file__).resolve().parent / "data"
OLD = 1_700_000_000  # file times in the past: nothing here is still being written


def _age(root: Path) -> None:
    for p in root.rglob("*"):
        os.utime(p, (OLD, OLD), follow_symlinks=False)


@pytest.fixture
def cfg(tmp_path: Path) -> RunwiseConfig:
    shutil.copytree(DATA / "wandb", tmp_path / "wandb", symlinks=True)
    shutil.copytree(DATA / "tensorboard" / "runs", tmp_path / "runs")
    (tmp_path / "logs").mkdir()
    rows = [{"config": {"optimizer": {"lr": 0.3}}}]
    rows += [{"step": s, "train/loss": 0.5 / (s + 1)} for s in range(60)]
    (tmp_path / "logs" / "script.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _age(tmp_path)
    runs.clear_cache()
    return RunwiseConfig.load(tmp_path, env={})


def call(tool: str, cfg: RunwiseConfig, **args: object) -> object:
    spec = TOOLS_BY_NAME[tool]
    return spec.handler(spec.input(**args), cfg)


def test_list_shows_every_source(cfg: RunwiseConfig) -> None:
    out = call("list_runs", cfg, limit=100)
    sources = {row[2] for row in out.runs.rows}  # type: ignore[attr-defined]
    assert sources == {"wandb", "tensorboard", "jsonl"}


def test_compare_across_wandb_tensorboard_and_jsonl(cfg: RunwiseConfig) -> None:
    out = call("compare_runs", cfg, runs=["wandb:fin00001", "tensorboard:txb", "jsonl:script"])
    table = {row[0]: row[1:4] for row in out.metrics.rows}  # type: ignore[attr-defined]
    wandb_final, tb_final, jsonl_final = table["train/loss"]
    assert wandb_final == pytest.approx(1 / 60, rel=1e-4)
    assert tb_final == pytest.approx(2.5 * math.exp(-59 / 20) + 0.05 * math.sin(59), rel=1e-4)
    assert jsonl_final == pytest.approx(0.5 / 60, rel=1e-4)
    diff = {row[0] for row in out.config_diff.rows}  # type: ignore[attr-defined]
    assert "optimizer.lr" in diff


def test_compare_at_the_same_step_across_sources(cfg: RunwiseConfig) -> None:
    out = call("compare_runs", cfg, runs=["fin00001@30", "runs/txb@30"])
    row = next(r for r in out.metrics.rows if r[0] == "train/loss")  # type: ignore[attr-defined]
    assert row[1] == pytest.approx(1 / 31, rel=1e-4)
    assert row[2] == pytest.approx(2.5 * math.exp(-30 / 20) + 0.05 * math.sin(30), rel=1e-4)
    assert row[-2:] == [30, 30]  # the steps the values come from


def test_summary_of_a_killed_wandb_run_says_how_it_ended(cfg: RunwiseConfig) -> None:
    out = call("summarize_run", cfg, run="kil00001")
    assert out.run.state == "crashed"  # type: ignore[attr-defined]
    last = out.run.last_step  # type: ignore[attr-defined]
    assert 100 <= last <= 300  # the unflushed tail of a killed run is lost
    assert f"crashed at step {last:,}" in out.ending  # type: ignore[attr-defined]
    assert "step 100" in out.ending  # the last console lines  # type: ignore[attr-defined]
