from __future__ import annotations

import warnings

import numpy as np
import pytest

from runwise.analysis.stability import rolling_std, stability


def _loop_rolling_std(steps: np.ndarray, values: np.ndarray, window: int) -> np.ndarray:
    """Reference: for each point, std of the finite values at indices <= i with step > step_i - window."""
    out = np.full(values.size, np.nan)
    for i in range(values.size):
        sel = (np.arange(values.size) <= i) & (steps > steps[i] - window) & np.isfinite(values)
        if sel.sum() >= 2:
            out[i] = np.std(values[sel])
    return out


def test_rolling_std_matches_a_loop_with_repeats_nan_and_inf() -> None:
    rng = np.random.default_rng(3)
    steps = np.sort(rng.integers(0, 300, size=400)).astype(np.int64)  # repeated steps and gaps
    values = 100.0 + rng.normal(size=400)
    values[rng.choice(400, 30, replace=False)] = np.nan
    values[[17, 250]] = np.inf
    got_steps, got = rolling_std(steps, values, window_steps=7)
    np.testing.assert_array_equal(got_steps, steps)
    np.testing.assert_allclose(got, _loop_rolling_std(steps, values, 7), rtol=1e-7, atol=1e-9, equal_nan=True)


def test_rolling_std_is_exactly_zero_on_a_constant_series() -> None:
    _, std = rolling_std(np.arange(50, dtype=np.int64), np.full(50, 0.1), window_steps=5)
    assert np.isnan(std[0])
    assert np.all(std[1:] == 0.0)


def test_rolling_std_needs_two_finite_values_in_the_window() -> None:
    steps = np.array([0, 10, 20, 21], dtype=np.int64)
    _, std = rolling_std(steps, np.array([1.0, 2.0, 3.0, 5.0]), window_steps=5)
    assert np.isnan(std[:3]).all()
    assert std[3] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "values",
    [np.array([], dtype=np.float64), np.array([1.0]), np.full(5, np.nan)],
    ids=["empty", "single", "all-nan"],
)
def test_rolling_std_degenerate_inputs_are_all_nan(values: np.ndarray) -> None:
    steps, std = rolling_std(np.arange(values.size, dtype=np.int64), values, window_steps=10)
    assert steps.size == std.size == values.size
    assert np.isnan(std).all()


def test_linear_decrease_has_the_exact_slope() -> None:
    steps = np.arange(10_000, dtype=np.int64)
    st = stability(steps, (10.0 - 0.002 * steps).astype(np.float64))
    assert st.slope_per_1k_steps == pytest.approx(-2.0)
    assert st.trend == "decreasing"
    assert st.window_steps == 9999 // 20
    assert st.points == 10_000


def test_increasing_trend() -> None:
    steps = np.arange(5000, dtype=np.int64)
    noise = np.random.default_rng(0).normal(0, 0.01, 5000)
    st = stability(steps, 1.0 + 1e-4 * steps + noise)
    assert st.trend == "increasing"
    assert st.slope_per_1k_steps == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize(("sigma", "verdict"), [(0.01, "stable"), (0.5, "noisy"), (3.0, "unstable")])
def test_verdict_follows_the_coefficient_of_variation(sigma: float, verdict: str) -> None:
    rng = np.random.default_rng(5)
    values = 5.0 + rng.normal(0, sigma, 20_000)
    st = stability(np.arange(20_000, dtype=np.int64), values, window_steps=1000)
    assert st.cv_last == pytest.approx(sigma / 5.0, rel=0.15)
    assert st.verdict == verdict
    assert st.trend == "flat"


def test_nan_in_the_last_window_is_unstable() -> None:
    values = np.full(1000, 2.0)
    values[995] = np.nan
    st = stability(np.arange(1000, dtype=np.int64), values, window_steps=50)
    assert st.verdict == "unstable"


def test_constant_series_is_stable_and_flat() -> None:
    st = stability(np.arange(1000, dtype=np.int64), np.full(1000, 3.0))
    assert (st.verdict, st.trend, st.cv_last, st.slope_per_1k_steps) == ("stable", "flat", 0.0, 0.0)
    assert st.rolling_std_max == 0.0 and st.rolling_std_mean == 0.0


def test_rolling_std_max_is_located() -> None:
    values = np.zeros(2000)
    values[1200:1210] = [5, -5] * 5
    st = stability(np.arange(2000, dtype=np.int64), values, window_steps=10)
    assert st.rolling_std_max == pytest.approx(5.0)  # the window (1199, 1209] holds exactly the ±5s
    assert st.rolling_std_max_step == 1209


def test_million_points_is_handled() -> None:
    steps = np.arange(1_000_000, dtype=np.int64)
    values = 3.0 - 1e-6 * steps + np.random.default_rng(2).normal(0, 0.01, steps.size)
    st = stability(steps, values)
    assert st.slope_per_1k_steps == pytest.approx(-1e-3, rel=0.02)
    assert st.trend == "decreasing"


@pytest.mark.parametrize(
    ("values", "points"),
    [
        (np.array([], dtype=np.float64), 0),
        (np.array([1.0]), 1),
        (np.full(10, np.nan), 0),
        (np.array([np.inf, 1.0]), 1),
    ],
    ids=["empty", "single", "all-nan", "inf"],
)
def test_degenerate_series_are_unknown(values: np.ndarray, points: int) -> None:
    st = stability(np.arange(values.size, dtype=np.int64), values)
    assert st.points == points
    assert st.trend == "unknown"
    assert st.slope_per_1k_steps is None
    assert st.cv_last is None
    assert st.verdict in ("unknown", "unstable")


def test_zero_mean_with_noise_has_no_cv() -> None:
    st = stability(np.arange(4, dtype=np.int64), np.array([-1.0, 1.0, -1.0, 1.0]), window_steps=100)
    assert st.cv_last is None and st.verdict == "unknown"


@pytest.mark.parametrize(
    ("steps", "values", "window"),
    [
        (np.array([2, 1, 3]), np.zeros(3), 5),
        (np.arange(3), np.zeros(3), 0),
        (np.arange(3), np.zeros(4), 5),
    ],
    ids=["unsorted", "window 0", "length mismatch"],
)
def test_bad_arguments_raise(steps: np.ndarray, values: np.ndarray, window: int) -> None:
    with pytest.raises(ValueError):
        rolling_std(steps, values, window_steps=window)
    with pytest.raises(ValueError):
        stability(steps, values, window_steps=window)


def test_huge_magnitudes_raise_no_warnings() -> None:
    steps = np.arange(100, dtype=np.int64)
    values = np.linspace(-1e300, 1e300, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st = stability(steps, values, window_steps=10)
    assert st.points == 100 and st.trend == "increasing"
