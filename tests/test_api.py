"""The Python API: the original runwise README's calls, unchanged, on examples/; typed answers; cheap import."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

import runwise
from runwise import RunAnalyzer, RunwiseConfig
from runwise.api import RankedRun, RunInfo
from runwise.errors import RunNotFound, UnknownMetric
from runwise.tools.metrics import GetStatsInput, GetStatsOutput
from runwise.tools.run import ListKeysInput

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KEYS = ["grad_norm", "lr", "perf/samples_per_sec", "train/loss", "val/acc", "val/loss"]


@pytest.fixture
def in_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the original README runs: in the project directory, no project variables set."""
    monkeypatch.chdir(EXAMPLES)
    monkeypatch.delenv("RUNWISE_PROJECT_ROOT", raising=False)
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)


@pytest.fixture
def analyzer() -> RunAnalyzer:
    return RunAnalyzer(RunwiseConfig.load(EXAMPLES))


def first_column(text: str) -> list[str]:
    """The first column of the first table in a text answer (after its header and rule)."""
    block = next(b for b in text.split("\n\n") if "\n--" in b)
    return [line.split()[0] for line in block.splitlines()[2:]]


def test_import_runwise_is_cheap() -> None:
    code = (
        "import sys, runwise; "
        "heavy = [m for m in ('runwise.api', 'runwise.tools', 'numpy', 'pydantic', 'importlib.metadata') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_exports() -> None:
    assert isinstance(runwise.__version__, str) and runwise.__version__
    assert "RunAnalyzer" in dir(runwise) and "__version__" in dir(runwise)
    with pytest.raises(AttributeError):
        runwise.NoSuchThing  # noqa: B018


# ---------------------------------------------------------------- the original README, call by call


def test_the_original_readme_python_api(in_examples: None) -> None:
    # Auto-detect configuration from project
    analyzer = RunAnalyzer()
    assert analyzer.config.root == EXAMPLES.resolve() and analyzer.config.project_name == "runwise example"

    # List runs
    runs = analyzer.list_runs(limit=10)
    assert [(r.id, r.source, r.state, r.last_step, r.metric) for r in runs] == [
        ("lr_warmup", "jsonl", "finished", 4000, "train/loss"), ("baseline", "jsonl", "finished", 4000, "train/loss")]
    assert runs[0].final == pytest.approx(0.367) and runs[1].final == pytest.approx(0.4286)
    listing = analyzer.format_run_list(runs)
    assert first_column(listing) == ["lr_warmup", "baseline"] and "0.4286" in listing

    # Analyze latest
    run = analyzer.get_latest_run()
    assert run is not None and run.id == "lr_warmup"
    summary = analyzer.summarize_run(run)
    verdict, headline = summary.splitlines()[:2]  # the verdict leads, then the run's line
    assert verdict.startswith("healthy: no findings") and headline.startswith("jsonl:lr_warmup: finished, 4,000 steps")

    # Compare runs
    run_a = analyzer.find_run("baseline")
    run_b = analyzer.find_run("lr_warmup")
    assert run_a is not None and run_b is not None
    assert run_a.notes == "constant learning rate, no warm-up" and run_a.tags == ("baseline",)
    comparison = analyzer.compare_runs(run_a, run_b)
    assert "lr_warmup 0.419 vs baseline 0.491" in comparison.splitlines()[0]
    assert "schedule.warmup_steps" in comparison

    # Get hyperparameters/config
    config = analyzer.get_config(run)
    assert config.startswith("jsonl:lr_warmup")
    assert [line.split() for line in config.splitlines() if line.startswith("schedule.")] == [
        ["schedule.decay", "cosine"], ["schedule.warmup_steps", "200"]]

    # Find best run by metric
    best, ranked = analyzer.find_best_run("val/loss", limit=10, higher_is_better=False)
    assert best is not None and best.id == "lr_warmup"
    assert [(r.rank, r.run.id, r.step) for r in ranked] == [(1, "lr_warmup", 3000), (2, "baseline", 3800)]
    assert ranked[0].value == pytest.approx(0.4116) and ranked[1].final == pytest.approx(0.49103)
    text = analyzer.format_best_run("val/loss")
    assert text.startswith("best by best val/loss (lowest): jsonl:lr_warmup = 0.4116 at step 3,000")

    # Get downsampled history (efficient for large runs)
    history_csv = analyzer.get_history(run, ["loss", "val_loss"], samples=500)
    rows = list(csv.DictReader(io.StringIO(history_csv)))
    assert history_csv.startswith("metric,step,value\n")
    assert [sum(r["metric"] == m for r in rows) for m in ("train/loss", "val/loss")] == [401, 81]  # all points

    # Get statistics only (most token-efficient)
    stats = analyzer.get_history_stats(run, ["loss", "val_loss"])
    assert stats.startswith("jsonl:lr_warmup") and first_column(stats) == ["train/loss", "val/loss"]

    # List available keys when you don't know what's logged
    keys = analyzer.list_available_keys(run)
    assert first_column(keys) == KEYS


def test_a_given_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an empty directory: only the given configuration finds the runs
    analyzer = RunAnalyzer(RunwiseConfig.load(EXAMPLES))
    assert [r.id for r in analyzer.list_runs()] == ["lr_warmup", "baseline"]
    assert RunAnalyzer().list_runs() == []
    assert RunAnalyzer().get_latest_run() is None


@pytest.mark.parametrize(
    "method",
    ["summarize_run", "get_config", "list_available_keys", "get_history", "get_history_stats"],
)
def test_a_run_object_or_a_reference(analyzer: RunAnalyzer, method: str) -> None:
    found = analyzer.find_run("baseline")
    listed = analyzer.list_runs()[1]
    best, _ = analyzer.find_best_run("val/loss", higher_is_better=True, use="final")
    assert found is not None and best is not None and best.id == listed.id == "baseline"
    answers = {getattr(analyzer, method)(run) for run in (found, listed, best, "baseline", "jsonl:baseline")}
    assert len(answers) == 1
    assert getattr(analyzer, method)("lr_warmup") not in answers  # the answer depends on the run


def test_compare_takes_run_objects_and_references(analyzer: RunAnalyzer) -> None:
    a, b = analyzer.find_run("baseline"), analyzer.find_run("lr")
    assert a is not None and b is not None and b.id == "lr_warmup"  # a prefix finds it
    assert analyzer.compare_runs(a, b) == analyzer.compare_runs("baseline", "jsonl:lr_warmup")
    text = analyzer.compare_runs(a, "lr_warmup@2000", prefix="val/", config_diff=False)
    assert first_column(text) == ["val/loss", "val/acc"] and "step@lr_warmup" in text
    assert "config differences" not in text


def test_find_run_by_path_and_missing(analyzer: RunAnalyzer) -> None:
    by_path = analyzer.find_run("logs/baseline.jsonl")
    assert by_path is not None and by_path.ref == "logs/baseline.jsonl" and by_path.name == "baseline"
    assert analyzer.summarize_run(by_path).splitlines()[1].startswith("jsonl:logs/baseline.jsonl 'baseline'")
    assert analyzer.find_run("no_such_run") is None
    with pytest.raises(RunNotFound):
        analyzer.summarize_run("no_such_run")


def test_best_run_direction_and_limit(analyzer: RunAnalyzer) -> None:
    best, ranked = analyzer.find_best_run("val/acc")  # accuracy-like: highest by default
    assert best is not None and best.id == "lr_warmup" and ranked[0].value == pytest.approx(0.8421)
    best, _ = analyzer.find_best_run("val/acc", higher_is_better=False, use="final")
    assert best is not None and best.id == "baseline"
    best, ranked = analyzer.find_best_run("val/loss", limit=1, higher_is_better=True, use="final")
    assert best is not None and [r.run.id for r in ranked] == ["lr_warmup"]  # only the newest run
    assert isinstance(ranked[0], RankedRun) and isinstance(best, RunInfo)
    with pytest.raises(UnknownMetric):
        analyzer.find_best_run("nope")


def test_history_samples(analyzer: RunAnalyzer) -> None:
    rows = list(csv.DictReader(io.StringIO(analyzer.get_history("baseline", "train/loss", samples=40))))
    steps = [int(r["step"]) for r in rows]
    assert {r["metric"] for r in rows} == {"train/loss"} and 4 <= len(steps) <= 40
    assert 2350 in steps  # the example's planted spike survives downsampling


def test_typed_answers(analyzer: RunAnalyzer) -> None:
    out = analyzer.query(GetStatsInput(run="baseline", keys=["train/loss"]))
    assert isinstance(out, GetStatsOutput) and out.run == "jsonl:baseline"
    assert out.stats.rows[0][0] == "train/loss" and out.stats.rows[0][1] == 401
    keys = analyzer.query(ListKeysInput(run="baseline"))
    assert [row[0] for row in keys.metrics.rows] == KEYS
    with pytest.raises(TypeError):
        analyzer.query(RunwiseConfig.load(EXAMPLES).file)  # type: ignore[call-overload]


def test_budget_of_the_analyzer_and_of_a_request() -> None:
    from runwise.tokens import estimate_tokens

    small = RunAnalyzer(RunwiseConfig.load(EXAMPLES, env={}), budget=150)
    out = small.query(GetStatsInput(run="baseline"))
    assert estimate_tokens(out.model_dump_json()) <= 150
    assert out.notes[0].startswith("cut to the 150-token budget: stats.rows: first ")
    assert len(out.stats.rows) < len(KEYS)
    wide = small.query(GetStatsInput(run="baseline", budget=5000))  # the request's own budget wins
    assert len(wide.stats.rows) == len(KEYS) and not wide.notes
    assert repr(small).endswith(", budget=150)")


def test_default_config_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNWISE_PROJECT_ROOT", str(EXAMPLES))
    assert RunAnalyzer().config.root == EXAMPLES.resolve()
    assert repr(RunAnalyzer()) == f"RunAnalyzer(root={str(EXAMPLES.resolve())!r})"
