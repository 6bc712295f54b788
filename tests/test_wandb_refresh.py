"""Reading only what a live W&B run appended: cut copies of the real fixtures, grown by appending
the rest of their own bytes, must read exactly like a full read of the grown file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.model import Run
from runwise.parsers.wandb import run as wandb_run
from runwise.parsers.wandb.log import BLOCK

DATA = Path(__file__).parent / "data" / "wandb"
OLD = 1_000_000_000.0  # a fixed mtime long ago: the state (crashed) does not depend on the clock
FIELDS = ("name", "state", "config", "summary", "exit_code", "truncated", "output_tail", "warnings", "runtime",
          "start_time", "last_write", "non_numeric", "tags", "segments", "project", "path")


def chunk_starts(raw: bytes) -> list[tuple[int, int]]:
    """(offset, payload length) of each chunk, walked from the real bytes."""
    out = []
    for blk in range(0, len(raw), BLOCK):
        p = blk + (7 if blk == 0 else 0)
        while p + 7 <= min(blk + BLOCK, len(raw)):
            ln, typ = raw[p + 4] | raw[p + 5] << 8, raw[p + 6]
            if typ == 0:
                break
            out.append((p, ln))
            p += 7 + ln
    return out


def cuts(raw: bytes, every: int) -> list[int]:
    """Cut points: inside chunk headers, mid-payload, on chunk ends, on and around block ends."""
    pts = {7, 8, 13, len(raw) - 1}
    for i, (p, ln) in enumerate(chunk_starts(raw)):
        if p // BLOCK != (p + 7 + ln) // BLOCK or (p + 7 + ln) % BLOCK > BLOCK - 64:  # near a block end
            pts.update({p, p + 3, p + 7, p + 7 + ln // 2, p + 7 + ln})
        elif i % every == 0:
            pts.add((p, p + 3, p + 7 + ln // 2)[i // every % 3])
    for b in range(BLOCK, len(raw), BLOCK):
        pts.update({b - 7, b - 3, b - 1, b, b + 1, b + 7})
    return sorted(x for x in pts if 7 <= x < len(raw))


def same(got: Run, want: Run) -> None:
    assert list(got.history) == list(want.history)
    for k, s in want.history.items():
        assert got.history[k].steps.tolist() == s.steps.tolist(), k
        np.testing.assert_array_equal(got.history[k].values, s.values, err_msg=k)
    for f in FIELDS:
        assert getattr(got, f) == getattr(want, f), f


class Live:
    """A copy of a real run directory whose log holds only the first bytes of the original."""

    def __init__(self, tmp: Path, pattern: str) -> None:
        self.src = next(DATA.glob(pattern))
        self.wdir = tmp / "wandb"
        self.dir = self.wdir / self.src.name
        shutil.copytree(self.src, self.dir)
        self.log = next(self.dir.glob("*.wandb"))
        self.raw = self.log.read_bytes()
        self.cfg = RunwiseConfig(tmp, env={"RUNWISE_WANDB_DIR": str(self.wdir), "RUNWISE_NO_CACHE": "1"})
        self.size = 0

    def cut(self, n: int) -> None:
        self.log.write_bytes(self.raw[:n])
        self.size = n
        self.touch()

    def grow(self, n: int) -> None:
        with self.log.open("ab") as fp:
            fp.write(self.raw[self.size : n])
        self.size = n
        self.touch()

    def touch(self) -> None:
        for p in self.dir.rglob("*"):
            os.utime(p, (OLD, OLD))

    def entry(self):  # type: ignore[no-untyped-def]
        return next(e for e in wandb_run.discover(self.cfg) if e.paths[-1].name == self.dir.name)

    def load(self) -> Run:
        wandb_run._CACHE.clear()
        return wandb_run.load(self.entry(), self.cfg)

    def refresh(self, previous: Run) -> Run:
        run = wandb_run.refresh(self.entry(), self.cfg, previous)
        assert run is not None
        return run


@pytest.mark.parametrize(("pattern", "every"), [("*kil00001", 25), ("*fin00001", 4), ("*rich0001", 1)])
def test_grown_file_reads_like_a_full_read(tmp_path: Path, pattern: str, every: int) -> None:
    live = Live(tmp_path, pattern)
    points = cuts(live.raw, every)
    assert len(points) > 20
    for n in points:
        live.cut(n)
        before = live.load()
        live.grow(len(live.raw))
        same(live.refresh(before), live.load())


def test_several_appends_in_a_row(tmp_path: Path) -> None:
    live = Live(tmp_path, "*kil00001")
    live.cut(20)
    run = live.load()
    for n in (20, 1000, 1003, 32742, 32750, 32768, 32770, 40000, 65509, 65520, 65536):
        live.grow(n)
        run = live.refresh(run)
        same(run, live.load())
    assert run.truncated and "loss" in run.history


def test_chunk_lists_stay_joined(tmp_path: Path) -> None:
    live = Live(tmp_path, "*fin00001")
    live.cut(9000)
    run = live.load()
    for n in range(9500, len(live.raw), 500):
        live.grow(n)
        run = live.refresh(run)
    state = run.resume[0].resume
    assert all(len(chunks) == 1 for chunks in state.cols.steps.values())
    series = run.history["train/loss"]
    assert any(series.steps is c[0] for c in state.cols.steps.values())  # one copy, shared


def test_previous_is_not_modified(tmp_path: Path) -> None:
    live = Live(tmp_path, "*kil00001")
    live.cut(40000)
    before = live.load()
    state = before.resume[0].resume
    snap = ({k: (s.steps.copy(), s.values.copy()) for k, s in before.history.items()}, dict(before.summary),
            dict(before.config), list(before.warnings), before.truncated, list(before.output_tail),
            {k: len(v) for k, v in state.cols.steps.items()}, dict(state.cols.summary), state.cursor,
            state.cursor.parts, state.damage.truncated, list(state.others.output), dict(state.others.config))
    live.grow(len(live.raw))
    after = live.refresh(before)
    assert after is not before and after.resume[0].resume is not state
    again = ({k: (s.steps, s.values) for k, s in before.history.items()}, before.summary, before.config,
             before.warnings, before.truncated, before.output_tail, {k: len(v) for k, v in state.cols.steps.items()},
             state.cols.summary, state.cursor, state.cursor.parts, state.damage.truncated, state.others.output,
             state.others.config)
    assert snap[0].keys() == again[0].keys()
    for k, (s, v) in snap[0].items():
        np.testing.assert_array_equal(again[0][k][0], s)
        np.testing.assert_array_equal(again[0][k][1], v)
    assert snap[1:] == again[1:]
    same(live.refresh(before), after)  # and it can be refreshed from again


def test_replaced_file_needs_a_full_read(tmp_path: Path) -> None:
    live = Live(tmp_path, "*fin00001")
    live.cut(10000)
    before = live.load()
    fresh = live.log.with_suffix(".tmp")
    fresh.write_bytes(live.raw)
    fresh.replace(live.log)  # a new file (inode), not an append
    assert wandb_run.refresh(live.entry(), live.cfg, before) is None


def test_shorter_or_rewritten_file_needs_a_full_read(tmp_path: Path) -> None:
    live = Live(tmp_path, "*kil00001")
    live.cut(40000)
    before = live.load()
    with live.log.open("r+b") as fp:
        fp.truncate(30000)
    assert wandb_run.refresh(live.entry(), live.cfg, before) is None
    live.cut(40000)  # same inode, grown, but bytes before where the last read stopped changed
    before = live.load()
    with live.log.open("r+b") as fp:
        fp.seek(39000)
        fp.write(bytes(reversed(live.raw[39000:39100])))
        fp.seek(0, 2)
        fp.write(live.raw[40000:])
    assert wandb_run.refresh(live.entry(), live.cfg, before) is None


def test_new_segment_needs_a_full_read(tmp_path: Path) -> None:
    first, second = sorted(DATA.glob("*res00001"))
    wdir = tmp_path / "wandb"
    shutil.copytree(first, wdir / first.name)
    cfg = RunwiseConfig(tmp_path, env={"RUNWISE_WANDB_DIR": str(wdir), "RUNWISE_NO_CACHE": "1"})
    (entry,) = wandb_run.discover(cfg)
    before = wandb_run.load(entry, cfg)
    assert before.resume is not None
    shutil.copytree(second, wdir / second.name)
    (entry,) = wandb_run.discover(cfg)
    assert len(entry.paths) == 2
    assert wandb_run.refresh(entry, cfg, before) is None
    both = wandb_run.load(entry, cfg)  # a resumed run refreshes segment by segment
    same(wandb_run.refresh(entry, cfg, both), both)  # type: ignore[arg-type]


def test_no_resume_state_needs_a_full_read(tmp_path: Path) -> None:
    live = Live(tmp_path, "*fin00001")
    run = live.load()
    run.resume = None
    assert wandb_run.refresh(live.entry(), live.cfg, run) is None
    old = next(DATA.glob("dryrun-*"))  # wandb 0.9: side files, no log to read on
    shutil.copytree(old, live.wdir / old.name)
    entry = next(e for e in wandb_run.discover(live.cfg) if e.id == "old09001")
    assert wandb_run.load(entry, live.cfg).resume is None


def test_second_read_through_get_run_reads_only_the_new_bytes(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    live = Live(tmp_path, "*kil00001")
    live.cut(33000)
    runs.clear_cache()
    first, _ = runs.get_run("kil00001", live.cfg)
    live.grow(60000)

    def no_full_read(*a: object, **k: object) -> None:
        raise AssertionError("full read")

    monkeypatch.setattr(wandb_run, "read_log", no_full_read)
    monkeypatch.setattr(wandb_run, "load", no_full_read)
    second, _ = runs.get_run("kil00001", live.cfg)
    monkeypatch.undo()
    assert second is not first and len(second.history["loss"]) > len(first.history["loss"])
    same(second, live.load())
    path_ref = str(live.log.relative_to(tmp_path))
    by_path, _ = runs.get_run(path_ref, live.cfg)  # a log given by path refreshes too
    live.grow(len(live.raw))
    monkeypatch.setattr(wandb_run, "read_log", no_full_read)
    monkeypatch.setattr(wandb_run, "load_file", no_full_read)
    grown, _ = runs.get_run(path_ref, live.cfg)
    monkeypatch.undo()
    assert grown.id == by_path.id == path_ref
    same(grown, runs.load(runs.resolve(path_ref, live.cfg), live.cfg))
    runs.clear_cache()
