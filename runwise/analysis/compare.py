"""Comparing runs: step-matched values, one metric across runs (final, best, checkpoints, point of
divergence), config flattening and diff, config keys ranked by the outcome they explain, run groups."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runwise._flat import flatten
from runwise.analysis._arrays import FloatArray, IndexArray, IntArray, as_series
from runwise.analysis._robust import MAD_TO_SIGMA

MISSING = "<missing>"
NOISE_FLOOR_REL = 1e-3  # a noise floor, relative to the level: flat or deterministic curves (lr)
NOISE_FLOOR_ABS = 1e-12


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


# ---------------------------------------------------------------- comparing one metric across runs

DIVERGE_K = 4.0  # runs diverge when their gap stays beyond this many times their combined noise
GRID = 256  # cells of the common step grid the runs are compared on
MIN_POINTS = 8  # points every run needs in the common span for a point of divergence
CELL_POINTS = 4  # points of the sparsest run per cell, at least (fewer cells for short series)
BLOCK_SAMPLE = 63  # points per cell the cell median is taken from (a stride through longer cells)
CHECKPOINTS = (0.25, 0.5, 0.75, 1.0)  # fractions of the common span where every run is read
_SQRT6 = math.sqrt(6.0)


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where the runs of one metric separate for good.

    `step` is a logged step of run `pair[0]`, None when no pair separates. `split` holds the indices
    of the runs that split off from the rest (for two runs: the second). `gap` is the distance
    between the pair at the end of their common span and `noise` their combined noise, the unit
    of the threshold (gap > DIVERGE_K x noise).
    """

    step: int | None
    split: tuple[int, ...] = ()
    pair: tuple[int, int] = (0, 1)
    gap: float = 0.0
    noise: float = 0.0


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One metric across runs: final and best (value, step) per run, checkpoints, divergence.

    `final[i]` / `best[i]` are None for a run without finite values. `at_checkpoints` has one row per
    step of `checkpoints` and one column per run (NaN where a run has no value at or before it).
    `divergence` is None when fewer than two runs have values, they share no span of steps, or a
    run has fewer than MIN_POINTS points in it.
    """

    final: list[tuple[float, int] | None]
    best: list[tuple[float, int] | None]
    checkpoints: tuple[int, ...]
    at_checkpoints: FloatArray
    divergence: Divergence | None


def compare_series(
    series: Sequence[tuple[Any, Any]], *, higher_is_better: bool = False, k: float = DIVERGE_K, grid: int = GRID,
    fractions: Sequence[float] = CHECKPOINTS,
) -> MetricComparison:
    """Compare one metric of several runs given as (steps, values) pairs (steps sorted ascending).

    Best is the min (or the max with `higher_is_better`) of the finite values, at its first step.
    Checkpoints are logged steps of the sparsest run at `fractions` of the span all runs share.
    Divergence: each run's finite points in the common span become cell medians on up to `grid`
    cells (about CELL_POINTS points of the sparsest run each); a pair's noise is the robust scale
    of the second differences of the gap between their curves; the pair diverges at the first cell
    from which that gap stays beyond `k` x its noise on one side (one-cell dips closed) to the end,
    for at least 2 cells. The step is then
    refined to the change point of the raw gap around that cell. O(n) per run, no per-point loops.
    Raises ValueError for malformed or unsorted series, or fewer than one series.
    """
    if not series:
        raise ValueError("compare_series needs at least one series")
    if k <= 0 or grid < 4:
        raise ValueError(f"k must be > 0 and grid >= 4, got k={k}, grid={grid}")
    raw = [as_series(s, v, check_sorted=True) for s, v in series]
    fin = [_finite(s, v) for s, v in raw]
    final = [(float(v[-1]), int(s[-1])) if v.size else None for s, v in fin]
    best: list[tuple[float, int] | None] = []
    for s, v in fin:
        i = int(np.argmax(v) if higher_is_better else np.argmin(v)) if v.size else -1
        best.append((float(v[i]), int(s[i])) if i >= 0 else None)
    span = _common_span(fin)
    steps, at = _checkpoints(raw, fin, span, fractions)
    div = _divergence(fin, span, k, grid) if span is not None and _points_in(fin, span) >= MIN_POINTS else None
    return MetricComparison(final, best, steps, at, div)


def _finite(s: IntArray, v: FloatArray) -> tuple[IntArray, FloatArray]:
    ok = np.isfinite(v)
    return (s, v) if bool(ok.all()) else (s[ok], v[ok])  # no copy in the usual case


def _within(s: IntArray, v: FloatArray, lo: int, hi: int) -> tuple[IntArray, FloatArray]:
    """The points with lo <= step <= hi, as views (steps are sorted)."""
    i, j = int(np.searchsorted(s, lo, side="left")), int(np.searchsorted(s, hi, side="right"))
    return s[i:j], v[i:j]


def _common_span(fin: Sequence[tuple[IntArray, FloatArray]]) -> tuple[int, int] | None:
    """(first, last) step every run with finite values covers; None if fewer than two runs or no overlap."""
    live = [s for s, _ in fin if s.size]
    if len(live) < 2:
        return None
    lo, hi = max(int(s[0]) for s in live), min(int(s[-1]) for s in live)
    return (lo, hi) if lo < hi else None


def _points_in(fin: Sequence[tuple[IntArray, FloatArray]], span: tuple[int, int]) -> int:
    """Points of the sparsest run (with finite values) inside `span`."""
    return min(_within(s, v, *span)[0].size for s, v in fin if s.size)


def _checkpoints(
    raw: Sequence[tuple[IntArray, FloatArray]], fin: Sequence[tuple[IntArray, FloatArray]],
    span: tuple[int, int] | None, fractions: Sequence[float],
) -> tuple[tuple[int, ...], FloatArray]:
    if span is None:
        return (), np.empty((0, len(raw)))
    lo, hi = span
    # the sparsest run's logged steps (NaN points too: a stored NaN at a checkpoint is shown, not skipped)
    ref = min((_within(s, v, lo, hi)[0] for (s, v), (fs, _) in zip(raw, fin, strict=True) if fs.size), key=len)
    targets = lo + np.asarray(fractions, dtype=np.float64) * (hi - lo)
    idx = np.searchsorted(ref, targets, side="right") - 1
    steps = np.unique(ref[idx[idx >= 0]])
    out = np.full((steps.size, len(raw)), np.nan)
    for j, (s, v) in enumerate(raw):  # one searchsorted per run, not per point
        i = np.searchsorted(s, steps, side="right") - 1
        ok = i >= 0
        out[ok, j] = v[i[ok]]
    return tuple(int(x) for x in steps), out


def _cell_medians(steps: IntArray, values: FloatArray, cells: int) -> tuple[FloatArray, FloatArray]:
    """(step, median) of `cells` consecutive equal-count blocks; a long block's median uses a stride."""
    n = values.size
    block = max(1, n // cells)
    nb = n // block
    stride = max(1, block // BLOCK_SAMPLE)
    mat = values[: nb * block].reshape(nb, block)[:, ::stride]
    m = mat.shape[1]
    part = np.partition(mat, [(m - 1) // 2, m // 2], axis=1)
    med = 0.5 * part[:, (m - 1) // 2] + 0.5 * part[:, m // 2]
    st = steps[: nb * block].reshape(nb, block)
    at = 0.5 * st[:, 0] + 0.5 * st[:, -1]
    if nb * block < n:  # the remainder: one more cell
        med = np.append(med, np.median(values[nb * block :]))
        at = np.append(at, 0.5 * (steps[nb * block] + steps[-1]))
    return at.astype(np.float64), med


def _gap_noise(gap: FloatArray, level: FloatArray) -> FloatArray:
    """Robust scale of each row of `gap` (pair x cell): the MAD of its second differences, over sqrt(6).

    Second differences cancel a trend, and taken on the gap they cancel the curvature both runs
    share (a fast early decay), which would pass for noise on either curve alone. Floored at
    NOISE_FLOOR_REL x the pair's `level`, so deterministic curves (lr) have a scale.
    """
    floor = np.maximum(NOISE_FLOOR_REL * level, NOISE_FLOOR_ABS)
    d2 = gap[:, 2:] - 2.0 * gap[:, 1:-1] + gap[:, :-2]
    scale: FloatArray = MAD_TO_SIGMA * np.median(np.abs(d2), axis=1) / _SQRT6
    return np.maximum(scale, floor)


def _divergence(fin: Sequence[tuple[IntArray, FloatArray]], span: tuple[int, int], k: float, grid: int) -> Divergence:
    lo, hi = span
    idx = [i for i, (s, _) in enumerate(fin) if s.size]
    windows = [_within(*fin[i], lo, hi) for i in idx]
    # cells of about CELL_POINTS points of the sparsest run: its cell medians are steadier than single points
    cells = max(4, min(grid, max(8, min(s.size for s, _ in windows) // CELL_POINTS)))
    centres = np.linspace(lo, hi, cells)
    curves = np.empty((len(idx), cells))
    for r, (s, v) in enumerate(windows):
        curves[r] = np.interp(centres, *_cell_medians(s, v, cells))
    a, b = np.triu_indices(len(idx), 1)
    gap = curves[a] - curves[b]
    combined = _gap_noise(gap, np.maximum(np.median(np.abs(curves[a]), axis=1), np.median(np.abs(curves[b]), axis=1)))
    side = np.where(gap[:, -1:] < 0, -1.0, 1.0)  # a lasting separation keeps the side it ends on: no crossing
    beyond = gap * side > k * combined[:, None]
    beyond[:, 1:-1] |= beyond[:, :-2] & beyond[:, 2:]  # close one-cell dips
    onset = cells - np.argmax(~beyond[:, ::-1], axis=1)  # first cell of the all-True tail
    onset[beyond.all(axis=1)] = 0
    onset[~beyond[:, -1]] = cells
    onset[onset > cells - 2] = cells  # a tail of one cell is no lasting separation
    first = int(np.argmin(onset))
    if onset[first] >= cells:
        return Divergence(None)
    pa, pb = int(a[first]), int(b[first])
    cell = int(onset[first])
    split = _split_off(onset, a, b, cell, len(idx), curves, pa, pb)
    step = _refine(windows[pa], windows[pb], centres, cell)
    end_gap = float(abs(curves[pa, -1] - curves[pb, -1]))
    return Divergence(step, tuple(idx[r] for r in split), (idx[pa], idx[pb]), end_gap, float(combined[first]))


def _split_off(
    onset: IndexArray, a: IndexArray, b: IndexArray, cell: int, n: int, curves: FloatArray, pa: int, pb: int
) -> tuple[int, ...]:
    """Runs outside the largest group still together at `cell` (groups: pairs not yet separated)."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i in np.flatnonzero(onset > cell):  # at most 120 pairs for 16 runs
        parent[root(int(a[i]))] = root(int(b[i]))
    roots = [root(x) for x in range(n)]
    sizes = {r: roots.count(r) for r in roots}
    main = max(sizes, key=lambda r: (sizes[r], r == roots[0]))
    if sizes[main] < n:
        return tuple(x for x in range(n) if roots[x] != main)
    # one group chained through a run between the pair: the one further from the median curve split off
    centre = np.median(curves[:, cell:], axis=0)
    far = [float(np.mean(np.abs(curves[x, cell:] - centre))) for x in (pa, pb)]
    return (pa,) if far[0] > far[1] else (pb,)


def _refine(run_a: tuple[IntArray, FloatArray], run_b: tuple[IntArray, FloatArray], centres: FloatArray,
            cell: int) -> int:
    """The logged step of run a where the raw gap changes level, searched around cell `cell`."""
    sa, va = run_a
    sb, vb = run_b
    lo = centres[max(cell - 2, 0)]
    hi = centres[min(cell + 1, centres.size - 1)]
    inside = (sa >= lo) & (sa <= hi)
    s = sa[inside]
    if cell == 0 or s.size < 4:
        first = int(np.searchsorted(sa, centres[cell], side="left"))
        return int(sa[min(first, sa.size - 1)])
    gap = va[inside] - np.interp(s, sb, vb)
    cusum = np.cumsum(gap - gap.mean())
    return int(s[int(np.argmax(np.abs(cusum[:-1]))) + 1])


# ---------------------------------------------------------------- config keys: ranking and groups

# Keys that name a run rather than change its training: seeds, names, ids, paths, times, W&B internals.
_SEED = re.compile(r"(^|[._/-])([a-z_]*seed[a-z_]*)$", re.IGNORECASE)
_IDENTITY = re.compile(  # a whole key ('name', not 'optimizer.name'), or a key's last part
    r"^(name|id|uuid|tags|notes|group|experiment|host|hostname)$|"
    r"(^|[._/-])(run_name|exp_name|experiment_name|run_id|wandb_run_id|"
    r"(output|out|save|log|logging|checkpoint|ckpt|run|results?|work)_?(dir|path|root)|"
    r"timestamp|time|date|datetime|start_time|created_at)$",
    re.IGNORECASE,
)


def is_seed_key(key: str) -> bool:
    """A seed-like config key: 'seed', 'data_seed', 'trainer.seed', 'seed_everything'."""
    return bool(_SEED.search(key))


def is_identity_key(key: str) -> bool:
    """A key that names a run rather than changes it: seeds, names, ids, output dirs, times, '_wandb.*'."""
    return key.startswith("_wandb") or is_seed_key(key) or bool(_IDENTITY.search(key))


def _canon(v: Any) -> str:
    """A hashable form of a config value: 1 and 1.0 are one value, True and 1 two, NaN equals NaN."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, (int, float)):
        return repr(float(v))
    return f"{type(v).__name__}:{v!r}"


@dataclass(frozen=True, slots=True)
class KeyRank:
    """A config key that differs between runs; `share` is how much of the spread of the outcome it explains.

    `share` is in [0, 1] (adjusted, so a key with as many values as runs explains nothing by itself),
    None when it cannot be told (every run its own value and the values are not numbers, or two runs).
    """

    key: str
    values: tuple[Any, ...]  # per run, MISSING where a run lacks the key
    share: float | None
    identity: bool


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Flattened keys whose value is not the same in every config (a missing key counts as a value), sorted."""
    return _differing([flatten_config(c) for c in configs])


def _differing(flat: Sequence[Mapping[str, Any]]) -> list[str]:
    """differing_keys of configs already flattened."""
    keys = sorted(set().union(*flat)) if flat else []
    return [k for k in keys if len({_canon(f.get(k, MISSING)) for f in flat}) > 1]


def rank_config_keys(configs: Sequence[Mapping[str, Any]], outcome: Sequence[float]) -> list[KeyRank]:
    """The keys that differ, ranked by the share of the variance of `outcome` (one value per run) they explain.

    A key's share: for numbers (every run has one, two or more distinct), the adjusted R^2 of a line
    fitted to the outcome over the value (over its log when all are positive); otherwise the
    adjusted between-group share of the variance (epsilon^2) of the runs grouped by the value.
    Non-finite outcomes are left out. Identity keys (is_identity_key) come after the others,
    unranked unless nothing else differs; keys that cannot be told keep key order after the ranked.
    """
    if len(outcome) != len(configs):
        raise ValueError(f"one outcome per config: {len(outcome)} outcomes for {len(configs)} configs")
    flat = [flatten_config(c) for c in configs]
    y = np.asarray(outcome, dtype=np.float64)
    ok = np.isfinite(y)
    ranks = []
    for key in _differing(flat):
        values = tuple(f.get(key, MISSING) for f in flat)
        share = _share([v for v, good in zip(values, ok, strict=True) if good], y[ok])
        ranks.append(KeyRank(key, values, share, is_identity_key(key)))
    others = [r for r in ranks if not r.identity]
    keep_identity_ranked = not others
    if not keep_identity_ranked:
        ranks = others + [KeyRank(r.key, r.values, None, True) for r in ranks if r.identity]

    def order(r: KeyRank) -> tuple[int, float]:
        return (int(r.identity and not keep_identity_ranked), -(r.share if r.share is not None else -1.0))

    return sorted(ranks, key=order)  # stable: ties keep key order


def _share(values: Sequence[Any], y: FloatArray) -> float | None:
    n = y.size
    if n < 3:
        return None
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0:
        return 0.0
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    if numeric and len(set(values)) > 1:
        x = np.asarray(values, dtype=np.float64)
        if bool(np.all(x > 0)):
            x = np.log(x)
        r = float(np.corrcoef(x, y)[0, 1]) if np.std(x) > 0 and np.std(y) > 0 else 0.0
        return max(0.0, 1.0 - (1.0 - r * r) * (n - 1) / (n - 2))
    labels = [_canon(v) for v in values]
    groups = len(set(labels))
    if groups >= n or groups < 2:
        return None
    _, inverse = np.unique(labels, return_inverse=True)
    means = np.bincount(inverse, weights=y) / np.bincount(inverse)
    within = float(np.sum((y - means[inverse]) ** 2))
    return max(0.0, 1.0 - (within / (n - groups)) / (total / (n - 1)))


def group_runs(configs: Sequence[Mapping[str, Any]], by: str) -> dict[str, list[int]]:
    """Run indices grouped by the value of config key `by`, or by `by="seed"`: by every key but identity keys.

    Group labels: the value (`key=value`), or for seed groups the keys that tell the groups apart
    ("lr=0.001, wd=0.1"; "all" when there is one group). Groups in order of their first run.
    """
    flat = [flatten_config(c) for c in configs]
    if by != "seed":
        return _by_label([f"{by}={_show(f.get(by, MISSING))}" for f in flat])
    telling = [k for k in _differing(flat) if not is_identity_key(k)]
    if not telling:
        return {"all": list(range(len(flat)))}
    shown = telling[:3]  # a label names at most three keys: groups differ in all of them together
    more = ", …" if len(telling) > 3 else ""
    return _by_label([", ".join(f"{k}={_show(f.get(k, MISSING))}" for k in shown) + more for f in flat])


def _show(v: Any) -> str:
    text = v if isinstance(v, str) else repr(v)
    return text if len(text) <= 40 else text[:39] + "…"


def _by_label(labels: Sequence[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        out.setdefault(label, []).append(i)
    return out


def spread(values: Sequence[float]) -> tuple[int, float, float | None, float, float] | None:
    """(n, mean, sample std (n-1; None for one value), min, max) of the finite values; None if there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    std = float(np.std(v, ddof=1)) if v.size > 1 else None
    return int(v.size), float(v.mean()), std, float(v.min()), float(v.max())
