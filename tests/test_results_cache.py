"""Analysis results kept per run version (runwise.results): a repeated call computes nothing, a run that
grew is computed again, other arguments are other entries, and concurrent calls compute once."""

from __future__ import annotations

import gc
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runwise import results, runs
from runwise.config import RunwiseConfig
from runwise.tools import TOOLS_BY_NAME
from tests.conftest import write_jsonl

N = 3000
SPIKE, LATE_SPIKE = 900, 3400  # the planted loss spikes: in the first rows, and in rows appended later


def _row(s: int, rng: random.Random) -> dict[str, Any]:
    loss = (0.5 + 2.0 * math.exp(-s / 600)) * (1 + 0.01 * rng.gauss(0, 1))
    if s in (SPIKE, LATE_SPIKE):
        loss *= 4
    row: dict[str, Any] = {"step": s, "train/loss": round(loss, 6), "grad_norm": round(1 + 0.03 * rng.gauss(0, 1), 5),
                           "lr": 1e-3 * 0.5 * (1 + math.cos(math.pi * s / (2 * N)))}
    if s % 100 == 0:
        row["val/loss"] = round(loss + 0.05, 6)
    return row


def _rows(start: int, end: int) -> list[dict[str, Any]]:
    rng = random.Random(start)
    return [_row(s, rng) for s in range(start, end)]


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    runs.clear_cache()
    results.clear()
    yield
    runs.clear_cache()
    results.clear()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    # written an hour ago: a finished run, whose answers do not move with the clock
    return write_jsonl(tmp_path / "logs" / "run.jsonl", _rows(0, N), age_s=3600)


def _cfg(log: Path) -> RunwiseConfig:
    return RunwiseConfig.load(log.parent.parent)


def _ask(tool: str, cfg: RunwiseConfig, **args: Any) -> dict[str, Any]:
    spec = TOOLS_BY_NAME[tool]
    out: dict[str, Any] = spec.run(spec.input(**args), cfg).model_dump(mode="json")
    return out


class Spy:
    """Counts the calls of the function at `module.name`, and calls it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str, *, delay: float = 0.0) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        real: Callable[..., Any] = getattr(module, name)

        def spy(*a: Any, **k: Any) -> Any:
            with self._lock:
                self.calls += 1
            time.sleep(delay)  # a slow analysis: concurrent callers arrive while it runs
            return real(*a, **k)

        monkeypatch.setattr(module, name, spy)


def _anomaly_steps(out: dict[str, Any]) -> list[int]:
    cols = out["anomalies"]["columns"]
    return [r[cols.index("step")] for r in out["anomalies"]["rows"] if r[cols.index("metric")] == "train/loss"]


# ---------------------------------------------------------------- repeated calls


@pytest.mark.parametrize("kept", [False, True], ids=["memo", "answers-on-disk"])
def test_second_call_of_each_analysis_tool_computes_nothing(
    log: Path, monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    """Once from the results memo in memory (the answers kept on disk off), once from those answers."""
    import runwise.analysis.anomalies as anomalies
    import runwise.tools._common as common
    import runwise.tools.metrics as metrics
    import runwise.tools.summary as summary
    from runwise import answers

    spies = {
        "detect": Spy(monkeypatch, anomalies, "detect_anomalies"),
        "stats": Spy(monkeypatch, common, "grown_stats"),
        "stability": Spy(monkeypatch, metrics, "stability"),
        "extremes": Spy(monkeypatch, metrics, "_extremes"),
        "lr_phase": Spy(monkeypatch, summary, "lr_phase"),
        "val_trend": Spy(monkeypatch, summary, "val_trend"),
    }
    tools = ("summarize_run", "detect_anomalies", "get_stats", "get_stability", "get_history", "live_status")
    if not kept:
        monkeypatch.setattr(answers, "TOOL_REFS", {})
    cfg = _cfg(log)
    first = {t: _ask(t, cfg) for t in tools}
    after_first = {k: s.calls for k, s in spies.items()}
    assert all(after_first.values()), after_first  # every analysis ran once at least
    second = {t: _ask(t, _cfg(log)) for t in tools}  # a new config object per call, as the server loads it
    assert {k: s.calls for k, s in spies.items()} == after_first
    for t in tools:
        if t == "live_status":  # its 'seconds since the last write' moves with the clock
            assert first[t]["latest"] == second[t]["latest"]
            assert first[t]["recent_anomalies"] == second[t]["recent_anomalies"]
        else:
            assert first[t] == second[t], t
    assert SPIKE in _anomaly_steps(second["detect_anomalies"])
    hits = results.counts().hits
    if kept:  # five answers from the disk; live_status is never kept, and asks the memo
        assert answers.count(cfg.cache_dir) == 5
        assert hits.get("anomalies", 0) >= 1 and "stability" not in hits, hits
    else:
        assert answers.count(cfg.cache_dir) == 0
        assert hits.get("anomalies", 0) >= 3 and hits.get("stability", 0) >= 1, hits


def test_compare_runs_second_call_computes_nothing(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runwise.tools.compare as compare

    write_jsonl(log.parent / "other.jsonl", _rows(0, N // 2))
    spy = Spy(monkeypatch, compare, "compare_series")
    first = _ask("compare_runs", _cfg(log), runs=["run", "other"])
    n = spy.calls
    assert n >= 1
    assert _ask("compare_runs", _cfg(log), runs=["run", "other"]) == first
    assert spy.calls == n
    _ask("compare_runs", _cfg(log), runs=["run", "other@1000"])  # cut at a step: computed, not taken
    assert spy.calls > n


def test_a_path_reference_shares_the_results_of_the_run(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runwise.analysis.anomalies as anomalies

    spy = Spy(monkeypatch, anomalies, "detect_anomalies")
    by_id = _ask("detect_anomalies", _cfg(log), run="run")
    by_path = _ask("detect_anomalies", _cfg(log), run="logs/run.jsonl")
    assert spy.calls == 1
    assert _anomaly_steps(by_id) == _anomaly_steps(by_path)


# ---------------------------------------------------------------- a new version


def test_a_run_that_grew_is_computed_again(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runwise.analysis.anomalies as anomalies
    import runwise.tools._common as common

    detect = Spy(monkeypatch, anomalies, "detect_anomalies")
    stats = Spy(monkeypatch, common, "grown_stats")
    before = _ask("detect_anomalies", _cfg(log))
    stats_before = _ask("get_stats", _cfg(log), keys=["train/loss"])
    assert LATE_SPIKE not in _anomaly_steps(before)
    calls = detect.calls, stats.calls
    with log.open("a", encoding="utf-8") as fp:  # the writer appends 1,000 rows with a second spike
        for row in _rows(N, N + 1000):
            fp.write(json.dumps(row) + "\n")
    after = _ask("detect_anomalies", _cfg(log))
    stats_after = _ask("get_stats", _cfg(log), keys=["train/loss"])
    assert detect.calls == calls[0] + 1 and stats.calls == calls[1] + 1
    assert LATE_SPIKE in _anomaly_steps(after) and SPIKE in _anomaly_steps(after)
    cols = stats_after["stats"]["columns"]
    assert stats_before["stats"]["rows"][0][cols.index("points")] == N
    assert stats_after["stats"]["rows"][0][cols.index("points")] == N + 1000
    assert stats_after["stats"]["rows"][0][cols.index("final_step")] == N + 999
    # the statistics went on from the earlier version's blocks, and equal those computed afresh
    assert results.counts().grown.get("stats", 0) >= 1
    runs.clear_cache()
    results.clear()
    assert _ask("get_stats", _cfg(log), keys=["train/loss"]) == stats_after
    assert not results.counts().grown


# ---------------------------------------------------------------- other arguments, other entries


def test_other_keys_thresholds_and_windows_are_other_entries(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runwise.analysis.anomalies as anomalies
    import runwise.tools.metrics as metrics

    detect = Spy(monkeypatch, anomalies, "detect_anomalies")
    stab = Spy(monkeypatch, metrics, "stability")
    default = _ask("detect_anomalies", _cfg(log))
    only_grad = _ask("detect_anomalies", _cfg(log), keys=["grad_norm"])
    assert detect.calls == 2
    assert SPIKE in _anomaly_steps(default) and not _anomaly_steps(only_grad)
    _ask("detect_anomalies", _cfg(log), max_anomalies=3)
    assert detect.calls == 3
    # a spike threshold no planted spike reaches: the same run, another answer
    (log.parent.parent / "runwise.json").write_text(json.dumps({"anomaly_detection": {"spike_threshold": 1000}}))
    strict = _ask("detect_anomalies", _cfg(log))
    assert detect.calls == 4
    assert SPIKE not in _anomaly_steps(strict)
    _ask("get_stability", _cfg(log), keys=["train/loss"])
    _ask("get_stability", _cfg(log), keys=["train/loss"], window_steps=50)
    _ask("get_stability", _cfg(log), keys=["train/loss"], window_steps=50)
    assert stab.calls == 2


# ---------------------------------------------------------------- threads


def test_concurrent_calls_compute_once_and_agree(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runwise.tools.metrics as metrics

    _ask("list_keys", _cfg(log))  # the run is read; what is left for the threads is the analysis
    spy = Spy(monkeypatch, metrics, "stability", delay=0.05)
    barrier = threading.Barrier(8)
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            barrier.wait()
            answers.append(_ask("get_stability", _cfg(log)))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(answers) == 8 and all(a == answers[0] for a in answers)
    assert spy.calls == len(answers[0]["stability"]["rows"])  # once per metric, not once per thread


# ---------------------------------------------------------------- the memo itself


def test_memo_keys_on_living_arrays_only() -> None:
    calls = []

    def compute(a: np.ndarray[Any, Any]) -> float:
        calls.append(1)
        return float(a.sum())

    a = np.arange(10, dtype=np.float64)
    assert results.memo("sum", (a,), (), partial(compute, a)) == 45.0
    assert results.memo("sum", (a,), (), partial(compute, a)) == 45.0
    assert len(calls) == 1
    del a
    gc.collect()
    for _ in range(50):  # new arrays (some reuse the freed id) are never taken for the old one
        b = np.full(10, 2.0)
        assert results.memo("sum", (b,), (), partial(compute, b)) == 20.0
        del b
    assert len(calls) == 51


def test_memo_is_bounded_and_forgets_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "MAX_ENTRIES", 5)
    arrays = [np.zeros(3) for _ in range(12)]
    for i, a in enumerate(arrays):
        results.memo("n", (a,), i, lambda: 0)
    assert results.size() == (5, 5)
    monkeypatch.setattr(results, "MAX_WEIGHT", 100)
    for i, a in enumerate(arrays):  # heavy results: the weight bounds them, not the count
        results.memo("w", (a,), i, lambda: list(range(30)), weight=len)
    assert results.size()[1] <= 100 and results.size()[0] == 3

    def fail() -> int:
        raise ValueError("boom")

    a = arrays[0]
    with pytest.raises(ValueError):
        results.memo("f", (a,), (), fail)
    assert results.memo("f", (a,), (), lambda: 7) == 7  # the failure was not remembered


def test_memo_single_flight_across_threads() -> None:
    a = np.arange(5.0)
    calls = []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.1)
        return 42

    got: list[int] = []
    threads = [threading.Thread(target=lambda: got.append(results.memo("slow", (a,), (), slow))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [42] * 6 and len(calls) == 1


def test_a_grown_result_goes_on_only_from_arrays_the_new_ones_begin_with() -> None:
    results.clear()
    seen: list[object] = []

    def compute(arr: np.ndarray) -> Any:
        def run(state: int | None) -> tuple[float, int]:
            seen.append(state)
            return float(arr.sum()), int(arr.size)
        return run

    a = np.arange(10.0)
    b = np.concatenate([a, [99.0]])  # a grown by one value
    c = b.copy()
    c[3] = -1.0  # as long as b, but rewritten in the middle: neither a nor b begins it
    d = b[:5].copy()  # shorter than every earlier version
    for arr in (a, b, c, d):
        results.grown("sum", (arr,), (), compute(arr))
    assert seen == [None, 10, None, None]
    assert results.counts().grown == {"sum": 1}
    e = np.concatenate([b, [1.0, 2.0]])  # b grown again: goes on from b, the longest it begins with
    assert results.grown("sum", (e,), (), compute(e)) == float(e.sum()) and seen[-1] == 11
