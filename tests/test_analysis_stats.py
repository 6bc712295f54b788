from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwise.analysis.stats import BLOCK, grown_stats, series_stats


def _steps(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * 10


def test_known_answer_with_nan_and_inf() -> None:
    st = series_stats(_steps(6), np.array([3.0, np.nan, 1.0, np.inf, 2.0, np.nan]))
    assert (st.count, st.finite_count, st.nan_count, st.inf_count) == (6, 3, 2, 1)
    assert (st.first_step, st.last_step) == (0, 50)
    assert (st.first, st.final, st.final_step) == (3.0, 2.0, 40)
    assert (st.min, st.min_step, st.max, st.max_step) == (1.0, 20, 3.0, 0)
    assert st.mean == pytest.approx(2.0)
    assert st.std == pytest.approx(math.sqrt(2 / 3))


def test_ties_report_the_first_occurrence() -> None:
    st = series_stats(_steps(5), np.array([2.0, 1.0, 5.0, 1.0, 5.0]))
    assert (st.min_step, st.max_step) == (10, 20)


def test_empty() -> None:
    st = series_stats(np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    assert (st.count, st.finite_count, st.nan_count, st.inf_count) == (0, 0, 0, 0)
    assert st.first_step is None and st.last_step is None
    assert st.final is None and st.min is None and st.mean is None and st.std is None


def test_single_point() -> None:
    st = series_stats(np.array([7], dtype=np.int64), np.array([0.5]))
    assert (st.first_step, st.last_step, st.final_step, st.min_step, st.max_step) == (7, 7, 7, 7, 7)
    assert (st.first, st.final, st.min, st.max, st.mean, st.std) == (0.5, 0.5, 0.5, 0.5, 0.5, 0.0)


def test_all_nan_has_steps_but_no_values() -> None:
    st = series_stats(_steps(4), np.full(4, np.nan))
    assert (st.count, st.finite_count, st.nan_count) == (4, 0, 4)
    assert (st.first_step, st.last_step) == (0, 30)
    assert st.first is None and st.final is None and st.final_step is None
    assert st.min is None and st.max_step is None and st.mean is None


def test_only_infinities() -> None:
    st = series_stats(_steps(2), np.array([np.inf, -np.inf]))
    assert (st.inf_count, st.finite_count, st.nan_count) == (2, 0, 0)
    assert st.min is None and st.max is None


def test_constant_series() -> None:
    st = series_stats(_steps(100), np.full(100, 1.25))
    assert (st.min, st.max, st.mean, st.std) == (1.25, 1.25, 1.25, 0.0)
    assert st.final_step == 990


def test_final_is_last_finite_value() -> None:
    st = series_stats(_steps(4), np.array([1.0, 2.0, np.inf, np.nan]))
    assert (st.final, st.final_step, st.last_step) == (2.0, 10, 30)


def test_overflowing_mean_is_none_not_inf() -> None:
    st = series_stats(_steps(2), np.array([1.7e308, 1.7e308]))
    assert st.max == 1.7e308
    assert st.mean is None


def test_plain_python_types() -> None:
    st = series_stats(_steps(3), np.array([1.0, 2.0, 3.0]))
    assert type(st.min_step) is int and type(st.mean) is float


@pytest.mark.parametrize(
    ("steps", "values"),
    [(np.arange(3), np.zeros(2)), (np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2)))],
    ids=["length mismatch", "2-D"],
)
def test_bad_arguments_raise(steps: np.ndarray, values: np.ndarray) -> None:
    with pytest.raises(ValueError):
        series_stats(steps, values)


@settings(max_examples=60, deadline=None)
@given(first=st.integers(0, 3 * BLOCK), more=st.integers(0, 2 * BLOCK), seed=st.integers(0, 2**32 - 1))
def test_a_grown_series_gives_the_statistics_of_the_whole(first: int, more: int, seed: int) -> None:
    """Statistics that go on from the blocks of the series' first `first` points equal those of the
    whole series read at once, to the bit (NaN, inf and ties included, across block boundaries)."""
    rng = np.random.default_rng(seed)
    n = first + more
    values = rng.normal(3.0, 2.0, n).round(1)  # rounded: ties for min and max in several blocks
    for bad in (np.nan, np.inf, -np.inf):
        if n:
            values[rng.integers(0, n, size=min(n, 5))] = bad
    steps = np.arange(n, dtype=np.int64) * 2
    _, blocks = grown_stats(steps[:first], values[:first], ())
    grown, _ = grown_stats(steps, values, blocks)
    assert grown == series_stats(steps, values)
    whole = series_stats(steps, values)
    finite = values[np.isfinite(values)]
    if finite.size:  # and within rounding of numpy's own, over the whole series
        assert whole.mean == pytest.approx(float(np.mean(finite)), rel=1e-12, abs=1e-12)
        assert whole.std == pytest.approx(float(np.std(finite)), rel=1e-9, abs=1e-12)


def test_a_tie_across_blocks_is_dated_at_its_first_occurrence() -> None:
    values = np.ones(2 * BLOCK + 10)
    values[[5, BLOCK + 5, 2 * BLOCK + 5]] = 0.0
    values[[7, BLOCK + 7]] = 9.0
    st_ = series_stats(_steps(values.size), values)
    assert (st_.min, st_.min_step, st_.max, st_.max_step) == (0.0, 50, 9.0, 70)
