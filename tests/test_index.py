"""The run index: list_runs, find_best_run and run references answer from it without reading logs.

Each test plays "a new process" by clearing every in-memory cache (runs.clear_cache) and building a
fresh RunwiseConfig; reads are counted by wrapping the sources' load functions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from runwise import index, parsers, runs
from runwise.config import RunwiseConfig
from runwise.errors import RunNotFound
from runwise.model import RUNNING, RunEntry
from runwise.parsers.jsonl import NAME_SCAN_BYTES
from runwise.tools.runs import FindBestRunInput, ListRunsInput, find_best_run, list_runs
from tests.conftest import training_rows, write_jsonl


def _cfg(root: Path) -> RunwiseConfig:
    runs.clear_cache()  # a new process: nothing in memory
    return RunwiseConfig.load(root, env={"RUNWISE_CACHE_DIR": str(root / "cache")})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    logs = root / "logs"
    for i, end in enumerate([0.9, 0.5, 0.7]):
        write_jsonl(logs / f"r{i}.jsonl", training_rows(steps=100 + i, loss_end=end, seed=i), age_s=600 - 100 * i)
    big = training_rows(steps=4000)
    big.insert(2000, {"_meta": {"name": "named in the middle"}})
    write_jsonl(logs / "big_middle.jsonl", big, age_s=900)
    assert (logs / "big_middle.jsonl").stat().st_size > 3 * NAME_SCAN_BYTES  # discovery never sees the name
    return root


def _table(root: Path, **kw: Any) -> dict[str, dict[str, Any]]:
    out = list_runs(ListRunsInput(limit=50, **kw), _cfg(root))
    return {r[0]: dict(zip(out.runs.columns, r, strict=True)) for r in out.runs.rows}


def test_a_new_process_lists_from_the_index_without_reading(project: Path, reads: list[str]) -> None:
    first = _table(project)
    assert sorted(reads) == ["jsonl:big_middle", "jsonl:r0", "jsonl:r1", "jsonl:r2"]
    assert (index.index_path(project / "cache")).is_file()
    reads.clear()
    second = _table(project)
    assert reads == []
    assert second == first
    assert second["r1"]["last_step"] == 100 and second["r1"]["state"] != "?"
    assert second["big_middle"]["name"] == "named in the middle"  # a name only the whole log tells
    assert all(r["final"] is not None and r["spark"] for r in second.values())


def test_a_changed_run_is_read_again_and_its_row_updated(project: Path, reads: list[str]) -> None:
    _table(project)
    reads.clear()
    with (project / "logs" / "r1.jsonl").open("a") as fp:
        fp.write(json.dumps({"step": 500, "train/loss": 0.25}) + "\n")
    rows = _table(project)
    assert reads == ["jsonl:r1"]  # the others are unchanged: not read
    assert (rows["r1"]["last_step"], rows["r1"]["final"]) == (500, 0.25)
    reads.clear()
    assert _table(project)["r1"]["last_step"] == 500 and reads == []


def test_a_deleted_run_leaves_the_index(project: Path) -> None:
    _table(project)
    cfg = _cfg(project)
    assert "jsonl:r0" in runs.run_index(cfg)._all()
    (project / "logs" / "r0.jsonl").unlink()
    assert "r0" not in _table(project)
    assert sorted(runs.run_index(cfg)._all()) == ["jsonl:big_middle", "jsonl:r1", "jsonl:r2"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_a_damaged_index_file_is_rebuilt(project: Path, reads: list[str], damage: str) -> None:
    first = _table(project)
    path = index.index_path(project / "cache")
    runs.clear_cache()
    if damage == "garbage":
        index.remove(path)
        path.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = path.read_bytes()
        index.remove(path)
        path.write_bytes(data[:100])
    else:  # an sqlite file of another layout under the index's name
        index.remove(path)
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE runs (x)")
            db.execute("INSERT INTO runs VALUES (1)")
        db.close()
    reads.clear()
    assert _table(project) == first  # read again, and answered as before
    assert len(reads) == 4
    reads.clear()
    assert _table(project) == first and reads == []  # the rebuilt index answers


def test_a_name_only_a_load_tells_resolves_through_the_index(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RunNotFound):  # what the index makes resolvable: the name is in the middle of a big log
        monkeypatch.setattr(runs, "LIST_LOAD_BYTES", 1024)  # too big to be read for a name
        runs.resolve("named in the middle", _cfg(project))
    _table(project)
    cfg = _cfg(project)

    def refuse(*args: object, **kw: object) -> None:
        raise AssertionError("a run was read to resolve a reference")

    for source in ("jsonl", "tensorboard", "wandb"):
        monkeypatch.setattr(parsers.source_module(source), "display_name", refuse)
    monkeypatch.setattr(parsers, "load", refuse)
    assert runs.resolve("named in the middle", cfg).id == "big_middle"
    assert runs.resolve("named in the mid", cfg).id == "big_middle"  # a prefix too


def test_find_best_run_ranks_from_the_index(project: Path, reads: list[str]) -> None:
    cold = find_best_run(FindBestRunInput(metric="train/loss", use="final"), _cfg(project))
    reads.clear()
    warm = find_best_run(FindBestRunInput(metric="train/loss", use="final"), _cfg(project))
    assert reads == [] and warm == cold
    ranked = [r[1] for r in warm.ranking.rows]
    assert ranked[0] == "r1" and ranked.index("r2") < ranked.index("r0")  # loss_end 0.5 < 0.7 < 0.9
    for mode, pick in (("min", "argmin"), ("max", "argmax")):
        top = find_best_run(FindBestRunInput(metric="train/loss", mode=mode), _cfg(project)).ranking.rows[0]
        cfg = _cfg(project)
        s = runs.load(runs.resolve(str(top[1]), cfg), cfg).history["train/loss"]
        i = int(getattr(s.values, pick)())
        assert (top[4], top[5]) == (pytest.approx(s.values[i], rel=1e-4), int(s.steps[i])), mode


def test_a_running_row_whose_files_went_quiet_is_read_again(project: Path, reads: list[str]) -> None:
    path = project / "logs" / "r2.jsonl"
    os.utime(path)  # written just now, no end: running
    assert _table(project)["r2"]["state"] == RUNNING
    reads.clear()
    _table(project)
    assert reads == []  # still running as far as anyone can tell
    old = time.time() - 3600
    cfg = _cfg(project)
    stale = runs.index.RunIndex(index.index_path(cfg.cache_dir), str(cfg.root))
    (entry,) = [e for e in runs.discover(cfg)[0] if e.id == "r2"]
    entry.mtime = old  # as discovery sees it an hour later (the identity is the stored one)
    assert stale.lookup([entry]) == {}


def test_media_files_are_not_part_of_a_runs_identity(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-20240101_000000-abc"
    (run_dir / "files" / "media" / "images").mkdir(parents=True)
    (run_dir / "run-abc.wandb").write_bytes(b"x")
    (run_dir / "files" / "wandb-summary.json").write_text("{}")
    entry = RunEntry("abc", "wandb", (run_dir,))
    before = index.files_identity(entry)
    (run_dir / "files" / "media" / "images" / "a.png").write_bytes(b"png")
    assert index.files_identity(entry) == before
    (run_dir / "files" / "wandb-summary.json").write_text('{"loss": 1}')
    assert index.files_identity(entry) != before  # a side file is


def test_without_the_disk_cache_the_index_is_kept_in_memory(project: Path, reads: list[str]) -> None:
    runs.clear_cache()
    cfg = RunwiseConfig.load(project, env={"RUNWISE_NO_CACHE": "1", "RUNWISE_CACHE_DIR": str(project / "cache")})
    list_runs(ListRunsInput(), cfg)
    reads.clear()
    list_runs(ListRunsInput(), cfg)
    assert reads == [] and not (index.index_path(project / "cache")).exists()


def test_a_large_jsonl_log_is_indexed_from_its_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     reads: list[str]) -> None:
    rows = training_rows(steps=30_000, meta={"name": "big one"}, config={"lr": 0.1})
    rows.append({"_meta": {"state": "finished"}})
    path = write_jsonl(tmp_path / "logs" / "big.jsonl", rows, age_s=600)
    monkeypatch.setattr(runs, "LIST_LOAD_BYTES", path.stat().st_size // 4)  # too big to read whole for a listing
    cfg = _cfg(tmp_path)
    (entry,) = runs.discover(cfg)[0]
    ends = runs.index_rows([entry], cfg)[entry.key]
    assert reads == []  # not read whole
    whole = runs.index_rows([entry], cfg, whole=True)[entry.key]
    assert reads == ["jsonl:big"]
    assert isinstance(ends, index.Row) and isinstance(whole, index.Row)
    assert ends.partial and not whole.partial
    same = ("name", "state", "first_step", "last_step", "config_digest")
    assert [getattr(ends, f) for f in same] == [getattr(whole, f) for f in same] == \
        ["big one", "finished", 0, 29_999, whole.config_digest]
    assert {k: (m.final, m.final_step) for k, m in ends.metrics.items()} == \
        {k: (m.final, m.final_step) for k, m in whole.metrics.items()}
    assert ends.metrics["train/loss"].min is None  # not known from the ends


def test_find_best_run_by_best_value_reads_a_log_indexed_from_its_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    rows = training_rows(steps=30_000)
    rows[20_000]["train/loss"] = 0.001  # the lowest, at step 20,000 in the middle: only a whole read finds it
    path = write_jsonl(tmp_path / "logs" / "big.jsonl", rows, age_s=600)
    monkeypatch.setattr(runs, "LIST_LOAD_BYTES", path.stat().st_size // 4)
    list_runs(ListRunsInput(), _cfg(tmp_path))
    assert reads == []
    best = find_best_run(FindBestRunInput(metric="train/loss", mode="min"), _cfg(tmp_path))
    assert reads == ["jsonl:big"] and best.ranking.rows[0][4:6] == [0.001, 20_000]
    reads.clear()
    again = find_best_run(FindBestRunInput(metric="train/loss", mode="min"), _cfg(tmp_path))
    assert reads == [] and again == best  # the whole row replaced the one from the ends


def test_forget_and_clear_remove_rows_and_the_file(project: Path, reads: list[str]) -> None:
    _table(project)
    cfg = _cfg(project)
    idx = runs.run_index(cfg)
    assert idx.forget("jsonl:r0") and not idx.forget("jsonl:r0")
    reads.clear()
    _table(project)
    assert reads == ["jsonl:r0"]  # the one run forgotten is read again
    assert index.clear(cfg.cache_dir) and not index.index_path(cfg.cache_dir).exists()
    assert not index.clear(cfg.cache_dir)
    reads.clear()
    _table(project)
    assert len(reads) == 4


def test_writers_at_the_same_time_keep_every_row(project: Path) -> None:
    """Threads with their own connections take sqlite's file locks as processes do."""
    import threading

    cfg = _cfg(project)
    (entry,) = [e for e in runs.discover(cfg)[0] if e.id == "r0"]
    row = index.row_of(runs.load(entry, cfg), entry.key)
    files = index.files_identity(entry)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            idx = runs.run_index(cfg)
            for i in range(40):
                idx.put_many([(files, dataclasses.replace(row, key=f"jsonl:w{n}-{i}"))])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len([k for k in runs.run_index(cfg)._all() if k.startswith("jsonl:w")]) == 160


def test_a_new_media_file_does_not_make_a_wandb_run_read_again(tmp_path: Path, reads: list[str]) -> None:
    import shutil

    shutil.copytree(Path(__file__).parent / "data" / "wandb" / "offline-run-20261128_020038-fin00001",
                    tmp_path / "wandb" / "offline-run-20261128_020038-fin00001")
    cfg = _cfg(tmp_path)
    runs.get_run("fin00001", cfg)
    media = tmp_path / "wandb" / "offline-run-20261128_020038-fin00001" / "files" / "media" / "images"
    media.mkdir(parents=True)
    (media / "sample_1.png").write_bytes(b"\x89PNG")
    runs.get_run("fin00001", cfg)
    assert reads == ["wandb:fin00001"]  # once: the media file is not part of what the run's reading depends on
    entry = runs.resolve("fin00001", cfg)
    assert runs.is_cached(entry)
    log_file = tmp_path / "wandb" / "offline-run-20261128_020038-fin00001" / "run-fin00001.wandb"
    os.utime(log_file, (time.time() + 5, time.time() + 5))  # the log is part of it
    assert not runs.is_cached(entry)


def test_cache_clear_removes_the_index_and_cache_clear_run_its_row(
    project: Path, reads: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runwise import cli

    _table(project)
    reads.clear()
    monkeypatch.setenv("RUNWISE_CACHE_DIR", str(project / "cache"))  # the CLI's cache is the one _cfg uses
    assert cli.main(["--root", str(project), "cache", "clear", "r1"]) == 0
    capsys.readouterr()
    _table(project)
    assert reads == ["jsonl:r1"]  # only the cleared run's row was gone
    reads.clear()
    assert cli.main(["--root", str(project), "cache", "clear"]) == 0
    assert not index.index_path(project / "cache").exists()
    _table(project)
    assert sorted(reads) == ["jsonl:big_middle", "jsonl:r0", "jsonl:r1", "jsonl:r2"]
