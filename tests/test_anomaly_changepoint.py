"""Known answers for runwise.analysis.changepoint: onsets of planted changes, and the noise estimate."""

from __future__ import annotations

import numpy as np
import pytest

from runwise.analysis.changepoint import mean_split, onset_before, page_onset, robust_sd


def _noise(n: int, sd: float = 0.05, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, n)


def test_page_onset_finds_a_step_up() -> None:
    x = 1.0 + _noise(2000)
    x[1234:] += 0.5
    assert abs(page_onset(x - (1.0 + 0.05)) - 1234) <= 2


def test_page_onset_without_a_change_is_the_end() -> None:
    assert page_onset(np.full(100, -1.0)) == 100
    assert page_onset(np.full(100, 1.0)) == 0


def test_page_onset_is_scale_free_at_huge_magnitudes() -> None:
    x = np.full(1000, -1e307)
    x[600:] = 1e307  # cumulative sums of the raw scores would overflow
    assert page_onset(x) == 600


@pytest.mark.parametrize("at", [1, 250, 999])
def test_mean_split_finds_the_jump(at: int) -> None:
    x = np.zeros(1000)
    x[at:] = 3.0
    assert mean_split(x) == at


def test_mean_split_respects_min_size_and_short_input() -> None:
    x = np.zeros(100)
    x[2:] = 1.0
    assert mean_split(x, min_size=10) == 10
    assert mean_split(np.array([1.0])) == 0


def test_robust_sd_ignores_a_trend_and_outliers() -> None:
    x = np.linspace(10.0, 0.0, 10_000) + _noise(10_000, sd=0.2)
    x[::500] += 50.0
    assert robust_sd(x) == pytest.approx(0.2, rel=0.1)
    curved = 5.0 * np.exp(-np.arange(3000) / 300.0) + _noise(3000, sd=0.01)
    assert robust_sd(curved, order=2) == pytest.approx(0.01, rel=0.15)
    assert robust_sd(np.array([1.0, np.nan])) == 0.0


def test_onset_before_dates_a_ramp_where_it_began_not_where_it_crossed() -> None:
    x = 1.0 + _noise(5000, sd=0.02)
    x[3000:] += np.linspace(0.0, 4.0, 2000)  # crosses 2x (a threshold) near index 3,500
    crossing = int(np.argmax(x > 2.0))
    onset = onset_before(x, crossing, 4999, direction=1.0)
    assert crossing > 3400 and 2990 <= onset <= 3030


def test_onset_before_on_a_log_scale_for_a_collapse_to_zero() -> None:
    x = 1.0 + _noise(3000, sd=0.05)
    x[2000:] *= np.exp(-np.arange(1000) / 20.0)  # falls from step 2,000, under 1e-7 near 2,322
    x[2500:] = 0.0
    crossing = int(np.argmax(x < 1e-7))
    onset = onset_before(x, crossing, 2999, direction=-1.0, min_drift=0.05, log=True)
    assert crossing > 2300 and 2000 <= onset <= 2010
