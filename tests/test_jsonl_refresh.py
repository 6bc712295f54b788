"""Reading only what a growing JSONL log appended: the result must equal a full read, every time."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_step_key_that_outranks_the_one_used_means_a_full_read(cfg: RunwiseConfig) -> None:
    """Lines numbered by `_step` until `step` appears: a full read numbers every line by `step`
    where it has one, so the appended lines cannot simply be added to the earlier ones."""
    path = cfg.logs_dir / "keys.jsonl"
    path.write_bytes(b"".join(json.dumps({"_step": s * 2, "loss": 1.0}).encode() + b"\n" for s in range(5)))
    os.utime(path, (OLD, OLD))
    e = entry_for(cfg)
    first = jsonl.load(e, cfg)  # type: ignore[arg-type]
    grow(path, json.dumps({"step": 100, "_step": 10, "loss": 0.5}).encode() + b"\n")
    assert jsonl.refresh(e, cfg, first) is None  # type: ignore[arg-type]
    again = jsonl.load(e, cfg)  # type: ignore[arg-type]
    assert again.history["loss"].steps.tolist() == [0, 1, 2, 3, 4, 100]  # line numbers, then `step`


_ROWS = st.lists(
    st.one_of(
        st.fixed_dictionaries({"step": st.integers(0, 50), "loss": st.floats(allow_nan=True, allow_infinity=True)}),
        st.fixed_dictionaries({"step": st.integers(0, 50)}, optional={
            "acc": st.floats(0, 1), "_timestamp": st.floats(1e9, 2e9), "_runtime": st.floats(0, 1e4)}),
        st.fixed_dictionaries({"loss": st.floats(-5, 5)}),  # a row without its step: its line number is used
        st.fixed_dictionaries({"_meta": st.fixed_dictionaries({"name": st.sampled_from(["a", "b"])})}),
        st.fixed_dictionaries({"config": st.fixed_dictionaries({"lr": st.floats(0, 1)})}),
        st.just("{broken"),
        st.fixed_dictionaries({"step": st.integers(0, 50), "note": st.text(max_size=3)}),
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows=_ROWS, cuts=st.lists(st.floats(0, 1), min_size=1, max_size=3))
def test_any_log_read_in_appends_equals_a_full_read(tmp_path_factory: pytest.TempPathFactory,
                                                     rows: list[object], cuts: list[float]) -> None:
    """Whatever the rows (steps out of order or repeated, rows without a step, NaN and inf, time keys,
    `_meta` and config rows, broken lines) and wherever the file is cut (mid-line too), reading it
    in appends gives the run a full read gives."""
    root = tmp_path_factory.mktemp("appends")
    (root / "logs").mkdir()
    cfg = RunwiseConfig.load(root, env={})
    data = b"".join((r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in rows)
    path = root / "logs" / "a.jsonl"
    ends = sorted(int(c * len(data)) for c in cuts) + [len(data)]
    path.write_bytes(data[: ends[0]])
    os.utime(path, (OLD, OLD))
    e = entry_for(cfg)
    run = jsonl.load(e, cfg)  # type: ignore[arg-type]
    for start, end in zip(ends, ends[1:], strict=False):
        grow(path, data[start:end])
        grown = jsonl.refresh(e, cfg, run)  # type: ignore[arg-type]
        run = grown if grown is not None else jsonl.load(e, cfg)  # type: ignore[arg-type]
        whole = jsonl.load(e, cfg)  # type: ignore[arg-type]
        same(run, whole)
        assert (repr(sorted(run.summary.items())), run.name, run.start_time, run.runtime) == (
            repr(sorted(whole.summary.items())), whole.name, whole.start_time, whole.runtime)


def test_start_time_and_runtime_span_every_append(cfg: RunwiseConfig) -> None:
    path = cfg.logs_dir / "times.jsonl"
    stamp = [{"step": s, "loss": 1.0, "_timestamp": 1.7e9 + 10 * s, "_runtime": 10.0 * s} for s in range(6)]
    data = [json.dumps(r).encode() + b"\n" for r in stamp]
    path.write_bytes(b"".join(data[:3]))
    os.utime(path, (OLD, OLD))
    e = entry_for(cfg)
    first = jsonl.load(e, cfg)  # type: ignore[arg-type]
    grow(path, b"".join(data[3:]))
    second = jsonl.refresh(e, cfg, first)  # type: ignore[arg-type]
    assert second is not None
    assert (second.start_time, second.runtime) == (1.7e9, 50.0)  # the first line's time, the last's runtime


def test_a_step_written_again_keeps_line_order_whatever_the_rows_shapes(cfg: RunwiseConfig) -> None:
    """Lines of other key sets are parsed in other chunks: a step written more than once still
    keeps its values in the order they were written, read whole or in appends."""
    path = cfg.logs_dir / "ties.jsonl"
    rows = [{"step": 1, "loss": 1.0}, {"step": 1, "loss": 2.0, "acc": 0.5}, {"step": 1, "loss": 3.0},
            {"step": 2, "loss": 4.0, "acc": 0.6}, {"step": 2, "loss": 5.0}]
    data = [json.dumps(r).encode() + b"\n" for r in rows]
    path.write_bytes(b"".join(data))
    os.utime(path, (OLD, OLD))
    e = entry_for(cfg)
    whole = jsonl.load(e, cfg)  # type: ignore[arg-type]
    assert whole.history["loss"].values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert whole.summary["loss"] == 5.0
    path.write_bytes(b"".join(data[:3]))
    os.utime(path, (OLD, OLD))
    first = jsonl.load(e, cfg)  # type: ignore[arg-type]
    grow(path, b"".join(data[3:]))
    second = jsonl.refresh(e, cfg, first)  # type: ignore[arg-type]
    assert second is not None and second.history["loss"].values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
