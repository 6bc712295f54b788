"""Run references, the in-memory cache and the on-disk cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from runwise import cache, runs
from runwise.config import RunwiseConfig
from runwise.errors import AmbiguousRun, OutsideRoot, RunNotFound, SourceError


def jsonl(path: Path, n: int = 5, *, meta: dict[str, object] | None = None, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ([{"_meta": meta}] if meta else []) + [{"step": i, "loss": 1.0 / (i + 1)} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


@pytest.fixture
def cfg(tmp_path: Path) -> RunwiseConfig:
    logs = tmp_path / "logs"
    jsonl(logs / "alpha-1.jsonl", mtime=1_700_000_000)
    jsonl(logs / "alpha-2.jsonl", mtime=1_700_000_100)
    jsonl(logs / "beta.jsonl", meta={"name": "the beta run"}, mtime=1_700_000_200)
    runs.clear_cache()
    return RunwiseConfig.load(tmp_path, env={"RUNWISE_CACHE_DIR": str(tmp_path / "cache")})


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("latest", "beta"), ("", "beta"), ("alpha-1", "alpha-1"), ("jsonl:alpha-2", "alpha-2"), ("bet", "beta"),
     ("logs/alpha-1.jsonl", "logs/alpha-1.jsonl")],
)
def test_resolve(cfg: RunwiseConfig, ref: str, expected: str) -> None:
    assert runs.resolve(ref, cfg).id == expected


def test_ref_at_step_loads_the_run_and_its_step(cfg: RunwiseConfig) -> None:
    run, step = runs.get_run("beta@3", cfg)
    assert run.name == "the beta run" and step == 3


@pytest.mark.parametrize(("ref", "step"), [("a@5000", 5000), ("a@12k", 12_000), ("a@1_000", 1000), ("a", None),
                                           ("user@host", None)])
def test_split_step(ref: str, step: int | None) -> None:
    assert runs.split_step(ref)[1] == step


def test_ambiguous_prefix_names_candidates(cfg: RunwiseConfig) -> None:
    with pytest.raises(AmbiguousRun, match="jsonl:alpha-1.*jsonl:alpha-2|jsonl:alpha-2.*jsonl:alpha-1"):
        runs.resolve("alpha", cfg)


def test_unknown_run_names_closest(cfg: RunwiseConfig) -> None:
    with pytest.raises(RunNotFound, match="closest: alpha-1"):
        runs.resolve("alpah-1", cfg)


def test_no_runs_at_all(tmp_path: Path) -> None:
    with pytest.raises(RunNotFound, match="no runs were found"):
        runs.resolve("latest", RunwiseConfig.load(tmp_path, env={}))


def test_path_outside_roots_is_refused(cfg: RunwiseConfig, tmp_path: Path) -> None:
    outside = tmp_path.parent / "elsewhere.jsonl"
    with pytest.raises(OutsideRoot):
        runs.resolve(str(outside), cfg)
    with pytest.raises(OutsideRoot):
        runs.resolve("../../etc/passwd.jsonl", cfg)


def test_memory_cache_rereads_a_changed_file(cfg: RunwiseConfig) -> None:
    first, _ = runs.get_run("alpha-1", cfg)
    again, _ = runs.get_run("alpha-1", cfg)
    assert again is first
    jsonl(cfg.logs_dir / "alpha-1.jsonl", n=9, mtime=1_700_000_050)
    grown, _ = runs.get_run("alpha-1", cfg)
    assert len(grown.history["loss"]) == 9


def test_disk_cache_round_trip_and_corruption(cfg: RunwiseConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second read (memory cache cleared, as in a new process) comes from the disk cache, not the log."""
    from runwise import parsers

    monkeypatch.setattr(cache, "MIN_SECONDS", 0.0)
    run, _ = runs.get_run("beta", cfg)
    files = list(cfg.cache_dir.glob("*.npz"))
    assert len(files) == 1
    parse = parsers.load
    parsed: list[object] = []

    def no_parsing(*args: object, **kwargs: object) -> object:
        raise AssertionError("the log was parsed again: the disk cache was not used")

    def counted(*args: object, **kwargs: object) -> object:
        parsed.append(args[0])
        return parse(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(parsers, "load", no_parsing)
    runs.clear_cache()
    cached, _ = runs.get_run("beta", cfg)
    assert cached is not run and cached.name == "the beta run"
    np.testing.assert_array_equal(cached.history["loss"].values, run.history["loss"].values)
    np.testing.assert_array_equal(cached.history["loss"].steps, run.history["loss"].steps)
    files[0].write_bytes(b"not an npz")  # a damaged cache file is ignored and rebuilt
    monkeypatch.setattr(parsers, "load", counted)
    runs.clear_cache()
    rebuilt, _ = runs.get_run("beta", cfg)
    assert len(parsed) == 1
    assert rebuilt.history["loss"].values.tolist() == run.history["loss"].values.tolist()
    monkeypatch.setattr(parsers, "load", no_parsing)
    runs.clear_cache()
    assert runs.get_run("beta", cfg)[0].name == "the beta run"  # the rebuilt file is read
    # nothing was written next to the runs
    assert sorted(p.name for p in cfg.logs_dir.iterdir()) == ["alpha-1.jsonl", "alpha-2.jsonl", "beta.jsonl"]


def test_missing_path_says_so(cfg: RunwiseConfig) -> None:
    with pytest.raises(RunNotFound, match="no log file or run directory at './logs/gone.jsonl'"):
        runs.resolve("./logs/gone.jsonl", cfg)


def test_candidates_are_not_repeated(cfg: RunwiseConfig) -> None:
    with pytest.raises(RunNotFound) as info:
        runs.resolve("beta-x", cfg)
    assert str(info.value).count("beta") == 2  # the reference and one candidate, not the id twice


@pytest.mark.parametrize("ref", ["bad\x00name.jsonl", "~no-such-user-here/x.jsonl", "loop/x.jsonl"])
def test_a_path_that_cannot_be_resolved_is_a_one_line_error(cfg: RunwiseConfig, ref: str) -> None:
    (cfg.root / "loop").symlink_to(cfg.root / "loop")
    with pytest.raises(SourceError, match=r"^cannot use the path '[^\n]+$"):
        runs.resolve(ref, cfg)


def test_disk_cache_keeps_to_the_configured_size(cfg: RunwiseConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """runwise.json's cache_max_bytes reaches the disk cache: a run larger than the limit is not stored."""
    monkeypatch.setattr(cache, "MIN_SECONDS", 0.0)
    (cfg.root / "runwise.json").write_text(json.dumps({"cache_max_bytes": 100}))
    small = RunwiseConfig.load(cfg.root, env={"RUNWISE_CACHE_DIR": str(cfg.cache_dir)})
    assert small.cache_enabled and small.cache_max_bytes == 100
    runs.get_run("beta", small)
    assert list(cfg.cache_dir.glob("*.npz")) == []
    runs.clear_cache()
    runs.get_run("beta", cfg)  # the default limit stores it
    assert len(list(cfg.cache_dir.glob("*.npz"))) == 1


def test_a_reader_failing_on_one_run_leaves_the_listing_of_the_others(
    cfg: RunwiseConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runwise.tools.runs import ListRunsInput, list_runs

    real = runs.load
    entries = runs.discover(cfg)[0]
    victim = entries[-1].key

    def load(entry: object, *args: object, **kwargs: object) -> object:
        if getattr(entry, "key", None) == victim:
            raise OverflowError("Python int too large to convert to C long")  # as a reader's bug would
        return real(entry, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runs, "load", load)
    out = list_runs(ListRunsInput(limit=50), cfg)
    states = {r[0]: r[3] for r in out.runs.rows}
    assert len(states) == len(entries) >= 2
    assert states[entries[-1].id] == "unreadable"
    assert all(s != "unreadable" for i, s in states.items() if i != entries[-1].id)
    note = next(n for n in out.notes if n.startswith(victim))
    assert "internal error" in note and "OverflowError" in note and "\n" not in note
