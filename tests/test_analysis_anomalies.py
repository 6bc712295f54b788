from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from runwise.analysis.anomalies import (
    CHECKS,
    Anomaly,
    AnomalyReport,
    Thresholds,
    detect_anomalies,
    find_spikes,
)
from runwise.analysis.downsample import downsample
from runwise.config import AnomalyThresholds

Series = tuple[np.ndarray, np.ndarray]
EXAMPLE_LOGS = Path(__file__).resolve().parent.parent / "examples" / "logs"


def _steps(n: int, every: int = 1) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * every


def _decay(steps: np.ndarray, *, scale: float = 3000.0, noise: float = 0.005, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 3.0 * np.exp(-steps / scale) + 0.3 + rng.normal(0, noise, steps.size)


def _clean_history(n: int = 5000) -> dict[str, Series]:
    rng = np.random.default_rng(11)
    s = _steps(n)
    val_s = _steps(n // 100, 100)
    return {
        "train/loss": (s, _decay(s)),
        "val/loss": (val_s, 1.05 * (3.0 * np.exp(-val_s / 3000.0) + 0.3)),
        "train/grad_norm": (s, 1.0 + rng.normal(0, 0.05, n)),
        "perf/samples_per_sec": (s, 1000.0 + rng.normal(0, 20, n)),
        "lr": (s, np.full(n, 3e-4)),
    }


def _of_kind(report: AnomalyReport, kind: str) -> list[Anomaly]:
    return [a for a in report.anomalies if a.kind == kind]


# ---- find_spikes -------------------------------------------------------------------------------


def _wavy(n: int = 10_000, seed: int = 0) -> np.ndarray:
    return np.sin(np.arange(n) / 500.0) + np.random.default_rng(seed).normal(0, 0.01, n)


def test_find_spikes_known_indices_both_directions() -> None:
    values = _wavy()
    values[[5, 2000, 7000, 9997]] += 1.0
    values[4000] -= 1.0
    np.testing.assert_array_equal(find_spikes(values, window=100, threshold=6.0), [5, 2000, 4000, 7000, 9997])


def test_find_spikes_groups_consecutive_points_to_the_peak() -> None:
    values = _wavy()
    values[5000:5003] += [0.5, 1.0, 0.7]
    np.testing.assert_array_equal(find_spikes(values, window=100, threshold=6.0), [5001])


def test_level_shift_and_trend_are_not_spikes() -> None:
    values = _wavy()
    values[6000:] += 1.0
    values += np.linspace(0.0, 5.0, values.size)
    assert find_spikes(values, window=100, threshold=6.0).size == 0


def test_flat_series_floor_avoids_division_by_zero() -> None:
    values = np.ones(1000)
    values[500] = 1.0 + 1e-7  # float jitter on a flat series is not a spike
    assert find_spikes(values, window=50, threshold=6.0).size == 0
    values[700] = 2.0
    np.testing.assert_array_equal(find_spikes(values, window=50, threshold=6.0), [700])


def test_non_finite_points_are_not_spikes_and_do_not_hide_them() -> None:
    values = _wavy(2000)
    values[[100, 300, 1500]] = [np.nan, np.inf, -np.inf]
    values[1000] += 2.0
    np.testing.assert_array_equal(find_spikes(values, window=100, threshold=6.0), [1000])


@pytest.mark.parametrize(
    "values",
    [np.array([], dtype=np.float64), np.array([1.0]), np.full(300, np.nan), np.full(300, 4.0)],
    ids=["empty", "single", "all-nan", "constant"],
)
def test_find_spikes_degenerate_inputs(values: np.ndarray) -> None:
    assert find_spikes(values, window=10, threshold=6.0).size == 0


@pytest.mark.parametrize(
    ("values", "window", "threshold"),
    [(np.zeros(10), 2, 6.0), (np.zeros(10), 10, 0.0), (np.zeros((2, 5)), 10, 6.0)],
    ids=["window<3", "threshold<=0", "2-D"],
)
def test_find_spikes_bad_arguments(values: np.ndarray, window: int, threshold: float) -> None:
    with pytest.raises(ValueError):
        find_spikes(values, window=window, threshold=threshold)


# ---- detect_anomalies: known answers -------------------------------------------------------------


def test_million_point_spike_is_kept_by_downsample_and_reported_exactly() -> None:
    n, spike_step = 1_000_000, 523_456
    steps = _steps(n)
    loss = 2.0 * np.exp(-steps / 200_000) + 0.5 + np.random.default_rng(42).normal(0, 0.01, n)
    loss[spike_step] = 9.7
    assert spike_step in downsample(steps, loss, max_points=1000).steps
    report = detect_anomalies({"train/loss": (steps, loss)})
    spikes = _of_kind(report, "spike")
    assert [(a.step, a.value, a.severity) for a in spikes] == [(spike_step, 9.7, "warning")]
    assert "523,456" in spikes[0].message


def test_clean_run_has_no_anomalies_and_runs_every_check() -> None:
    report = detect_anomalies(_clean_history())
    assert report.anomalies == ()
    assert report.checks_run == CHECKS
    assert report.checks_skipped == {}
    assert report.truncated == 0


def test_first_nan_step_is_reported() -> None:
    history = _clean_history()
    loss = history["train/loss"][1].copy()
    loss[[700, 701, 1500]] = np.nan
    other = np.ones(5000)
    other[2500] = np.nan
    history["train/loss"] = (history["train/loss"][0], loss)
    history["custom"] = (_steps(5000), other)
    nans = _of_kind(detect_anomalies(history), "nan")
    assert [(a.metric, a.step, a.end_step, a.severity) for a in nans] == [
        ("train/loss", 700, 1500, "critical"),
        ("custom", 2500, None, "warning"),
    ]
    assert nans[0].steps == (700, 701, 1500)  # up to 5 isolated points: every step is named
    assert "700, 701, 1,500" in nans[0].message


def test_inf_is_reported() -> None:
    history = _clean_history()
    grad = history["train/grad_norm"][1].copy()
    grad[300] = np.inf
    history["train/grad_norm"] = (history["train/grad_norm"][0], grad)
    infs = _of_kind(detect_anomalies(history), "inf")
    assert [(a.metric, a.step, a.severity) for a in infs] == [("train/grad_norm", 300, "critical")]
    assert "+inf" in infs[0].message


def test_inf_is_not_taken_for_nan() -> None:
    history = _clean_history()
    loss = history["train/loss"][1].copy()
    loss[[1200, 1300]] = [-np.inf, np.nan]
    history["train/loss"] = (history["train/loss"][0], loss)
    found = [(a.kind, a.step, a.end_step) for a in detect_anomalies(history).anomalies if a.kind in ("nan", "inf")]
    assert found == [("inf", 1200, None), ("nan", 1300, None)]


def test_divergence_is_dated_at_the_onset_of_the_climb() -> None:
    s = _steps(5000)
    loss = _decay(s, scale=800.0)
    loss[3000:] = loss[3000] + np.linspace(0.0, 3.0, 2000)  # climbs 0.0015 a step from step 3,000
    found = _of_kind(detect_anomalies({"loss": (s, loss)}), "divergence")
    assert [(a.end_step, a.severity) for a in found] == [(4999, "critical")]
    # the onset, not the threshold crossing (step 3,300): the climb needs a few steps to rise
    # clear of the noise (sd 0.005 = 3.3 steps of climb), so allow 10 steps after 3,000
    assert 3000 <= found[0].step <= 3010
    assert found[0].baseline is not None and found[0].baseline < 0.4 < found[0].value  # type: ignore[operator]


def test_sudden_divergence_is_dated_at_the_jump() -> None:
    s = _steps(5000)
    loss = _decay(s, scale=800.0, noise=0.0)  # still falling at step 3,000, so no point ties the bottom
    loss[3000:] = 4.0
    found = _of_kind(detect_anomalies({"loss": (s, loss)}), "divergence")
    assert [(a.step, a.end_step, a.severity) for a in found] == [(3000, 4999, "critical")]  # settled high: still broken


def test_loss_nan_to_the_end_is_one_lasting_finding_at_its_onset() -> None:
    s = _steps(2000)
    loss = _decay(s)
    loss[1234:] = np.nan
    report = detect_anomalies({"loss": (s, loss)})
    got = [(a.kind, a.step, a.end_step, a.severity, a.steps) for a in report.anomalies]
    assert got == [("nan", 1234, 1999, "critical", ())]  # not also a divergence of the same event
    assert "to the end" in report.anomalies[0].message


def test_isolated_nan_before_a_nan_tail_is_its_own_finding() -> None:
    s = _steps(2000)
    loss = _decay(s)
    loss[[300, 900]] = np.nan
    loss[1500:] = np.nan
    found = [(a.step, a.end_step, a.steps) for a in detect_anomalies({"loss": (s, loss)}).anomalies]
    assert found == [(300, 900, (300, 900)), (1500, 1999, ())]


def test_more_than_five_nan_points_are_a_range() -> None:
    s = _steps(2000)
    loss = _decay(s)
    loss[[100, 200, 300, 400, 500, 600]] = np.nan
    (a,) = detect_anomalies({"loss": (s, loss)}).anomalies
    assert (a.step, a.end_step, a.steps) == (100, 600, ())
    assert "6 points" in a.message


def test_overfitting_val_rises_while_train_falls() -> None:
    s = _steps(5000)
    train = 2.0 * np.exp(-s / 2000.0) + 0.1  # falls every step
    val_s = _steps(50, 100)
    val = 1.2 * (2.0 * np.exp(-val_s / 2000.0) + 0.1)
    rising = val_s > 2000
    val[rising] = val[val_s == 2000][0] + 3e-4 * (val_s[rising] - 2000)
    report = detect_anomalies({"train/loss": (s, train), "val/loss": (val_s, val)})
    found = _of_kind(report, "overfitting")
    assert len(found) == 1
    assert found[0].metric == "val/loss"
    # val rises from step 2,000; it is judged on blocks of two validation points against 5% above
    # its lowest block (1.018, steps 2,000-2,100), first exceeded by the block of steps 2,200-2,300
    assert (found[0].step, found[0].end_step) == (2200, 4900)
    assert "overfitting" in report.checks_run


def test_a_widening_gap_alone_is_not_overfitting() -> None:
    s = _steps(3000)
    train = 2.0 * np.exp(-s / 300.0) + 0.01  # memorises: train loss goes to ~0
    val_s = _steps(30, 100)
    val = 2.0 * np.exp(-val_s / 300.0) + 0.6  # keeps improving a little, never rises
    found = _of_kind(detect_anomalies({"loss": (s, train), "val_loss": (val_s, val)}), "overfitting")
    assert found == []  # validation must get worse, not only fall behind train


def test_one_bad_evaluation_is_not_overfitting() -> None:
    s = _steps(5000)
    train = 2.0 * np.exp(-s / 2000.0) + 0.1
    val_s = _steps(50, 100)
    val = 1.2 * (2.0 * np.exp(-val_s / 2000.0) + 0.1)
    val[40] *= 1.5
    assert _of_kind(detect_anomalies({"train/loss": (s, train), "val/loss": (val_s, val)}), "overfitting") == []


def _kinked(n: int, stop: int, *, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    """A loss falling linearly from 3.0 to 1.0 at index `stop`, then flat at 1.0, with noise."""
    rng = np.random.default_rng(seed)
    clean = np.where(np.arange(n) < stop, 3.0 - 2.0 * np.arange(n) / stop, 1.0)
    return clean * (1.0 + rng.normal(0, noise, n))


def test_plateau_under_a_high_lr_is_dated_at_its_onset() -> None:
    s = _steps(10_000)
    history = {"loss": (s, _kinked(10_000, 4000)), "lr": (s, np.full(10_000, 1e-3))}
    report = detect_anomalies(history)
    found = _of_kind(report, "plateau")
    assert [(a.end_step, a.severity) for a in found] == [(9999, "warning")]
    assert abs(found[0].step - 4000) <= 200  # the onset, not the start of a checked window
    assert found[0].baseline is not None and found[0].baseline > 1.1  # the level before it


def test_flat_tail_under_a_decayed_lr_is_convergence_not_a_plateau() -> None:
    s = _steps(10_000)
    lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * s / 10_000))  # cosine to 0: under 30% of peak from step 6,700
    loss = 1.0 + 2.0 * np.exp(-s / 1500.0) + np.random.default_rng(1).normal(0, 0.01, s.size)
    report = detect_anomalies({"loss": (s, loss), "lr": (s, lr)})
    assert _of_kind(report, "plateau") == []
    assert report.observations == ("loss converging under a decayed lr (1% of its peak)",)
    # the same curve under a constant lr is flat while the lr is high: a plateau
    report = detect_anomalies({"loss": (s, loss), "lr": (s, np.full(s.size, 1e-3))})
    assert [a.kind for a in report.anomalies] == ["plateau"] and report.observations == ()


def test_plateau_needs_a_long_enough_run() -> None:
    s = _steps(300)
    report = detect_anomalies({"loss": (s, np.full(300, 1.0))})
    assert "500" in report.checks_skipped["plateau"]
    assert "plateau" not in report.checks_run


def test_vanishing_gradient() -> None:
    history = _clean_history()
    grad = history["train/grad_norm"][1].copy()
    grad[3000:3050] = 1e-9
    grad[4000:4005] = 1e-9  # too short to count
    history["train/grad_norm"] = (history["train/grad_norm"][0], grad)
    found = _of_kind(detect_anomalies(history), "vanishing_gradient")
    assert [(a.step, a.end_step) for a in found] == [(3000, 3049)]


def test_exploding_gradient_sustained_and_single_jump() -> None:
    history = _clean_history(10_000)
    grad = history["train/grad_norm"][1].copy()
    grad[5000:5020] = 50.0
    grad[7000] = 1000.0
    history["train/grad_norm"] = (history["train/grad_norm"][0], grad)
    found = _of_kind(detect_anomalies(history), "exploding_gradient")
    got = [(a.step, a.end_step, a.severity) for a in found]
    assert got == [(5000, 5019, "critical"), (7000, None, "warning")]


@pytest.mark.parametrize(("factor", "found"), [(9.0, False), (12.0, True)])
def test_a_single_jump_counts_from_the_multiplier(factor: float, found: bool) -> None:
    history = _clean_history()
    grad = history["train/grad_norm"][1].copy()
    grad[3000] = factor  # the running median is 1.0 (+-0.05 noise); the multiplier is 10
    history["train/grad_norm"] = (history["train/grad_norm"][0], grad)
    got = [(a.step, a.severity) for a in _of_kind(detect_anomalies(history), "exploding_gradient")]
    assert got == ([(3000, "warning")] if found else [])


def test_a_high_start_that_falls_is_not_a_jump() -> None:
    s = _steps(2000)
    grad = 1.0 + 60.0 * np.exp(-s / 3.0)  # 61 at step 0, 1.2 by step 12: judged by its own first block
    history = {"grad_norm": (s, grad)}
    assert _of_kind(detect_anomalies(history), "exploding_gradient") == []
    grad = grad.copy()
    grad[1500] = 15.0
    found = _of_kind(detect_anomalies({"grad_norm": (s, grad)}), "exploding_gradient")
    assert [(a.step, a.end_step, a.severity) for a in found] == [(1500, None, "warning")]


def test_throughput_drop_at_a_known_step() -> None:
    s = _steps(1000, 10)
    rng = np.random.default_rng(3)
    speed = 1000.0 + rng.normal(0, 10, 1000)
    speed[[100, 101]] = 300.0  # a two-point dip is not sustained
    speed[600:] = 500.0 + rng.normal(0, 10, 400)
    found = _of_kind(detect_anomalies({"tokens_per_sec": (s, speed)}), "throughput_drop")
    assert [(a.step, a.end_step) for a in found] == [(6000, 9990)]
    assert "50%" in found[0].message


# ---- the example project: what make_examples.py planted ----------------------------------------


def _example(name: str) -> dict[str, Series]:
    """Per-metric (steps, values) columns of an example log, read with the json module."""
    cols: dict[str, tuple[list[int], list[float]]] = {}
    for line in (EXAMPLE_LOGS / f"{name}.jsonl").read_text().splitlines():
        row = json.loads(line)
        for key, value in row.items():
            if key != "step" and not key.startswith("_") and isinstance(value, float | int) and "step" in row:
                cols.setdefault(key, ([], []))[0].append(row["step"])
                cols[key][1].append(float(value))
    return {k: (np.array(s, dtype=np.int64), np.array(v)) for k, (s, v) in cols.items()}


def test_example_baseline_reports_its_planted_spike_and_grad_norm_jump() -> None:
    history = _example("baseline")
    assert set(history) == {"train/loss", "lr", "grad_norm", "perf/samples_per_sec", "val/loss", "val/acc"}
    report = detect_anomalies(history)
    # make_examples.py multiplies the loss by 3.5 and grad_norm by 12 at step 2,350, nothing else:
    # one finding, the loss spike, with the grad-norm jump at the same step as its evidence
    got = [(a.kind, a.metric, a.step, a.severity) for a in report.anomalies]
    assert got == [("spike", "train/loss", 2350, "warning")]
    spike = report.anomalies[0]
    assert any(r.startswith("grad_norm ") and r.endswith("->9.123 at the same step") for r in spike.related)
    assert "lr unchanged" in spike.related
    assert spike.keys[:2] == ("train/loss", "grad_norm") and spike.window is not None
    assert spike.window[0] < 2350 < spike.window[1]
    assert set(report.checks_run) >= set(CHECKS) - {"lr_schedule"}


def test_example_lr_warmup_has_no_findings() -> None:
    report = detect_anomalies(_example("lr_warmup"))
    assert report.anomalies == () and set(report.checks_run) >= set(CHECKS) - {"lr_schedule"}


# ---- detect_anomalies: bookkeeping --------------------------------------------------------------


def test_missing_metrics_are_skipped_with_reasons() -> None:
    s = _steps(2000)
    report = detect_anomalies({"train/loss": (s, _decay(s))})
    assert report.checks_run == ("nan_inf", "spikes", "divergence", "plateau")
    assert report.checks_skipped == {
        "overfitting": "no validation loss metric",
        "vanishing_gradient": "no gradient norm metric",
        "exploding_gradient": "no gradient norm metric",
        "throughput_drop": "no throughput metric",
        "lr_schedule": "no learning rate metric",
    }


def test_empty_history_runs_nothing() -> None:
    report = detect_anomalies({})
    assert report.anomalies == () and report.checks_run == ()
    assert set(report.checks_skipped) == set(CHECKS)


def test_explicit_roles_are_used_as_given() -> None:
    s = _steps(3000)
    objective = _decay(s)
    objective[1500] = 10.0
    history = {"objective": (s, objective), "train/loss": (s, _decay(s, seed=1))}
    found = _of_kind(detect_anomalies(history, roles={"loss": "objective"}), "spike")
    assert [(a.metric, a.step) for a in found] == [("objective", 1500)]
    report = detect_anomalies(history, roles={"loss": "not_there"})
    assert report.checks_skipped["spikes"] == "no loss metric"


def test_sorted_by_severity_then_step_and_truncated() -> None:
    n = 100
    history: dict[str, Series] = {}
    for i in range(30):
        values = np.ones(n)
        values[i + 10] = np.nan
        history[f"m{i:02d}"] = (_steps(n), values)
    loss = np.ones(n)
    loss[90] = np.nan
    history["loss"] = (_steps(n), loss)
    report = detect_anomalies(history, max_anomalies=5)
    assert len(report.anomalies) == 5 and report.truncated == 26
    assert report.anomalies[0].metric == "loss" and report.anomalies[0].severity == "critical"
    assert [a.step for a in report.anomalies[1:]] == [10, 11, 12, 13]


def test_spikes_are_capped_per_metric() -> None:
    s = _steps(20_000)
    loss = 1.0 + np.random.default_rng(9).standard_t(2, s.size) * 0.01  # heavy tails: many outliers
    spikes = [a for a in _of_kind(detect_anomalies({"loss": (s, loss)}), "spike") if a.severity == "warning"]
    assert len(spikes) == 5
    assert sum("not listed" in a.message for a in spikes) == 1


_ROLES = ("loss", "val_loss", "grad_norm", "throughput")
# non-finite from the first step on every metric: one event, the loss's finding names the others
_WHOLE_RUN = [("loss", 0, 999, "critical")]


@pytest.mark.parametrize(
    ("values", "findings"),
    [
        (np.array([], dtype=np.float64), []),
        (np.array([1.0]), []),
        (np.full(1000, np.nan), [("nan", *f) for f in _WHOLE_RUN]),
        (np.full(1000, np.inf), [("inf", *f) for f in _WHOLE_RUN]),
    ],
    ids=["empty", "single", "all-nan", "all-inf"],
)
def test_degenerate_series_run_only_nan_inf(values: np.ndarray, findings: list[tuple[object, ...]]) -> None:
    s = _steps(values.size)
    report = detect_anomalies({role: (s, values) for role in _ROLES})
    assert report.checks_run == ("nan_inf",)  # nothing else has the points it needs, and says so
    assert set(report.checks_skipped) == set(CHECKS) - {"nan_inf"}
    too_few = "has fewer than 3 finite points"
    assert report.checks_skipped["spikes"] == f"loss {too_few}; val_loss {too_few}"
    got = sorted((a.kind, a.metric, a.step, a.end_step, a.severity) for a in report.anomalies)
    assert got == findings
    if findings:
        what = "NaN" if findings[0][0] == "nan" else "inf"
        assert set(report.anomalies[0].related) == {f"{m} {what} from step 0 too" for m in _ROLES if m != "loss"}


def test_constant_series_is_a_plateau_and_nothing_else() -> None:
    s = _steps(1000)
    report = detect_anomalies({role: (s, np.full(1000, 2.0)) for role in _ROLES})
    assert report.checks_run == CHECKS[:-1]  # all but lr_schedule: no lr
    # flat from the first step: the plateau's onset is the start (no lr: info)
    assert [(a.kind, a.metric, a.step, a.end_step, a.severity) for a in report.anomalies] == [
        ("plateau", "loss", 0, 999, "info")]


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        detect_anomalies({"loss": (np.array([3, 1, 2]), np.zeros(3))})
    with pytest.raises(ValueError):
        detect_anomalies({}, max_anomalies=-1)
    with pytest.raises(ValueError):
        Thresholds(throughput_drop_threshold=1.5)


def test_thresholds_mirror_the_config_model() -> None:
    cfg = AnomalyThresholds()
    assert {f.name for f in dataclasses.fields(Thresholds)} == set(cfg.model_dump())
    assert Thresholds(**cfg.model_dump()) == Thresholds()
    custom = Thresholds(**{**cfg.model_dump(), "overfit_baseline_steps": [10, 50]})
    assert custom.overfit_baseline_steps == (10, 50)


def test_huge_magnitudes_raise_no_warnings() -> None:
    s = _steps(1000)
    values = np.linspace(1e307, -1e307, 1000)  # sums of a few such values overflow float64 (max 1.8e308)
    history = {role: (s, values) for role in ("loss", "val_loss", "grad_norm", "throughput")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = detect_anomalies(history)
    assert report.checks_run == CHECKS[:-1]  # no check gave up on the magnitudes (lr_schedule: no lr)
    # a line from +1e307 to -1e307: as throughput it falls below 60% of its first block's median
    # (9.0e306) at step 230; as a grad norm it is below 1e-7 from step 500, where it turns
    # negative; as a loss it only improves. Both are dated at the onset of the fall, which on a
    # line that falls from its first step lies before the threshold crossing
    got = [(a.kind, a.end_step) for a in report.anomalies]
    assert got == [("throughput_drop", 999), ("vanishing_gradient", 999)]
    assert report.anomalies[0].step <= 230 and report.anomalies[1].step <= 500


# ---- bursts, dips and gradual onsets ------------------------------------------------------------


@pytest.mark.parametrize("at", [(3000, 3001, 3002), (3000, 3004, 3009), (3000, 3001, 3002, 3003, 3004)],
                         ids=["consecutive", "spread", "five"])
def test_a_burst_of_dips_is_one_finding_naming_every_step(at: tuple[int, ...]) -> None:
    s = _steps(6000)
    loss = _decay(s, scale=1500.0, noise=0.01)
    loss[list(at)] *= 0.5
    found = _of_kind(detect_anomalies({"loss": (s, loss)}), "spike")
    assert [(a.step, a.end_step, a.steps, a.severity) for a in found] == [(at[0], at[-1], at, "info")]
    assert f"{len(at)} dips" in found[0].message


def test_a_climb_to_the_end_of_a_sparse_series_is_not_a_burst() -> None:
    vs = _steps(20, 500)
    val = 1.0 - 0.02 * np.arange(20)
    val[11:] = val[10] * (1.0 + 0.4 * np.arange(1, 10))  # climbs from the 12th evaluation to the end
    assert _of_kind(detect_anomalies({"val/loss": (vs, val)}), "spike") == []


def test_a_gradual_collapse_of_the_grad_norm_is_dated_where_it_began() -> None:
    s = _steps(5000)
    grad = 1.0 + np.random.default_rng(2).normal(0, 0.05, 5000)
    grad[2000:] *= np.maximum(np.exp(-(s[2000:] - 2000) / 30.0), 1e-10)  # under 1e-7 only from ~2,480
    (a,) = _of_kind(detect_anomalies({"grad_norm": (s, grad)}), "vanishing_gradient")
    assert 2000 <= a.step <= 2010 and a.end_step == 4999


def test_exponential_grad_growth_is_dated_where_it_began() -> None:
    s = _steps(8000)
    grad = 1.0 + np.random.default_rng(3).normal(0, 0.05, 8000)
    grad[4000:] *= np.exp((s[4000:] - 4000) / 50.0).clip(max=3000.0)  # above 10x its median from ~4,115
    found = [a for a in _of_kind(detect_anomalies({"grad_norm": (s, grad)}), "exploding_gradient")
             if a.severity == "critical"]
    assert len(found) == 1 and 4000 <= found[0].step <= 4010


def test_non_finite_tails_that_begin_together_are_one_finding() -> None:
    s = _steps(3000)
    vs = _steps(30, 100)
    loss, grad, val = _decay(s), 1.0 + 0.0 * s, _decay(vs)
    loss[2050:], grad[2050:], val[21:] = np.nan, np.nan, np.nan  # val's first NaN: step 2,100, its next evaluation
    speed = np.full(3000, 1000.0)
    speed[2900:] = np.nan  # much later: its own finding
    report = detect_anomalies({"loss": (s, loss), "grad_norm": (s, grad), "val/loss": (vs, val),
                               "tokens_per_s": (s, speed)})
    nans = _of_kind(report, "nan")
    assert [(a.metric, a.step, a.end_step) for a in nans] == [("loss", 2050, 2999), ("tokens_per_s", 2900, 2999)]
    assert set(nans[0].related[:2]) == {"val/loss NaN from step 2,100 too", "grad_norm NaN from step 2,050 too"}


def test_a_slow_exponential_explosion_is_found_against_the_lowest_level_so_far() -> None:
    s = _steps(20_000)
    grad = 1.0 + np.random.default_rng(4).normal(0, 0.05, 20_000)
    grad[10_000:] *= np.exp((s[10_000:] - 10_000) / 1000.0).clip(max=1e3)  # 10x every 2,300 steps
    found = [a for a in _of_kind(detect_anomalies({"grad_norm": (s, grad)}), "exploding_gradient")
             if a.severity == "critical"]
    # its running median (the previous 100 points) keeps up with it: 10 % higher every 100 steps
    assert len(found) == 1 and 10_000 <= found[0].step <= 10_300


def test_a_divergence_that_settled_high_is_still_critical() -> None:
    # the loss climbs from 1 to 5 between steps 3,000 and 3,500, then stays there: the run is broken
    steps = np.arange(6_000)
    noise = 0.01 * np.random.default_rng(5).standard_normal(steps.size)
    loss = np.clip(1.0 + (steps - 3_000) / 125, 1.0, 5.0) * (1 + noise)
    found = [a for a in detect_anomalies({"loss": (steps, loss)}).anomalies if a.kind == "divergence"]
    assert len(found) == 1 and found[0].severity == "critical" and abs(found[0].step - 3_000) <= 60
