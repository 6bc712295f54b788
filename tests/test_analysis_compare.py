from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from runwise.analysis.compare import config_diff, flatten_config, percent_change, value_at_step

STEPS = np.array([10, 20, 20, 40], dtype=np.int64)
VALUES = np.array([1.0, 2.0, 2.5, np.nan])


@pytest.mark.parametrize(
    ("step", "expected"),
    [(10, (10, 1.0)), (15, (10, 1.0)), (20, (20, 2.5)), (39, (20, 2.5)), (1000, None), (9, None)],
    ids=["exact", "before", "repeated step: last write", "gap", "after end", "before start"],
)
def test_value_at_step(step: int, expected: tuple[int, float] | None) -> None:
    got = value_at_step(STEPS, VALUES, step)
    if step == 1000:
        assert got is not None and got[0] == 40 and math.isnan(got[1])  # stored NaN is returned as NaN
    else:
        assert got == expected


def test_value_at_step_empty_series() -> None:
    assert value_at_step(np.array([], dtype=np.int64), np.array([], dtype=np.float64), 5) is None


def test_value_at_step_rejects_unsorted_steps() -> None:
    with pytest.raises(ValueError):
        value_at_step(np.array([3, 1]), np.array([0.0, 1.0]), 2)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(2.0, 3.0, 50.0), (4.0, 1.0, -75.0), (-2.0, -1.0, 50.0), (1.0, 1.0, 0.0),
     (0.0, 1.0, None), (math.nan, 1.0, None), (1.0, math.inf, None), (-math.inf, 1.0, None)],
)
def test_percent_change(a: float, b: float, expected: float | None) -> None:
    got = percent_change(a, b)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_flatten_nested_and_wandb_wrappers() -> None:
    cfg: dict[str, Any] = {
        "lr": {"desc": None, "value": 0.001},
        "batch_size": {"value": 32},
        "optimizer": {"value": {"name": "adam", "betas": [0.9, 0.999]}},
        "model": {"layers": 4, "head": {"dropout": 0.1}},
        "empty": {},
        "not_a_wrapper": {"value": 1, "unit": "s"},
    }
    assert flatten_config(cfg) == {
        "lr": 0.001,
        "batch_size": 32,
        "optimizer.name": "adam",
        "optimizer.betas": [0.9, 0.999],
        "model.layers": 4,
        "model.head.dropout": 0.1,
        "empty": {},
        "not_a_wrapper.value": 1,
        "not_a_wrapper.unit": "s",
    }


def test_flatten_custom_separator() -> None:
    assert flatten_config({"a": {"b": 1}}, sep="/") == {"a/b": 1}
    with pytest.raises(ValueError):
        flatten_config({"a": 1}, sep="")


def test_flatten_empty() -> None:
    assert flatten_config({}) == {}


def test_config_diff() -> None:
    a = {"lr": 0.001, "optimizer": {"name": "adam", "beta1": 0.9}, "seed": 1, "only_a": True}
    b = {"lr": {"value": 0.0003}, "optimizer": {"name": "adam", "beta1": 0.95}, "seed": 1, "warmup": 20}
    diff = config_diff(a, b)
    assert diff == {
        "lr": (0.001, 0.0003),
        "only_a": (True, "<missing>"),
        "optimizer.beta1": (0.9, 0.95),
        "warmup": ("<missing>", 20),
    }
    assert list(diff) == sorted(diff)


def test_config_diff_equalities() -> None:
    a = {"x": math.nan, "flag": True, "n": 1, "arr": np.array([1, 2]), "f": 2}
    b = {"x": math.nan, "flag": 1, "n": 1.0, "arr": np.array([1, 3]), "f": 2.0}
    assert set(config_diff(a, b)) == {"flag", "arr"}


def test_config_diff_identical_is_empty() -> None:
    cfg = {"a": {"b": [1, 2]}, "c": None}
    assert config_diff(cfg, dict(cfg)) == {}


# ---------------------------------------------------------------- one metric across runs

from runwise.analysis.compare import (  # noqa: E402 - the new API, tested below the old one
    compare_series,
    group_runs,
    is_identity_key,
    rank_config_keys,
    spread,
)


def _curve(n: int, seed: int, *, every: int = 1, shift_at: int | None = None, shift: float = 0.0,
           ramp: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A decaying loss with 2% noise, logged every `every` steps; from `shift_at` on it moves by `shift`
    (at once, or over `ramp` steps)."""
    rng = np.random.default_rng(seed)
    steps = np.arange(0, n, every, dtype=np.int64)
    loss = 2.0 * np.exp(-steps / (n / 4)) + 0.5
    if shift_at is not None:
        after = np.clip((steps - shift_at) / max(ramp, 1), 0, 1) if ramp else (steps >= shift_at).astype(float)
        loss = loss + shift * after
    return steps, loss * (1 + 0.02 * rng.standard_normal(steps.size))


@pytest.mark.parametrize("every", [1, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_divergence_is_found_at_the_planted_step(every: int, seed: int) -> None:
    a = _curve(20_000, seed, every=every)
    b = _curve(20_000, seed + 100, every=every, shift_at=12_000, shift=0.1)
    d = compare_series([a, b]).divergence
    assert d is not None and d.step is not None
    assert abs(d.step - 12_000) <= 3 * every, d  # within a few logging intervals
    assert d.split == (1,) and d.gap > 4 * d.noise


def test_gradual_divergence_is_dated_near_its_onset() -> None:
    a = _curve(20_000, 3)
    b = _curve(20_000, 4, shift_at=8_000, shift=0.3, ramp=2_000)
    d = compare_series([a, b]).divergence
    assert d is not None and d.step is not None and 8_000 <= d.step <= 9_000, d


@pytest.mark.parametrize("seed", range(6))
def test_runs_that_differ_by_noise_only_never_diverge(seed: int) -> None:
    runs = [_curve(5_000, seed * 10 + i, every=5) for i in range(4)]
    d = compare_series(runs).divergence
    assert d is not None and d.step is None


def test_curves_that_cross_diverge_after_the_crossing_only() -> None:
    steps = np.arange(4_000, dtype=np.int64)
    rng = np.random.default_rng(7)
    slow = 2.0 - steps / 4_000 + 0.01 * rng.standard_normal(steps.size)  # straight line
    fast = 2.5 - 3.0 * steps / 4_000 + 0.01 * rng.standard_normal(steps.size)  # above, then below from 1,000
    d = compare_series([(steps, slow), (steps, fast)]).divergence
    assert d is not None and d.step is not None and 1_000 < d.step < 1_200, d


def test_runs_that_swap_sides_diverge_from_the_swap() -> None:
    steps = np.arange(4_000, dtype=np.int64)
    rng = np.random.default_rng(8)
    a = 1.0 + 0.01 * rng.standard_normal(steps.size)
    b = np.where(steps < 2_000, 1.5, 0.5) + 0.01 * rng.standard_normal(steps.size)  # far above, then far below
    d = compare_series([(steps, a), (steps, b)]).divergence
    assert d is not None and d.step is not None and abs(d.step - 2_000) <= 3, d


def test_a_one_cell_return_does_not_reset_the_divergence() -> None:
    steps = np.arange(0, 2_560, 10, dtype=np.int64)  # 256 points: 64 cells of 4 points
    rng = np.random.default_rng(9)
    a = 1.0 + 0.01 * rng.standard_normal(steps.size)
    apart = (steps >= 640) & ((steps < 1_280) | (steps >= 1_320))  # back together for one cell only
    b = 1.0 + 0.3 * apart + 0.01 * rng.standard_normal(steps.size)
    d = compare_series([(steps, a), (steps, b)]).divergence
    assert d is not None and d.step is not None and abs(d.step - 640) <= 30, d


def test_a_last_point_apart_is_no_lasting_divergence() -> None:
    steps = np.arange(0, 1_000, 100, dtype=np.int64)  # ten evaluations: one cell each
    rng = np.random.default_rng(10)
    a = 1.0 + 0.01 * rng.standard_normal(steps.size)
    b = 1.0 + 0.01 * rng.standard_normal(steps.size) + 0.5 * (steps == 900)
    d = compare_series([(steps, a), (steps, b)]).divergence
    assert d is not None and d.step is None, d


def test_three_runs_name_the_one_that_split_off() -> None:
    runs = [_curve(10_000, 20), _curve(10_000, 21, shift_at=6_000, shift=-0.2), _curve(10_000, 22)]
    d = compare_series(runs).divergence
    assert d is not None and d.step is not None and abs(d.step - 6_000) <= 3
    assert d.split == (1,)


def test_final_best_and_checkpoints() -> None:
    s = np.array([0, 10, 20, 30, 40], dtype=np.int64)
    a = (s, np.array([3.0, 1.0, 2.0, np.nan, 1.5]))
    b = (s[:4], np.array([4.0, 3.0, 0.5, 0.7]))
    c = compare_series([a, b])
    assert c.final == [(1.5, 40), (0.7, 30)]
    assert c.best == [(1.0, 10), (0.5, 20)]
    assert c.checkpoints == (0, 10, 20, 30)  # 25/50/75/100% of the common span 0..30
    np.testing.assert_array_equal(c.at_checkpoints[:, 1], [4.0, 3.0, 0.5, 0.7])
    assert np.isnan(c.at_checkpoints[3, 0])  # the stored NaN at step 30, not hidden
    up = compare_series([a, b], higher_is_better=True)
    assert up.best == [(3.0, 0), (4.0, 0)]


def test_runs_without_a_common_span_or_values() -> None:
    a = (np.array([0, 1, 2], dtype=np.int64), np.array([1.0, 2.0, 3.0]))
    late = (np.array([5, 6], dtype=np.int64), np.array([1.0, 2.0]))
    empty = (np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    c = compare_series([a, late, empty])
    assert c.divergence is None and c.checkpoints == () and c.final[2] is None and c.best[2] is None
    few = (np.arange(7, dtype=np.int64), np.zeros(7))
    far = (np.arange(7, dtype=np.int64), np.ones(7))
    assert compare_series([few, far]).divergence is None  # fewer than MIN_POINTS points: not dated
    assert compare_series([few, far]).checkpoints == (1, 3, 4, 6)


@pytest.mark.parametrize(
    "kwargs", [{"series": []}, {"series": [(np.array([1, 0]), np.array([1.0, 2.0]))]},
               {"series": [(np.array([0]), np.array([1.0]))], "k": 0.0}],
    ids=["no series", "unsorted", "k <= 0"],
)
def test_compare_series_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        compare_series(**kwargs)


# ---------------------------------------------------------------- config keys and groups


def test_the_key_that_explains_the_outcome_ranks_first() -> None:
    configs = [{"lr": lr, "tag": tag, "seed": i} for i, (lr, tag) in
               enumerate([(1e-4, "a"), (1e-4, "b"), (1e-3, "a"), (1e-3, "b")])]
    outcome = [0.90, 0.92, 0.50, 0.49]
    ranked = rank_config_keys(configs, outcome)
    assert [r.key for r in ranked] == ["lr", "tag", "seed"]
    assert ranked[0].share is not None and ranked[0].share > 0.9
    assert ranked[1].share == 0.0  # the tag-like key explains nothing
    assert not ranked[0].identity and not ranked[1].identity
    assert ranked[2].identity and ranked[2].share is None  # seed: listed, not ranked


def test_numeric_keys_rank_by_a_fit_and_unique_labels_cannot_be_told() -> None:
    configs = [{"lr": lr, "run_tag": f"t{i}", "wd": wd} for i, (lr, wd) in
               enumerate([(1e-4, 0.1), (3e-4, 0.0), (1e-3, 0.1), (3e-3, 0.0)])]
    ranked = rank_config_keys(configs, [1.0, 0.8, 0.6, 0.4])
    assert [r.key for r in ranked] == ["lr", "wd", "run_tag"]
    assert ranked[0].share is not None and ranked[0].share > 0.95
    assert ranked[2].share is None  # four runs, four labels: no way to tell


def test_two_runs_keep_key_order_and_identity_keys_rank_when_alone() -> None:
    ranked = rank_config_keys([{"b": 1, "a": 1, "same": 0}, {"b": 2, "a": 2, "same": 0}], [1.0, 2.0])
    assert [(r.key, r.share) for r in ranked] == [("a", None), ("b", None)]
    only_seed = rank_config_keys([{"seed": 1}, {"seed": 2}, {"seed": 3}], [1.0, 2.0, 3.0])
    assert [r.key for r in only_seed] == ["seed"] and only_seed[0].identity  # ranked: nothing else differs
    assert only_seed[0].share is not None and only_seed[0].share > 0.9


@pytest.mark.parametrize(
    ("key", "identity"),
    [("name", True), ("model.name", False), ("tag", False), ("seed", True), ("data_seed", True),
     ("trainer.seed", True), ("run_name", True), ("output_dir", True),
     ("logging.save_dir", True), ("_wandb.cli_version", True), ("timestamp", True), ("lr", False),
     ("optimizer.name", False), ("batch_size", False), ("model.dropout", False)],
)
def test_identity_keys(key: str, identity: bool) -> None:
    assert is_identity_key(key) is identity


def test_seed_groups_and_groups_by_a_key() -> None:
    configs = [{"lr": lr, "seed": s, "output_dir": f"out/{lr}-{s}"} for lr in (1e-3, 1e-2) for s in (1, 2, 3)]
    assert group_runs(configs, "seed") == {"lr=0.001": [0, 1, 2], "lr=0.01": [3, 4, 5]}
    assert group_runs(configs, "lr") == {"lr=0.001": [0, 1, 2], "lr=0.01": [3, 4, 5]}
    assert group_runs(configs[:3], "seed") == {"all": [0, 1, 2]}
    assert group_runs([{"a": {"b": 1}}, {}], "a.b") == {"a.b=1": [0], "a.b=<missing>": [1]}


def test_spread() -> None:
    assert spread([1.0, 2.0, 3.0, math.nan]) == (3, 2.0, 1.0, 1.0, 3.0)  # sample std (n-1)
    assert spread([4.0]) == (1, 4.0, None, 4.0, 4.0)
    assert spread([math.nan]) is None
