"""The Python API: RunAnalyzer over the tool handlers, and a cheap `import runwise`."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

import runwise
from runwise import RunAnalyzer, RunwiseConfig
from runwise.errors import RunNotFound, UnknownMetric
from tests.conftest import SPIKE_STEP


@pytest.fixture
def analyzer(cfg: RunwiseConfig) -> RunAnalyzer:
    return RunAnalyzer(cfg)


def test_import_runwise_is_cheap() -> None:
    code = (
        "import sys, runwise; "
        "heavy = [m for m in ('runwise.api', 'runwise.tools', 'numpy', 'pydantic') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_exports() -> None:
    assert isinstance(runwise.__version__, str) and runwise.__version__
    assert "RunAnalyzer" in dir(runwise)
    with pytest.raises(AttributeError):
        runwise.NoSuchThing  # noqa: B018


def test_default_config_comes_from_the_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWISE_PROJECT_ROOT", str(project))
    assert RunAnalyzer().config.root == project.resolve()


def test_list_runs_and_latest(analyzer: RunAnalyzer) -> None:
    rows = analyzer.list_runs()
    assert [r["id"] for r in rows] == ["run_b", "run_a"]
    assert rows[0]["metric"] == "train/loss" and isinstance(rows[0]["final"], float)
    latest = analyzer.get_latest_run()
    assert latest is not None and latest["id"] == "run_b"
    assert "run_a" in analyzer.format_run_list()
    table = analyzer.format_run_list(rows[1:])
    assert "run_a" in table and "run_b" not in table


def test_find_run(analyzer: RunAnalyzer) -> None:
    found = analyzer.find_run("run_a")
    assert found is not None
    assert (
        found["id"] == "run_a"
        and found["source"] == "jsonl"
        and found["notes"] == "baseline at the default lr"
    )
    assert analyzer.find_run("no_such_run") is None


def test_summarize_and_compare(analyzer: RunAnalyzer) -> None:
    text = analyzer.summarize_run("run_b")
    assert text.startswith("jsonl:run_b") and f"step {SPIKE_STEP}" in text
    text = analyzer.compare_runs("run_a", "run_b", prefix="val/", config_diff=False)
    assert "val/loss" in text and "train/loss" not in text and "config differences" not in text
    with pytest.raises(RunNotFound):
        analyzer.summarize_run("no_such_run")


def test_config(analyzer: RunAnalyzer) -> None:
    config = analyzer.get_config("run_b")
    assert config["lr"] == 0.001 and config["warmup"] == 20 and config["optimizer.name"] == "adam"


def test_best_run(analyzer: RunAnalyzer) -> None:
    rows = analyzer.find_best_run("val/loss")
    assert [r["id"] for r in rows] == ["run_b", "run_a"]
    assert rows[0]["rank"] == 1 and rows[0]["best"] == pytest.approx(0.4883, rel=1e-3)
    assert "run_b" in analyzer.format_best_run(rows)
    assert analyzer.find_best_run("grad_norm", higher_is_better=True, top_n=1)[0]["rank"] == 1
    with pytest.raises(UnknownMetric):
        analyzer.find_best_run("nope")


def test_history(analyzer: RunAnalyzer) -> None:
    hist = analyzer.get_history("run_a", keys="val/loss")
    assert list(hist) == ["val/loss"]
    assert hist["val/loss"]["steps"] == list(range(0, 200, 10))
    assert hist["val/loss"]["source_points"] == 20
    small = analyzer.get_history("run_b", keys=["train/loss"], max_points=16)["train/loss"]
    assert len(small["steps"]) <= 16 and SPIKE_STEP in small["steps"]
    assert all(isinstance(v, float) and math.isfinite(v) for v in small["values"])
    with pytest.raises(UnknownMetric):
        analyzer.get_history(keys="nope")


def test_stats_and_keys(analyzer: RunAnalyzer) -> None:
    stats = analyzer.get_history_stats("run_b", keys="train/loss,val/loss")
    assert list(stats) == ["train/loss", "val/loss"]
    assert stats["train/loss"]["max_step"] == SPIKE_STEP and stats["train/loss"]["points"] == 300
    assert analyzer.list_available_keys("run_a") == ["grad_norm", "lr", "train/loss", "val/loss"]
