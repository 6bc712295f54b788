from __future__ import annotations

import numpy as np
import pytest

from runwise.analysis.sparkline import sparkline


def test_ramp_uses_every_bar() -> None:
    assert sparkline(np.arange(8, dtype=np.float64), width=8) == "▁▂▃▄▅▆▇█"


def test_descending_ramp_bucketed_by_mean() -> None:
    values = np.repeat(np.array([4.0, 3.0, 2.0, 1.0]), 25)  # 100 points, 4 buckets of 25
    assert sparkline(values, width=4) == "█▆▃▁"


def test_bucket_mean_not_max() -> None:
    assert sparkline(np.array([0.0, 10.0, 0.0, 0.0]), width=2) == "█▁"


@pytest.mark.parametrize(
    ("n", "width", "length"), [(1, 20, 1), (5, 20, 5), (20, 20, 20), (1000, 20, 20), (7, 3, 3)]
)
def test_length_is_min_of_width_and_points(n: int, width: int, length: int) -> None:
    assert len(sparkline(np.linspace(0.0, 1.0, n), width=width)) == length


def test_nan_bucket_and_inf_bucket_are_marked() -> None:
    values = np.array([1.0, 1.0, np.nan, np.nan, np.inf, np.nan, 2.0, 2.0])
    assert sparkline(values, width=4) == "▁·!█"


def test_minus_inf_only_bucket_is_marked() -> None:
    assert sparkline(np.array([1.0, -np.inf, 2.0]), width=3) == "▁!█"


def test_finite_values_win_over_inf_in_a_bucket() -> None:
    assert sparkline(np.array([1.0, np.inf, 3.0, 3.0]), width=2) == "▁█"


@pytest.mark.parametrize("value", [0.0, 0.1, -3.5, 1e300])
def test_constant_series_is_all_middle(value: float) -> None:
    assert sparkline(np.full(50, value), width=10) == "▄" * 10


def test_single_point_is_middle() -> None:
    assert sparkline(np.array([42.0])) == "▄"


def test_empty_is_empty_string() -> None:
    assert sparkline(np.array([], dtype=np.float64)) == ""


def test_all_nan() -> None:
    assert sparkline(np.full(6, np.nan), width=3) == "···"


def test_huge_magnitudes_do_not_overflow() -> None:
    assert sparkline(np.array([-1.7e308, -1.7e308, 1.7e308, 1.7e308]), width=2) == "▁█"


@pytest.mark.parametrize(
    ("values", "width"), [(np.zeros(3), 0), (np.zeros((2, 2)), 5)], ids=["width 0", "2-D"]
)
def test_bad_arguments_raise(values: np.ndarray, width: int) -> None:
    with pytest.raises(ValueError):
        sparkline(values, width=width)
