"""The MLflow source (runwise.parsers.mlflow) on fixtures MLflow wrote (tests/data/mlflow/make_fixtures.py).

`expected.json` holds what MlflowClient read back from each store (every metric point, params,
tags, status), so these tests need no MLflow.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runwise import index, runs
from runwise.config import RunwiseConfig
from runwise.errors import RunwiseError, SourceError
from runwise.model import CRASHED, FAILED, FINISHED, RUNNING
from runwise.tools import TOOLS_BY_NAME
from tests.conftest import write_project

DATA = Path(__file__).parent / "data" / "mlflow"
EXPECTED: dict[str, list[dict[str, Any]]] = json.loads((DATA / "expected.json").read_text())
STORES = {"sqlite": "mlflow.db", "file": "mlruns"}
OLD = 3600.0  # seconds: a store this old is not being written


def _project(root: Path, store: str, *, age: float = OLD) -> Path:
    """A project holding one store, its files `age` seconds old (copytree keeps the fixtures' times)."""
    root.mkdir(parents=True, exist_ok=True)
    src, dst = DATA / STORES[store], root / STORES[store]
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    t = time.time() - age
    for p in [dst, *dst.rglob("*")] if dst.is_dir() else [dst]:
        os.utime(p, (t, t))
    return root


@pytest.fixture(params=list(STORES))
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mcfg(tmp_path: Path, store: str) -> RunwiseConfig:
    return RunwiseConfig.load(_project(tmp_path / "proj", store))


def _load(ref: str, cfg: RunwiseConfig) -> Any:
    return runs.load(runs.resolve(ref, cfg), cfg)


def test_every_point_params_and_tags_equal_what_mlflow_reads(mcfg: RunwiseConfig, store: str) -> None:
    entries = [e for e in runs.discover(mcfg)[0] if e.source == "mlflow"]
    assert sorted(e.id for e in entries) == sorted(f"{r['experiment']}/{r['name']}" for r in EXPECTED[store])
    for exp in EXPECTED[store]:
        run = _load(f"mlflow:{exp['experiment']}/{exp['name']}", mcfg)
        assert run.name == exp["name"] and run.project == exp["experiment"]
        assert sorted(run.history) == sorted(exp["metrics"])
        for key, points in exp["metrics"].items():
            points = sorted(points, key=lambda p: (p[0], p[2]))
            series = run.history[key]
            assert series.steps.tolist() == [p[0] for p in points], key
            for got, want in zip(series.values.tolist(), [p[1] for p in points], strict=True):
                assert (math.isnan(got) and math.isnan(want)) or got == want, key
        assert {k: str(v) for k, v in run.config.items()} == exp["params"]
        assert run.notes == exp["tags"].get("mlflow.note.content", "")
        assert run.tags == sorted(f"{k}={v}" for k, v in exp["tags"].items() if not k.startswith("mlflow."))
        assert run.start_time == exp["start_time"] / 1000
        if exp["end_time"]:
            assert run.runtime == pytest.approx((exp["end_time"] - exp["start_time"]) / 1000)


def test_nan_is_kept(mcfg: RunwiseConfig) -> None:
    loss = _load("mlflow:baseline/diverged lr 0.1", mcfg).history["train/loss"]
    assert [math.isnan(v) for v in loss.values.tolist()] == [s >= 15 for s in range(20)]


def test_states(mcfg: RunwiseConfig) -> None:
    states = {e["name"]: _load(f"mlflow:{e['experiment']}/{e['name']}", mcfg).state for e in EXPECTED["sqlite"]}
    assert states == {"warm-lr": FINISHED, "diverged lr 0.1": FAILED, "killed-mid": CRASHED, "lr-0.003": FINISHED}


def test_a_running_run_in_a_fresh_store_is_running(tmp_path: Path, store: str) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", store, age=0))
    assert _load("mlflow:sweep/killed-mid", cfg).state == RUNNING


def test_config_notes_tags(mcfg: RunwiseConfig) -> None:
    run = _load("mlflow:baseline/warm-lr", mcfg)
    assert run.config == {"batch_size": 32, "lr": 0.001, "optimizer": "adam", "use_amp": True}
    assert run.notes == "baseline at the default lr"
    assert run.tags == ["team=vision"]


def test_run_id_and_its_prefix_resolve(mcfg: RunwiseConfig, store: str) -> None:
    for exp in EXPECTED[store]:
        want = f"{exp['experiment']}/{exp['name']}"
        assert runs.resolve(exp["run_id"], mcfg).id == want
        assert runs.resolve(exp["run_id"][:10], mcfg).id == want
        assert runs.resolve(f"mlflow:{want}", mcfg).id == want


def test_tracking_uri_names_the_store(tmp_path: Path) -> None:
    _project(tmp_path / "elsewhere", "sqlite")
    (tmp_path / "proj").mkdir()
    db = tmp_path / "elsewhere" / "mlflow.db"
    cfg = RunwiseConfig.load(tmp_path / "proj", env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}"})
    assert _load("mlflow:baseline/warm-lr", cfg).notes == "baseline at the default lr"
    (tmp_path / "proj" / "runwise.json").write_text(json.dumps({"mlflow_tracking_uri": "../elsewhere/mlflow.db"}))
    assert runs.resolve("mlflow:sweep/lr-0.003", RunwiseConfig.load(tmp_path / "proj", env={})).source == "mlflow"


def test_every_tool_works_on_an_mlflow_run(mcfg: RunwiseConfig) -> None:
    write_project(mcfg.root)  # plus the JSONL runs run_a and run_b
    cfg = RunwiseConfig.load(mcfg.root)
    ref = "mlflow:baseline/warm-lr"
    calls: dict[str, dict[str, Any]] = {
        "summarize_run": {"run": ref},
        "get_stats": {"run": ref, "keys": ["train/loss"]},
        "get_history": {"run": ref, "keys": ["train/loss"]},
        "detect_anomalies": {"run": "mlflow:baseline/diverged lr 0.1"},
        "compare_runs": {"runs": [ref, "run_a"]},
        "get_config": {"run": ref},
        "list_keys": {"run": ref},
        "list_runs": {"source": "mlflow"},
        "get_stability": {"run": ref},
        "get_run_context": {"run": ref},
        "live_status": {"run": ref},
        "find_best_run": {"metric": "train/loss", "source": "mlflow"},
        "report": {"runs": [ref, "run_a"]},
    }
    assert set(calls) == set(TOOLS_BY_NAME)
    for name, args in calls.items():
        spec = TOOLS_BY_NAME[name]
        out = spec.run(spec.input(**args), cfg)
        text = out.model_dump_json()
        assert "warm-lr" in text or "diverged" in text, name
    listed = TOOLS_BY_NAME["list_runs"].run(TOOLS_BY_NAME["list_runs"].input(source="mlflow"), cfg)
    assert "run_a" not in listed.model_dump_json()
    compared = TOOLS_BY_NAME["compare_runs"].run(TOOLS_BY_NAME["compare_runs"].input(runs=[ref, "run_a"]), cfg)
    assert "train/loss" in compared.model_dump_json()


def test_cli_lists_only_mlflow_runs(mcfg: RunwiseConfig, capsys: pytest.CaptureFixture[str]) -> None:
    from runwise import cli

    write_project(mcfg.root)
    assert cli.main(["--root", str(mcfg.root), "--format", "json", "list", "--source", "mlflow"]) == 0
    out = capsys.readouterr().out
    assert "warm-lr" in out and "run_a" not in out


def test_a_path_reference(tmp_path: Path) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "file"))
    exp = next(e for e in EXPECTED["file"] if e["name"] == "warm-lr")
    run_dir = next((cfg.root / "mlruns").glob(f"*/{exp['run_id']}"))
    run, _ = runs.get_run(str(run_dir.relative_to(cfg.root)), cfg)
    assert run.source == "mlflow" and run.notes == "baseline at the default lr"
    _project(tmp_path / "p", "sqlite")
    with pytest.raises(RunwiseError, match="holds 4 MLflow runs"):
        runs.get_run("./mlflow.db", cfg)


def test_a_half_written_metric_line_is_skipped_and_counted(tmp_path: Path) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "file"))
    entry = runs.resolve("mlflow:baseline/warm-lr", cfg)
    loss = entry.paths[0] / "metrics" / "train" / "loss"
    with loss.open("a") as fp:
        fp.write("1764000999000 0.12")  # the writer was killed mid-line
    run = runs.load(runs.resolve("mlflow:baseline/warm-lr", cfg), cfg)
    assert len(run.history["train/loss"]) == 40
    assert run.truncated and any("half-written" in w for w in run.warnings)


def test_a_file_store_change_changes_the_run_identity(tmp_path: Path, store: str) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", store))
    entry = runs.resolve("mlflow:baseline/warm-lr", cfg)
    before = index.file_stats(entry)
    if store == "file":
        with (entry.paths[0] / "metrics" / "eval" / "val" / "loss").open("a") as fp:
            fp.write("1764000999000 0.1 45\n")
    else:
        with sqlite3.connect(entry.paths[0]) as con:
            con.execute("UPDATE runs SET status = 'FINISHED' WHERE status = 'FINISHED'")
            con.execute("PRAGMA user_version = 7")
    assert index.file_stats(runs.resolve("mlflow:baseline/warm-lr", cfg)) != before


def test_reads_leave_the_db_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "sqlite"))
    db = cfg.root / "mlflow.db"
    before = (db.stat().st_mtime_ns, db.stat().st_size, db.read_bytes())
    opened: list[str] = []
    real = sqlite3.connect

    def connect(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(database)
        return real(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    for exp in EXPECTED["sqlite"]:
        _load(exp["run_id"], cfg)
    monkeypatch.undo()
    assert opened and all(o.startswith("file:") and o.endswith("?mode=ro") for o in opened)
    assert (db.stat().st_mtime_ns, db.stat().st_size, db.read_bytes()) == before
    assert sorted(p.name for p in cfg.root.iterdir()) == ["mlflow.db"]  # no journal or lock file left


def test_a_locked_db_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "sqlite"))
    entry = runs.resolve("mlflow:baseline/warm-lr", cfg)
    holder = subprocess.Popen(  # a writer holding an exclusive lock, as MLflow does while it commits
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30)", str(entry.paths[0])],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(SourceError) as err:
            runs.load(entry, cfg)
        assert "\n" not in str(err.value) and "locked" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_lock_held_briefly_is_waited_for(tmp_path: Path) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "sqlite"))
    entry = runs.resolve("mlflow:baseline/warm-lr", cfg)
    holder = subprocess.Popen(  # a writer committing for half a second
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(0.5); c.execute('COMMIT')",
         str(entry.paths[0])],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert len(runs.load(entry, cfg).history["train/loss"]) == 40
    finally:
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_corrupt_db_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "sqlite"))
    entry = runs.resolve("mlflow:baseline/warm-lr", cfg)
    data = bytearray(entry.paths[0].read_bytes())
    data[100:20000] = b"\xff" * 19900
    entry.paths[0].write_bytes(bytes(data))
    with pytest.raises(RunwiseError) as err:
        runs.load(entry, cfg)
    assert "\n" not in str(err.value) and "mlflow.db" in str(err.value)
    _, notes = runs.discover(cfg)  # listing says why, one line, and goes on
    assert any("mlflow" in n and "\n" not in n for n in notes)


def _run_dir(cfg: RunwiseConfig, name: str) -> Path:
    exp = next(e for e in EXPECTED["file"] if e["name"] == name)
    return next((cfg.root / "mlruns").glob(f"*/{exp['run_id']}"))


def test_a_python_tag_in_meta_yaml_is_read_as_data_never_run(tmp_path: Path) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "file"))
    run_dir = _run_dir(cfg, "warm-lr")
    meta = run_dir / "meta.yaml"
    sentinel = tmp_path / "ran"
    call = f"!!python/object/apply:os.system ['touch {sentinel}']"
    text = meta.read_text().replace("run_name: warm-lr", f"run_name: {call}")
    text = text.replace("status: 3", "status: !!python/name:os.getcwd ''")
    assert text != meta.read_text()
    meta.write_text(text)
    run = runs.load(runs.resolve("mlflow:baseline/warm-lr", cfg), cfg)  # the name from tags/mlflow.runName
    assert not sentinel.exists()
    assert run.notes == "baseline at the default lr" and len(run.history["train/loss"]) == 40
    assert run.state == "unknown"  # the status is the text "<!!python/name:os.getcwd>", not a status


@pytest.mark.parametrize("bad", ["alias bomb", "not yaml", "a list"])
def test_an_unreadable_meta_yaml_is_a_one_line_error(tmp_path: Path, bad: str) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "file"))
    run_dir = _run_dir(cfg, "warm-lr")
    meta = run_dir / "meta.yaml"
    if bad == "alias bomb":  # 10**6 values once expanded, from a few hundred bytes
        rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
        meta.write_text(meta.read_text() + "\n".join(rows) + "\n")
    elif bad == "not yaml":
        meta.write_text(meta.read_text() + "tags: [unclosed\n")
    else:
        meta.write_text("- run_id\n- status\n")
    listed = [e.id for e in runs.discover(cfg)[0] if e.source == "mlflow"]
    assert "baseline/warm-lr" not in listed and "baseline/diverged lr 0.1" in listed  # the others are listed
    with pytest.raises(RunwiseError) as err:
        runs.get_run(str(run_dir.relative_to(cfg.root)), cfg)
    assert "\n" not in str(err.value) and "meta.yaml" in str(err.value)


def test_malformed_lines_are_skipped_and_the_rest_kept_in_order(tmp_path: Path) -> None:
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "file"))
    loss = _run_dir(cfg, "warm-lr") / "metrics" / "train" / "loss"
    lines = loss.read_bytes().splitlines(keepends=True)
    want = [(int(x.split()[2]), float(x.split()[1])) for x in lines]
    bad = [b"1764000999000 not-a-number 3\n", b"1764000999000\t0.5 4 extra\n", b"\n", b"1764000999000 1.5 2.5\n",
           b"1764000999000 0.5 99999999999999999999999\n"]  # a step past 64 bits
    extra = [b"1764000999001 0.25\n", b"1764000999002  0.75   7\n"]  # no step: step 0; spaces MLflow would not write
    loss.write_bytes(b"".join(lines[:5] + bad + lines[5:] + extra))
    run = runs.load(runs.resolve("mlflow:baseline/warm-lr", cfg), cfg)
    got = list(zip(run.history["train/loss"].steps.tolist(), run.history["train/loss"].values.tolist(), strict=True))
    assert got == sorted([*want, (0, 0.25), (7, 0.75)], key=lambda p: p[0])  # stable: step 0's first write first
    assert any("skipped 4 metric lines: 4 malformed line" in w for w in run.warnings)


def test_the_whole_file_reader_equals_the_line_reader_on_every_fixture_file() -> None:
    from runwise.parsers import mlflow

    files = [p for p in (DATA / "mlruns").rglob("*") if p.is_file() and "metrics" in p.relative_to(DATA).parts]
    assert len(files) == 6
    for p in files:
        raw = p.read_bytes()
        fast = mlflow._metric_lines_fast(raw)
        assert fast is not None, p
        skipped: dict[str, int] = {}
        slow = mlflow._metric_lines(raw, skipped)
        assert not skipped
        for a, b in zip(fast, slow, strict=True):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), p  # NaN bits too
    assert mlflow._metric_lines_fast(b"1 2 3\n4 5\n6 7 8 9\n") is None  # 6 fields in 3 lines, not 3 per line
    assert mlflow._metric_lines_fast(b"1 nan 3\n4 -inf 5\n")[1].tolist()[1] == float("-inf")  # type: ignore[index]


def test_points_at_one_step_keep_mlflows_timestamp_order(tmp_path: Path) -> None:
    """A value logged again at step 5 (a resumed run), its row written after the others but with an earlier
    timestamp: MLflow orders one step's points by timestamp, so it comes first. (A row added to MLflow's own
    fixture database, as MLflow's log_batch would add it.)"""
    cfg = RunwiseConfig.load(_project(tmp_path / "p", "sqlite"))
    entry = runs.resolve("mlflow:baseline/warm-lr", cfg)
    with sqlite3.connect(entry.paths[0]) as con:
        (ts, value, run_uuid), = con.execute("SELECT timestamp, value, run_uuid FROM metrics WHERE key = 'train/loss'"
                                             " AND step = 5 AND run_uuid = ?", (entry.extra["run_id"],))
        con.execute("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES"
                    " ('train/loss', 9.5, ?, ?, 5, 0)", (ts - 1, run_uuid))
        con.execute("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES"
                    " ('train/loss', 0.0, ?, ?, 5, 1)", (ts + 1, run_uuid))
    loss = runs.load(runs.resolve("mlflow:baseline/warm-lr", cfg), cfg).history["train/loss"]
    at5 = loss.values[loss.steps == 5].tolist()
    assert at5[:2] == [9.5, value] and math.isnan(at5[2]) and len(loss) == 42
    assert loss.steps.tolist() == sorted(loss.steps.tolist())
