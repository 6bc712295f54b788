"""Helpers for comparing runs: step-matched values, percent change, config flattening and diff."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runwise._flat import flatten
from runwise.analysis._arrays import as_series

MISSING = "<missing>"


def value_at_step(
    steps: NDArray[np.int64], values: NDArray[np.float64], step: int
) -> tuple[int, float] | None:
    """Return (step, value) at `step` or the last point before it; None if the series starts later.

    A repeated step gives its last write. The value is returned as stored (it may be NaN/inf).
    Raises ValueError if the arrays are malformed or steps are not sorted.
    """
    s, v = as_series(steps, values, check_sorted=True)
    i = int(np.searchsorted(s, step, side="right")) - 1
    if i < 0:
        return None
    return int(s[i]), float(v[i])


def percent_change(a: float, b: float) -> float | None:
    """Change from `a` to `b` in percent of |a|; None when a == 0 or either is not finite."""
    if not (math.isfinite(a) and math.isfinite(b)) or a == 0:
        return None
    return (b - a) / abs(a) * 100.0


def flatten_config(cfg: Mapping[str, Any], *, sep: str = ".") -> dict[str, Any]:
    """Flatten nested mappings to "a.b" keys, unwrapping W&B {"value": x} / {"desc", "value"} wrappers.

    An empty mapping stays a value. Raises ValueError if `sep` is empty. (runwise._flat.flatten)
    """
    return flatten(cfg, sep=sep, unwrap=True)


def _same(x: Any, y: Any) -> bool:
    """Config values equal for a diff: NaN equals NaN, True differs from 1, arrays compare whole."""
    if isinstance(x, bool) != isinstance(y, bool):
        return False
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    try:
        return bool(x == y)
    except (ValueError, TypeError):  # e.g. numpy arrays: elementwise ==
        return repr(x) == repr(y)


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Flattened keys whose values differ, sorted by key; a missing side is "<missing>"."""
    fa, fb = flatten_config(a), flatten_config(b)
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(fa.keys() | fb.keys()):
        va, vb = fa.get(key, MISSING), fb.get(key, MISSING)
        if key in fa and key in fb and _same(va, vb):
            continue
        out[key] = (va, vb)
    return out
