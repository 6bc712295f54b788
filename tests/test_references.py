"""Every id and every name `list_runs` shows is a run reference that resolves to that run.

One project holds the example JSONL logs, the W&B fixtures and the TensorBoard fixtures (made by
the real clients), plus JSONL logs named by a `_meta` row at the start, at the end, and in the
middle of a log too big for discovery to read whole.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from runwise import parsers, runs
from runwise.config import RunwiseConfig
from runwise.errors import RunNotFound, RunwiseError
from runwise.parsers import jsonl
from runwise.parsers.jsonl import NAME_SCAN_BYTES
from runwise.server.app import build_server
from tests.conftest import training_rows, write_jsonl

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def build(root: Path) -> Path:
    shutil.copytree(REPO / "examples" / "logs", root / "logs")
    shutil.copytree(DATA / "wandb", root / "wandb")
    for d in ("runs", "lightning_logs", "logs"):
        shutil.copytree(DATA / "tensorboard" / d, root / d, dirs_exist_ok=True)
    logs = root / "logs"
    write_jsonl(logs / "head.jsonl", training_rows(steps=50, meta={"name": "named at the start"}), age_s=900)
    tail = training_rows(steps=50) + [{"_meta": {"name": "named at the end", "state": "finished"}}]
    write_jsonl(logs / "tail.jsonl", tail, age_s=800)
    big = training_rows(steps=4000)
    big.insert(2000, {"_meta": {"name": "named in the middle"}})
    write_jsonl(logs / "big_middle.jsonl", big, age_s=700)
    big_head = training_rows(steps=4000, meta={"name": "big, named at the start"})
    write_jsonl(logs / "big_head.jsonl", big_head, age_s=600)
    assert (logs / "big_middle.jsonl").stat().st_size > 3 * NAME_SCAN_BYTES  # the middle is never scanned
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    runs.clear_cache()
    return build(tmp_path / "proj")


def _cfg(root: Path) -> RunwiseConfig:
    return RunwiseConfig.load(root, env={"RUNWISE_NO_CACHE": "1"})


@pytest.mark.anyio
async def test_every_id_and_name_list_runs_shows_resolves_to_that_run(project: Path) -> None:
    server = build_server(lambda: _cfg(project))
    async with Client(server) as client:
        listed = await client.call_tool("list_runs", {"limit": 100, "sparklines": False})
        table = (listed.structured_content or {})["runs"]
        rows = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
        assert {r["source"] for r in rows} == {"jsonl", "wandb", "tensorboard"}
        shown = {r["name"] for r in rows}
        assert {"named at the start", "named at the end", "named in the middle", "big, named at the start",
                "fin-run", "killed-run", "keras/train"} <= shown
        names = [r["name"] for r in rows if r["name"]]
        assert len(names) == len(set(names))  # else a name could not name one run
        refs: list[tuple[str, dict[str, Any]]] = []
        for r in rows:
            refs += [(r["id"], r), (f"{r['source']}:{r['id']}", r)]
            if r["name"]:
                refs.append((r["name"], r))
        for ref, row in refs:
            result = await client.call_tool("summarize_run", {"run": ref})
            assert not result.is_error, (ref, result.content)
            run = (result.structured_content or {})["run"]
            assert (run["id"], run["source"]) == (row["id"], row["source"]), ref


def test_a_name_near_either_end_resolves_without_loading(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kw: object) -> None:
        raise AssertionError("resolve loaded a run")

    monkeypatch.setattr(parsers, "load", refuse)
    monkeypatch.setattr(parsers, "load_file", refuse)
    cfg = _cfg(project)
    assert runs.resolve("named at the start", cfg).id == "head"
    assert runs.resolve("named at the end", cfg).id == "tail"
    assert runs.resolve("big, named at the start", cfg).id == "big_head"
    assert runs.resolve("fin-run", cfg).id == "fin00001"  # W&B: from the first block of its log


def test_a_name_only_the_whole_log_tells_resolves_in_a_fresh_process(project: Path) -> None:
    cfg = _cfg(project)
    (entry,) = [e for e in jsonl.discover(cfg) if e.id == "big_middle"]
    assert entry.name == "big_middle" and not entry.extra["name_final"]  # discovery cannot know it
    run, step = runs.get_run("named in the middle@100", cfg)
    assert (run.id, run.name, step) == ("big_middle", "named in the middle", 100)
    assert runs.resolve("named in the mid", cfg).id == "big_middle"  # a prefix of it, like any name


def test_an_unknown_name_reads_only_runs_whose_name_discovery_could_not_tell(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    for source in ("jsonl", "tensorboard", "wandb"):
        mod = parsers.source_module(source)
        real = mod.display_name

        def counting(entry: Any, cfg: RunwiseConfig, real: Any = real) -> str:
            asked.append(entry.key)
            name: str = real(entry, cfg)
            return name

        monkeypatch.setattr(mod, "display_name", counting)
    monkeypatch.setattr(parsers, "load", lambda *a, **k: pytest.fail("a run was loaded to learn a name"))
    cfg = _cfg(project)
    runs.resolve("fin-run", cfg)  # W&B: a name from the first block of its log
    assert asked == []
    with pytest.raises(RunNotFound, match="no run matches 'no such run'"):
        runs.resolve("no such run", cfg)
    assert "jsonl:big_middle" in asked and "jsonl:big_head" in asked  # more than their ends could tell
    assert not [k for k in asked if k.startswith("tensorboard:")]  # a TensorBoard run's name is its id
    assert "jsonl:head" not in asked and "jsonl:tail" not in asked  # read whole at discovery
    asked.clear()
    with pytest.raises(RunNotFound):
        runs.resolve("still no such run", cfg)
    assert asked == []  # names learned once per run version


def test_runs_larger_than_list_runs_reads_are_not_loaded_for_a_name(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "LIST_LOAD_BYTES", NAME_SCAN_BYTES)  # list_runs would not read big_middle
    with pytest.raises(RunNotFound):
        runs.resolve("named in the middle", _cfg(project))


def test_only_the_newest_runs_a_listing_can_show_are_loaded_for_a_name(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(project)
    newer = [e for e in jsonl.discover(cfg) if e.mtime > (project / "logs" / "big_middle.jsonl").stat().st_mtime]
    monkeypatch.setattr(runs, "LIST_MAX_RUNS", len(newer))  # big_middle is one run too old to be listed
    with pytest.raises(RunNotFound):
        runs.resolve("named in the middle", cfg)
    monkeypatch.setattr(runs, "LIST_MAX_RUNS", len(newer) + 1)
    assert runs.resolve("named in the middle", cfg).id == "big_middle"


def test_later_meta_rows_win_as_in_a_load(tmp_path: Path) -> None:
    rows = [{"_meta": {"name": "first"}}, {"step": 0, "loss": 1.0}, {"_meta": {"name": "second"}}]
    write_jsonl(tmp_path / "logs" / "a.jsonl", rows)
    cfg = _cfg(tmp_path)
    (entry,) = jsonl.discover(cfg)
    assert entry.name == "second" == runs.load(entry, cfg).name


@pytest.mark.parametrize("ref", ["a@-5", "a@-1k", "latest@-0_001"])
def test_negative_step_is_a_one_line_error(ref: str) -> None:
    with pytest.raises(RunwiseError, match=r"^the step after '@' must be from 0 upwards, got -[\d,]+$"):
        runs.split_step(ref)
    with pytest.raises(ValueError):  # input validators report it as an argument error
        runs.split_step(ref)


@pytest.mark.anyio
async def test_negative_step_through_the_server(project: Path) -> None:
    async with Client(build_server(lambda: _cfg(project))) as client:
        result = await client.call_tool("summarize_run", {"run": "head@-5"})
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and "must be" in text and "\n" not in text, text




CASES = {
    "start": [{"_meta": {"name": "a"}}, {"step": 0, "loss": 1.0}],
    "two rows, the later wins": [{"_meta": {"name": "a"}}, {"step": 0, "loss": 1.0}, {"_meta": {"name": "b"}}],
    "a later row without a name keeps it": [{"_meta": {"name": "a"}}, {"_meta": {"state": "finished"}}],
    "not an object": [{"_meta": "x"}, {"step": 0, "loss": 1.0}],
    "nested _meta is a metric prefix": [{"step": 0, "x": {"_meta": {"name": "no"}}}],
    "none": [{"step": 0, "loss": 1.0}],
}


@pytest.mark.parametrize("chunk", [5, 64, 8 * 1024 * 1024])
@pytest.mark.parametrize("case", sorted(CASES))
def test_display_name_is_the_name_a_load_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, chunk: int
) -> None:
    """Whatever the rows, and wherever the search's reads cut them (`chunk` bytes each)."""
    rows = CASES[case]
    path = write_jsonl(tmp_path / "logs" / "r.jsonl", [*training_rows(steps=20), *rows])
    monkeypatch.setattr(jsonl, "SCAN_CHUNK", chunk)
    cfg = _cfg(tmp_path)
    (entry,) = jsonl.discover(cfg)
    entry.name = entry.id  # as discovery gives it for a log too big to read whole
    assert jsonl.display_name(entry, cfg) == runs.load(entry, cfg).name
    path.write_bytes(path.read_bytes()[:-1])  # the last line without its newline is read too
    runs.clear_cache()
    (entry,) = jsonl.discover(cfg)
    entry.name = entry.id
    assert jsonl.display_name(entry, cfg) == runs.load(entry, cfg).name


@pytest.mark.parametrize("chunk", [16, 8 * 1024 * 1024])  # the long line cut by reads, or read whole
def test_display_name_skips_a_line_too_long_to_be_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(jsonl, "MAX_LINE", 100)
    monkeypatch.setattr(jsonl, "SCAN_CHUNK", chunk)
    long_row = {"_meta": {"name": "too long"}, "pad": "x" * 200}
    write_jsonl(tmp_path / "logs" / "r.jsonl", [{"_meta": {"name": "short"}}, long_row, {"step": 0, "loss": 1.0}])
    cfg = _cfg(tmp_path)
    (entry,) = jsonl.discover(cfg)
    assert jsonl.display_name(entry, cfg) == "short"
