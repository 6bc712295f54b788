"""CSV-log source (runwise.parsers.csvlog) on fixtures written by the real writers.

tests/data/csv/make_fixtures.py wrote the project with Lightning's CSVLogger (a finished run with a
NaN at a known step and a python tag in hparams.yaml; a second version killed mid-line),
Stable-Baselines3 (PPO progress.csv), Keras' CSVLogger and Ultralytics (results.csv, args.yaml), and
expected.json from pandas' read of each file: these tests need none of those packages.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from runwise import cli, runs
from runwise.config import FileConfig, RunwiseConfig
from runwise.errors import SourceError
from runwise.parsers import SOURCES, csvlog, load_file, sniff_source
from tests.conftest import ask, ask_every_tool, copied_project, load_run

DATA = Path(__file__).parent / "data" / "csv"
EXPECTED: dict[str, Any] = json.loads((DATA / "expected.json").read_text())
RUN_OF_FILE = {
    "lightning_logs/version_0/metrics.csv": "lightning_logs/version_0",
    "lightning_logs/version_1/metrics.csv": "lightning_logs/version_1",
    "logs/keras_history.csv": "logs/keras_history.csv",
    "sb3/ppo_cartpole/progress.csv": "sb3/ppo_cartpole",
    "runs/detect/train/results.csv": "runs/detect/train",
}
NAN_STEP = 5  # make_fixtures.py logs train_loss as NaN at this step


@pytest.fixture
def csv_cfg(tmp_path: Path) -> RunwiseConfig:
    return copied_project(tmp_path, DATA / "project")  # JSONL runs logs/run_a, logs/run_b next to the CSV runs


def _load(cfg: RunwiseConfig, run_id: str) -> Any:
    return load_run(csvlog, cfg, run_id)


def test_discovery_finds_each_writers_files(csv_cfg: RunwiseConfig) -> None:
    assert sorted(EXPECTED) == sorted(RUN_OF_FILE)
    entries = csvlog.discover(csv_cfg, [])
    assert sorted(e.id for e in entries) == sorted(RUN_OF_FILE.values())
    assert all(e.source == "csv" for e in entries) and SOURCES["csv"] == "runwise.parsers.csvlog"


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_every_point_equals_pandas_read(csv_cfg: RunwiseConfig, file: str) -> None:
    run = _load(csv_cfg, RUN_OF_FILE[file])
    want = EXPECTED[file]
    assert sorted(run.history) == sorted(want["columns"])
    for name, col in want["columns"].items():
        s = run.history[name]
        assert s.steps.tolist() == col["steps"], name
        got = s.values.tolist()
        assert len(got) == len(col["values"])
        for g, w in zip(got, col["values"], strict=True):
            assert (math.isnan(g) and w == "nan") or g == w, (name, g, w)


def test_sparse_columns_have_only_their_logged_steps_and_nan_is_kept(csv_cfg: RunwiseConfig) -> None:
    run = _load(csv_cfg, "lightning_logs/version_0")
    assert run.history["val_loss"].steps.tolist() == [3, 7, 11]  # once per epoch of 4 steps
    loss = run.history["train_loss"]
    assert loss.steps.tolist() == list(range(12))
    assert [int(s) for s, v in zip(loss.steps, loss.values, strict=True) if math.isnan(v)] == [NAN_STEP]
    assert "epoch" in run.history and "step" not in run.history  # the other candidate stays a series
    sb3 = _load(csv_cfg, "sb3/ppo_cartpole")
    assert sb3.history["train/loss"].steps.tolist() == [128, 192]  # no update before the first rollout
    assert sb3.history["time/fps"].steps.tolist() == [64, 128, 192]


@pytest.mark.parametrize("column", csvlog.STEP_COLUMNS)
def test_step_column_detection(column: str) -> None:
    others = list(csvlog.STEP_COLUMNS[csvlog.STEP_COLUMNS.index(column) + 1 :])  # candidates after it
    header = ",".join([f"  {column} ", " loss", *others])
    rows = "".join(f"{10 * i}, {i / 2}{',7' * len(others)}\n" for i in range(3))
    table = csvlog.parse_csv((header + "\n" + rows).encode())
    assert table.step_column == column
    assert table.series["loss"].steps.tolist() == [0, 10, 20]
    assert table.series["loss"].values.tolist() == [0.0, 0.5, 1.0]
    assert column not in table.series and all(o in table.series for o in others)


def test_without_a_step_column_the_row_number_is_the_step() -> None:
    table = csvlog.parse_csv(b"loss,name\n1.5,a\n,b\nnan,c\n-inf,d\n")
    assert table.step_column is None
    assert table.series["loss"].steps.tolist() == [0, 2, 3]
    assert math.isnan(table.series["loss"].values[1]) and table.series["loss"].values[2] == -math.inf
    assert table.non_numeric == {"name": "string"}


def test_rows_with_the_wrong_number_of_cells_or_no_step_are_skipped_and_counted() -> None:
    table = csvlog.parse_csv(b"step,loss\n0,1\n1,2,3\n,4\n2,5\n3,")
    assert table.series["loss"].steps.tolist() == [0, 2]
    assert table.truncated
    assert table.warnings == ["skipped 3 rows: 1 half-written last line; 1 with the wrong number of cells; "
                              "1 without an integer step"]


def test_killed_run_skips_the_half_written_line(csv_cfg: RunwiseConfig) -> None:
    assert EXPECTED["lightning_logs/version_1/metrics.csv"]["half_written_lines"] == 1
    run = _load(csv_cfg, "lightning_logs/version_1")
    assert run.truncated
    assert run.warnings == ["lightning_logs/version_1/metrics.csv: skipped 1 row: 1 half-written last line"]
    assert not _load(csv_cfg, "lightning_logs/version_0").warnings


def test_hparams_python_tag_is_read_as_data(csv_cfg: RunwiseConfig) -> None:
    text = (csv_cfg.root / "lightning_logs" / "version_0" / "hparams.yaml").read_text()
    assert "!!python/object:argparse.Namespace" in text  # what Lightning wrote
    run = _load(csv_cfg, "lightning_logs/version_0")
    assert run.config == {"args.hidden": 4, "args.optimizer": "sgd", "lr": 0.05}
    assert _load(csv_cfg, "lightning_logs/version_1").config["lr"] == 0.1


BAD_HPARAMS = {
    "yaml bomb": 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
                 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n'
                 'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n',
    "not yaml": "lr: [1, 2\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_HPARAMS))
def test_bad_hparams_yaml_still_loads_the_run(csv_cfg: RunwiseConfig, kind: str) -> None:
    (csv_cfg.root / "lightning_logs" / "version_0" / "hparams.yaml").write_text(BAD_HPARAMS[kind])
    run = _load(csv_cfg, "lightning_logs/version_0")
    assert run.config == {}
    bad = [w for w in run.warnings if w.startswith("hparams.yaml: not read:")]
    assert len(bad) == 1 and "\n" not in bad[0], run.warnings
    assert len(run.history["train_loss"]) == 12


def test_python_tags_are_never_executed(csv_cfg: RunwiseConfig) -> None:
    marker = csv_cfg.root / "executed"
    (csv_cfg.root / "lightning_logs" / "version_0" / "hparams.yaml").write_text(
        f"lr: !!python/object/apply:os.system ['touch {marker}']\n")
    run = _load(csv_cfg, "lightning_logs/version_0")
    assert not marker.exists() and "lr" in run.config


def test_state_unknown_when_old_running_when_new(csv_cfg: RunwiseConfig) -> None:
    assert {_load(csv_cfg, r).state for r in RUN_OF_FILE.values()} == {"unknown"}
    os.utime(csv_cfg.root / "sb3" / "ppo_cartpole" / "progress.csv")
    assert _load(csv_cfg, "sb3/ppo_cartpole").state == "running"


def test_times(csv_cfg: RunwiseConfig) -> None:
    sb3 = _load(csv_cfg, "sb3/ppo_cartpole")
    assert sb3.runtime == sb3.history["time/time_elapsed"].values[-1]
    assert sb3.start_time == pytest.approx(sb3.last_write - sb3.runtime)
    lit = _load(csv_cfg, "lightning_logs/version_0")  # hparams.yaml's mtime is the start (all aged alike here)
    assert lit.start_time == pytest.approx(lit.last_write) and lit.runtime == 0.0
    yolo = _load(csv_cfg, "runs/detect/train")  # Ultralytics' `time`: seconds since the start
    assert yolo.runtime == yolo.history["time"].values[-1] > 0
    keras = _load(csv_cfg, "logs/keras_history.csv")
    assert keras.start_time is None and keras.runtime is None


def test_cli_lists_csv_runs(csv_cfg: RunwiseConfig, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--root", str(csv_cfg.root), "--json", "list", "--source", "csv"]) == 0
    out = capsys.readouterr().out
    for run_id in RUN_OF_FILE.values():
        assert run_id in out
    assert "run_a" not in out


def test_every_tool_on_a_csv_run(csv_cfg: RunwiseConfig) -> None:
    ref = "csv:lightning_logs/version_0"
    ask_every_tool(csv_cfg, ref, "lightning_logs/version_0", in_report="csv")
    hist = ask("get_history", csv_cfg, run=ref, keys=["val_loss"])
    val = hist["metrics"]["val_loss"]
    assert val["steps"] == [3, 7, 11] and val["source_points"] == 3
    anomalies = json.dumps(ask("detect_anomalies", csv_cfg, run=ref))
    assert "train_loss" in anomalies
    best = ask("find_best_run", csv_cfg, metric="val_loss", source="csv")
    assert {r[1] for r in best["ranking"]["rows"]} >= {"lightning_logs/version_0", "lightning_logs/version_1"}


def test_compare_a_csv_run_with_a_jsonl_run(csv_cfg: RunwiseConfig) -> None:
    out = ask("compare_runs", csv_cfg, runs=["csv:logs/keras_history.csv", "jsonl:run_a"])
    assert out["runs"] == ["csv:logs/keras_history.csv", "jsonl:run_a"]
    rows = {r[0]: r for r in out["metrics"]["rows"]}
    assert rows["val_loss"][1] == pytest.approx(4.851524353027344, rel=1e-4)


@pytest.mark.parametrize("ref", ["lightning_logs/version_1", "csv:lightning_logs/version_1",
                                 "lightning_logs/version_1/metrics.csv"])
def test_references(csv_cfg: RunwiseConfig, ref: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(csv_cfg.root)
    entry = runs.resolve(ref, csv_cfg)
    assert entry.source == "csv"
    run = runs.load(entry, csv_cfg)
    assert run.source == "csv" and run.history["val_loss"].steps.tolist() == [3, 7]  # the last one cut off


def test_load_file_and_sniff(csv_cfg: RunwiseConfig) -> None:
    d = csv_cfg.root / "sb3" / "ppo_cartpole"
    assert sniff_source(d) == sniff_source(d / "progress.csv") == "csv"
    assert len(load_file(d, csv_cfg).history["train/loss"]) == 2
    empty = csv_cfg.root / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="no header"):
        load_file(empty, csv_cfg)


def test_which_other_csv_files_are_runs(tmp_path: Path) -> None:
    root = tmp_path / "p"
    keras = (DATA / "project" / "logs" / "keras_history.csv").read_bytes()
    for rel in ("history.csv", "logs/deep/h.csv", "data/h.csv", "node_modules/x/lightning_logs/version_0/metrics.csv",
                "out/training.log", "out/table.csv"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(keras)
    (root / "table.csv").write_text("a,b\n1,2\n")  # no epoch column: a data file, not a run
    (root / "out" / "notes.log").write_text("not a csv\n")
    found = sorted(e.id for e in csvlog.discover(RunwiseConfig(root, env={}), []))
    assert found == ["history.csv", "logs/deep/h.csv"]
    by_file = RunwiseConfig(root, FileConfig(csv_dirs=["out"]), env={})
    by_env = RunwiseConfig(root, env={"RUNWISE_CSV_DIR": "out"})
    for cfg in (by_file, by_env):
        assert sorted(e.id for e in csvlog.discover(cfg, [])) == ["history.csv", "logs/deep/h.csv",
                                                                  "out/table.csv", "out/training.log"]
        run = csvlog.load(next(e for e in csvlog.discover(cfg, []) if e.id == "out/training.log"), cfg)
        assert run.history["val_mae"].steps.tolist() == [0, 1, 2, 3]


def test_two_lightning_runs_with_one_name_get_their_directories(tmp_path: Path) -> None:
    root = tmp_path / "p"
    for top in ("a", "b"):
        shutil.copytree(DATA / "project" / "lightning_logs" / "version_0", root / top / "lightning_logs" / "version_0")
    ids = sorted(e.id for e in csvlog.discover(RunwiseConfig(root, env={}), []))
    assert ids == ["a/lightning_logs/version_0", "b/lightning_logs/version_0"]


def test_quoted_cells_go_through_the_csv_module() -> None:
    plain = b"step,loss,note\n0,1.5,a\n1,,b\n2,nan,c\n"
    quoted = b'step,loss,note\n0,"1.5","a, with a comma"\n1,,"b"\n2,nan,c\n'
    for raw in (plain, quoted, plain.replace(b"\n", b"\r\n"), quoted.replace(b"\n", b"\r\n")):
        table = csvlog.parse_csv(raw)
        assert table.series["loss"].steps.tolist() == [0, 2] and table.series["loss"].values[0] == 1.5
        assert table.non_numeric == {"note": "string"} and not table.warnings


def test_params_json_beside_a_progress_csv_is_the_config(csv_cfg: RunwiseConfig) -> None:
    d = csv_cfg.root / "sb3" / "ppo_cartpole"
    assert _load(csv_cfg, "sb3/ppo_cartpole").config == {}  # SB3 writes no config
    (d / "params.json").write_text(json.dumps({"lr": 0.001, "model": {"fcnet_hiddens": [64, 64]}}))
    assert _load(csv_cfg, "sb3/ppo_cartpole").config == {"lr": 0.001, "model.fcnet_hiddens": [64, 64]}
    (d / "params.json").write_text("{not json")
    run = _load(csv_cfg, "sb3/ppo_cartpole")
    assert run.config == {} and [w for w in run.warnings if w.startswith("params.json: not read:")]


def test_a_lightning_version_named_by_a_string(tmp_path: Path) -> None:
    root = tmp_path / "p"
    src = DATA / "project" / "lightning_logs" / "version_0"
    shutil.copytree(src, root / "exp" / "baseline")  # CSVLogger(version="baseline"): hparams.yaml beside it
    shutil.copytree(src, root / "data" / "tables")
    (root / "data" / "tables" / "hparams.yaml").unlink()  # a metrics.csv of something else: not a run
    cfg = RunwiseConfig(root, env={})
    assert [e.id for e in csvlog.discover(cfg, [])] == ["exp/baseline"]
    assert csvlog.load(csvlog.discover(cfg, [])[0], cfg).config["lr"] == 0.05


def test_ultralytics_results_and_args(csv_cfg: RunwiseConfig) -> None:
    run = _load(csv_cfg, "runs/detect/train")
    assert run.history["train/box_loss"].steps.tolist() == [1, 2]  # epochs count from 1
    assert "epoch" not in run.history and "metrics/mAP50-95(B)" in run.history
    assert run.config["epochs"] == 2 and run.config["model"] == "yolov8n.yaml" and run.config["imgsz"] == 64


def test_an_hparams_link_to_outside_the_roots_is_not_read(csv_cfg: RunwiseConfig, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.yaml"
    secret.write_text("token: abc\n")
    hp = csv_cfg.root / "lightning_logs" / "version_0" / "hparams.yaml"
    hp.unlink()
    hp.symlink_to(secret)
    run = _load(csv_cfg, "lightning_logs/version_0")
    assert run.config == {} and "hparams.yaml: not read: a link to outside the project roots" in run.warnings
