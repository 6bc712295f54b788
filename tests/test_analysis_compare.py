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
