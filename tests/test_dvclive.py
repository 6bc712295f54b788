"""DVCLive source (runwise.parsers.dvclive) on fixtures written by dvclive itself.

tests/data/dvclive/make_fixtures.py wrote the project (a finished run, a run killed mid-training
with a half-written TSV line, a resumed run) and expected.json, what the files hold as read by the
standard library: these tests need no dvclive.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from runwise import runs
from runwise.config import FileConfig, RunwiseConfig
from runwise.model import Run
from runwise.parsers import SOURCES, dvclive, load_file
from tests.conftest import ask, ask_every_tool, copied_project, load_run

DATA = Path(__file__).parent / "data" / "dvclive"
EXPECTED: dict[str, Any] = json.loads((DATA / "expected.json").read_text())
RUN_IDS = sorted(EXPECTED)


@pytest.fixture
def dvc_cfg(tmp_path: Path) -> RunwiseConfig:
    return copied_project(tmp_path, DATA / "project")  # JSONL runs logs/run_a, logs/run_b next to the DVCLive runs


def _load(cfg: RunwiseConfig, run_id: str) -> Any:
    return load_run(dvclive, cfg, run_id)


def test_discovery_finds_default_and_nested_run_dirs(dvc_cfg: RunwiseConfig) -> None:
    entries = dvclive.discover(dvc_cfg, [])
    assert sorted(e.id for e in entries) == RUN_IDS == ["dvclive", "experiments/killed", "experiments/resumed"]
    assert all(e.source == "dvclive" for e in entries)
    assert "dvclive" in SOURCES


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_every_point_matches_the_files(dvc_cfg: RunwiseConfig, run_id: str) -> None:
    run = _load(dvc_cfg, run_id)
    want = EXPECTED[run_id]
    assert sorted(run.history) == sorted(want["metrics"])
    for name, m in want["metrics"].items():
        s = run.history[name]
        assert s.steps.tolist() == m["steps"]
        got = s.values.tolist()
        assert len(got) == len(m["values"])
        for g, w in zip(got, m["values"], strict=True):
            assert (math.isnan(g) and w == "nan") or g == float(w), (name, g, w)
    stamps = [t for m in want["metrics"].values() for t in m["timestamps"]]
    assert run.start_time == pytest.approx(min(stamps) / 1000)
    assert run.runtime == pytest.approx((max(stamps) - min(stamps)) / 1000)


def test_nan_is_kept(dvc_cfg: RunwiseConfig) -> None:
    acc = _load(dvc_cfg, "dvclive").history["val/acc"]
    assert acc.steps.tolist() == [1, 3, 5] and math.isnan(acc.values[1])


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_config_and_summary(dvc_cfg: RunwiseConfig, run_id: str) -> None:
    run = _load(dvc_cfg, run_id)
    want = EXPECTED[run_id]

    def flat(d: dict[str, Any], sep: str, pre: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, sep, pre + k + sep) if isinstance(v, dict) else {pre + k: v})
        return out

    assert run.config == flat(want["params"], ".")
    for k, v in flat(want["metrics.json"], "/").items():
        assert run.summary[k] == v


def test_state_unknown_when_old_running_when_new(dvc_cfg: RunwiseConfig) -> None:
    assert {_load(dvc_cfg, r).state for r in RUN_IDS} == {"unknown"}
    os.utime(dvc_cfg.root / "experiments" / "killed" / "metrics.json")
    assert _load(dvc_cfg, "experiments/killed").state == "running"


def test_killed_run_warns_about_the_half_written_line(dvc_cfg: RunwiseConfig) -> None:
    run = _load(dvc_cfg, "experiments/killed")
    assert EXPECTED["experiments/killed"]["metrics"]["train/loss"]["half_written_lines"] == 1
    assert run.truncated
    assert run.warnings == ["experiments/killed/plots/metrics/train/loss.tsv: skipped 1 line: 1 half-written last line"]
    assert not _load(dvc_cfg, "dvclive").warnings


def test_resumed_run_has_both_sessions(dvc_cfg: RunwiseConfig) -> None:
    run = _load(dvc_cfg, "experiments/resumed")
    assert run.history["loss"].steps.tolist() == list(range(10))
    assert run.summary["step"] == 9 and run.config["phase"] == 2


@pytest.mark.parametrize("ref", ["experiments/killed", "dvclive:experiments/killed"])
def test_references_by_relative_path(dvc_cfg: RunwiseConfig, ref: str) -> None:
    run = runs.resolve(ref, dvc_cfg)
    assert (run.source, run.id) == ("dvclive", "experiments/killed")


def test_load_file_sniffs_a_run_directory(dvc_cfg: RunwiseConfig) -> None:
    run = load_file(dvc_cfg.root / "experiments" / "resumed", dvc_cfg)
    assert run.source == "dvclive" and len(run.history["loss"]) == 10


def test_dvclive_dirs_config_and_env(tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(DATA / "project" / "experiments" / "resumed", root / "out" / "live")
    (root / "out" / "live" / "params.yaml").unlink()
    (root / "out" / "live" / "metrics.json").unlink()  # not found by the marker files: only by configuration
    assert dvclive.discover(RunwiseConfig(root, env={}), []) == []
    by_file = RunwiseConfig(root, FileConfig(dvclive_dirs=["out/live"]), env={})
    by_env = RunwiseConfig(root, env={"RUNWISE_DVCLIVE_DIR": "out/live"})
    for cfg in (by_file, by_env):
        assert [e.id for e in dvclive.discover(cfg, [])] == ["out/live"]


def test_list_runs_by_source(dvc_cfg: RunwiseConfig) -> None:
    out = ask("list_runs", dvc_cfg, source="dvclive")
    rows = out["runs"]["rows"]
    assert sorted(r[0] for r in rows) == RUN_IDS
    assert {r[2] for r in rows} == {"dvclive"}


def test_every_tool_on_a_dvclive_run(dvc_cfg: RunwiseConfig) -> None:
    ref = "dvclive:dvclive"
    ask_every_tool(dvc_cfg, ref, "dvclive")
    hist = ask("get_history", dvc_cfg, run=ref, keys=["train/loss"])
    loss = hist["metrics"]["train/loss"]
    assert loss["steps"] == list(range(6)) and loss["values"][:2] == [2.1, 1.7] and loss["source_points"] == 6
    stats = ask("get_stats", dvc_cfg, run=ref)
    assert "train/loss" in json.dumps(stats)
    best = ask("find_best_run", dvc_cfg, metric="train/loss", source="dvclive")
    assert [r[1] for r in best["ranking"]["rows"]] == ["dvclive", "experiments/killed"]


def test_compare_dvclive_with_a_jsonl_run(dvc_cfg: RunwiseConfig) -> None:
    out = ask("compare_runs", dvc_cfg, runs=["dvclive:dvclive", "jsonl:run_a"])
    assert out["runs"] == ["dvclive:dvclive", "jsonl:run_a"]
    rows = {r[0]: r for r in out["metrics"]["rows"]}
    assert rows["train/loss"][1] == 0.75536 and rows["train/loss"][2] is not None
    assert any(r[0] == "lr" for r in out["config_diff"]["rows"])


def _params(dvc_cfg: RunwiseConfig, text: str) -> Run:
    (dvc_cfg.root / "dvclive" / "params.yaml").write_text(text)
    return _load(dvc_cfg, "dvclive")


def test_tags_in_params_yaml_are_read_as_data_and_never_run(dvc_cfg: RunwiseConfig) -> None:
    marker = dvc_cfg.root / "executed"
    run = _params(dvc_cfg, f"cmd: !!python/object/apply:os.system ['touch {marker}']\nopt: !custom {{a: 1}}\nlr: 0.1\n")
    assert not marker.exists()
    assert run.config == {"cmd": [f"touch {marker}"], "opt.a": 1, "lr": 0.1}, run.config
    assert not [w for w in run.warnings if "params.yaml" in w]


def test_aliases_in_params_yaml_are_read(dvc_cfg: RunwiseConfig) -> None:
    assert _params(dvc_cfg, "base: &base\n  lr: 1\nrun: *base\n").config == {"base.lr": 1, "run.lr": 1}


def test_an_alias_bomb_in_params_yaml_is_refused_in_one_line(dvc_cfg: RunwiseConfig) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]  # 10**8 values
    run = _params(dvc_cfg, "\n".join(lines) + "\n")
    assert run.config == {}
    bad = [w for w in run.warnings if w.startswith("params.yaml: not read:")]
    assert len(bad) == 1 and "expands to over" in bad[0] and "\n" not in bad[0], run.warnings
    assert len(run.history) == 3  # the metrics are still read
    summary = ask("summarize_run", dvc_cfg, run="dvclive:dvclive")
    assert "params.yaml: not read" in json.dumps(summary)
