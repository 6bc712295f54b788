"""The on-disk cache: a hit gives the same run; a file from another run model or a damaged file is a
miss, and the run is parsed again and the entry rebuilt, never an error."""

from __future__ import annotations

import json
import os
from dataclasses import fields, make_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from runwise import cache, parsers, runs
from runwise.config import RunwiseConfig
from runwise.model import Run, Series, make_series

IDENT: tuple[object, ...] = ("jsonl:x", ("logs/x.jsonl", 10, 123))


def sample_run() -> Run:
    return Run(
        id="x", source="jsonl", path="logs/x.jsonl", name="the x run", tags=["a"], config={"lr": 0.1},
        summary={"loss": 0.5}, exit_code=0, history={"loss": make_series("loss", [0, 1, 2], [1.0, 0.7, 0.5])},
    )


def rewrite_meta(path: Path, change: Any) -> None:
    """Rewrite a cache file's metadata as `change(meta)` returns it, keeping its arrays."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = change(orjson.loads(arrays["meta"].tobytes()))
    arrays["meta"] = np.frombuffer(orjson.dumps(meta), dtype=np.uint8)
    with path.open("wb") as fp:
        np.savez(fp, **arrays)


def only_file(cache_dir: Path) -> Path:
    files = list(cache_dir.glob("*.npz"))
    assert len(files) == 1
    return files[0]


def test_round_trip(tmp_path: Path) -> None:
    run = sample_run()
    cache.write(tmp_path, IDENT, run)
    back = cache.read(tmp_path, IDENT)
    assert back is not None and back is not run
    assert [getattr(back, f.name) for f in fields(Run) if f.name != "history"] == [
        getattr(run, f.name) for f in fields(Run) if f.name != "history"
    ]
    np.testing.assert_array_equal(back.history["loss"].steps, [0, 1, 2])
    np.testing.assert_array_equal(back.history["loss"].values, [1.0, 0.7, 0.5])
    assert cache.read(tmp_path, ("jsonl:x", ("logs/x.jsonl", 11, 123))) is None  # another identity


def renamed(meta: dict[str, Any]) -> dict[str, Any]:
    meta["display"] = meta.pop("name")  # a field an older Run called differently
    return meta


def added(meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "owner": "someone"}  # a field the Run no longer has


def removed(meta: dict[str, Any]) -> dict[str, Any]:
    del meta["id"]  # a required field an older Run did not have
    return meta


@pytest.mark.parametrize("change", [renamed, added, removed, lambda m: [m], lambda m: {**m, "metrics": 3}])
def test_metadata_of_another_run_model_is_a_miss(tmp_path: Path, change: Any) -> None:
    cache.write(tmp_path, IDENT, sample_run())
    rewrite_meta(only_file(tmp_path), change)
    assert cache.read(tmp_path, IDENT) is None


@pytest.mark.parametrize("damage", [b"not an npz", b"PK\x03\x04", b""])
def test_a_damaged_file_is_a_miss(tmp_path: Path, damage: bytes) -> None:
    cache.write(tmp_path, IDENT, sample_run())
    path = only_file(tmp_path)
    path.write_bytes(damage)
    assert cache.read(tmp_path, IDENT) is None


def test_a_truncated_file_is_a_miss(tmp_path: Path) -> None:
    cache.write(tmp_path, IDENT, sample_run())
    path = only_file(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert cache.read(tmp_path, IDENT) is None


def test_the_file_name_changes_with_the_run_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache written before the Run fields changed is not even looked at."""
    cache.write(tmp_path, IDENT, sample_run())
    assert cache.read(tmp_path, IDENT) is not None
    monkeypatch.setattr(cache, "SCHEMA", "another")
    assert cache.read(tmp_path, IDENT) is None


def test_the_schema_digest_follows_the_fields() -> None:
    same = make_dataclass("Run", [(f.name, f.type) for f in fields(Run)])
    assert cache.schema_digest((same, Series)) == cache.SCHEMA
    names = [("display" if f.name == "name" else f.name, f.type) for f in fields(Run)]
    assert cache.schema_digest((make_dataclass("Run", names), Series)) != cache.SCHEMA
    types = [(f.name, "float" if f.name == "exit_code" else f.type) for f in fields(Run)]
    assert cache.schema_digest((make_dataclass("Run", types), Series)) != cache.SCHEMA


@pytest.fixture
def cfg(tmp_path: Path) -> RunwiseConfig:
    logs = tmp_path / "project" / "logs"
    logs.mkdir(parents=True)
    path = logs / "old.jsonl"
    rows = [{"_meta": {"name": "an old run"}}, *({"step": i, "loss": 1.0 / (i + 1)} for i in range(50))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.utime(path, (1_700_000_000, 1_700_000_000))  # not live: finished runs are cached
    env = {"RUNWISE_CACHE_DIR": str(tmp_path / "cache")}
    runs.clear_cache()
    return RunwiseConfig(tmp_path / "project", env=env)


def test_an_entry_from_an_older_run_model_is_rebuilt(cfg: RunwiseConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through runs.get_run: the stale entry is parsed again, answered, and replaced by a good one."""
    monkeypatch.setattr(cache, "MIN_SECONDS", 0.0)
    first, _ = runs.get_run("old", cfg)
    path = only_file(cfg.cache_dir)
    rewrite_meta(path, renamed)
    runs.clear_cache()
    again, _ = runs.get_run("old", cfg)
    assert again.name == "an old run" and again.history["loss"].values.tolist() == first.history["loss"].values.tolist()
    with np.load(only_file(cfg.cache_dir), allow_pickle=False) as z:
        assert orjson.loads(z["meta"].tobytes())["name"] == "an old run"  # rewritten in the current shape

    def parse(*args: Any, **kwargs: Any) -> Run:
        raise AssertionError("parsed again: the rebuilt entry was not used")

    monkeypatch.setattr(parsers, "load", parse)
    runs.clear_cache()
    cached, _ = runs.get_run("old", cfg)
    assert cached.name == "an old run"


def test_a_changed_byte_in_an_array_is_a_miss(tmp_path: Path) -> None:
    """Arrays are read straight into memory, and their CRC-32 checked as zipfile checks it."""
    run = sample_run()
    run.history["loss"] = make_series("loss", np.arange(1000), np.linspace(1.0, 0.0, 1000))
    cache.write(tmp_path, IDENT, run)
    path = only_file(tmp_path)
    raw = bytearray(path.read_bytes())
    at = raw.find(np.linspace(1.0, 0.0, 1000)[500:502].tobytes())
    assert at > 0
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    assert cache.read(tmp_path, IDENT) is None
    assert not path.exists() and cache.stats(tmp_path)["discarded"] == 1


def test_an_entry_of_older_files_is_stale_not_wrong(tmp_path: Path) -> None:
    """The run's one entry serves a lookup of grown files only with a resume state; it is not removed."""
    grown = ("jsonl:x", ("logs/x.jsonl", 20, 124))
    cache.write(tmp_path, IDENT, sample_run())  # no resume state
    assert cache.lookup(tmp_path, grown) is None and only_file(tmp_path).exists()
    run = sample_run()
    run.resume = {"offset": 10, "chunks": [np.arange(3), np.arange(2)]}  # plain values: always allowed
    cache.write(tmp_path, IDENT, run)
    found = cache.lookup(tmp_path, grown)
    assert found is not None and not found.exact and found.bytes == 10 and found.run.history == {}
    assert found.run.resume["offset"] == 10 and [c.tolist() for c in found.run.resume["chunks"]] == [[0, 1, 2], [0, 1]]
    assert cache.read(tmp_path, grown) is None  # an exact read does not take it
    hit = cache.lookup(tmp_path, IDENT)
    assert hit is not None and hit.exact and hit.run.resume is None  # a hit reads no state
    assert cache.stats(tmp_path)["resumed"] == 1


def test_an_entry_copied_to_another_runs_name_is_a_miss(tmp_path: Path) -> None:
    other: tuple[object, ...] = ("jsonl:y", ("logs/y.jsonl", 10, 123))
    cache.write(tmp_path, IDENT, sample_run())
    target = cache._file(tmp_path, other)
    target.write_bytes(only_file(tmp_path).read_bytes())
    assert cache.lookup(tmp_path, other) is None and not target.exists()
