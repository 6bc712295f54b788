"""runwise._bounded.Bounded: the parsers' per-file memo keeps its newest entries, safely across threads."""

from __future__ import annotations

import threading

import pytest

from runwise._bounded import Bounded


def test_the_oldest_written_entry_goes_first() -> None:
    memo: Bounded[str, int] = Bounded(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # a read does not make an entry recent without lru
    memo.put("c", 3)
    assert ("a" in memo, "b" in memo, "c" in memo) == (False, True, True) and len(memo) == 2


def test_with_lru_a_read_keeps_an_entry() -> None:
    memo: Bounded[str, int] = Bounded(2, lru=True)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1
    memo.put("c", 3)
    assert ("a" in memo, "b" in memo, "c" in memo) == (True, False, True)
    memo.put("a", 4)  # a rewrite is recent too
    memo.put("d", 5)
    assert memo.get("a") == 4 and "c" not in memo and memo.get("missing") is None


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Bounded(0)


def test_threads_writing_at_once_keep_the_bound() -> None:
    memo: Bounded[tuple[int, int], int] = Bounded(8, lru=True)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(2_000):
                memo.put((t, i), i)
                memo.get((t, i - 1))
        except BaseException as exc:  # noqa: BLE001 - any failure in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and len(memo) == 8
