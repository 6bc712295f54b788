"""TensorBoard runs: discovery, run metadata, the restart rule, state, damaged files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from runwise.config import RunwiseConfig
from runwise.errors import SourceError, UnsupportedFormat
from runwise.model import CRASHED, RUNNING, UNKNOWN
from runwise.parsers import load_file as registry_load_file
from runwise.parsers.tensorboard import run as tb

DATA = Path(__file__).parent / "data" / "tensorboard"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(DATA, root)
    return root


def age(path: Path, seconds: float = 3600) -> None:
    """Make every file under `path` look last written `seconds` ago."""
    then = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (then, then))


def cfg_of(root: Path) -> RunwiseConfig:
    return RunwiseConfig(root, env={})


def test_discovery_ids_and_paths(project: Path) -> None:
    entries = {e.id: e for e in tb.discover(cfg_of(project))}
    assert sorted(entries) == ["keras/train", "keras/validation", "restarted", "tf2", "txb", "version_0"]
    restarted = entries["restarted"]
    assert [p.name for p in restarted.paths] == [
        "events.out.tfevents.1700000000.fixture",
        "events.out.tfevents.1700000001.fixture",
    ]
    assert restarted.source == "tensorboard" and restarted.key == "tensorboard:restarted"
    assert restarted.size == sum(p.stat().st_size for p in restarted.paths)
    assert [p.parent.name for p in entries["txb"].paths] == ["txb", "1700000000.5"]  # hparams child


def test_discovery_skips_profile_files_and_uses_configured_dirs(project: Path) -> None:
    extra = project / "elsewhere" / "exp1" / "seed2"
    extra.mkdir(parents=True)
    shutil.copy(next((project / "lightning_logs" / "version_0").iterdir()), extra)
    (extra / "events.out.tfevents.9.profile-empty").write_bytes(b"")
    (project / "runwise.json").write_text('{"tensorboard_dirs": ["elsewhere"]}')
    entries = {e.id: e for e in tb.discover(RunwiseConfig.load(project, env={}))}
    assert "exp1/seed2" in entries
    assert [p.name for p in entries["exp1/seed2"].paths] == ["events.out.tfevents.1700000000.fixture"]


def test_same_id_under_two_roots_is_prefixed(project: Path) -> None:
    shutil.copytree(project / "runs" / "tf2", project / "logs" / "tf2")
    ids = sorted(e.id for e in tb.discover(cfg_of(project)))
    assert "tf2" in ids and "logs/tf2" in ids


def test_tensorboardx_run_metadata(project: Path) -> None:
    age(project)
    cfg = cfg_of(project)
    (entry,) = [e for e in tb.discover(cfg) if e.id == "txb"]
    run = tb.load(entry, cfg)
    assert run.source == "tensorboard" and run.path == "runs/txb" and run.state == UNKNOWN
    assert run.config == {"lr": 0.1, "batch_size": 32, "optimizer": "sgd", "nesterov": True}
    assert run.non_numeric == {"notes/text_summary": "text", "weights/fc1": "histogram", "samples": "image"}
    assert "baseline run, seed 0" in run.notes
    assert len(run.history["train/loss"]) == 60 and run.history["val/acc"].steps.tolist() == list(
        range(0, 60, 10)
    )
    nan = run.history["train/loss_nan"].values
    assert np.isnan(nan[0]) and np.isinf(nan[1])
    assert run.start_time == pytest.approx(1_700_000_000, abs=1) and run.runtime == pytest.approx(
        30.5, abs=0.1
    )
    assert run.summary["_steps_per_sec"] == pytest.approx(2.0)
    assert run.summary["train/loss"] == pytest.approx(run.history["train/loss"].values[-1])
    assert run.warnings == [] and not run.truncated and run.segments == []


def test_tf2_hparams_and_text(project: Path) -> None:
    run = tb.load_file(project / "runs" / "tf2", cfg_of(project))
    assert run.config == {"lr": 0.001, "layers": 4, "act": "gelu"}
    assert run.non_numeric == {"description/text_summary": "text"}
    assert "tensor scalars" in run.notes


def test_keras_layout_is_two_runs_with_the_same_tags(project: Path) -> None:
    cfg = cfg_of(project)
    runs = {e.id: tb.load(e, cfg) for e in tb.discover(cfg) if e.id.startswith("keras/")}
    assert sorted(runs) == ["keras/train", "keras/validation"]
    for run in runs.values():
        assert sorted(run.history) == ["epoch_accuracy", "epoch_loss"] and run.group == "keras"
    assert runs["keras/validation"].history["epoch_loss"].values[0] == pytest.approx(1.1)


def test_restarted_writer_later_write_wins(project: Path) -> None:
    run = tb.load_file(project / "runs" / "restarted", cfg_of(project))
    loss = run.history["train/loss"]
    assert loss.steps.tolist() == list(range(60))
    # steps 25..39 were logged by both files: the second file's (+1.0) values win
    assert loss.values[24] < 1.0 < loss.values[25]
    assert len(run.segments) == 2
    assert any("restarted writer" in w for w in run.warnings)
    assert any("15 points of 1 tag were replaced" in w for w in run.warnings)


def test_restart_rule_drops_stale_points_past_the_restart() -> None:
    steps = np.array([0, 1, 2, 3, 4, 2, 3, 9, 9], dtype=np.int64)
    assert tb.latest_writes(steps).tolist() == [True, True, False, False, False, True, True, False, True]


def test_single_file_and_registry(project: Path) -> None:
    cfg = cfg_of(project)
    f = sorted((project / "runs" / "restarted").iterdir())[0]
    run = registry_load_file(f, cfg)
    assert run.source == "tensorboard" and run.history["train/loss"].steps.tolist() == list(range(40))
    assert run.segments == []


def test_fresh_file_is_running(project: Path) -> None:
    age(project / "lightning_logs", 0)
    run = tb.load_file(project / "lightning_logs" / "version_0", cfg_of(project))
    assert run.state == RUNNING and run.last_write is not None


def _one_file_run(project: Path) -> Path:
    return next((project / "runs" / "txb").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("cut", [1, 7, 20])
def test_truncated_last_record(project: Path, cut: int) -> None:
    f = _one_file_run(project)
    f.write_bytes(f.read_bytes()[:-cut])
    cfg = cfg_of(project)
    run = tb.load_file(f.parent, cfg)
    assert run.truncated and run.state == RUNNING
    assert any("incomplete" in w for w in run.warnings)
    age(project)
    assert tb.load_file(f.parent, cfg).state == CRASHED


def test_flipped_byte_skips_one_record_and_says_so(project: Path) -> None:
    f = _one_file_run(project)
    raw = bytearray(f.read_bytes())
    intact = tb.load_file(f.parent, cfg_of(project))
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    run = tb.load_file(f.parent, cfg_of(project))
    lost = sum(len(s) for s in intact.history.values()) - sum(len(s) for s in run.history.values())
    assert lost <= 1
    assert any("checksum failed" in w or "framing lost" in w for w in run.warnings)


def test_corrupted_length_resynchronises(project: Path) -> None:
    f = next((project / "lightning_logs" / "version_0").glob("events*"))
    raw = bytearray(f.read_bytes())
    first_len = int.from_bytes(raw[:8], "little")
    second = 16 + first_len
    raw[second + 1] ^= 0x10  # the second record's length field
    f.write_bytes(bytes(raw))
    run = tb.load_file(f.parent, cfg_of(project))
    assert sum(len(s) for s in run.history.values()) == 19  # one of 20 scalar events lost
    assert any("framing lost 1 time" in w for w in run.warnings)


def test_not_a_tfrecord_names_the_file(project: Path) -> None:
    d = project / "runs" / "bogus"
    d.mkdir()
    (d / "events.out.tfevents.1.x").write_text("not an event file at all\n")
    with pytest.raises(UnsupportedFormat, match=r"runs/bogus/events\.out\.tfevents\.1\.x"):
        tb.load_file(d, cfg_of(project))


def test_bad_file_among_good_ones_is_a_warning(project: Path) -> None:
    d = project / "runs" / "restarted"
    (d / "events.out.tfevents.1700000002.fixture").write_text("garbage garbage garbage\n")
    run = tb.load_file(d, cfg_of(project))
    assert len(run.history["train/loss"]) == 60
    assert any("skipped events.out.tfevents.1700000002.fixture" in w for w in run.warnings)


def test_empty_dir_is_an_error(project: Path) -> None:
    d = project / "runs" / "empty"
    d.mkdir()
    with pytest.raises(SourceError):
        tb.load_file(d, cfg_of(project))


def test_writer_that_died_at_once(project: Path) -> None:
    d = project / "runs" / "blank"
    d.mkdir()
    (d / "events.out.tfevents.1.x").write_bytes(b"")
    run = tb.load_file(d, cfg_of(project))
    assert run.history == {} and run.start_time is None


def test_progress_reports_bytes(project: Path) -> None:
    cfg = cfg_of(project)
    (entry,) = [e for e in tb.discover(cfg) if e.id == "restarted"]
    seen: list[tuple[float, float]] = []
    tb.load(entry, cfg, lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (entry.size, entry.size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
