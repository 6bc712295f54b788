"""Hugging Face Trainer source (runwise.parsers.hf) on output directories the real Trainer wrote.

tests/data/hf/make_fixtures.py trained a tiny BERT with transformers.Trainer (a finished run, a run
killed at step 25, a killed run resumed to the end, a run with a NaN loss at step 12) and wrote
expected.json: what TrainerState.load_from_json reads back from every trainer_state.json. These
tests need neither transformers nor torch.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import pathlib
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from runwise import runs
from runwise.config import FileConfig, RunwiseConfig
from runwise.errors import RunwiseError, SourceError
from runwise.parsers import SOURCES, hf, load_file, sniff_source
from tests.conftest import ask, ask_every_tool, copied_project, load_run

DATA = Path(__file__).parent / "data" / "hf"
EXPECTED: dict[str, Any] = json.loads((DATA / "expected.json").read_text())
RUN_IDS = sorted(EXPECTED)
# the state each run is read from: the top-level one or the newest checkpoint, whichever has the higher global_step
CHOSEN = {"outputs/bert-tiny-lr1e-4": "checkpoint-20", "outputs/bert-tiny-lr3e-5": ".", "runs/exp 2": ".",
          "runs/exp-nan": "checkpoint-40"}
FINAL_KEYS = {"train_runtime", "train_loss", "train_samples_per_second", "train_steps_per_second", "total_flos"}


@pytest.fixture
def hf_cfg(tmp_path: Path) -> RunwiseConfig:
    return copied_project(tmp_path, DATA / "project")  # JSONL runs logs/run_a, logs/run_b beside the Trainer runs


def _load(cfg: RunwiseConfig, run_id: str) -> Any:
    return load_run(hf, cfg, run_id)


def _state(run_id: str) -> dict[str, Any]:
    state: dict[str, Any] = EXPECTED[run_id]["states"][CHOSEN[run_id]]
    return state


def _final(run_id: str) -> dict[str, Any]:
    return next((e for e in _state(run_id)["log_history"] if "train_runtime" in e), {})


def test_discovery_finds_every_output_directory(hf_cfg: RunwiseConfig) -> None:
    entries = hf.discover(hf_cfg, [])
    assert sorted(e.id for e in entries) == RUN_IDS
    assert RUN_IDS == ["outputs/bert-tiny-lr1e-4", "outputs/bert-tiny-lr3e-5", "runs/exp 2", "runs/exp-nan"]
    assert all(e.source == "hf" and e.name == e.id for e in entries)
    assert "hf" in SOURCES


def test_the_chosen_state_is_the_one_with_the_highest_global_step() -> None:
    for run_id, key in CHOSEN.items():
        states = EXPECTED[run_id]["states"]
        assert states[key]["global_step"] == max(s["global_step"] for s in states.values()), run_id


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_every_point_matches_the_trainer_state(hf_cfg: RunwiseConfig, run_id: str) -> None:
    run = _load(hf_cfg, run_id)
    want: dict[str, tuple[list[int], list[float]]] = {}
    for entry in _state(run_id)["log_history"]:
        if "train_runtime" in entry:
            continue
        for k, v in entry.items():
            if k != "step":
                want.setdefault(k, ([], []))[0].append(entry["step"])
                want[k][1].append(v)
    assert sorted(run.history) == sorted(want)
    assert {"loss", "grad_norm", "learning_rate", "epoch", "eval_loss", "eval_runtime"} <= set(want)
    for name, (steps, values) in want.items():
        s = run.history[name]
        assert s.steps.tolist() == steps, name
        got = s.values.tolist()
        assert len(got) == len(values)
        for g, w in zip(got, values, strict=True):
            assert (math.isnan(g) and math.isnan(w)) or g == w, (name, g, w)
    assert run.last_step == _state(run_id)["global_step"]
    assert run.segments == [f"{run_id}/{CHOSEN[run_id]}/trainer_state.json".replace("/./", "/")]


def test_nan_is_kept_at_its_step(hf_cfg: RunwiseConfig) -> None:
    loss = _load(hf_cfg, "runs/exp-nan").history["loss"]
    nan_steps = [int(s) for s, v in zip(loss.steps, loss.values, strict=True) if math.isnan(v)]
    assert nan_steps == [12]
    assert len(loss) == 20 and not math.isnan(loss.values[-1])


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_config_summary_and_runtime(hf_cfg: RunwiseConfig, run_id: str) -> None:
    run = _load(hf_cfg, run_id)
    st = _state(run_id)
    for k in ("train_batch_size", "num_train_epochs", "max_steps", "logging_steps", "eval_steps", "save_steps"):
        assert run.config[k] == st[k], k
    assert run.config["max_steps"] == 40
    model = EXPECTED[run_id]["files"][("" if CHOSEN[run_id] == "." else CHOSEN[run_id] + "/") + "config.json"]
    assert run.config["model.hidden_size"] == model["hidden_size"] == 16
    assert run.config["model.architectures"] == ["BertForSequenceClassification"]
    for k in ("best_metric", "best_global_step", "best_model_checkpoint", "global_step"):
        assert run.summary[k] == st[k], k
    assert run.summary["best_model_checkpoint"].startswith(run_id + "/checkpoint-")
    final = _final(run_id)
    assert {k: run.summary[k] for k in final if k != "step"} == {k: v for k, v in final.items() if k != "step"}
    assert run.runtime == final.get("train_runtime")
    for name, values in EXPECTED[run_id]["files"].items():
        if name.endswith("_results.json"):
            assert {k: run.summary[k] for k in values} == values, name


def test_final_entry_is_summary_not_points(hf_cfg: RunwiseConfig) -> None:
    run = _load(hf_cfg, "outputs/bert-tiny-lr3e-5")
    assert FINAL_KEYS <= set(_final("outputs/bert-tiny-lr3e-5")) and not FINAL_KEYS & set(run.history)
    assert run.runtime is not None and run.runtime > 0
    assert run.summary["eval_loss"] == EXPECTED["outputs/bert-tiny-lr3e-5"]["files"]["all_results.json"]["eval_loss"]


def test_states(hf_cfg: RunwiseConfig) -> None:
    got = {r: _load(hf_cfg, r).state for r in RUN_IDS}
    assert got == {"outputs/bert-tiny-lr1e-4": "unknown", "outputs/bert-tiny-lr3e-5": "finished",
                   "runs/exp 2": "finished", "runs/exp-nan": "finished"}  # exp-nan: step 40 of max_steps 40
    assert not _final("runs/exp-nan") and _state("runs/exp-nan")["global_step"] == 40


def test_killed_run_reads_its_newest_checkpoint(hf_cfg: RunwiseConfig) -> None:
    run = _load(hf_cfg, "outputs/bert-tiny-lr1e-4")
    assert sorted(EXPECTED["outputs/bert-tiny-lr1e-4"]["states"]) == ["checkpoint-10", "checkpoint-20"]
    assert run.last_step == 20 and run.runtime is None and not run.warnings
    ending = ask("summarize_run", hf_cfg, run="hf:outputs/bert-tiny-lr1e-4")["ending"]
    assert ending.startswith("unknown at step 20")


def test_a_killed_run_still_writing_is_running_with_an_eta(hf_cfg: RunwiseConfig) -> None:
    d = hf_cfg.root / "outputs" / "bert-tiny-lr1e-4"
    now = time.time()
    for n, age in ((10, 100.0), (20, 10.0)):  # checkpoint-10 90 s before checkpoint-20: 1/9 step per second
        for f in (d / f"checkpoint-{n}").iterdir():
            os.utime(f, (now - age, now - age))
    run = _load(hf_cfg, "outputs/bert-tiny-lr1e-4")
    assert run.state == "running" and run.summary["_steps_per_sec"] == pytest.approx(10 / 90)
    live = ask("live_status", hf_cfg, run="hf:outputs/bert-tiny-lr1e-4")
    assert "step 20" in live["summary"] and "ETA 3m00s to step 40" in live["summary"], live["summary"]
    assert live["steps_per_s"] == pytest.approx(10 / 90, rel=1e-3)


def test_a_long_checkpoint_interval_widens_the_running_window(hf_cfg: RunwiseConfig) -> None:
    d = hf_cfg.root / "outputs" / "bert-tiny-lr1e-4"
    now = time.time()
    for n, age in ((10, 1300.0), (20, 500.0)):  # 800 s between checkpoints; the last one 500 s ago
        os.utime(d / f"checkpoint-{n}" / "trainer_state.json", (now - age, now - age))
    assert _load(hf_cfg, "outputs/bert-tiny-lr1e-4").state == "running"
    os.utime(d / "checkpoint-20" / "trainer_state.json", (now - 1250, now - 1250))
    assert _load(hf_cfg, "outputs/bert-tiny-lr1e-4").state == "unknown"


def test_resumed_run_continues_its_log_history(hf_cfg: RunwiseConfig) -> None:
    run = _load(hf_cfg, "runs/exp 2")
    assert run.history["loss"].steps.tolist() == list(range(2, 41, 2))
    assert run.history["eval_loss"].steps.tolist() == [10, 20, 30, 40]
    # the resumed session's final entry: its runtime is that of the second train() call alone
    assert run.runtime == _final("runs/exp 2")["train_runtime"] and run.state == "finished"


def test_a_top_level_state_older_than_the_newest_checkpoint_loses(hf_cfg: RunwiseConfig) -> None:
    d = hf_cfg.root / "runs" / "exp 2"
    shutil.copy(d / "checkpoint-30" / "trainer_state.json", d / "trainer_state.json")
    run = _load(hf_cfg, "runs/exp 2")
    assert run.segments == ["runs/exp 2/checkpoint-40/trainer_state.json"] and run.last_step == 40
    (d / "checkpoint-40" / "trainer_state.json").unlink()
    (d / "checkpoint-30" / "trainer_state.json").unlink()
    run = _load(hf_cfg, "runs/exp 2")
    assert run.segments == ["runs/exp 2/trainer_state.json"] and run.last_step == 30


def test_summarize_run_shows_the_trainers_best_checkpoint(hf_cfg: RunwiseConfig) -> None:
    st = _state("runs/exp 2")
    out = ask("summarize_run", hf_cfg, run="hf:runs/exp 2")
    assert out["run"]["state"] == "finished" and out["run"]["last_step"] == 40
    want = f"best_metric {st['best_metric']:.4g} at step {st['best_global_step']} ({st['best_model_checkpoint']})"
    assert want in out["summary"], out["summary"]
    assert "runs/exp 2/checkpoint-40" in out["summary"]


@pytest.mark.parametrize("ref", ["runs/exp 2", "hf:runs/exp 2"])
def test_references_by_relative_path(hf_cfg: RunwiseConfig, ref: str) -> None:
    run = runs.resolve(ref, hf_cfg)
    assert (run.source, run.id) == ("hf", "runs/exp 2")


def test_load_file_an_output_dir_a_checkpoint_or_a_state_file(hf_cfg: RunwiseConfig) -> None:
    d = hf_cfg.root / "outputs" / "bert-tiny-lr3e-5"
    assert sniff_source(d) == "hf" and sniff_source(d / "checkpoint-30") == "hf"
    assert load_file(d, hf_cfg).last_step == 40
    ck = load_file(d / "checkpoint-30", hf_cfg)
    assert ck.last_step == 30 and ck.id == "outputs/bert-tiny-lr3e-5/checkpoint-30"
    assert load_file(d / "checkpoint-30" / "trainer_state.json", hf_cfg).last_step == 30


def test_hf_dirs_config_and_env(tmp_path: Path) -> None:
    root, out = tmp_path / "p", tmp_path / "scratch"
    root.mkdir()
    shutil.copytree(DATA / "project" / "runs" / "exp-nan", out / "exp-nan")
    assert hf.discover(RunwiseConfig(root, env={}), []) == []
    by_file = RunwiseConfig(root, FileConfig(hf_dirs=[str(out)]), env={})
    by_env = RunwiseConfig(root, env={"RUNWISE_HF_DIR": str(out)})
    for cfg in (by_file, by_env):
        entries = hf.discover(cfg, [])
        assert [e.id for e in entries] == [str(out.resolve() / "exp-nan")]
        assert hf.load(entries[0], cfg).last_step == 40


def test_pruned_directories_are_not_searched(hf_cfg: RunwiseConfig) -> None:
    for name in ("wandb", "node_modules", ".venv"):
        shutil.copytree(DATA / "project" / "runs" / "exp-nan", hf_cfg.root / name / "x" / "exp-nan")
    assert sorted(e.id for e in hf.discover(hf_cfg, [])) == RUN_IDS


def test_list_runs_by_source(hf_cfg: RunwiseConfig) -> None:
    rows = ask("list_runs", hf_cfg, source="hf")["runs"]["rows"]
    assert sorted(r[0] for r in rows) == RUN_IDS
    assert {r[2] for r in rows} == {"hf"}


def test_cli_lists_only_hf_runs(hf_cfg: RunwiseConfig, capsys: pytest.CaptureFixture[str]) -> None:
    from runwise import cli

    assert cli.main(["--root", str(hf_cfg.root), "--format", "json", "list", "--source", "hf"]) == 0
    out = capsys.readouterr().out
    assert "runs/exp 2" in out and "bert-tiny-lr3e-5" in out and "run_a" not in out


def test_every_tool_on_an_hf_run(hf_cfg: RunwiseConfig) -> None:
    ref = "hf:outputs/bert-tiny-lr3e-5"
    ask_every_tool(hf_cfg, ref, "bert-tiny-lr3e-5")
    hist = ask("get_history", hf_cfg, run=ref, keys=["eval_loss"])
    ev = hist["metrics"]["eval_loss"]
    want = [e for e in _state("outputs/bert-tiny-lr3e-5")["log_history"] if "eval_loss" in e]
    assert ev["steps"] == [e["step"] for e in want] == [10, 20, 30, 40, 40]  # the last: evaluate() after train()
    assert ev["source_points"] == 5
    config = json.dumps(ask("get_config", hf_cfg, run=ref))
    assert "max_steps" in config and "model.hidden_size" in config
    best = ask("find_best_run", hf_cfg, metric="eval_loss", source="hf")
    assert {r[1] for r in best["ranking"]["rows"]} == set(RUN_IDS)


def test_compare_an_hf_run_with_a_jsonl_run(hf_cfg: RunwiseConfig) -> None:
    out = ask("compare_runs", hf_cfg, runs=["hf:runs/exp 2", "jsonl:run_a"])
    assert out["runs"] == ["hf:runs/exp 2", "jsonl:run_a"]
    rows = {r[0]: r for r in out["metrics"]["rows"]}
    assert any(k in rows for k in ("loss", "eval_loss", "train/loss"))
    assert any(r[0] == "max_steps" for r in out["config_diff"]["rows"])


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_newest_state_falls_back_with_a_warning(hf_cfg: RunwiseConfig, damage: str) -> None:
    d = hf_cfg.root / "outputs" / "bert-tiny-lr1e-4"
    f = d / "checkpoint-20" / "trainer_state.json"
    f.write_bytes(b"" if damage == "empty" else f.read_bytes()[:700])
    run = _load(hf_cfg, "outputs/bert-tiny-lr1e-4")
    why = "empty file" if damage == "empty" else "cut short (ends mid-JSON)"
    assert run.warnings == [f"outputs/bert-tiny-lr1e-4/checkpoint-20/trainer_state.json: not read: {why}; "
                            "read outputs/bert-tiny-lr1e-4/checkpoint-10/trainer_state.json (step 10) instead"]
    assert run.last_step == 10 and len(run.history["loss"]) == 5
    notes = ask("summarize_run", hf_cfg, run="hf:outputs/bert-tiny-lr1e-4")["notes"]
    assert any("not read: " + why in n for n in notes)


@pytest.mark.parametrize("damage", ["empty", "truncated", "not an object"])
def test_no_readable_state_is_a_one_line_error(hf_cfg: RunwiseConfig, damage: str) -> None:
    d = hf_cfg.root / "outputs" / "bert-tiny-lr1e-4"
    for n in (10, 20):
        f = d / f"checkpoint-{n}" / "trainer_state.json"
        f.write_bytes({"empty": b"  \n", "truncated": f.read_bytes()[:-40], "not an object": b"[1, 2]"}[damage])
    with pytest.raises(SourceError) as err:
        _load(hf_cfg, "outputs/bert-tiny-lr1e-4")
    msg = str(err.value)
    assert msg.startswith("outputs/bert-tiny-lr1e-4/checkpoint-20/trainer_state.json: not read: ")
    assert "\n" not in msg and "Traceback" not in msg
    with pytest.raises(RunwiseError) as tool_err:
        ask("summarize_run", hf_cfg, run="hf:outputs/bert-tiny-lr1e-4")
    assert "\n" not in str(tool_err.value) and "not read" in str(tool_err.value)


class _Bomb:  # unpickled, it would create a directory
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.marker,))


def test_training_args_bin_is_never_opened(hf_cfg: RunwiseConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = hf_cfg.root / "unpickled"
    for d in ("outputs/bert-tiny-lr3e-5", "outputs/bert-tiny-lr3e-5/checkpoint-40"):
        (hf_cfg.root / d / "training_args.bin").write_bytes(pickle.dumps(_Bomb(marker)))
    opened: list[str] = []
    real_open, real_path_open = builtins.open, pathlib.Path.open

    def spy_open(file: Any, *a: Any, **k: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *a, **k)

    def spy_path_open(self: Path, *a: Any, **k: Any) -> Any:
        opened.append(str(self))
        return real_path_open(self, *a, **k)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(pathlib.Path, "open", spy_path_open)
    run = _load(hf_cfg, "outputs/bert-tiny-lr3e-5")
    ask("get_config", hf_cfg, run="hf:outputs/bert-tiny-lr3e-5")
    load_file(hf_cfg.root / "outputs/bert-tiny-lr3e-5/checkpoint-40", hf_cfg)
    assert any(p.endswith("trainer_state.json") for p in opened)  # the spy sees what is read
    assert not [p for p in opened if p.endswith(".bin")]
    assert not marker.exists() and run.last_step == 40


def test_links_out_of_the_roots_are_noted_only_under_hf_dirs(tmp_path: Path) -> None:
    root, outside = tmp_path / "p", tmp_path / "elsewhere"
    shutil.copytree(DATA / "project" / "runs" / "exp-nan", outside / "exp-nan")
    (root / "outs").mkdir(parents=True)
    (root / "outs" / "linked").symlink_to(outside)
    (root / "top-link").symlink_to(outside)
    notes: list[str] = []
    assert hf.discover(RunwiseConfig(root, FileConfig(hf_dirs=["outs"]), env={}), notes) == []
    assert notes == ["hf: skipped 1 link to outside the project roots (outs/linked); to read it, name the "
                     "target's directory in hf_dirs in runwise.json"]


def test_a_checkpoint_linked_from_outside_the_roots_is_not_read(hf_cfg: RunwiseConfig, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(hf_cfg.root / "runs" / "exp-nan" / "checkpoint-40", outside / "checkpoint-90")
    (hf_cfg.root / "runs" / "exp-nan" / "checkpoint-90").symlink_to(outside / "checkpoint-90")
    run, _ = runs.get_run("hf:runs/exp-nan", hf_cfg)
    assert run.segments == ["runs/exp-nan/checkpoint-40/trainer_state.json"]


def test_entries_without_a_step_are_skipped_and_counted(hf_cfg: RunwiseConfig) -> None:
    f = hf_cfg.root / "runs" / "exp-nan" / "checkpoint-40" / "trainer_state.json"
    data = json.loads(f.read_text())
    data["log_history"][:0] = [{"loss": 1.0}, "not an entry", {"loss": 2.0, "step": "3"}]
    f.write_text(json.dumps(data))
    run = _load(hf_cfg, "runs/exp-nan")
    assert run.warnings == ["runs/exp-nan/checkpoint-40/trainer_state.json: skipped 3 log_history entries "
                            "without an integer step"]
    assert len(run.history["loss"]) == 20


def test_train_ending_before_max_steps_is_finished_with_a_note(hf_cfg: RunwiseConfig) -> None:
    f = hf_cfg.root / "outputs" / "bert-tiny-lr3e-5" / "trainer_state.json"
    f.write_text(f.read_text().replace('"max_steps": 40', '"max_steps": 100'))  # as early stopping leaves it
    run = _load(hf_cfg, "outputs/bert-tiny-lr3e-5")
    assert run.state == "finished" and run.config["max_steps"] == 100
    assert run.notes == "train() ended at step 40 of max_steps 100 (stopped early)"
