"""Trackio source (runwise.parsers.trackio) on project files written by trackio itself.

tests/data/trackio/make_fixtures.py wrote `glue-sst2.db` (a finished run with NaN, +inf and a
spike at known steps and system metrics; "run 2", killed mid-training and resumed) and `tiny.db`
(one run), and expected.json, what trackio's own reader (SQLiteStorage.get_logs /
get_system_logs / get_run_config) reads back: these tests need no trackio.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runwise import runs
from runwise.config import FileConfig, RunwiseConfig
from runwise.errors import RunwiseError, SourceError
from runwise.parsers import SOURCES, load_file, sniff_source, trackio
from tests.conftest import ask, ask_every_tool, write_project

DATA = Path(__file__).parent / "data" / "trackio"
EXPECTED: dict[str, dict[str, Any]] = json.loads((DATA / "expected.json").read_text())
RUNS = sorted((p, r) for p, rs in EXPECTED.items() for r in rs)
IDS = [f"{p}/{r}" for p, r in RUNS]
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _copy_dbs(to: Path) -> Path:
    to.mkdir(parents=True, exist_ok=True)
    for db in DATA.glob("*.db"):
        shutil.copy2(db, to / db.name)
    return to


@pytest.fixture
def tcfg(tmp_path: Path) -> RunwiseConfig:
    root = tmp_path / "proj"
    _copy_dbs(root / "trackio")  # `trackio/` at the project root: read without configuration
    write_project(root)  # JSONL runs logs/run_a, logs/run_b next to the trackio runs
    runs.clear_cache()
    return RunwiseConfig(root, env={"RUNWISE_NO_CACHE": "1", "RUNWISE_CACHE_DIR": str(tmp_path / "cache")})


def _load(cfg: RunwiseConfig, run_id: str) -> Any:
    entry = next(e for e in trackio.discover(cfg, []) if e.id == run_id)
    return trackio.load(entry, cfg)


def _num(v: Any) -> float | None:
    if isinstance(v, bool | int | float):
        return float(v)
    return _NONFINITE.get(v) if isinstance(v, str) else None


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _same(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all((math.isnan(g) and math.isnan(w)) or g == w
                                         for g, w in zip(got, want, strict=True))


def test_discovery_lists_every_run_of_every_project(tcfg: RunwiseConfig) -> None:
    entries = trackio.discover(tcfg, [])
    assert sorted(e.id for e in entries) == IDS == ["glue-sst2/bert-base-lr3e-4", "glue-sst2/run 2", "tiny/only-run"]
    assert all(e.source == "trackio" for e in entries) and "trackio" in SOURCES


@pytest.mark.parametrize(("project", "name"), RUNS)
def test_every_point_equals_what_trackio_reads(tcfg: RunwiseConfig, project: str, name: str) -> None:
    run = _load(tcfg, f"{project}/{name}")
    want = EXPECTED[project][name]
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in want["logs"]:
        for k, v in row.items():
            if k not in ("step", "timestamp") and _num(v) is not None:
                steps, values = series.setdefault(k, ([], []))
                steps.append(row["step"])
                values.append(_num(v))  # type: ignore[arg-type]
    for i, row in enumerate(want["system"]):
        for k, v in row.items():
            if k != "timestamp" and _num(v) is not None:
                steps, values = series.setdefault("system/" + k, ([], []))
                steps.append(i)
                values.append(_num(v))  # type: ignore[arg-type]
    assert sorted(run.history) == sorted(series)
    for k, (steps, values) in series.items():
        assert run.history[k].steps.tolist() == steps, k
        assert _same(run.history[k].values.tolist(), values), k
    assert sum(len(s) for s in run.history.values()) == sum(len(v[0]) for v in series.values()) > 0
    stamps = [_epoch(r["timestamp"]) for r in want["logs"] + want["system"]]
    stamps.append(_epoch(want["config"]["_Created"]))
    assert run.start_time == pytest.approx(min(stamps))
    assert run.start_time + run.runtime == pytest.approx(run.last_write)
    assert max(stamps) <= run.last_write < max(stamps) + 1.0
    assert (run.project, run.name, run.source) == (project, name, "trackio")


def test_nan_inf_and_the_spike_are_kept_at_their_steps(tcfg: RunwiseConfig) -> None:
    run = _load(tcfg, "glue-sst2/bert-base-lr3e-4")
    loss, grad = run.history["train/loss"], run.history["grad_norm"]
    assert loss.steps.tolist() == list(range(30))
    assert [int(s) for s, v in zip(loss.steps, loss.values, strict=True) if math.isnan(v)] == [17]
    assert int(loss.steps[loss.values.tolist().index(9.5)]) == 23
    assert [int(s) for s, v in zip(grad.steps, grad.values, strict=True) if math.isinf(v)] == [5]
    assert run.history["eval/accuracy"].steps.tolist() == [9, 19, 29]
    assert run.non_numeric == {"phase": "string", "layer_norms": "list", "weights": "trackio.histogram",
                               "samples": "trackio.table"}  # not series
    anomalies = json.dumps(ask("detect_anomalies", tcfg, run="trackio:glue-sst2/bert-base-lr3e-4"))
    assert "17" in anomalies


def test_config_without_trackio_meta_keys(tcfg: RunwiseConfig) -> None:
    run = _load(tcfg, "glue-sst2/bert-base-lr3e-4")
    want = EXPECTED["glue-sst2"]["bert-base-lr3e-4"]["config"]
    assert {"_Username", "_Created", "_Group"} <= set(want)
    assert run.config == {"lr": 3e-4, "batch_size": 32, "model": "bert-base-uncased", "optimizer.name": "adamw",
                          "optimizer.betas": [0.9, 0.999], "warmup": 0.1}
    assert (run.entity, run.group) == ("", "")  # trackio wrote _Username and _Group as null
    assert run.summary["eval/accuracy"] == pytest.approx(0.8) and "system/cpu/utilization" not in run.summary


def test_killed_then_resumed_run_is_one_run(tcfg: RunwiseConfig) -> None:
    run = _load(tcfg, "glue-sst2/run 2")
    assert run.history["train/loss"].steps.tolist() == list(range(20))
    # the killed process logged steps 0-11; the resumed one 12-19 under the same trackio run id
    assert run.history["train/loss"].values.tolist()[11] == pytest.approx(1.9)
    assert run.warnings == [] and run.config == {}  # resuming without a config replaced trackio's config row


def test_state_running_only_while_rows_are_recent(tcfg: RunwiseConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    last = _load(tcfg, "tiny/only-run").last_write
    monkeypatch.setattr(trackio.time, "time", lambda: last + 3600)
    assert {_load(tcfg, i).state for i in IDS} == {"unknown"}  # trackio records no finish
    monkeypatch.setattr(trackio.time, "time", lambda: last + 10)
    assert _load(tcfg, "tiny/only-run").state == "running"


@pytest.mark.parametrize("ref", ["trackio:glue-sst2/run 2", "run 2", "glue-sst2/run 2"])
def test_references(tcfg: RunwiseConfig, ref: str) -> None:
    run = runs.resolve(ref, tcfg)
    assert (run.source, run.id) == ("trackio", "glue-sst2/run 2")


def test_trackio_run_id_resolves(tcfg: RunwiseConfig) -> None:
    entry = next(e for e in trackio.discover(tcfg, []) if e.id == "tiny/only-run")
    assert runs.resolve(entry.extra["run_id"][:10], tcfg).id == "tiny/only-run"


def test_a_path_reference(tcfg: RunwiseConfig) -> None:
    assert sniff_source(tcfg.root / "trackio" / "tiny.db") == "trackio"
    run = load_file(tcfg.root / "trackio" / "tiny.db", tcfg)
    assert run.name == "only-run" and run.history["loss"].steps.tolist() == [0, 1, 2]
    with pytest.raises(RunwiseError, match="holds 2 trackio runs"):
        load_file(tcfg.root / "trackio" / "glue-sst2.db", tcfg)


def _fake_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    _copy_dbs(home / ".cache" / "huggingface" / "trackio")  # where trackio writes by default
    return home


def test_home_cache_is_not_read_unless_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _fake_home(tmp_path)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
    root = tmp_path / "p"
    root.mkdir()
    assert trackio.discover(RunwiseConfig(root), []) == []
    assert trackio.discover(RunwiseConfig(root, env={"HOME": str(home)}), []) == []
    cache = str(home / ".cache" / "huggingface" / "trackio")
    for cfg in (RunwiseConfig(root, env={"TRACKIO_DIR": cache}),
                RunwiseConfig(root, env={"RUNWISE_TRACKIO_DIR": cache}),
                RunwiseConfig(root, FileConfig(trackio_dir=cache), env={})):
        assert sorted(e.id for e in trackio.discover(cfg, [])) == IDS
        assert Path(cache).resolve() in cfg.roots


def test_relative_trackio_dir_and_other_sqlite_files(tmp_path: Path) -> None:
    root = tmp_path / "p"
    _copy_dbs(root / "out" / "tracking")
    con = sqlite3.connect(root / "out" / "tracking" / "other.db")  # some other SQLite file: not trackio's
    con.execute("CREATE TABLE metrics (key TEXT, value REAL, step INTEGER)")
    con.commit()
    con.close()
    cfg = RunwiseConfig(root, FileConfig(trackio_dir="out/tracking"), env={})
    notes: list[str] = []
    assert sorted(e.id for e in trackio.discover(cfg, notes)) == IDS and notes == []


def test_list_runs_and_cli_by_source(tcfg: RunwiseConfig, capsys: pytest.CaptureFixture[str]) -> None:
    from runwise import cli

    rows = ask("list_runs", tcfg, source="trackio")["runs"]["rows"]
    assert sorted(r[0] for r in rows) == IDS and {r[2] for r in rows} == {"trackio"}
    assert cli.main(["--root", str(tcfg.root), "--format", "json", "list", "--source", "trackio"]) == 0
    out = capsys.readouterr().out
    assert "bert-base-lr3e-4" in out and "run 2" in out and "run_a" not in out


def test_every_tool_on_a_trackio_run(tcfg: RunwiseConfig) -> None:
    ref = "trackio:glue-sst2/bert-base-lr3e-4"
    ask_every_tool(tcfg, ref, "bert-base-lr3e-4")
    loss = ask("get_history", tcfg, run=ref, keys=["train/loss"])["metrics"]["train/loss"]
    assert loss["steps"][:3] == [0, 1, 2] and loss["values"][0] == 2.55 and loss["source_points"] == 30
    assert "system/gpu/0/utilization" in json.dumps(ask("list_keys", tcfg, run=ref))
    best = ask("find_best_run", tcfg, metric="train/loss", source="trackio")
    assert "bert-base-lr3e-4" in json.dumps(best["ranking"])


def test_compare_with_a_jsonl_run(tcfg: RunwiseConfig) -> None:
    out = ask("compare_runs", tcfg, runs=["trackio:glue-sst2/bert-base-lr3e-4", "jsonl:run_a"])
    assert out["runs"] == ["trackio:glue-sst2/bert-base-lr3e-4 'bert-base-lr3e-4'", "jsonl:run_a"]
    rows = {r[0]: r for r in out["metrics"]["rows"]}
    assert rows["train/loss"][1] is not None and rows["train/loss"][2] is not None
    assert any(r[0] == "model" for r in out["config_diff"]["rows"])  # lr is 3e-4 in both: no difference


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_reads_change_nothing_and_create_no_side_files(tcfg: RunwiseConfig) -> None:
    folder = tcfg.root / "trackio"
    before = _digest(folder)
    assert sorted(before) == ["glue-sst2.db", "tiny.db"]
    for i in IDS:
        _load(tcfg, i)
    ask("summarize_run", tcfg, run="trackio:glue-sst2/run 2")
    load_file(folder / "tiny.db", tcfg)
    assert _digest(folder) == before  # no -wal / -shm left beside them, the bytes unchanged


def _holder(db: Path, script: str) -> subprocess.Popen[str]:
    """A process holding a connection to `db` (as trackio's writer would) until killed."""
    proc = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time\n"
                             "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n" + script
                             + "\nprint('ready', flush=True); time.sleep(30)", str(db)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_locked_db_is_a_one_line_error(tcfg: RunwiseConfig) -> None:
    db = tcfg.root / "trackio" / "tiny.db"
    con = sqlite3.connect(db)  # trackio's TRACKIO_SQLITE_JOURNAL_MODE=delete: readers wait for writers
    con.execute("PRAGMA journal_mode = DELETE")
    con.close()
    entry = runs.resolve("trackio:tiny/only-run", tcfg)
    proc = _holder(db, "c.execute('BEGIN EXCLUSIVE')")
    try:
        with pytest.raises(SourceError) as err:
            trackio.load(entry, tcfg)
        assert "\n" not in str(err.value) and "locked" in str(err.value) and "tiny.db" in str(err.value)
    finally:
        _stop(proc)
    assert len(trackio.load(entry, tcfg).history["loss"]) == 3


def test_a_live_wal_writer_is_read_through_its_wal(tcfg: RunwiseConfig) -> None:
    db = tcfg.root / "trackio" / "tiny.db"
    entry = runs.resolve("trackio:tiny/only-run", tcfg)
    run_id = entry.extra["run_id"]
    # a writer in WAL mode (trackio's default) commits one more step and keeps its connection open:
    # the row is in the -wal file only, and an open EXCLUSIVE transaction does not block WAL readers
    proc = _holder(db, "c.execute('INSERT INTO metrics (run_id, timestamp, run_name, step, metrics) VALUES "
                       f"(\"{run_id}\", \"2026-01-01T00:00:00+00:00\", \"only-run\", 3, \\'{{\"loss\": 0.2}}\\')')\n"
                       "c.execute('BEGIN EXCLUSIVE')")
    try:
        assert (db.parent / "tiny.db-wal").exists()
        assert trackio.load(entry, tcfg).history["loss"].values.tolist()[-1] == 0.2
    finally:
        _stop(proc)


def test_a_corrupt_db_is_a_one_line_error(tcfg: RunwiseConfig) -> None:
    entry = runs.resolve("trackio:glue-sst2/bert-base-lr3e-4", tcfg)
    db = entry.paths[0]
    data = bytearray(db.read_bytes())
    data[100:20000] = b"\xff" * 19900
    db.write_bytes(bytes(data))
    with pytest.raises(RunwiseError) as err:
        trackio.load(entry, tcfg)
    assert "\n" not in str(err.value) and "glue-sst2.db" in str(err.value)
    notes: list[str] = []
    assert [e.id for e in trackio.discover(tcfg, notes)] == ["tiny/only-run"]
    assert len(notes) == 1 and "glue-sst2.db" in notes[0] and "\n" not in notes[0]
    with pytest.raises(RunwiseError) as err:
        load_file(db, tcfg)
    assert "\n" not in str(err.value)


def test_a_garbled_metric_row_is_skipped_and_said(tcfg: RunwiseConfig) -> None:
    db = tcfg.root / "trackio" / "tiny.db"
    con = sqlite3.connect(db)
    con.execute("UPDATE metrics SET metrics = 'not json' WHERE step = 1")
    con.commit()
    con.close()
    run = _load(tcfg, "tiny/only-run")
    assert run.history["loss"].steps.tolist() == [0, 2]
    assert run.warnings == ["skipped 1 metric row that did not parse as a JSON object"]


def test_links(tmp_path: Path) -> None:
    outside = _copy_dbs(tmp_path / "scratch" / "trackio")
    root = tmp_path / "p"
    root.mkdir()
    (root / "trackio").symlink_to(outside)  # the default folder as a link: read where it points
    cfg = RunwiseConfig(root, env={})
    assert sorted(e.id for e in trackio.discover(cfg, [])) == IDS
    assert len(runs.load(runs.resolve("trackio:tiny/only-run", cfg), cfg).history["loss"]) == 3
    (root / "trackio").unlink()
    (root / "trackio").mkdir()
    (root / "trackio" / "tiny.db").symlink_to(outside / "tiny.db")  # a link to a file outside the roots: skipped
    notes: list[str] = []
    assert trackio.discover(RunwiseConfig(root, env={}), notes) == []
    assert len(notes) == 1 and "trackio_dir" in notes[0]
