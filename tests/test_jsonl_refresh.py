"""Reading only what a growing JSONL log appended: the result must equal a full read, every time."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.model import Run
from runwise.parsers import jsonl

OLD = 1_700_000_000


def row(step: int) -> dict[str, object]:
    r: dict[str, object] = {"step": step, "loss": 1.0 / (step + 1), "note": "warm" if step < 3 else "ok"}
    if step % 10 == 0:
        r["val/loss"] = math.nan if step == 40 else 2.0 / (step + 1)
    return r


def lines(steps: range) -> bytes:
    return b"".join(json.dumps(row(s)).encode() + b"\n" for s in steps)


def same(a: Run, b: Run) -> None:
    assert sorted(a.history) == sorted(b.history)
    for key in a.history:
        np.testing.assert_array_equal(a.history[key].steps, b.history[key].steps)
        np.testing.assert_array_equal(a.history[key].values, b.history[key].values)
    assert (a.config, a.summary.keys(), a.non_numeric, a.warnings, a.truncated, a.state) == (
        b.config, b.summary.keys(), b.non_numeric, b.warnings, b.truncated, b.state)


@pytest.fixture
def cfg(tmp_path: Path) -> RunwiseConfig:
    (tmp_path / "logs").mkdir()
    runs.clear_cache()
    return RunwiseConfig.load(tmp_path, env={})


def grow(path: Path, data: bytes) -> None:
    with path.open("ab") as fp:
        fp.write(data)
    os.utime(path, (OLD, OLD))


def entry_for(cfg: RunwiseConfig) -> object:
    (e,) = jsonl.discover(cfg)
    return e


@pytest.mark.parametrize(
    "cut",
    [0, 1, 17, 40, 200],  # bytes already written past the 50 complete rows when the first read happens
)
def test_refresh_equals_a_full_read(cfg: RunwiseConfig, cut: int) -> None:
    path = cfg.logs_dir / "live.jsonl"
    head = json.dumps({"config": {"lr": 0.1}}).encode() + b"\n" + lines(range(50))
    rest = lines(range(50, 120))
    path.write_bytes(head + rest[:cut])
    os.utime(path, (OLD, OLD))
    e = entry_for(cfg)
    first = jsonl.load(e, cfg)  # type: ignore[arg-type]
    first_steps = first.history["loss"].steps.tolist()
    k = len(lines(range(50, 60)))  # a line boundary: a damaged line goes in between
    grow(path, rest[cut:k] + b"{broken\n")
    second = jsonl.refresh(e, cfg, first)  # type: ignore[arg-type]
    assert second is not None
    same(second, jsonl.load(e, cfg))  # type: ignore[arg-type]
    grow(path, rest[k:])
    third = jsonl.refresh(e, cfg, second)  # type: ignore[arg-type]
    assert third is not None
    same(third, jsonl.load(e, cfg))  # type: ignore[arg-type]
    assert third.history["loss"].steps.tolist() == list(range(120))
    assert "1 not JSON" in third.warnings[0]
    assert first.history["loss"].steps.tolist() == first_steps  # `first` itself was left as it was


def test_a_complete_last_line_without_newline_is_not_counted_twice(cfg: RunwiseConfig) -> None:
    path = cfg.logs_dir / "nl.jsonl"
    path.write_bytes(lines(range(5)) + json.dumps(row(5)).encode())  # row 5 parses, newline not yet written
    os.utime(path, (OLD, OLD))
    e = entry_for(cfg)
    first = jsonl.load(e, cfg)  # type: ignore[arg-type]
    assert first.history["loss"].steps.tolist() == list(range(6))
    grow(path, b"\n" + lines(range(6, 9)))
    second = jsonl.refresh(e, cfg, first)  # type: ignore[arg-type]
    assert second is not None and second.history["loss"].steps.tolist() == list(range(9))


@pytest.mark.parametrize("change", ["replace", "shorten", "rewrite"])
def test_anything_but_an_append_means_a_full_read(cfg: RunwiseConfig, change: str) -> None:
    path = cfg.logs_dir / "x.jsonl"
    path.write_bytes(lines(range(30)))
    e = entry_for(cfg)
    first = jsonl.load(e, cfg)  # type: ignore[arg-type]
    if change == "replace":
        path.unlink()
        path.write_bytes(lines(range(100, 140)))  # another run under the same name
    elif change == "shorten":
        path.write_bytes(lines(range(10)))
    else:
        data = bytearray(path.read_bytes() + lines(range(30, 35)))
        data[len(lines(range(29))) + 12] ^= 1  # a byte of the last row read changes
        path.write_bytes(bytes(data))
    assert jsonl.refresh(e, cfg, first) is None  # type: ignore[arg-type]


def test_get_run_reads_only_the_appended_lines(cfg: RunwiseConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    path = cfg.logs_dir / "run.jsonl"
    path.write_bytes(lines(range(100)))
    os.utime(path, (OLD, OLD))
    before, _ = runs.get_run("run", cfg)
    grow(path, lines(range(100, 150)))
    os.utime(path, (OLD + 60, OLD + 60))

    def no_full_read(*args: object, **kwargs: object) -> Run:
        raise AssertionError("the grown file was read in full")

    monkeypatch.setattr(jsonl, "read_jsonl", no_full_read)
    after, _ = runs.get_run("run", cfg)
    assert after.history["loss"].steps.tolist() == list(range(150))
    assert len(before.history["loss"]) == 100


def test_unterminated_last_row_with_a_rarer_key(cfg: RunwiseConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last row is in a block with rows of two key sets; it must be dropped from each column."""
    path = cfg.logs_dir / "shapes.jsonl"
    body = lines(range(20))  # row 0, 10 carry val/loss: two key sets per block
    path.write_bytes(body + json.dumps(row(20)).encode())  # row 20 (with val/loss) lacks its newline
    os.utime(path, (OLD, OLD))
    e = entry_for(cfg)
    first = jsonl.load(e, cfg)  # type: ignore[arg-type]
    grow(path, b"\n" + lines(range(21, 31)))
    second = jsonl.refresh(e, cfg, first)  # type: ignore[arg-type]
    assert second is not None
    same(second, jsonl.load(e, cfg))  # type: ignore[arg-type]
    assert second.history["val/loss"].steps.tolist() == [0, 10, 20, 30]
