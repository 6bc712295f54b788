"""Reading only what a growing TensorBoard run appended: `tensorboard.refresh` equals a full load.

Growing runs are made from the committed fixture files only: a copy cut at some byte (on a record
boundary, inside a record header, inside record data) is read, then the rest of the original
bytes is appended (in one or several steps), and the refresh is compared with a full load of the
grown copy, field by field. A restarted writer's second file appears once the first is complete.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.model import Run
from runwise.parsers.tensorboard import run as tb

DATA = Path(__file__).parent / "data" / "tensorboard"
RUNS = {"tf2": "runs/tf2", "txb": "runs/txb", "restarted": "runs/restarted", "version_0": "lightning_logs/version_0"}
FIELDS = [
    "id", "source", "path", "name", "state", "group", "notes", "config", "start_time", "runtime",
    "last_write", "segments", "non_numeric", "warnings", "truncated",
]  # fmt: skip
THEN = time.time() - 3600  # every file's mtime: the state does not depend on when the test runs


class Grower:
    """A copy of a fixture run whose event files hold the first `n` bytes of their concatenation."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.root = tmp_path / "proj"
        src = DATA / RUNS[name]
        self.dir = self.root / RUNS[name]
        shutil.copytree(src, self.dir)
        self.name = name
        self.cfg = RunwiseConfig(self.root, env={"RUNWISE_NO_CACHE": "1"})
        self.own = sorted(p.name for p in src.iterdir() if p.is_file())
        self.raw = {f: (src / f).read_bytes() for f in self.own}
        self.total = sum(len(b) for b in self.raw.values())
        for f in self.own:
            (self.dir / f).unlink()
        self.n = 0

    def boundaries(self) -> list[int]:
        """Global offsets of every record start (from the length fields of the real bytes)."""
        out, base = [], 0
        for f in self.own:
            raw, pos = self.raw[f], 0
            while pos < len(raw):
                out.append(base + pos)
                pos += 16 + int.from_bytes(raw[pos : pos + 8], "little")
            base += len(raw)
        return out + [self.total]

    def grow_to(self, n: int) -> None:
        """Append bytes so that the files hold the first `n` bytes (a file appears when reached)."""
        base = 0
        for f in self.own:
            raw, path = self.raw[f], self.dir / f
            want = min(max(n - base, 0), len(raw))
            have = path.stat().st_size if path.exists() else None
            if want > 0 and (have is None or want > have):
                with path.open("ab") as fp:
                    fp.write(raw[have or 0 : want])
            base += len(raw)
        self.n = n
        for p in [self.dir, *self.dir.rglob("*")]:
            os.utime(p, (THEN, THEN))

    def entry(self) -> Any:
        (e,) = [e for e in tb.discover(self.cfg) if e.id == self.name]
        return e

    def full(self) -> Run:
        return tb.load(self.entry(), self.cfg)

    def refresh(self, previous: Run) -> Run | None:
        return tb.refresh(self.entry(), self.cfg, previous)


def same_values(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def assert_same_run(got: Run, want: Run) -> None:
    for f in FIELDS:
        assert getattr(got, f) == getattr(want, f), f
    assert got.summary.keys() == want.summary.keys()
    for k, v in want.summary.items():
        assert same_values(got.summary[k], v), k
    assert list(got.history) == list(want.history)
    for tag, s in want.history.items():
        np.testing.assert_array_equal(got.history[tag].steps, s.steps, err_msg=tag)
        np.testing.assert_array_equal(got.history[tag].values, s.values, err_msg=tag)
        assert got.history[tag].steps.dtype == np.int64 and got.history[tag].values.dtype == np.float64


def cut_points(g: Grower) -> list[tuple[str, int]]:
    """Record boundaries, mid-header and mid-data cuts spread over the run."""
    bounds = g.boundaries()
    picks = sorted({bounds[int(i * (len(bounds) - 2) / 5)] for i in range(6)} - {0, g.total})
    out = [("boundary", b) for b in picks]
    out += [("mid-header", b + 5) for b in picks]
    out += [(f"mid-data-{b}", b + 13) for b in picks]
    out += [("one-byte", 1), ("first-record-partial", 13), ("last-byte-missing", g.total - 1)]
    return out


@pytest.mark.parametrize("name", sorted(RUNS))
def test_one_append_equals_full_load(tmp_path: Path, name: str) -> None:
    g = Grower(tmp_path / "probe", name)
    for i, (_, cut) in enumerate(cut_points(g)):
        g = Grower(tmp_path / f"{i}", name)
        g.grow_to(cut)
        before = g.full()
        assert before.resume is not None
        g.grow_to(g.total)
        got = g.refresh(before)
        assert got is not None, cut
        assert_same_run(got, g.full())
        assert got.resume is not None


@pytest.mark.parametrize("name", sorted(RUNS))
@pytest.mark.parametrize("steps", [3, 11])
def test_several_appends_equal_full_loads(tmp_path: Path, name: str, steps: int) -> None:
    g = Grower(tmp_path, name)
    sizes = [g.total * k // steps + (k % 3) * 7 for k in range(1, steps)] + [g.total]
    sizes = sorted({min(s, g.total) for s in sizes})
    g.grow_to(sizes[0])
    run = g.full()
    for n in sizes[1:]:
        g.grow_to(n)
        got = g.refresh(run)
        assert got is not None, n
        assert_same_run(got, g.full())
        run = got


def test_restarted_writer_second_file_appears(tmp_path: Path) -> None:
    g = Grower(tmp_path, "restarted")
    first = len(g.raw[g.own[0]])
    g.grow_to(first - 30)  # the first writer is mid-record
    run = g.full()
    assert run.segments == [] and run.truncated
    g.grow_to(first + 200)  # it finished; a restarted writer started a second file
    got = g.refresh(run)
    assert got is not None and len(got.segments) == 2
    assert_same_run(got, g.full())
    g.grow_to(g.total)
    final = g.refresh(got)
    assert final is not None
    assert_same_run(final, g.full())
    assert any("replaced by later writes" in w for w in final.warnings)  # the restart rule
    assert final.history["train/loss"].steps.tolist() == list(range(60))


def test_unchanged_files_give_the_same_run(tmp_path: Path) -> None:
    g = Grower(tmp_path, "tf2")
    g.grow_to(g.total // 2)
    run = g.full()
    got = g.refresh(run)
    assert got is not None
    assert_same_run(got, run)


def test_damage_before_the_cut_is_counted_once(tmp_path: Path) -> None:
    g = Grower(tmp_path, "txb")
    bounds = g.boundaries()
    f = g.own[0]
    raw = bytearray(g.raw[f])
    raw[bounds[len(bounds) // 4] + 14] ^= 0xFF  # one record's data: its CRC fails
    g.raw[f] = bytes(raw)
    g.grow_to(bounds[len(bounds) // 2] + 7)
    run = g.full()
    g.grow_to(g.total)
    got = g.refresh(run)
    assert got is not None
    full = g.full()
    assert any("checksum failed" in w for w in full.warnings)
    assert_same_run(got, full)


def grown(tmp_path: Path, name: str = "tf2") -> tuple[Grower, Run, Path]:
    g = Grower(tmp_path, name)
    g.grow_to(g.total // 2)
    return g, g.full(), g.dir / g.own[-1]


def test_replaced_file_is_not_refreshed(tmp_path: Path) -> None:
    g, run, f = grown(tmp_path)
    tmp = f.with_name("new")
    tmp.write_bytes(g.raw[g.own[-1]])
    os.replace(tmp, f)  # same name, new inode
    assert g.refresh(run) is None


def test_shortened_file_is_not_refreshed(tmp_path: Path) -> None:
    g, run, f = grown(tmp_path)
    with f.open("r+b") as fp:
        fp.truncate(g.total // 3)
    assert g.refresh(run) is None


def test_rewritten_bytes_are_not_refreshed(tmp_path: Path) -> None:
    g, run, f = grown(tmp_path)
    for at in (3, g.total // 2 - 40):
        g2, run2, f2 = grown(tmp_path / str(at))
        g2.grow_to(g2.total)
        with f2.open("r+b") as fp:
            fp.seek(at)
            byte = fp.read(1)
            fp.seek(at)
            fp.write(bytes([byte[0] ^ 0xFF]))
        assert g2.refresh(run2) is None


def test_new_file_before_the_known_ones_is_not_refreshed(tmp_path: Path) -> None:
    g, run, f = grown(tmp_path)
    shutil.copy(f, f.with_name("events.out.tfevents.1600000000.early"))
    assert g.refresh(run) is None


def test_refresh_does_not_change_previous(tmp_path: Path) -> None:
    g = Grower(tmp_path, "restarted")
    g.grow_to(len(g.raw[g.own[0]]) + 300)
    run = g.full()
    kept = copy.deepcopy(run)
    kept_files = copy.deepcopy(run.resume.files)
    g.grow_to(g.total)
    assert g.refresh(run) is not None
    assert_same_run(run, kept)
    assert run.summary == kept.summary and run.resume.files[0].path == kept_files[0].path
    for a, b in zip(run.resume.files, kept_files, strict=True):
        assert (a.offset, a.size, a.mark, a.cols.stats) == (b.offset, b.size, b.mark, b.cols.stats)
        assert {t: len(c.steps) for t, c in a.cols.scalars.items()} == {
            t: len(c.steps) for t, c in b.cols.scalars.items()
        }
        assert a.cols.texts == b.cols.texts and a.cols.hparams == b.cols.hparams


def test_damaged_tail_still_being_resynchronised_is_read_in_full(tmp_path: Path) -> None:
    g = Grower(tmp_path, "version_0")
    bounds = g.boundaries()
    f = g.dir / g.own[0]
    g.grow_to(bounds[5] + 30)
    with f.open("r+b") as fp:  # the length field of the last (partial) record is damaged
        fp.seek(bounds[5] + 1)
        fp.write(b"\x7f")
    run = g.full()
    assert any("framing lost" in w for w in run.warnings)
    with f.open("ab") as fp:
        fp.write(g.raw[g.own[0]][bounds[5] + 30 :])
    assert g.refresh(run) is None


@pytest.mark.parametrize("ref", ["tf2", "runs/tf2"])
def test_second_read_through_get_run_reads_only_the_new_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    runs.clear_cache()
    g = Grower(tmp_path, "tf2")
    g.grow_to(g.boundaries()[40] + 9)
    first, _ = runs.get_run(ref, g.cfg)
    assert first.truncated
    g.grow_to(g.total)

    def no_full_load(*args: object, **kwargs: object) -> Run:
        raise AssertionError("full load on the second read")

    seen: list[tuple[float, float]] = []
    with monkeypatch.context() as m:
        m.setattr(tb, "load", no_full_load)
        second, _ = runs.get_run(ref, g.cfg, lambda done, total: seen.append((done, total)))
    assert second is not first and not second.truncated
    assert seen and seen[-1][0] == seen[-1][1] == g.total - first.resume.files[0].offset
    runs.clear_cache()
    full, _ = runs.get_run(ref, g.cfg)  # what a first read gives
    assert full is not second
    assert_same_run(second, full)
    runs.clear_cache()


def test_restarted_writer_through_get_run_by_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs.clear_cache()
    g = Grower(tmp_path, "restarted")
    g.grow_to(len(g.raw[g.own[0]]) - 5)
    first, _ = runs.get_run("runs/restarted", g.cfg)
    g.grow_to(g.total)  # the first file completed, then a second file
    with monkeypatch.context() as m:
        m.setattr(tb, "load", lambda *a, **k: pytest.fail("full load on the second read"))
        second, _ = runs.get_run("runs/restarted", g.cfg)
    runs.clear_cache()
    full, _ = runs.get_run("runs/restarted", g.cfg)
    assert len(second.segments) == 2
    assert_same_run(second, full)
    runs.clear_cache()
