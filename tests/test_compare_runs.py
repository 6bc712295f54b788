"""compare_runs through its handler, the CLI and an MCP client, on JSONL runs written with json.dumps."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcp import Client

from runwise import cli, runs
from runwise.config import RunwiseConfig
from runwise.server.app import build_server
from runwise.tokens import estimate_tokens
from runwise.tools import TOOLS_BY_NAME
from runwise.tools.compare import CompareRunsInput, CompareRunsOutput
from tests.conftest import write_jsonl

SPEC = TOOLS_BY_NAME["compare_runs"]


def loss_rows(
    *, steps: int = 3_000, every: int = 10, seed: int = 0, config: dict[str, Any] | None = None,
    shift_at: int | None = None, shift: float = 0.0, scale: float = 1.0,
) -> list[dict[str, Any]]:
    """A run as a training script logs it: train/loss, lr and grad_norm every `every` steps, val/loss every 100.

    The loss decays with 2% noise; from `shift_at` on it is `shift` higher; `scale` multiplies the
    whole curve (a better or worse run)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = [{"step": 0, "config": config or {}}]
    for s in range(0, steps, every):
        clean = scale * (2.0 * math.exp(-4.0 * s / steps) + 0.5) + (shift if shift_at is not None and s >= shift_at
                                                                    else 0.0)
        row: dict[str, Any] = {"step": s, "train/loss": round(clean * (1 + 0.02 * rng.standard_normal()), 6),
                               "lr": 1e-3, "grad_norm": round(1 + 0.1 * rng.random(), 4)}
        if s % 100 == 0:
            row["val/loss"] = round(clean * 1.05 * (1 + 0.005 * rng.standard_normal()), 6)
        rows.append(row)
    return rows


def make_project(root: Path, named_rows: dict[str, list[dict[str, Any]]]) -> RunwiseConfig:
    for i, (name, rows) in enumerate(named_rows.items()):
        write_jsonl(root / "logs" / f"{name}.jsonl", rows, age_s=7200 - i)  # oldest first; none still running
    (root / "runwise.json").write_text(json.dumps({"project_name": "compare", "logs_dir": "logs"}))
    runs.clear_cache()
    return RunwiseConfig.load(root, env={})


def compare(cfg: RunwiseConfig, **fields: Any) -> CompareRunsOutput:
    out: CompareRunsOutput = SPEC.run(CompareRunsInput(**fields), cfg)
    return out


def rows_of(table: Any) -> list[dict[str, Any]]:
    return [dict(zip(table.columns, r, strict=True)) for r in table.rows]


def tokens(out: CompareRunsOutput) -> int:
    return estimate_tokens(json.dumps(out.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False))


# ---------------------------------------------------------------- point of divergence


def test_two_runs_that_separate_at_a_planted_step(tmp_path: Path) -> None:
    cfg = make_project(tmp_path, {
        "calm": loss_rows(seed=1, config={"lr": 1e-3}),
        "jumpy": loss_rows(seed=2, config={"lr": 3e-3}, shift_at=1_800, shift=0.15),
    })
    out = compare(cfg, runs=["calm", "jumpy"])
    assert out.divergence is not None
    div = {r["metric"]: r for r in rows_of(out.divergence)}
    assert abs(div["train/loss"]["step"] - 1_800) <= 30  # within 3 logging intervals
    assert abs(div["val/loss"]["step"] - 1_800) <= 300  # val/loss is logged every 100 steps
    assert div["lr"]["step"] is None and div["grad_norm"]["step"] is None  # equal lr, same noise
    assert out.summary.startswith("lowest final val/loss: calm ")
    assert "runs diverge on val/loss from step 1," in out.summary


def test_runs_that_differ_only_by_noise_do_not_diverge(tmp_path: Path) -> None:
    cfg = make_project(tmp_path, {f"seed{i}": loss_rows(seed=i, config={"seed": i}) for i in range(4)})
    out = compare(cfg, runs=[f"seed{i}" for i in range(4)])
    assert out.divergence is not None
    assert all(r["step"] is None for r in rows_of(out.divergence)), out.divergence
    assert "no lasting divergence on val/loss beyond noise" in out.summary


def test_three_runs_name_the_run_that_split_off(tmp_path: Path) -> None:
    cfg = make_project(tmp_path, {
        "a": loss_rows(seed=1), "b": loss_rows(seed=2, shift_at=1_200, shift=-0.3), "c": loss_rows(seed=3)})
    out = compare(cfg, runs=["a", "b", "c"])
    assert out.divergence is not None
    row = rows_of(out.divergence)[0]
    assert row["metric"] == "train/loss" and row["split_off"] == "b" and abs(row["step"] - 1_200) <= 30
    assert "(b split off)" in out.summary and out.summary.startswith("lowest final val/loss: b ")


# ---------------------------------------------------------------- values, checkpoints, ref@step


def test_final_best_and_checkpoints_per_run(tmp_path: Path) -> None:
    cfg = make_project(tmp_path, {"short": loss_rows(steps=2_000, seed=1), "long": loss_rows(steps=4_000, seed=2)})
    out = compare(cfg, runs=["short", "long"])
    assert out.best is not None and out.checkpoints is not None
    best = {r["metric"]: r for r in rows_of(out.best)}
    assert best["val/loss"]["mode"] == "min" and best["val/loss"]["step@long"] > best["val/loss"]["step@short"]
    checks = [r for r in rows_of(out.checkpoints) if r["metric"] == "val/loss"]
    assert [r["step"] for r in checks] == [400, 900, 1_400, 1_900]  # 25..100% of the common span 0..1,900
    history = runs.get_run("long", cfg)[0].history["val/loss"]
    assert checks[1]["long"] == pytest.approx(float(history.values[history.steps == 900][0]), rel=1e-3)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_ref_at_step_works_for_any_run(tmp_path: Path, which: int) -> None:
    names = ["a", "b", "c"]
    cfg = make_project(tmp_path, {n: loss_rows(seed=i) for i, n in enumerate(names)})
    refs = [f"{n}@1500" if i == which else n for i, n in enumerate(names)]
    out = compare(cfg, runs=refs)
    assert out.at_steps == [1_500 if i == which else None for i in range(3)]
    metric = rows_of(out.metrics)[0]
    history = runs.get_run(names[which], cfg)[0].history[metric["metric"]]
    assert metric[f"step@{names[which]}"] == 1_500
    assert metric[names[which]] == pytest.approx(float(history.values[history.steps == 1_500][0]), rel=1e-4)
    assert out.best is not None
    assert all(r[f"step@{names[which]}"] <= 1_500 for r in rows_of(out.best))  # its best within its first 1,500


def test_runs_with_missing_metrics_or_none(tmp_path: Path) -> None:
    without_val = loss_rows(seed=2, config={"lr": 1e-2})
    for row in without_val[1:]:
        row.pop("val/loss", None)
    cfg = make_project(tmp_path, {"a": loss_rows(seed=1, config={"lr": 1e-3}), "b": without_val,
                                  "empty": [{"step": 0, "config": {"lr": 5}}], "short": loss_rows(steps=60, seed=3)})
    out = compare(cfg, runs=["a", "b", "empty"])
    assert out.summary.startswith("lowest final train/loss: ")  # the metric the most runs have
    assert rows_of(out.metrics)[0]["empty"] is None
    short = compare(cfg, runs=["a", "short@20"])
    assert "the runs share too few steps of " in short.summary


# ---------------------------------------------------------------- config keys and groups


def test_the_config_key_that_explains_the_outcome_ranks_first(tmp_path: Path) -> None:
    variants = [(1e-4, "blue", 1.3), (1e-4, "red", 1.3), (1e-3, "blue", 1.0), (1e-3, "red", 1.0)]
    cfg = make_project(tmp_path, {
        f"r{i}": loss_rows(seed=i, scale=scale, config={"lr": lr, "colour": tag, "seed": i, "batch": 32})
        for i, (lr, tag, scale) in enumerate(variants)
    })
    out = compare(cfg, runs=[f"r{i}" for i in range(4)])
    assert out.config_diff is not None
    table = rows_of(out.config_diff)
    assert [r["key"] for r in table] == ["lr", "colour", "seed"]  # batch is the same everywhere: dropped
    assert table[0]["share"] > 0.9 and table[1]["share"] < 0.2 and table[2]["share"] is None
    assert table[0]["r1"] == "=" and table[0]["r2"] == 0.001
    assert "config: lr explains 9" in out.summary


def test_two_runs_list_differing_keys_unranked(tmp_path: Path) -> None:
    cfg = make_project(tmp_path, {"a": loss_rows(seed=1, config={"lr": 1, "wd": 0.1, "seed": 1}),
                                  "b": loss_rows(seed=2, config={"lr": 2, "wd": 0.0, "seed": 2})})
    out = compare(cfg, runs=["a", "b"])
    assert out.config_diff is not None and out.config_diff.columns == ["key", "a", "b"]  # no share column
    assert [r[0] for r in out.config_diff.rows] == ["lr", "wd", "seed"]
    assert "3 config keys differ (lr, wd, seed; unranked)" in out.summary


def seed_grid(root: Path) -> tuple[RunwiseConfig, list[str]]:
    named = {}
    for lr, scale in ((1e-3, 1.0), (1e-2, 1.4)):
        for seed in (1, 2, 3):
            named[f"lr{lr:g}_s{seed}"] = loss_rows(
                seed=seed * 7 + int(lr * 1e4), scale=scale,
                config={"lr": lr, "seed": seed, "output_dir": f"out/{lr:g}/{seed}", "layers": 4})
    return make_project(root, named), list(named)


def test_seed_groups_give_mean_std_min_max(tmp_path: Path) -> None:
    cfg, names = seed_grid(tmp_path)
    out = compare(cfg, runs=names, group_by="seed")
    assert out.run_groups == {"lr=0.001": names[:3], "lr=0.01": names[3:]}
    assert out.group_stats is not None
    history = {n: runs.get_run(n, cfg)[0].history["val/loss"] for n in names}
    for row in rows_of(out.group_stats):
        if row["metric"] != "val/loss":
            continue
        members = out.run_groups[row["group"]]
        finals = [float(history[n].values[-1]) for n in members]
        bests = [float(history[n].values.min()) for n in members]
        assert row["n"] == 3
        assert row["mean"] == pytest.approx(statistics.mean(finals), rel=1e-3)
        assert row["std"] == pytest.approx(statistics.stdev(finals), rel=1e-2)
        assert (row["min"], row["max"]) == pytest.approx((min(finals), max(finals)), rel=1e-3)
        assert row["best_mean"] == pytest.approx(statistics.mean(bests), rel=1e-3)
    assert "2 groups by seed (n=3,3); best group lr=0.001: val/loss " in out.summary


def test_group_by_a_key_and_groups_of_one(tmp_path: Path) -> None:
    cfg, names = seed_grid(tmp_path)
    out = compare(cfg, runs=[*names[:3], names[3]], group_by="lr")
    assert out.run_groups == {"lr=0.001": names[:3], "lr=0.01": [names[3]]}
    assert out.group_stats is not None
    single = [r for r in rows_of(out.group_stats) if r["group"] == "lr=0.01"]
    assert single and all(r["n"] == 1 and r["std"] is None for r in single)
    assert "1 group(s) of one run" in out.summary


def test_group_by_an_unknown_key_names_the_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, names = seed_grid(tmp_path)
    code = cli.main(["--root", str(tmp_path), "compare", *names[:2], "--group-by", "lrr"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "no run has config key 'lrr'; closest: lr" in err and "Traceback" not in err


def test_cli_group_by_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, names = seed_grid(tmp_path)
    assert cli.main(["--root", str(tmp_path), "--json", "compare", *names, "--group-by", "seed"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run_groups"] == {"lr=0.001": names[:3], "lr=0.01": names[3:]}
    assert cli.main(["--root", str(tmp_path), "compare", *names, "--group-by", "seed"]) == 0
    text = capsys.readouterr().out
    assert "group stats:" in text and "lr=0.001" in text


@pytest.mark.anyio
async def test_mcp_client_group_by(tmp_path: Path) -> None:
    _, names = seed_grid(tmp_path)
    server = build_server(lambda: RunwiseConfig.load(tmp_path, env={}))
    async with Client(server) as client:
        result = await client.call_tool("compare_runs", {"runs": names, "group_by": "seed"})
        bad = await client.call_tool("compare_runs", {"runs": names[:2], "group_by": "nope"})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["run_groups"] == {"lr=0.001": names[:3], "lr=0.01": names[3:]}
    assert bad.is_error and "no run has config key 'nope'" in bad.content[0].text


# ---------------------------------------------------------------- size


def test_four_runs_fit_the_default_budget(tmp_path: Path) -> None:
    named = {}
    for i in range(4):
        rows = loss_rows(seed=i, config={"lr": 10.0 ** -(i + 2), "seed": i, "batch": 32 * (i % 2 + 1)})
        for r in rows[1:]:
            r.update({"val/acc": 0.5, "throughput": 1000.0 + i})
        named[f"run_{i}"] = rows
    cfg = make_project(tmp_path, named)
    out = compare(cfg, runs=list(named))
    assert tokens(out) <= 2_000
    assert out.best is not None and out.checkpoints is not None and out.divergence is not None
    assert len(out.metrics.rows) == 6  # nothing left out at 4 runs of 6 metrics


def test_sixteen_runs_stay_bounded_and_say_what_was_left_out(tmp_path: Path) -> None:
    named = {}
    for i in range(16):
        rows = loss_rows(steps=1_000, seed=i, config={"lr": 10.0 ** -(i % 4 + 2), "seed": i, "wd": i % 3 / 10})
        for r in rows[1:]:
            r.update({f"extra/m{j}": j + 0.001 * i for j in range(20)})
        named[f"sweep_run_{i:02d}"] = rows
    cfg = make_project(tmp_path, named)
    out = compare(cfg, runs=list(named))
    assert tokens(out) <= 2_000
    assert out.notes and out.notes[0].startswith("shown for the 2,000-token budget: metrics ")
    assert "/20" in out.notes[0] and "ask with budget=" in out.notes[0]
    asked = compare(cfg, runs=list(named), max_metrics=30)  # a size asked for itself: no default budget
    assert len(asked.metrics.rows) == 24 and asked.checkpoints is not None and tokens(asked) > 2_000
    if "budget" in CompareRunsInput.model_fields:  # the shared budget field
        more = compare(cfg, runs=list(named), budget=6_000)
        assert 2_000 < tokens(more) <= 6_000 and len(more.metrics.rows) > len(out.metrics.rows)


def test_seventeen_runs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_project(tmp_path, {"a": loss_rows(steps=200)})
    code = cli.main(["--root", str(tmp_path), "compare", *(["a"] * 17)])
    assert code == 1 and "2 to 16" in capsys.readouterr().err
