"""One read per run: every name of a run shares one cache entry, and concurrent requests share one read.

The runs are JSONL logs written with json.dumps (tests/conftest.py), plus the committed W&B and
TensorBoard fixtures (real writers, tests/data/make_*.py). A parse is counted where the JSONL
source reads a log (`jsonl.read_jsonl`, which its `load` and `load_file` both call), or where
runs asks any source for a run (`parsers.load`, `parsers.load_file`). A slow reader (a pause
before the real one) makes requests overlap for certain.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from runwise import parsers, runs
from runwise.config import RunwiseConfig
from runwise.errors import SourceError
from runwise.model import Run
from runwise.parsers import jsonl
from runwise.server.app import build_server
from tests.conftest import training_rows, write_jsonl

DATA = Path(__file__).resolve().parent / "data"
THREADS = 10


class Reads:
    """Counts the JSONL source's reads of each log; each read can pause first, or fail."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        self.pause = 0.0
        self.fail: Exception | None = None
        self.inside: Callable[[], None] = lambda: None  # runs inside each read, before the real one
        self._lock = threading.Lock()
        real = jsonl.read_jsonl

        def read(path: Path, **kwargs: Any) -> Run:
            with self._lock:
                self.paths.append(path.name)
            self.inside()
            time.sleep(self.pause)
            if self.fail is not None:
                raise self.fail
            return real(path, **kwargs)

        monkeypatch.setattr(jsonl, "read_jsonl", read)

    @property
    def count(self) -> int:
        return len(self.paths)


@pytest.fixture
def cfg(tmp_path: Path) -> Iterator[RunwiseConfig]:
    meta = {"name": "the big run"}
    write_jsonl(tmp_path / "logs" / "big.jsonl", training_rows(steps=3000, spike_at=1500, meta=meta), age_s=3600)
    write_jsonl(tmp_path / "logs" / "other.jsonl", training_rows(steps=500, seed=3), age_s=7200)
    runs.clear_cache()
    yield RunwiseConfig.load(tmp_path, env={"RUNWISE_NO_CACHE": "1"})  # every read is a parse
    runs.clear_cache()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    return Reads(monkeypatch)


def at_once(refs: list[str], cfg: RunwiseConfig) -> list[Run | BaseException]:
    """get_run of each reference, each in its own thread, all started together; runs or errors."""
    start = threading.Barrier(len(refs))

    def ask(ref: str) -> Run | BaseException:
        start.wait()
        try:
            return runs.get_run(ref, cfg)[0]
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(refs)) as pool:
        return list(pool.map(ask, refs))


def test_every_name_of_a_run_shares_one_read(cfg: RunwiseConfig, reads: Reads) -> None:
    by_id, _ = runs.get_run("big", cfg)
    by_path, _ = runs.get_run("logs/big.jsonl", cfg)
    by_name, _ = runs.get_run("the big run", cfg)
    by_key, _ = runs.get_run("jsonl:big", cfg)
    by_prefix, _ = runs.get_run("bi", cfg)
    by_full_path, _ = runs.get_run(str(cfg.root / "logs" / "big.jsonl"), cfg)
    by_dot_path, step = runs.get_run("./logs/big.jsonl@100", cfg)
    assert reads.paths == ["big.jsonl"]
    assert by_name is by_key is by_prefix is by_id
    assert by_path.history is by_full_path.history is by_dot_path.history is by_id.history
    assert by_path.id == by_full_path.id == by_dot_path.id == "logs/big.jsonl"  # a path keeps its id
    assert by_id.id == "big" and by_path.name == by_id.name == "the big run" and step == 100


def test_path_first_then_id_shares_one_read(cfg: RunwiseConfig, reads: Reads) -> None:
    by_path, _ = runs.get_run("logs/big.jsonl", cfg)
    assert runs.is_cached(runs.resolve("big", cfg))
    by_id, _ = runs.get_run("big", cfg)
    assert reads.count == 1 and by_id.history is by_path.history
    assert runs.get_run("other", cfg)[0].history is not by_id.history and reads.count == 2


def test_a_grown_log_asked_by_another_name_reads_only_the_appended_lines(
    cfg: RunwiseConfig, reads: Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, _ = runs.get_run("big", cfg)
    path = cfg.logs_dir / "big.jsonl"
    size = path.stat().st_size
    write_jsonl(cfg.logs_dir / "tail.jsonl", training_rows(steps=3100)[3000:])
    with path.open("ab") as fp:
        fp.write((cfg.logs_dir / "tail.jsonl").read_bytes())
    (cfg.logs_dir / "tail.jsonl").unlink()
    os.utime(path, (time.time() - 3000, time.time() - 3000))
    parts: list[tuple[int, int]] = []
    real = jsonl.read_part

    def read_part(p: str, start: int, end: int) -> object:
        parts.append((start, end))
        return real(p, start, end)

    monkeypatch.setattr(jsonl, "read_part", read_part)
    after, _ = runs.get_run("logs/big.jsonl", cfg)
    assert reads.count == 1  # no second full read
    assert parts == [(size, path.stat().st_size)]
    assert after.id == "logs/big.jsonl" and after.history["train/loss"].steps[-1] == 3099
    assert len(before.history["train/loss"]) == 3000
    assert runs.get_run("big", cfg)[0].history is after.history and reads.count == 1


def test_concurrent_first_reads_of_one_run_parse_it_once(cfg: RunwiseConfig, reads: Reads) -> None:
    reads.pause = 0.3  # every request arrives while the first read is still going on
    got = at_once(["big"] * THREADS, cfg)
    assert reads.count == 1
    assert all(run is got[0] for run in got) and isinstance(got[0], Run)
    assert got[0].history["train/loss"].steps[-1] == 2999


def test_concurrent_reads_by_different_names_parse_once(cfg: RunwiseConfig, reads: Reads) -> None:
    reads.pause = 0.3
    refs = ["big", "logs/big.jsonl", "the big run", "jsonl:big", str(cfg.root / "logs" / "big.jsonl")] * 2
    got = at_once(refs, cfg)
    assert reads.count == 1
    assert all(isinstance(r, Run) and r.history is got[0].history for r in got)  # type: ignore[union-attr]
    assert [r.id for r in got if isinstance(r, Run)] == ["big", "logs/big.jsonl", "big", "big", "logs/big.jsonl"] * 2


def test_two_runs_are_read_in_parallel(cfg: RunwiseConfig, reads: Reads) -> None:
    """Each read waits inside the reader for the other to be inside too: read one after the other,
    the first would wait for nothing and fail (BrokenBarrierError)."""
    both_inside = threading.Barrier(2, timeout=10)
    reads.inside = both_inside.wait
    got = at_once(["big", "other"], cfg)
    assert sorted(reads.paths) == ["big.jsonl", "other.jsonl"]
    assert [r.id for r in got if isinstance(r, Run)] == ["big", "other"]


def test_a_failed_read_fails_every_waiter_and_is_read_again(cfg: RunwiseConfig, reads: Reads) -> None:
    reads.pause = 0.6  # a request arriving after the failure would read again: let all arrive before it
    reads.fail = SourceError("cannot read big.jsonl: disk on fire", path="logs/big.jsonl")
    got = at_once(["big"] * 5 + ["logs/big.jsonl"] * 5, cfg)
    assert reads.count == 1
    assert all(err is reads.fail for err in got)  # the same clear error, to every request
    reads.fail, reads.pause = None, 0.0
    run, _ = runs.get_run("big", cfg)  # the failure was not remembered
    assert reads.count == 2 and run.history["train/loss"].steps[-1] == 2999


def test_waiters_see_the_progress_of_the_read(cfg: RunwiseConfig, reads: Reads) -> None:
    reads.pause = 0.6  # a request arriving after the read would be answered from the cache, without progress
    seen: dict[int, list[tuple[float, float]]] = {i: [] for i in range(3)}
    start = threading.Barrier(3)

    def ask(i: int) -> Run:
        start.wait()
        return runs.get_run("big", cfg, lambda done, total: seen[i].append((done, total)))[0]

    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(ask, range(3)))
    size = float((cfg.logs_dir / "big.jsonl").stat().st_size)
    assert reads.count == 1 and got[0] is got[1] is got[2]
    assert all(marks and marks[-1] == (size, size) for marks in seen.values()), seen


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[RunwiseConfig]:
    """The committed W&B and TensorBoard runs in one project, their files old enough not to be live."""
    shutil.copytree(DATA / "wandb", tmp_path / "wandb", symlinks=True)
    shutil.copytree(DATA / "tensorboard" / "runs", tmp_path / "runs")
    for p in tmp_path.rglob("*"):
        os.utime(p, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    runs.clear_cache()
    yield RunwiseConfig.load(tmp_path, env={"RUNWISE_NO_CACHE": "1"})
    runs.clear_cache()


def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each read runs asks a source for, by entry key or by path."""
    asked: list[str] = []
    load, load_file = parsers.load, parsers.load_file
    monkeypatch.setattr(parsers, "load", lambda e, *a, **k: asked.append(e.key) or load(e, *a, **k))
    monkeypatch.setattr(parsers, "load_file", lambda p, *a, **k: asked.append(str(p)) or load_file(p, *a, **k))
    return asked


FIN = "wandb/offline-run-20261128_020038-fin00001"


@pytest.mark.parametrize(
    ("refs", "key"),
    [
        (["fin00001", FIN, f"{FIN}/run-fin00001.wandb", "wandb:fin00001"], "wandb:fin00001"),
        (["tf2", "runs/tf2", "runs/tf2/events.out.tfevents.1700000000.fixture"], "tensorboard:tf2"),
        (["txb", "runs/txb/", "tensorboard:txb"], "tensorboard:txb"),  # its hparams child dir goes with it
        (["restarted", "runs/restarted"], "tensorboard:restarted"),
    ],
)
def test_wandb_and_tensorboard_paths_share_the_runs_read(
    mixed: RunwiseConfig, monkeypatch: pytest.MonkeyPatch, refs: list[str], key: str
) -> None:
    asked = count_loads(monkeypatch)
    got = [runs.get_run(ref, mixed)[0] for ref in refs]
    assert asked == [key]
    assert all(run.history is got[0].history for run in got)


def test_one_segment_of_a_resumed_wandb_run_is_not_the_whole_run(
    mixed: RunwiseConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = count_loads(monkeypatch)
    whole, _ = runs.get_run("res00001", mixed)
    part, _ = runs.get_run("wandb/offline-run-20261128_020044-res00001", mixed)
    assert len(asked) == 2 and len(whole.segments) == 2 and not part.segments
    one_file, _ = runs.get_run("runs/restarted/events.out.tfevents.1700000000.fixture", mixed)
    assert len(asked) == 3 and one_file.history is not runs.get_run("restarted", mixed)[0].history


@pytest.mark.anyio
async def test_concurrent_tool_calls_on_one_run_parse_it_once(cfg: RunwiseConfig, reads: Reads) -> None:
    reads.pause = 0.3
    calls = [
        ("get_stats", {"run": "big"}), ("summarize_run", {"run": "logs/big.jsonl"}),
        ("detect_anomalies", {"run": "the big run"}), ("get_history", {"run": "jsonl:big", "keys": ["train/loss"]}),
        ("get_stability", {"run": "big"}), ("get_run_context", {"run": "big"}),
    ]
    results: dict[str, Any] = {}
    async with Client(build_server(lambda: cfg)) as client:

        async def call(name: str, args: dict[str, Any]) -> None:
            results[name] = await client.call_tool(name, args)

        async with anyio.create_task_group() as tg:
            for name, args in calls:
                tg.start_soon(call, name, args)
    assert reads.count == 1
    assert not any(r.is_error for r in results.values()), {n: r.content for n, r in results.items() if r.is_error}
    assert "1,500" in str(results["detect_anomalies"].structured_content)  # the planted spike, from the one read
