"""W&B runs through the run model: known values of the real fixtures, states, resume, old clients."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from runwise._bounded import Bounded
from runwise.config import RunwiseConfig
from runwise.model import CRASHED, FAILED, FINISHED, RUNNING
from runwise.parsers import load_file as registry_load_file
from runwise.parsers.wandb import run as wandb_run
from runwise.parsers.wandb.log import BLOCK

DATA = Path(__file__).parent / "data" / "wandb"
ROOT = Path(__file__).parent.parent


def cfg_for(wandb_dir: Path) -> RunwiseConfig:
    return RunwiseConfig(wandb_dir.parent, env={"RUNWISE_WANDB_DIR": str(wandb_dir)})


@pytest.fixture(scope="module")
def runs() -> dict[str, object]:
    cfg = cfg_for(DATA)
    return {e.id: wandb_run.load(e, cfg) for e in wandb_run.discover(cfg)}


def one(pattern: str) -> Path:
    return next(DATA.glob(pattern))


def test_discovery_lists_each_run_once() -> None:
    entries = {e.id: e for e in wandb_run.discover(cfg_for(DATA))}
    assert sorted(entries) == ["fin00001", "kil00001", "old09001", "old15001", "pfx00001", "pfx000012",
                               "res00001", "rich0001"]
    assert len(entries["res00001"].paths) == 2
    assert entries["res00001"].paths[0].name < entries["res00001"].paths[1].name
    assert entries["fin00001"].name == "fin-run" and entries["old09001"].name == "old09"
    assert all(e.source == "wandb" and e.size > 0 and e.mtime > 0 for e in entries.values())


def test_ids_sharing_a_prefix_stay_apart(runs: dict) -> None:
    assert runs["pfx00001"].history["loss"].values.tolist() == [1.0, 2.0, 3.0]
    assert runs["pfx000012"].history["loss"].values.tolist() == [10.0, 20.0, 30.0]


def test_finished_run_known_values(runs: dict) -> None:
    r = runs["fin00001"]
    s = np.arange(60)
    np.testing.assert_array_equal(r.history["train/loss"].steps, s)
    np.testing.assert_allclose(r.history["train/loss"].values, 1 / (s + 1))
    np.testing.assert_allclose(r.history["train/acc"].values, s / 60)
    np.testing.assert_allclose(r.history["opt.lr"].values, 0.001 * (1 - s / 60))
    np.testing.assert_array_equal(r.history["epoch"].values, s // 20)
    val = r.history["val/loss"]
    np.testing.assert_array_equal(val.steps, np.arange(9, 60, 10))
    np.testing.assert_allclose(val.values, 2 / (val.steps + 1))
    assert not {"_step", "_runtime", "_timestamp"} & set(r.history)
    assert (r.state, r.exit_code, r.truncated, r.warnings) == (FINISHED, 0, False, [])
    assert (r.name, r.notes, r.group, r.job_type, r.project) == (
        "fin-run", "finished fixture", "grp", "train", "runwise-fixtures")
    assert r.tags == ["fixture", "finished"]
    assert r.config == {"optimizer.name": "adam", "optimizer.lr": 0.001, "optimizer.betas": [0.9, 0.999],
                        "batch_size": 32, "model": "mlp", "extra": 1}
    assert r.summary["best_val_loss"] == 0.0333 and r.summary["train/loss"] == pytest.approx(1 / 60)
    assert not any(k.startswith("_wandb") for k in r.summary)
    assert r.output_tail == ["epoch 0 done", "epoch 1 done", "epoch 2 done"]
    assert r.start_time and r.runtime is not None and r.runtime >= 0
    assert r.path == os.path.relpath(one("*fin00001"), DATA.parent) and r.last_step == 59


def test_killed_run_says_where_it_ended(runs: dict) -> None:
    r = runs["kil00001"]
    loss = r.history["loss"]
    np.testing.assert_array_equal(loss.steps, np.arange(loss.steps.size))
    np.testing.assert_allclose(loss.values, 1 / (loss.steps + 1))
    assert 100 < r.last_step < 300  # killed at 300; the unflushed tail is lost
    assert r.truncated and r.exit_code is None
    assert r.output_tail[-1] == "step 200"
    assert any("ends inside a record" in w for w in r.warnings)


def test_running_or_crashed_from_file_age(tmp_path: Path) -> None:
    d = tmp_path / "wandb" / one("*kil00001").name
    shutil.copytree(one("*kil00001"), d)
    for p in d.rglob("*"):
        os.utime(p)  # as if just written
    cfg = cfg_for(tmp_path / "wandb")
    assert wandb_run.load_file(d, cfg).state == RUNNING  # just written
    old = time.time() - 3600
    for p in d.rglob("*"):
        os.utime(p, (old, old))
    r = wandb_run.load_file(d, cfg)
    assert r.state == CRASHED and r.last_write == pytest.approx(old)


def test_resumed_run_merges_segments(runs: dict) -> None:
    r = runs["res00001"]
    loss = r.history["loss"]
    np.testing.assert_array_equal(loss.steps, np.arange(30))
    want = np.where(np.arange(30) < 15, np.arange(30), 100 + np.arange(30))  # later segment wins
    np.testing.assert_array_equal(loss.values, want)
    assert r.state == FINISHED and r.exit_code == 0 and len(r.segments) == 2
    assert r.name == "resumed-run" and r.summary["loss"] == 129


def test_first_segment_alone_failed() -> None:
    r = wandb_run.load_file(sorted(DATA.glob("offline-run-*-res00001"))[0], cfg_for(DATA))
    assert (r.state, r.exit_code) == (FAILED, 1)
    assert r.history["loss"].values.tolist() == [float(s) for s in range(20)]


def test_rich_values(runs: dict) -> None:
    r = runs["rich0001"]
    kinds = {"text": "string", "hist": "histogram", "img": "image-file", "table": "table-file"}
    assert r.non_numeric == kinds
    assert sorted(r.history) == ["big", "flag", "inf", "nan", "ninf", "x"]
    assert r.history["flag"].values.tolist() == [1, 0, 1, 0, 1]
    assert np.isnan(r.history["nan"].values).all() and len(r.history["nan"]) == 5
    assert r.history["inf"].values.tolist() == [np.inf] * 5
    assert r.history["ninf"].values.tolist() == [-np.inf] * 5
    assert r.history["big"].values[0] == 2.0**64
    assert r.history["x"].values.tolist() == [0, 1, 2, 3, 4]
    assert r.summary["hist"] == "<histogram>" and r.summary["text"] == "hello 4"


@pytest.mark.parametrize("rid", ["old15001", "old09001"])
def test_old_clients(runs: dict, rid: str) -> None:
    r = runs[rid]
    s = np.arange(10)
    np.testing.assert_array_equal(r.history["loss"].steps, s)
    np.testing.assert_allclose(r.history["loss"].values, 1 / (s + 1))
    np.testing.assert_allclose(r.history["opt.lr"].values, s / 10)
    odd = r.history["odd"].values
    assert np.isnan(odd[5]) and np.delete(odd, 5).tolist() == [float(x) for x in s if x != 5]
    assert r.config == {"lr": 0.1, "opt.beta": 0.9}
    assert r.state == FINISHED and r.output_tail == ["done"]


def test_directory_without_log_lists_from_side_files(tmp_path: Path) -> None:
    src = one("*old15001")
    d = tmp_path / "wandb" / src.name
    shutil.copytree(src, d)
    (d / "run-old15001.wandb").unlink()
    (entry,) = wandb_run.discover(cfg_for(tmp_path / "wandb"))
    r = wandb_run.load(entry, cfg_for(tmp_path / "wandb"))
    assert r.id == "old15001" and "no .wandb log" in r.warnings[0]


def test_latest_link_and_nested_wandb_dir(tmp_path: Path) -> None:
    wdir = tmp_path / "out" / "wandb"
    for name in ("*fin00001", "*pfx00001"):
        shutil.copytree(one(name), wdir / one(name).name)
    (wdir / "latest-run").symlink_to(one("*pfx00001").name)
    entries = {e.id: e for e in wandb_run.discover(cfg_for(tmp_path / "out"))}  # WANDB_DIR=out
    assert sorted(entries) == ["fin00001", "pfx00001"]
    assert entries["pfx00001"].extra["latest"] and not entries["fin00001"].extra["latest"]


def test_discovery_reads_only_the_first_block(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int | None] = []
    real = wandb_run.iter_windows

    def spy(*a: object, **k: object):  # type: ignore[no-untyped-def]
        seen.append(k.get("limit"))  # type: ignore[arg-type]
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(wandb_run, "iter_windows", spy)
    monkeypatch.setattr(wandb_run, "_NAMES", Bounded(wandb_run.NAMES_SIZE))  # earlier tests' names are remembered
    wandb_run.discover(cfg_for(DATA))
    assert seen and set(seen) == {BLOCK}


def test_load_file_progress_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[float, float]] = []
    log = one("*kil00001/run-kil00001.wandb")
    cfg = cfg_for(DATA)
    r = registry_load_file(log, cfg, lambda a, b: calls.append((a, b)))
    assert r.id == "kil00001" and calls[-1] == (log.stat().st_size, log.stat().st_size)
    parsed: list[Path] = []
    real_read_log = wandb_run.read_log

    def counting_read_log(d: Path, log: Path, **kw: object) -> object:
        parsed.append(log)
        return real_read_log(d, log, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(wandb_run, "_CACHE", Bounded(wandb_run.CACHE_SIZE, lru=True))  # empty: the first call parses
    monkeypatch.setattr(wandb_run, "read_log", counting_read_log)
    d = one("*fin00001")
    first = wandb_run.load_file(d, cfg)
    again = wandb_run.load_file(d, cfg)
    assert parsed == sorted(d.glob("*.wandb"))  # one parse: the second call took the segment from the cache
    assert again.history["train/loss"].values.tolist() == first.history["train/loss"].values.tolist()


def test_nothing_is_written(tmp_path: Path) -> None:
    wdir = tmp_path / "wandb"
    shutil.copytree(DATA, wdir)
    before = sorted((str(p), p.stat().st_mtime, p.stat().st_size) for p in wdir.rglob("*"))
    cfg = cfg_for(wdir)
    for e in wandb_run.discover(cfg):
        wandb_run.load(e, cfg)
    assert sorted((str(p), p.stat().st_mtime, p.stat().st_size) for p in wdir.rglob("*")) == before


def test_works_without_wandb_installed() -> None:
    code = (
        "import sys; sys.modules['wandb'] = None\n"
        "from pathlib import Path\n"
        "from runwise.config import RunwiseConfig\n"
        "from runwise.parsers.wandb import run as wandb_run\n"
        f"cfg = RunwiseConfig(Path({str(DATA.parent)!r}), env={{'RUNWISE_WANDB_DIR': {str(DATA)!r}}})\n"
        "print(sum(len(wandb_run.load(e, cfg).history) for e in wandb_run.discover(cfg)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert int(out.stdout) > 10
    # the local reader never imports the wandb client; only the cloud source does, inside its functions
    found = {p.relative_to(ROOT).as_posix(): re.findall(r"^(\s*)(?:import wandb\b|from wandb\b)", p.read_text(), re.M)
             for p in (ROOT / "runwise").rglob("*.py")}
    found = {path: indents for path, indents in found.items() if indents}
    assert set(found) <= {"runwise/parsers/wandb_cloud/client.py"}, found
    assert all(indent for indents in found.values() for indent in indents), found
