"""The managed disk cache: a size limit with least-recently-used eviction, hit/miss counts, `runwise
cache info` / `cache clear [RUN]`, untrusted entries removed and rebuilt, atomic concurrent writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from runwise import answers, cache, cli, parsers, runs
from runwise.config import RunwiseConfig, parse_config_file
from runwise.errors import ConfigError
from runwise.model import Run, make_series

REPO = Path(__file__).resolve().parent.parent


def ident(name: str, size: int = 10) -> tuple[object, ...]:
    return (f"jsonl:{name}", (f"/project/logs/{name}.jsonl", size, 123))


def sample_run(name: str = "x", n: int = 100, scale: float = 1.0) -> Run:
    steps = np.arange(n)
    return Run(id=name, source="jsonl", path=f"logs/{name}.jsonl", name=f"the {name} run", exit_code=0,
               history={"loss": make_series("loss", steps, scale / (steps + 1.0))})


def entry_file(cache_dir: Path, identity: tuple[object, ...]) -> Path:
    return cache._file(cache_dir, identity)


def names(cache_dir: Path) -> set[str]:
    return {p.name for p in cache_dir.iterdir()}


# ---------------------------------------------------------------- size limit


def test_eviction_removes_the_least_recently_used_and_a_read_counts_as_use(tmp_path: Path) -> None:
    """A, B, C, D written in that order (mtimes 1..4 hours ago), then A read: a limit that holds
    three entries keeps A, D and the new E, and evicts B then C."""
    ids = {k: ident(k) for k in "ABCDE"}
    for hours, k in zip((4, 3, 2, 1), "ABCD", strict=True):
        cache.write(tmp_path, ids[k], sample_run(k))
        t = cache.time.time() - hours * 3600
        os.utime(entry_file(tmp_path, ids[k]), (t, t))
    assert cache.read(tmp_path, ids["A"]) is not None  # A is now the most recently used
    size = {k: entry_file(tmp_path, ids[k]).stat().st_size for k in "ABCD"}
    cache.write(tmp_path / "alone", ids["E"], sample_run("E"))
    limit = size["A"] + size["D"] + entry_file(tmp_path / "alone", ids["E"]).stat().st_size
    cache.write(tmp_path, ids["E"], sample_run("E"), max_bytes=limit)
    kept = {k for k in "ABCDE" if entry_file(tmp_path, ids[k]).exists()}
    assert kept == {"A", "D", "E"}
    assert sum(e.size for e in cache.entries(tmp_path)) <= limit
    assert cache.stats(tmp_path)["evicted"] == 2


def test_old_entries_are_removed_even_under_the_limit(tmp_path: Path) -> None:
    cache.write(tmp_path, ident("old"), sample_run("old"))
    t = cache.time.time() - cache.MAX_AGE - 60
    os.utime(entry_file(tmp_path, ident("old")), (t, t))
    cache.write(tmp_path, ident("new"), sample_run("new"))
    assert [e.path for e in cache.entries(tmp_path)] == [entry_file(tmp_path, ident("new"))]


def test_an_entry_larger_than_the_limit_is_not_kept(tmp_path: Path) -> None:
    cache.write(tmp_path, ident("small"), sample_run("small", n=10))
    cache.write(tmp_path, ident("big"), sample_run("big", n=10_000), max_bytes=50_000)  # 160 kB of arrays
    cache.write(tmp_path / "alone", ident("framed"), sample_run("framed", n=10))
    framed = entry_file(tmp_path / "alone", ident("framed")).stat().st_size  # its arrays are ~600 bytes less
    cache.write(tmp_path, ident("framed"), sample_run("framed", n=10), max_bytes=framed - 1)
    assert [e.path.name for e in cache.entries(tmp_path)] == [entry_file(tmp_path, ident("small")).name]


def test_a_zero_limit_writes_nothing(tmp_path: Path) -> None:
    cache.write(tmp_path / "c", ident("x"), sample_run(), max_bytes=0)
    assert not (tmp_path / "c").exists()


def test_cache_max_bytes_in_runwise_json(tmp_path: Path) -> None:
    assert RunwiseConfig(tmp_path).cache_max_bytes == cache.DEFAULT_MAX_BYTES == 2 * 1024**3
    path = tmp_path / "runwise.json"
    path.write_text(json.dumps({"cache_max_bytes": 1000}))
    on = RunwiseConfig.load(tmp_path, env={})
    assert on.cache_max_bytes == 1000 and on.cache_enabled
    path.write_text(json.dumps({"cache_max_bytes": 0}))
    assert not RunwiseConfig.load(tmp_path, env={}).cache_enabled  # 0: no disk cache
    path.write_text(json.dumps({"cache_max_bytes": -1}))
    with pytest.raises(ConfigError, match="cache_max_bytes"):
        parse_config_file(path)


def test_cache_max_bytes_holds_the_cache_of_a_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through runs.get_run: with room for one entry, reading run_a then run_b keeps run_b's only."""
    cfg = cached_project(project, monkeypatch)
    sizes = [e.size for e in cache.entries(cfg.cache_dir)]
    cache.clear(cfg.cache_dir)
    settings = json.loads((project / "runwise.json").read_text())
    (project / "runwise.json").write_text(json.dumps({**settings, "cache_max_bytes": max(sizes) + min(sizes) // 2}))
    cfg = RunwiseConfig.load(project)
    runs.clear_cache()
    for ref in ("run_a", "run_b"):
        runs.get_run(ref, cfg)
    assert [cache.entry_key(e.path) for e in cache.entries(cfg.cache_dir)] == ["jsonl:run_b"]


# ---------------------------------------------------------------- counts and the CLI


def test_counts_after_a_miss_and_a_hit(tmp_path: Path) -> None:
    assert cache.read(tmp_path, ident("x")) is None
    cache.write(tmp_path, ident("x"), sample_run())
    assert cache.read(tmp_path, ident("x")) is not None
    info = cache.info(tmp_path)
    assert (info.entries, info.bytes) == (1, entry_file(tmp_path, ident("x")).stat().st_size)
    assert info.counts == {"hits": 1, "misses": 1, "resumed": 0, "writes": 1, "evicted": 0, "discarded": 0}


def test_a_read_only_cache_still_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.write(tmp_path, ident("x"), sample_run())

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(cache.os, "utime", refused)
    monkeypatch.setattr(cache, "replacing", refused)
    run = cache.read(tmp_path, ident("x"))
    assert run is not None and run.name == "the x run"
    assert entry_file(tmp_path, ident("x")).exists()


def test_counts_survive_concurrent_updates(tmp_path: Path) -> None:
    def bump() -> None:
        for _ in range(50):
            cache._count(tmp_path, hits=1)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.stats(tmp_path)["hits"] == 200
    assert names(tmp_path) == {cache.STATS_FILE, cache.LOCK_FILE}  # no temporary file left behind


def test_unreadable_counts_start_again_from_zero(tmp_path: Path) -> None:
    (tmp_path / cache.STATS_FILE).write_bytes(b'{"hits": 3, "misses": "many"')
    assert cache.stats(tmp_path)["hits"] == 0
    cache._count(tmp_path, misses=1)
    assert cache.stats(tmp_path) == {"hits": 0, "misses": 1, "resumed": 0, "writes": 0, "evicted": 0, "discarded": 0}


def cached_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> RunwiseConfig:
    """`project` with both runs read once, so each has a disk cache entry."""
    monkeypatch.setattr(cache, "MIN_SECONDS", 0.0)
    cfg = RunwiseConfig.load(project)
    runs.clear_cache()
    for ref in ("run_a", "run_b"):
        runs.get_run(ref, cfg)
    runs.clear_cache()
    assert len(cache.entries(cfg.cache_dir)) == 2
    return cfg


def cli_run(capsys: pytest.CaptureFixture[str], project: Path, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--root", str(project), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cache_info_command(capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = cached_project(project, monkeypatch)  # two misses, two writes
    runs.get_run("run_a", cfg)  # a hit
    code, out, err = cli_run(capsys, project, "cache", "info", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["directory"] == str(cfg.cache_dir) and data["enabled"] is True
    assert (data["entries"], data["hits"], data["misses"], data["writes"]) == (2, 1, 2, 2)
    assert data["bytes"] == sum(e.size for e in cache.entries(cfg.cache_dir))
    assert data["max_bytes"] == 2 * 1024**3
    code, out, err = cli_run(capsys, project, "cache")  # info is the default
    assert code == 0, err
    assert out.splitlines() == [
        f"cache: {cfg.cache_dir}",
        f"entries: 2, {data['bytes'] / 1024:.1f} KiB of at most 2.0 GiB",
        "counts: 1 hits, 2 misses, 0 resumed, 2 writes, 0 evicted, 0 discarded",
        f"answers kept: {data['answers']} (in {answers.store_path(cfg.cache_dir)})",
    ]


def test_cache_clear_removes_only_runwise_files(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = cached_project(project, monkeypatch)
    others = {"notes.txt", "abc.npz", "index.sqlite"}  # not runwise's entries: names of another shape
    for name in others:
        (cfg.cache_dir / name).write_text("keep me")
    (cfg.cache_dir / "sub").mkdir()
    code, out, err = cli_run(capsys, project, "cache", "clear", "--json")
    assert code == 0, err
    assert json.loads(out)["removed"] == 2
    assert names(cfg.cache_dir) == others | {"sub"}
    assert sorted(p.name for p in (project / "logs").iterdir()) == ["run_a.jsonl", "run_b.jsonl"]


@pytest.mark.parametrize("ref", ["run_a", "jsonl:run_a", "logs/run_a.jsonl"])
def test_cache_clear_one_run(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    """However the run is named (id, source:id, its log's path), only its entries go."""
    cfg = cached_project(project, monkeypatch)
    monkeypatch.chdir(project)
    keys = {e.path.name: cache.entry_key(e.path) for e in cache.entries(cfg.cache_dir)}
    code, out, err = cli_run(capsys, project, "cache", "clear", ref)
    assert code == 0, err
    assert out.startswith(f"removed 1 cache entry of {ref} (")
    left = [cache.entry_key(e.path) for e in cache.entries(cfg.cache_dir)]
    assert left == ["jsonl:run_b"] and sorted(keys.values()) == ["jsonl:run_a", "jsonl:run_b"]
    code, out, err = cli_run(capsys, project, "cache", "clear", "no_such_run")
    assert code == 1 and err.startswith("runwise: error: ") and err.count("\n") == 1
    assert len(cache.entries(cfg.cache_dir)) == 1


@pytest.mark.parametrize("ref", ["run_a", "jsonl:run_a"])
def test_cache_clear_of_a_run_whose_log_is_gone(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    cfg = cached_project(project, monkeypatch)
    (project / "logs" / "run_a.jsonl").unlink()
    code, out, err = cli_run(capsys, project, "cache", "clear", ref)
    assert code == 0, err
    assert out.startswith(f"removed 1 cache entry of {ref} (")
    assert [cache.entry_key(e.path) for e in cache.entries(cfg.cache_dir)] == ["jsonl:run_b"]


# ---------------------------------------------------------------- untrusted entries


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def flip_bytes(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    for i in range(len(raw) // 3, len(raw) // 3 + 64):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite a valid entry with `change` applied to its arrays (decoded records as dicts)."""
    with np.load(path, allow_pickle=False) as z:
        arrays: dict[str, Any] = {k: z[k] for k in z.files}
    for k in ("entry", "meta"):
        arrays[k] = orjson.loads(arrays[k].tobytes())
    change(arrays)
    for k in ("entry", "meta"):
        arrays[k] = np.frombuffer(orjson.dumps(arrays[k]), dtype=np.uint8)
    with path.open("wb") as fp:
        np.savez(fp, **arrays)


def other_schema(a: dict[str, Any]) -> None:
    a["entry"]["schema"] = "0123456789ab"


def other_format(a: dict[str, Any]) -> None:
    a["entry"]["format"] = 1


def wrong_kind(a: dict[str, Any]) -> None:
    a["meta"]["name"] = 5


def wrong_dtype(a: dict[str, Any]) -> None:
    a["s:0"] = a["s:0"].astype(np.float64)


def short_values(a: dict[str, Any]) -> None:
    a["v:0"] = a["v:0"][:-1]


def missing_array(a: dict[str, Any]) -> None:
    del a["v:0"]


def foreign(path: Path) -> None:
    """Another entry's file under this entry's name (copied, or a digest collision)."""
    other = path.with_name("f" * 24 + ".npz")
    cache.write(path.parent, ident("other"), sample_run("other"))
    entry_file(path.parent, ident("other")).replace(other)
    other.replace(path)


DAMAGE: list[Callable[[Path], None]] = [
    truncate, garbage, flip_bytes, foreign,
    *(lambda p, c=c: rewrite(p, c) for c in (other_schema, other_format, wrong_kind, wrong_dtype, short_values,
                                             missing_array)),
]
DAMAGE_IDS = ["truncated", "garbage", "flipped", "foreign", "other_schema", "other_format", "wrong_kind",
              "wrong_dtype", "short_values", "missing_array"]


@pytest.mark.parametrize("damage", DAMAGE, ids=DAMAGE_IDS)
def test_an_untrusted_entry_is_a_miss_and_removed(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    cache.write(tmp_path, ident("x"), sample_run())
    path = entry_file(tmp_path, ident("x"))
    damage(path)
    assert cache.read(tmp_path, ident("x")) is None
    assert not path.exists()
    assert cache.stats(tmp_path)["discarded"] == 1


@pytest.mark.parametrize("damage", DAMAGE, ids=DAMAGE_IDS)
def test_an_untrusted_entry_is_rebuilt_with_the_uncached_answer(
    project: Path, monkeypatch: pytest.MonkeyPatch, damage: Callable[[Path], None]
) -> None:
    cfg = RunwiseConfig.load(project, env={"RUNWISE_NO_CACHE": "1"})
    runs.clear_cache()
    uncached, _ = runs.get_run("run_b", cfg)
    cfg = cached_project(project, monkeypatch)
    entry = next(e.path for e in cache.entries(cfg.cache_dir) if cache.entry_key(e.path) == "jsonl:run_b")
    damage(entry)
    again, _ = runs.get_run("run_b", cfg)
    assert again.name == uncached.name and again.history.keys() == uncached.history.keys()
    for k, s in uncached.history.items():
        np.testing.assert_array_equal(again.history[k].values, s.values)
        np.testing.assert_array_equal(again.history[k].steps, s.steps)

    def no_parsing(*args: object, **kwargs: object) -> object:
        raise AssertionError("parsed again: the rebuilt entry was not used")

    monkeypatch.setattr(parsers, "load", no_parsing)
    runs.clear_cache()
    assert runs.get_run("run_b", cfg)[0].history["train/loss"].values.tolist() == \
        uncached.history["train/loss"].values.tolist()


# ---------------------------------------------------------------- atomic writes


def test_concurrent_writers_never_show_half_a_file(tmp_path: Path) -> None:
    """Four threads write the same entry with runs of different lengths while another reads it:
    every read is one of the written runs, whole."""
    cache.write(tmp_path, ident("x"), sample_run(n=10, scale=10.0))
    lengths = {10, 2_000, 20_000, 60_000}
    stop = threading.Event()
    seen: list[int | None] = []

    def writer(n: int) -> None:
        for _ in range(15):
            cache.write(tmp_path, ident("x"), sample_run(n=n, scale=float(n)))

    def reader() -> None:
        while not stop.is_set():
            run = cache.read(tmp_path, ident("x"))
            if run is None:
                seen.append(None)
                continue
            loss = run.history["loss"]
            n = len(loss)
            ok = loss.values[0] == float(n) and int(loss.steps[-1]) == n - 1
            seen.append(n if ok else -1)

    threads = [threading.Thread(target=writer, args=(n,)) for n in sorted(lengths)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert seen and set(seen) <= lengths, sorted({s for s in seen if s not in lengths}, key=str)
    assert names(tmp_path) == {entry_file(tmp_path, ident("x")).name, cache.STATS_FILE, cache.LOCK_FILE}


WRITER = """
import sys
from pathlib import Path
import numpy as np
from runwise import cache
from runwise.model import Run, make_series
n = int(sys.argv[2])
loss = make_series("loss", np.arange(n), np.full(n, n))
run = Run(id="x", source="jsonl", path="logs/x.jsonl", history={"loss": loss})
for _ in range(20):
    cache.write(Path(sys.argv[1]), ("jsonl:x", ("/project/logs/x.jsonl", 10, 123)), run)
"""


def test_two_processes_writing_the_same_entry(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(n)], cwd=REPO)
             for n in (5_000, 50_000)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    run = cache.read(tmp_path, ident("x"))
    assert run is not None
    loss = run.history["loss"]
    assert len(loss) in (5_000, 50_000) and set(loss.values.tolist()) == {float(len(loss))}
    assert cache.stats(tmp_path)["writes"] == 40
    assert names(tmp_path) == {entry_file(tmp_path, ident("x")).name, cache.STATS_FILE, cache.LOCK_FILE}
