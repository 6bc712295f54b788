"""Answers kept on disk per run version (runwise.answers): the handler's model, and the CLI's text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runwise import answers, cli, results, runs
from runwise.config import RunwiseConfig
from tests.conftest import ask, training_rows, write_jsonl


def _forget_memory() -> None:
    """What a new process starts with: nothing read, nothing computed."""
    runs.clear_cache()
    results.clear()


class _NoRead:
    """Makes every run read (and every handler's computation) fail, and counts the attempts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        monkeypatch.setattr(runs, "load", self)

    def __call__(self, *a: Any, **k: Any) -> Any:
        self.calls += 1
        raise AssertionError("the run was read")


def _cli(root: Path, *words: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["--root", str(root), *words]) == 0
    out: str = capsys.readouterr().out
    return out


# ---------------------------------------------------------------- the handlers' answers


def test_an_answer_is_kept_and_given_again_without_reading_the_run(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = RunwiseConfig.load(project)
    first = {t: ask(t, cfg, run="run_b") for t in ("get_stats", "summarize_run", "detect_anomalies")}
    assert answers.count(cfg.cache_dir) == 3
    _forget_memory()
    no_read = _NoRead(monkeypatch)
    again = {t: ask(t, RunwiseConfig.load(project), run="run_b") for t in first}
    assert again == first and no_read.calls == 0


def test_a_grown_run_is_answered_anew(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RunwiseConfig.load(project)
    before = ask("get_stats", cfg, run="run_a")
    log = project / "logs" / "run_a.jsonl"
    with log.open("a") as fp:
        fp.write(json.dumps({"step": 10_000, "train/loss": 0.125}) + "\n")
    old = time.time() - 3600
    os.utime(log, (old, old))
    after = ask("get_stats", cfg, run="run_a")
    assert after != before
    assert "10000" in json.dumps(after) and "10000" not in json.dumps(before)  # the appended row's step


def test_a_run_written_to_lately_is_not_kept(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "logs" / "fresh.jsonl", training_rows(steps=50, loss0=2.0, loss_end=1.0, lr=1e-3, seed=3))
    cfg = RunwiseConfig.load(tmp_path)
    ask("get_stats", cfg, run="fresh")
    assert answers.count(cfg.cache_dir) == 0  # a run may be running: its state changes with the clock


def test_tools_whose_answers_move_or_span_the_project_are_not_kept(project: Path) -> None:
    cfg = RunwiseConfig.load(project)
    ask("live_status", cfg, run="run_a")
    ask("list_runs", cfg)
    ask("find_best_run", cfg, metric="train/loss")
    assert answers.count(cfg.cache_dir) == 0


def test_another_configuration_is_another_answer(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RunwiseConfig.load(project)
    ask("detect_anomalies", cfg, run="run_b")
    changed = RunwiseConfig.load(project)
    changed.anomaly = changed.anomaly.model_copy(update={"spike_threshold": changed.anomaly.spike_threshold * 4})
    _forget_memory()
    no_read = _NoRead(monkeypatch)
    with pytest.raises(AssertionError, match="the run was read"):
        ask("detect_anomalies", changed, run="run_b")
    assert no_read.calls == 1


def test_a_kept_answer_that_is_no_answer_is_dropped(project: Path) -> None:
    cfg = RunwiseConfig.load(project)
    good = ask("get_stats", cfg, run="run_a")
    con = __import__("sqlite3").connect(answers.store_path(cfg.cache_dir))
    con.execute("UPDATE answers SET body = '{\"not\": \"stats\"}'")
    con.commit()
    con.close()
    _forget_memory()
    assert ask("get_stats", cfg, run="run_a") == good  # computed again, and kept again
    assert answers.count(cfg.cache_dir) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_store_is_started_again(project: Path, damage: str) -> None:
    cfg = RunwiseConfig.load(project)
    good = ask("get_stats", cfg, run="run_a")
    store = answers.store_path(cfg.cache_dir)
    for side in (store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        side.unlink(missing_ok=True)
    data = store.read_bytes()
    store.write_bytes({"garbage": os.urandom(4096), "truncated": data[: len(data) // 3], "empty": b""}[damage])
    _forget_memory()
    assert ask("get_stats", cfg, run="run_a") == good
    assert ask("get_stats", cfg, run="run_a") == good
    assert answers.count(cfg.cache_dir) == 1


# ---------------------------------------------------------------- the CLI's text


def test_the_cli_prints_a_kept_text_without_listing_or_reading(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _cli(project, "stats", "run_b", capsys=capsys)
    assert "train/loss" in first
    _forget_memory()
    monkeypatch.setattr(runs, "discover", _boom)
    monkeypatch.setattr(RunwiseConfig, "load", _boom)
    assert _cli(project, "stats", "run_b", capsys=capsys) == first
    with pytest.raises(AssertionError):  # another format is another text: made the usual way
        _cli(project, "--json", "stats", "run_b", capsys=capsys)


def _boom(*a: Any, **k: Any) -> Any:
    raise AssertionError("not the quick way")


def _calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from runwise import commands

    made: list[str] = []
    real = commands.call

    def call(tool: str, *a: Any, **k: Any) -> Any:
        made.append(tool)
        return real(tool, *a, **k)

    monkeypatch.setattr(commands, "call", call)
    return made


def _new_run(project: Path) -> None:
    write_jsonl(project / "logs" / "run_c.jsonl",
                training_rows(steps=20, loss0=2.0, loss_end=1.5, lr=1e-3, seed=5), age_s=600)


def _grow_other(project: Path) -> None:
    log = project / "logs" / "run_a.jsonl"
    with log.open("a") as fp:
        fp.write(json.dumps({"step": 999, "train/loss": 0.5}) + "\n")
    os.utime(log, (time.time() - 3600,) * 2)


def _new_directory(project: Path) -> None:
    (project / "runs").mkdir()  # a TensorBoard directory the listing looks for


def _config_file(project: Path) -> None:
    cfg = json.loads((project / "runwise.json").read_text())
    (project / "runwise.json").write_text(json.dumps({**cfg, "project_name": "renamed"}))


@pytest.mark.parametrize("change", [_new_run, _grow_other, _new_directory, _config_file],
                         ids=["new-run", "other-run-grew", "new-directory", "runwise.json"])
def test_a_kept_text_is_not_given_once_the_project_changed(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], change: Any
) -> None:
    """Any change the listing could see (a run found, renamed or grown; a directory made) or the
    configuration makes the text be made again; the same command unchanged is not."""
    made = _calls(monkeypatch)
    first = _cli(project, "stats", "run_b", capsys=capsys)
    _cli(project, "stats", "run_b", capsys=capsys)
    assert made == ["get_stats"]
    change(project)
    again = _cli(project, "stats", "run_b", capsys=capsys)
    assert made == ["get_stats", "get_stats"]
    assert again == first  # run_b itself did not change


def test_latest_follows_a_newer_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _cli(project, "stats", capsys=capsys)
    assert first.startswith("jsonl:run_b")  # the newer of the two
    write_jsonl(project / "logs" / "run_c.jsonl",
                training_rows(steps=20, loss0=2.0, loss_end=1.5, lr=1e-3, seed=5), age_s=300)
    assert _cli(project, "stats", capsys=capsys).startswith("jsonl:run_c")


def test_the_quick_way_imports_neither_numpy_nor_pydantic(project: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    code = ("import sys\nfrom runwise.cli import main\nrc = main(sys.argv[1:])\n"
            "print('modules', rc, 'numpy' in sys.modules, 'pydantic' in sys.modules)")
    outs = [subprocess.run([sys.executable, "-c", code, "--root", str(project), "stats", "run_b"],
                           capture_output=True, text=True, env=env, timeout=120, check=True).stdout for _ in range(2)]
    assert outs[0].splitlines()[-1] == "modules 0 True True"  # the first made it
    assert outs[1].splitlines()[-1] == "modules 0 False False"
    assert outs[0].splitlines()[:-1] == outs[1].splitlines()[:-1]


def test_cache_clear_removes_the_answers(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = RunwiseConfig.load(project)
    for run in ("run_a", "run_b"):
        _cli(project, "stats", run, capsys=capsys)
    assert answers.count(cfg.cache_dir) == 4  # per run: the model and the text
    _cli(project, "cache", "clear", "run_a", capsys=capsys)
    assert answers.count(cfg.cache_dir) == 2
    _cli(project, "cache", "clear", capsys=capsys)
    assert answers.count(cfg.cache_dir) == 0


def test_no_cache_keeps_nothing(project: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RUNWISE_NO_CACHE", "1")
    _cli(project, "stats", "run_a", capsys=capsys)
    assert not answers.store_path(RunwiseConfig.load(project).cache_dir).exists()


def test_the_store_is_held_to_its_size(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers, "MAX_ROWS", 2)
    cfg = RunwiseConfig.load(project)
    for keys in (["train/loss"], ["lr"], ["val/loss"]):
        ask("get_stats", cfg, run="run_a", keys=keys)
    assert answers.count(cfg.cache_dir) == 2
    _forget_memory()
    with pytest.MonkeyPatch.context() as m:
        no_read = _NoRead(m)
        ask("get_stats", cfg, run="run_a", keys=["val/loss"])  # the newest is kept
        assert no_read.calls == 0
