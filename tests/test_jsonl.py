"""JSONL source: rows as training scripts write them with json.dumps, and every kind of damage."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from runwise.config import RunwiseConfig
from runwise.parsers import jsonl, jsonl_rows
from runwise.parsers.jsonl import read_jsonl


def write(path: Path, rows: list[object], *, tail: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # json.dumps is what training scripts use; it writes NaN / Infinity as bare tokens
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + tail)
    return path


def test_columns_steps_and_sparse_validation(tmp_path: Path) -> None:
    rows: list[object] = []
    for step in range(0, 300):
        row: dict[str, object] = {"step": step, "train/loss": 1.0 / (step + 1), "lr": 0.1}
        if step % 50 == 0:
            row["val/loss"] = 2.0 / (step + 1)
        rows.append(row)
    run = read_jsonl(write(tmp_path / "a.jsonl", rows))
    assert sorted(run.history) == ["lr", "train/loss", "val/loss"]
    loss = run.history["train/loss"]
    assert loss.steps.tolist() == list(range(300))
    np.testing.assert_allclose(loss.values[:3], [1.0, 0.5, 1 / 3])
    val = run.history["val/loss"]
    assert val.steps.tolist() == [0, 50, 100, 150, 200, 250]
    np.testing.assert_allclose(val.values, [2.0 / (s + 1) for s in range(0, 300, 50)])
    assert run.warnings == []


def test_nan_inf_null_bool_and_strings(tmp_path: Path) -> None:
    rows = [
        {"_step": 0, "loss": 1.0, "ok": True, "phase": "warmup"},
        {"_step": 1, "loss": float("nan"), "ok": False, "phase": "train"},
        {"_step": 2, "loss": float("inf"), "ok": None},
        {"_step": 3, "loss": None, "nested": {"a": 1, "b": {"c": 2.5}}},
        {"_step": 4, "loss": -float("inf"), "hist": [1, 2, 3]},
    ]
    run = read_jsonl(write(tmp_path / "b.jsonl", rows))
    loss = run.history["loss"]
    assert loss.steps.tolist() == [0, 1, 2, 4]  # null is "no value at this step"
    assert math.isnan(loss.values[1]) and loss.values[2] == math.inf and loss.values[3] == -math.inf
    assert run.history["ok"].values.tolist() == [1.0, 0.0]
    assert run.history["nested/a"].values.tolist() == [1.0]
    assert run.history["nested/b/c"].steps.tolist() == [3]
    assert run.non_numeric == {"phase": "string", "hist": "list"}


def test_line_number_is_the_step_without_a_step_key(tmp_path: Path) -> None:
    run = read_jsonl(write(tmp_path / "c.jsonl", [{"loss": 3.0}, {"loss": 2.0}, {"loss": 1.0}]))
    assert run.history["loss"].steps.tolist() == [0, 1, 2]
    assert any("line numbers" in w for w in run.warnings)


def test_config_and_meta_rows(tmp_path: Path) -> None:
    rows = [
        {"_meta": {"name": "baseline", "notes": "first try", "tags": ["a", "b"], "group": "sweep1"}},
        {"config": {"optimizer": {"lr": 0.001, "name": "adam"}, "batch_size": 32}},
        {"step": 0, "loss": 1.0},
    ]
    run = read_jsonl(write(tmp_path / "d.jsonl", rows))
    assert run.name == "baseline" and run.notes == "first try" and run.tags == ["a", "b"] and run.group == "sweep1"
    assert run.config == {"optimizer.lr": 0.001, "optimizer.name": "adam", "batch_size": 32}
    assert list(run.history) == ["loss"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"{not json}\n", "not JSON"),
        (b"[1, 2, 3]\n", "not a JSON object"),
        (b'{"step": 5, "loss": \xff\xfe}\n', "not UTF-8"),
    ],
)
def test_bad_line_is_skipped_and_counted(tmp_path: Path, bad: bytes, reason: str) -> None:
    path = tmp_path / "e.jsonl"
    good = b'{"step": 0, "loss": 1.0}\n'
    path.write_bytes(good + bad + b'{"step": 2, "loss": 0.5}\n')
    run = read_jsonl(path)
    assert run.history["loss"].steps.tolist() == [0, 2]
    assert len(run.warnings) == 1 and f"1 {reason} (first at line 2)" in run.warnings[0]


def test_half_written_last_line(tmp_path: Path) -> None:
    path = write(tmp_path / "f.jsonl", [{"step": i, "loss": 1.0} for i in range(3)], tail=b'{"step": 3, "lo')
    run = read_jsonl(path)
    assert run.history["loss"].steps.tolist() == [0, 1, 2]
    assert run.truncated
    assert "half-written last line" in run.warnings[0]


def test_very_long_line_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonl_rows, "MAX_LINE", 1000)
    path = tmp_path / "g.jsonl"
    huge = json.dumps({"step": 1, "blob": "x" * 5000}).encode()
    path.write_bytes(b'{"step": 0, "loss": 1.0}\n' + huge + b'\n{"step": 2, "loss": 0.5}\n')
    run = read_jsonl(path)
    assert run.history["loss"].steps.tolist() == [0, 2]
    assert "line too long" in run.warnings[0]


def test_blocks_mix_fast_and_slow_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Damage in one block must not change what the clean blocks give."""
    monkeypatch.setattr(jsonl_rows, "BLOCK", 7)
    rows = [{"step": i, "loss": float(i), **({"val": -float(i)} if i % 5 == 0 else {})} for i in range(40)]
    path = tmp_path / "h.jsonl"
    lines = [json.dumps(r).encode() for r in rows]
    lines[17] = b"garbage"
    path.write_bytes(b"\n".join(lines) + b"\n")
    run = read_jsonl(path)
    expected = [i for i in range(40) if i != 17]
    assert run.history["loss"].steps.tolist() == expected
    assert run.history["loss"].values.tolist() == [float(i) for i in expected]
    assert run.history["val"].steps.tolist() == list(range(0, 40, 5))


def test_key_order_does_not_matter(tmp_path: Path) -> None:
    rows = [{"step": 0, "a": 1.0, "b": 2.0}, {"b": 20.0, "step": 1, "a": 10.0}]
    run = read_jsonl(write(tmp_path / "i.jsonl", rows))
    assert run.history["a"].values.tolist() == [1.0, 10.0]
    assert run.history["b"].values.tolist() == [2.0, 20.0]


def test_numeric_strings_stay_strings(tmp_path: Path) -> None:
    run = read_jsonl(write(tmp_path / "j.jsonl", [{"step": 0, "v": "2.5"}, {"step": 1, "v": "3"}]))
    assert "v" not in run.history and run.non_numeric == {"v": "string"}


def test_discovery_and_state(tmp_path: Path) -> None:
    write(tmp_path / "logs" / "old.jsonl", [{"step": 0, "loss": 1.0}])
    write(tmp_path / "logs" / "exp1" / "seed2.jsonl", [{"step": 0, "loss": 1.0}])
    os.utime(tmp_path / "logs" / "old.jsonl", (1_600_000_000, 1_600_000_000))
    cfg = RunwiseConfig.load(tmp_path, env={})
    entries = {e.id: e for e in jsonl.discover(cfg)}
    assert set(entries) == {"old", "exp1/seed2"}
    assert jsonl.load(entries["old"], cfg).state == "unknown"
    assert jsonl.load(entries["exp1/seed2"], cfg).state == "running"  # just written


def test_discovery_file_types_and_hidden_paths(tmp_path: Path) -> None:
    """`.ndjson` is a JSONL log as `.jsonl` is (parsers.filetypes); hidden files and directories are not listed."""
    for rel in ("a.jsonl", "a.ndjson", "b.ndjson", ".hidden.jsonl", ".cache/c.jsonl", "notes.txt"):
        write(tmp_path / "logs" / rel, [{"step": 0, "loss": 1.0}])
    entries = {e.id: e.paths[0].name for e in jsonl.discover(RunwiseConfig.load(tmp_path, env={}))}
    assert entries in ({"a": "a.jsonl", "a.ndjson": "a.ndjson", "b": "b.ndjson"},
                       {"a": "a.ndjson", "a.jsonl": "a.jsonl", "b": "b.ndjson"})


@pytest.mark.parametrize(
    ("meta", "state", "code"),
    [({"state": "finished", "exit_code": 0}, "finished", 0), ({"exit_code": 3}, "failed", 3),
     ({"state": "crashed"}, "crashed", None)],
)
def test_state_from_last_meta_row(tmp_path: Path, meta: dict[str, object], state: str, code: int | None) -> None:
    run = read_jsonl(write(tmp_path / "k.jsonl", [{"step": 0, "loss": 1.0}, {"_meta": meta}]))
    assert (run.state, run.exit_code) == (state, code)
