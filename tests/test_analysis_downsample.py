from __future__ import annotations

import numpy as np
import pytest

from runwise.analysis.downsample import downsample

SPIKE_INDEX = 523_456


def _brute_force(values: np.ndarray, buckets: int) -> set[int]:
    """Each bucket's first, last, argmin and argmax, by a plain loop (the reference answer)."""
    n = values.size
    keep: set[int] = set()
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        chunk = values[lo:hi]
        keep |= {lo, hi - 1, lo + int(np.argmin(chunk)), lo + int(np.argmax(chunk))}
    return keep


def test_short_series_comes_back_whole() -> None:
    steps = np.arange(10, dtype=np.int64)
    values = np.linspace(1.0, 0.1, 10)
    d = downsample(steps, values, max_points=10)
    assert d.method == "all"
    assert (d.source_points, d.returned_points) == (10, 10)
    np.testing.assert_array_equal(d.steps, steps)
    np.testing.assert_array_equal(d.values, values)


def test_one_step_spike_survives_a_million_points() -> None:
    rng = np.random.default_rng(7)
    n = 1_000_000
    steps = np.arange(n, dtype=np.int64) * 2
    values = 2.0 * np.exp(-np.arange(n) / 200_000) + 0.5 + rng.normal(0, 0.01, n)
    values[SPIKE_INDEX] = 9.7
    d = downsample(steps, values, max_points=1000)
    assert d.method == "minmax-buckets"
    assert d.source_points == n
    assert d.returned_points == d.steps.size <= 1000
    where = np.flatnonzero(d.steps == SPIKE_INDEX * 2)
    assert where.size == 1 and d.values[where[0]] == 9.7
    assert d.steps[0] == 0 and d.steps[-1] == (n - 1) * 2  # first and last points are kept


def test_matches_a_per_bucket_loop() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=997)
    d = downsample(np.arange(997, dtype=np.int64), values, max_points=40)
    assert set(d.steps.tolist()) == _brute_force(values, 10)
    assert np.all(np.diff(d.steps) > 0)


def test_first_nan_of_a_bucket_is_kept_and_counted() -> None:
    values = np.sin(np.arange(1000) / 50.0)
    values[[437, 438]] = np.nan
    d = downsample(np.arange(1000, dtype=np.int64), values, max_points=40)
    assert 437 in d.steps and 438 not in d.steps
    assert d.nan_count == 2 and d.inf_count == 0
    assert d.returned_points <= 40


def test_infinities_are_extremes() -> None:
    values = np.zeros(1000)
    values[123], values[789] = np.inf, -np.inf
    d = downsample(np.arange(1000, dtype=np.int64), values, max_points=8)
    assert {123, 789} <= set(d.steps.tolist())
    assert d.inf_count == 2


@pytest.mark.parametrize("max_points", [4, 5, 7, 9, 100, 1001])
def test_never_more_than_max_points_even_with_nan_everywhere(max_points: int) -> None:
    rng = np.random.default_rng(max_points)
    values = rng.normal(size=20_000)
    values[::37] = np.nan  # a NaN in every bucket: the fifth point per bucket must still fit
    d = downsample(np.arange(20_000, dtype=np.int64), values, max_points=max_points)
    assert d.returned_points == d.steps.size == d.values.size <= max_points
    assert d.steps[-1] == 19_999
    assert np.isnan(d.values).any()


def test_repeated_steps_keep_step_order() -> None:
    steps = np.repeat(np.arange(500, dtype=np.int64), 3)
    values = np.cos(np.arange(1500) / 10.0)
    d = downsample(steps, values, max_points=50)
    assert d.returned_points <= 50
    assert np.all(np.diff(d.steps) >= 0)


@pytest.mark.parametrize(
    ("values", "expected_points"),
    [
        (np.array([], dtype=np.float64), 0),
        (np.array([3.0]), 1),
    ],
)
def test_empty_and_single_point(values: np.ndarray, expected_points: int) -> None:
    d = downsample(np.arange(values.size, dtype=np.int64), values, max_points=4)
    assert d.method == "all"
    assert d.returned_points == d.source_points == expected_points


def test_all_nan_series() -> None:
    d = downsample(np.arange(100, dtype=np.int64), np.full(100, np.nan), max_points=8)
    assert 0 < d.returned_points <= 8
    assert d.nan_count == 100
    assert np.isnan(d.values).all()


def test_constant_series_keeps_first_and_last() -> None:
    d = downsample(np.arange(1000, dtype=np.int64), np.full(1000, 0.25), max_points=20)
    assert d.returned_points <= 20
    assert d.steps[0] == 0 and d.steps[-1] == 999
    assert np.all(d.values == 0.25)


@pytest.mark.parametrize(
    ("steps", "values", "max_points"),
    [
        (np.arange(10), np.zeros(10), 3),
        (np.arange(10), np.zeros(9), 10),
        (np.arange(10).reshape(2, 5), np.zeros((2, 5)), 10),
        (np.linspace(0, 1, 10), np.zeros(10), 10),
    ],
    ids=["max_points<4", "length mismatch", "2-D", "float steps"],
)
def test_bad_arguments_raise(steps: np.ndarray, values: np.ndarray, max_points: int) -> None:
    with pytest.raises(ValueError):
        downsample(steps, values, max_points=max_points)
