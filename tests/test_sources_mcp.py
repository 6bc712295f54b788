"""Every tool, through the official MCP client, on a committed fixture of every new source (issue 11).

`CASES` is a table with one row per source fixture: how to copy its committed files into a fresh
project root (a copy, with old mtimes so the state is stable: runwise never writes into fixtures),
a run with the most points, its loss-like metric, the points the writer's own reader read back
(the fixture's expected.json), the run's config and a planted NaN. Each project also holds a JSONL
run, `jsonl_base`, that logs the same metric, for the cross-source comparison. Every tool in
`TOOLS` is called in memory (`mcp.Client(build_server(...))`) and its answer checked against
expected.json; one test starts the `runwise-mcp` console script over stdio, as Claude Code does,
and compares an MLflow run with a DVCLive run. To add a source, add a row to `CASES`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from runwise.config import RunwiseConfig
from runwise.server import build_server
from runwise.server.messages import ERROR_CHARS
from runwise.tools import TOOLS
from tests.conftest import runwise_mcp

DATA = Path(__file__).resolve().parent / "data"
OLD_S = 3600.0  # every fixture file is made this old: not being written
JSONL_ID = "jsonl_base"
JSONL_STEPS = 60
JSONL_CONFIG = {"lr": 0.5, "optimizer": "jsonl-sgd"}

Points = list[tuple[int, float]]


def jsonl_value(step: int) -> float:
    return round(3.0 - 0.025 * step, 6)


@dataclass(frozen=True)
class Case:
    """One source fixture: everything the checks need to know about it."""

    id: str  # the pytest id
    source: str  # the source name list_runs / find_best_run take
    copy: Callable[[Path], None]  # copies the committed fixture into a project root
    ref: str  # a run reference: the run with the most points
    run_id: str  # that run's id, as list_runs shows it
    metric: str  # a loss-like metric of that run (it decreases)
    points: Points  # (step, value) of `metric`, as the writer's own reader read them back
    config: dict[str, Any]  # the run's whole config, flattened with '.'
    runs_with_metric: int  # how many of the fixture's runs log `metric`
    nan: tuple[str, str, int]  # a run with a planted NaN: (reference, metric, first NaN step)
    missing: str  # a reference of this source that names no run
    trend: str = "decreasing"  # get_stability's trend of `metric`


def _age(root: Path) -> None:
    then = time.time() - OLD_S
    for p in [root, *root.rglob("*")]:
        os.utime(p, (then, then))


# ---------------------------------------------------------------- MLflow (tests/data/mlflow)

MLFLOW = json.loads((DATA / "mlflow" / "expected.json").read_text())
MLFLOW_STORES = {"sqlite": "mlflow.db", "file": "mlruns"}


def _mlflow_copy(store: str) -> Callable[[Path], None]:
    def copy(root: Path) -> None:
        src, dst = DATA / "mlflow" / MLFLOW_STORES[store], root / MLFLOW_STORES[store]
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)

    return copy


def _mlflow_points(store: str, name: str, metric: str) -> Points:
    run = next(r for r in MLFLOW[store] if r["name"] == name)
    return [(p[0], float(p[1])) for p in sorted(run["metrics"][metric], key=lambda p: (p[0], p[2]))]


def _mlflow(store: str) -> Case:
    run = next(r for r in MLFLOW[store] if r["name"] == "warm-lr")
    diverged = _mlflow_points(store, "diverged lr 0.1", "train/loss")
    return Case(
        id=f"mlflow-{store}",
        source="mlflow",
        copy=_mlflow_copy(store),
        ref="mlflow:baseline/warm-lr",
        run_id="baseline/warm-lr",
        metric="train/loss",
        points=_mlflow_points(store, "warm-lr", "train/loss"),
        config=run["params"],
        runs_with_metric=sum("train/loss" in r["metrics"] for r in MLFLOW[store]),
        nan=("mlflow:baseline/diverged lr 0.1", "train/loss", next(s for s, v in diverged if math.isnan(v))),
        missing="mlflow:NoSuchExp/x",
    )


# ---------------------------------------------------------------- DVCLive (tests/data/dvclive)

DVCLIVE = json.loads((DATA / "dvclive" / "expected.json").read_text())


def _flat(d: dict[str, Any], pre: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{pre}{k}.") if isinstance(v, dict) else {pre + k: v})
    return out


def _dvclive_points(run: str, metric: str) -> Points:
    m = DVCLIVE[run]["metrics"][metric]
    return [(s, float(v)) for s, v in zip(m["steps"], m["values"], strict=True)]


def _dvclive_copy(root: Path) -> None:
    shutil.copytree(DATA / "dvclive" / "project", root, dirs_exist_ok=True)


def _dvclive() -> Case:
    acc = _dvclive_points("dvclive", "val/acc")
    return Case(
        id="dvclive",
        source="dvclive",
        copy=_dvclive_copy,
        ref="dvclive:experiments/resumed",
        run_id="experiments/resumed",
        metric="loss",
        points=_dvclive_points("experiments/resumed", "loss"),
        config=_flat(DVCLIVE["experiments/resumed"]["params"]),
        # 'loss' is also a role name: find_best_run reads a run's train/loss for it
        runs_with_metric=sum(bool({"loss", "train/loss"} & set(r["metrics"])) for r in DVCLIVE.values()),
        nan=("dvclive:dvclive", "val/acc", next(s for s, v in acc if math.isnan(v))),
        missing="dvclive:no/such/run",
    )


# ---------------------------------------------------------------- Trackio (tests/data/trackio)

TRACKIO = json.loads((DATA / "trackio" / "expected.json").read_text())


def _trackio_points(project: str, run: str, metric: str) -> Points:
    # trackio's reader gives NaN and infinities as the strings it stores them as
    return [(row["step"], float(row[metric])) for row in TRACKIO[project][run]["logs"] if metric in row]


def _trackio_copy(root: Path) -> None:
    (root / "trackio").mkdir(parents=True)
    for db in (DATA / "trackio").glob("*.db"):
        shutil.copy(db, root / "trackio" / db.name)


def _trackio() -> Case:
    planted = _trackio_points("glue-sst2", "bert-base-lr3e-4", "train/loss")
    return Case(
        id="trackio",
        source="trackio",
        copy=_trackio_copy,
        ref="trackio:glue-sst2/run 2",  # killed, then resumed: one run
        run_id="glue-sst2/run 2",
        metric="train/loss",
        points=_trackio_points("glue-sst2", "run 2", "train/loss"),
        config={},  # trackio keeps the config of a run's last session; the resumed one logged none
        runs_with_metric=sum("train/loss" in row for runs in TRACKIO.values() for r in runs.values()
                             for row in r["logs"][:1]),
        nan=("trackio:glue-sst2/bert-base-lr3e-4", "train/loss", next(s for s, v in planted if math.isnan(v))),
        missing="trackio:glue-sst2/no-such-run",
    )


# ---------------------------------------------------------------- Hugging Face Trainer (tests/data/hf)

HF = json.loads((DATA / "hf" / "expected.json").read_text())
HF_ARGS = ("train_batch_size", "num_train_epochs", "max_steps", "logging_steps", "eval_steps", "save_steps")


def _hf_points(run: str, state: str, metric: str) -> Points:
    return [(e["step"], float(e[metric])) for e in HF[run]["states"][state]["log_history"] if metric in e]


def _hf_copy(root: Path) -> None:
    shutil.copytree(DATA / "hf" / "project", root, dirs_exist_ok=True)


def _hf() -> Case:
    run = "outputs/bert-tiny-lr3e-5"
    state = HF[run]["states"]["."]  # the top-level state: written last, at the newest checkpoint's global_step
    nan = _hf_points("runs/exp-nan", "checkpoint-40", "loss")
    return Case(
        id="hf",
        source="hf",
        copy=_hf_copy,
        ref=f"hf:{run}",
        run_id=run,
        metric="loss",
        points=_hf_points(run, ".", "loss"),
        config={**{k: state[k] for k in HF_ARGS}, **_flat(HF[run]["files"]["config.json"], "model.")},
        runs_with_metric=len(HF),
        nan=("hf:runs/exp-nan", "loss", next(s for s, v in nan if math.isnan(v))),
        missing="hf:outputs/no-such-run",
        trend="flat",  # a tiny BERT on random labels: the loss stays at ln 2
    )


# ---------------------------------------------------------------- CSV logs (tests/data/csv)

CSVLOGS = json.loads((DATA / "csv" / "expected.json").read_text())


def _csv_points(path: str, metric: str) -> Points:
    col = CSVLOGS[path]["columns"][metric]  # pandas' read: a point where the cell is not empty
    return [(s, float(v)) for s, v in zip(col["steps"], col["values"], strict=True)]


def _csv_copy(root: Path) -> None:
    shutil.copytree(DATA / "csv" / "project", root, dirs_exist_ok=True)


def _csv() -> Case:
    metrics = "lightning_logs/version_0/metrics.csv"
    train = _csv_points(metrics, "train_loss")
    return Case(
        id="csv",
        source="csv",
        copy=_csv_copy,
        ref="csv:lightning_logs/version_0",
        run_id="lightning_logs/version_0",
        metric="val_loss",  # epoch-level: a point every 4th row of the wide, sparse file
        points=_csv_points(metrics, "val_loss"),
        config={"args.hidden": 4, "args.optimizer": "sgd", "lr": 0.05},  # hparams.yaml, a Namespace under its tag
        runs_with_metric=sum("val_loss" in f["columns"] for f in CSVLOGS.values()),
        nan=("csv:lightning_logs/version_0", "train_loss", next(s for s, v in train if math.isnan(v))),
        missing="csv:lightning_logs/version_9",
    )


CASES = [_mlflow("sqlite"), _mlflow("file"), _dvclive(), _trackio(), _hf(), _csv()]
BY_ID = {c.id: c for c in CASES}


# ---------------------------------------------------------------- projects and helpers


def write_jsonl_run(root: Path, metric: str) -> None:
    """`logs/jsonl_base.jsonl`: JSONL_STEPS steps of `metric` (and lr), one json.dumps line per step."""
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"config": JSONL_CONFIG})]
    lines += [json.dumps({"step": s, metric: jsonl_value(s), "lr": JSONL_CONFIG["lr"]}) for s in range(JSONL_STEPS)]
    (logs / f"{JSONL_ID}.jsonl").write_text("\n".join(lines) + "\n")


def make_project(root: Path, *cases: Case) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for case in cases:
        case.copy(root)
    write_jsonl_run(root, cases[0].metric)
    _age(root)
    return root


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    c: Case = request.param
    return c


@pytest.fixture
def root(tmp_path: Path, case: Case) -> Path:
    return make_project(tmp_path / "proj", case)


def client_for(root: Path) -> Client:
    return Client(build_server(lambda: RunwiseConfig.load(root, env={"RUNWISE_NO_CACHE": "1"})))


def rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(table["columns"], r, strict=True)) for r in table["rows"]]


def row_of(table: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    found = [r for r in rows(table) if r[key] == value]
    assert len(found) == 1, (key, value, table)
    return found[0]


def close(got: Any, want: float, rel: float = 1e-3) -> bool:
    """Answers round to 4-5 significant digits."""
    return isinstance(got, (int, float)) and got == pytest.approx(want, rel=rel)


def value_at(points: Points, step: int) -> float:
    return next(v for s, v in points if s == step)


def mid_step(case: Case) -> int:
    step = case.points[len(case.points) // 2][0]
    assert step < JSONL_STEPS  # the JSONL run has the step too
    return step


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, (tool, args, result.content)
    sc: dict[str, Any] | None = result.structured_content
    assert sc is not None
    return sc


def error_text(result: Any) -> str:
    assert result.is_error, result.structured_content
    text: str = result.content[0].text
    assert len(text) <= ERROR_CHARS and "\n" not in text and "Traceback" not in text, text
    return text


# ---------------------------------------------------------------- one check per tool

Check = Callable[[dict[str, Any], Case, Path], None]


def check_list_runs(sc: dict[str, Any], c: Case, root: Path) -> None:
    listed = rows(sc["runs"])
    assert listed and {r["source"] for r in listed} == {c.source}  # not the JSONL run
    assert sc["total"] == len(listed)
    row = row_of(sc["runs"], "id", c.run_id)
    assert row["last_step"] == c.points[-1][0]


def check_summarize_run(sc: dict[str, Any], c: Case, root: Path) -> None:
    assert (sc["run"]["id"], sc["run"]["source"], sc["run"]["last_step"]) == (c.run_id, c.source, c.points[-1][0])
    row = row_of(sc["metrics"], "metric", c.metric)
    values = [v for _, v in c.points]
    assert row["points"] == len(c.points)
    assert close(row["final"], values[-1]) and close(row["min"], min(values)) and close(row["max"], max(values))
    assert row["min_step"] == c.points[values.index(min(values))][0]


def check_compare_runs(sc: dict[str, Any], c: Case, root: Path) -> None:
    assert sc["runs"][0].startswith(f"{c.source}:{c.run_id}") and sc["runs"][1] == f"jsonl:{JSONL_ID}"
    row = row_of(sc["metrics"], "metric", c.metric)
    assert close(row[c.run_id], c.points[-1][1]) and close(row[JSONL_ID], jsonl_value(JSONL_STEPS - 1))
    keys = {r["key"] for r in rows(sc["config_diff"])}
    # lr and optimizer differ or are missing on one side: shown, or counted as omitted past the table's rows
    assert "lr" in keys and ("optimizer" in keys or sc["config_omitted"] > 0), (keys, sc["config_omitted"])


def check_get_history(sc: dict[str, Any], c: Case, root: Path) -> None:
    h = sc["metrics"][c.metric]
    assert h["steps"] == [s for s, _ in c.points] and h["source_points"] == len(c.points)
    assert all(close(got, want) for got, (_, want) in zip(h["values"], c.points, strict=True)), h["values"]
    assert h["steps"][-1] == c.points[-1][0]


def check_get_stats(sc: dict[str, Any], c: Case, root: Path) -> None:
    row = row_of(sc["stats"], "metric", c.metric)
    assert row["points"] == len(c.points) and row["final_step"] == c.points[-1][0]
    assert close(row["final"], c.points[-1][1], rel=1e-4), (row["final"], c.points[-1][1])
    assert row["nan"] == 0


def check_get_stability(sc: dict[str, Any], c: Case, root: Path) -> None:
    row = row_of(sc["stability"], "metric", c.metric)
    assert row["trend"] == c.trend and (row["slope_per_1k_steps"] < 0 or c.trend != "decreasing")


def check_find_best_run(sc: dict[str, Any], c: Case, root: Path) -> None:
    ranked = rows(sc["ranking"])
    assert {r["source"] for r in ranked} == {c.source}
    assert len(ranked) == c.runs_with_metric <= sc["considered"]  # considered: the source's runs, with it or not
    row = row_of(sc["ranking"], "id", c.run_id)
    best = min(c.points, key=lambda p: p[1])
    assert close(row["best"], best[1], rel=1e-4) and row["step"] == best[0]
    assert close(row["final"], c.points[-1][1], rel=1e-4)


def check_get_config(sc: dict[str, Any], c: Case, root: Path) -> None:
    # compared as text: MLflow keeps params as strings, runwise reads numbers and booleans from them
    assert {k: str(v) for k, v in sc["config"].items()} == {k: str(v) for k, v in c.config.items()}
    assert sc["total_keys"] == len(c.config)


def check_get_run_context(sc: dict[str, Any], c: Case, root: Path) -> None:
    assert (sc["run"]["id"], sc["run"]["source"]) == (c.run_id, c.source)
    assert sc["path"] and not Path(sc["path"]).is_absolute() and (root / sc["path"]).exists()


def check_list_keys(sc: dict[str, Any], c: Case, root: Path) -> None:
    assert row_of(sc["metrics"], "key", c.metric) == {
        "key": c.metric, "points": len(c.points), "first_step": c.points[0][0], "last_step": c.points[-1][0]}


def check_live_status(sc: dict[str, Any], c: Case, root: Path) -> None:
    assert sc["run"]["id"] == c.run_id and sc["run"]["last_step"] == c.points[-1][0]
    # older than LIVE_SECONDS: the age of the copy's files, or of the rows a source stamps itself (trackio)
    assert sc["run"]["state"] != "running" and sc["last_write_age_s"] >= 120
    row = row_of(sc["latest"], "metric", c.metric)
    assert row["step"] == c.points[-1][0] and close(row["value"], c.points[-1][1], rel=1e-4)


def check_detect_anomalies(sc: dict[str, Any], c: Case, root: Path) -> None:
    assert sc["summary"].startswith(f"{c.source}:{c.run_id}")
    found = [(a["kind"], a["metric"], a["step"]) for a in rows(sc["anomalies"])]
    # a clean loss; the one finding where the run also holds the planted NaN (the CSV row)
    assert found == ([("nan", c.nan[1], c.nan[2])] if c.nan[0] == c.ref else []), found
    assert {"nan_inf", "spikes"} <= set(sc["checks_run"])


def check_report(sc: dict[str, Any], c: Case, root: Path) -> None:
    md = sc["markdown"]
    assert sc["runs"][0].startswith(f"{c.source}:{c.run_id}") and sc["runs"][1] == f"jsonl:{JSONL_ID}"
    assert len(sc["verdicts"]) == 2
    assert f"## {sc['runs'][0]}" in md and f"## jsonl:{JSONL_ID}" in md and f"| {c.metric} |" in md


def args_for(tool: str, c: Case) -> dict[str, Any]:
    args: dict[str, dict[str, Any]] = {
        "list_runs": {"source": c.source},
        "summarize_run": {"run": c.ref},
        "compare_runs": {"runs": [c.ref, JSONL_ID]},
        "get_history": {"run": c.ref, "keys": [c.metric]},
        "get_stats": {"run": c.ref, "keys": [c.metric]},
        "get_stability": {"run": c.ref, "keys": [c.metric]},
        "find_best_run": {"metric": c.metric, "source": c.source},
        "get_config": {"run": c.ref},
        "get_run_context": {"run": c.ref},
        "list_keys": {"run": c.ref},
        "live_status": {"run": c.ref},
        "detect_anomalies": {"run": c.ref},
        "report": {"runs": [c.ref, JSONL_ID]},
    }
    return args[tool]


CHECKS: dict[str, Check] = {
    "list_runs": check_list_runs,
    "summarize_run": check_summarize_run,
    "compare_runs": check_compare_runs,
    "get_history": check_get_history,
    "get_stats": check_get_stats,
    "get_stability": check_get_stability,
    "find_best_run": check_find_best_run,
    "get_config": check_get_config,
    "get_run_context": check_get_run_context,
    "list_keys": check_list_keys,
    "live_status": check_live_status,
    "detect_anomalies": check_detect_anomalies,
    "report": check_report,
}


def test_every_tool_has_a_check() -> None:
    assert sorted(CHECKS) == sorted(t.name for t in TOOLS)


# ---------------------------------------------------------------- in memory


@pytest.mark.anyio
@pytest.mark.parametrize("tool", list(CHECKS))
async def test_each_tool_on_each_source(root: Path, case: Case, tool: str) -> None:
    async with client_for(root) as client:
        sc = await call(client, tool, args_for(tool, case))
    CHECKS[tool](sc, case, root)


@pytest.mark.anyio
async def test_compare_at_a_step_across_sources(root: Path, case: Case) -> None:
    step = mid_step(case)
    async with client_for(root) as client:
        sc = await call(client, "compare_runs", {"runs": [f"{case.ref}@{step}", f"{JSONL_ID}@{step}"]})
    assert sc["at_steps"] == [step, step]
    assert sc["runs"][0].startswith(f"{case.source}:{case.run_id}") and sc["runs"][1] == f"jsonl:{JSONL_ID}"
    row = row_of(sc["metrics"], "metric", case.metric)
    assert close(row[case.run_id], value_at(case.points, step)) and close(row[JSONL_ID], jsonl_value(step))
    assert row[f"step@{case.run_id}"] == row[f"step@{JSONL_ID}"] == step
    assert close(row["delta_pct"], 100 * (jsonl_value(step) / value_at(case.points, step) - 1), rel=1e-2)


@pytest.mark.anyio
async def test_a_planted_nan_is_found_at_its_step(root: Path, case: Case) -> None:
    ref, metric, step = case.nan
    async with client_for(root) as client:
        sc = await call(client, "detect_anomalies", {"run": ref})
    nans = [(r["metric"], r["step"]) for r in rows(sc["anomalies"]) if r["kind"] == "nan"]
    assert nans == [(metric, step)]


@pytest.mark.anyio
async def test_unknown_references_are_one_line_errors(root: Path, case: Case) -> None:
    async with client_for(root) as client:
        missing = await client.call_tool("summarize_run", {"run": case.missing})
        metric = await client.call_tool("get_history", {"run": case.ref, "keys": ["no_such_metric"]})
        compared = await client.call_tool("compare_runs", {"runs": [case.ref, case.missing]})
    assert f"no run matches '{case.missing}'" in error_text(missing)
    assert "unknown metric 'no_such_metric'" in error_text(metric) and case.metric in error_text(metric)
    assert f"no run matches '{case.missing}'" in error_text(compared)


# ---------------------------------------------------------------- over stdio, as Claude Code starts it


@pytest.mark.anyio
async def test_stdio_compares_an_mlflow_run_with_a_dvclive_run(tmp_path: Path) -> None:
    a, b = BY_ID["mlflow-sqlite"], BY_ID["dvclive"]
    project = make_project(tmp_path / "proj", a, b)
    env = {"RUNWISE_NO_CACHE": "1", "PATH": os.environ.get("PATH", "")}
    if "PYTHONPATH" in os.environ:  # a checkout on PYTHONPATH wins over the installed package, as here
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    params = StdioServerParameters(command=runwise_mcp(), args=["--root", str(project)], cwd=str(tmp_path), env=env)
    async with Client(params) as client:
        summaries = [await call(client, "summarize_run", {"run": c.ref}) for c in (a, b)]
        sc = await call(client, "compare_runs", {"runs": [a.ref, b.ref]})
    for summary, c in zip(summaries, (a, b), strict=True):
        assert (summary["run"]["id"], summary["run"]["source"]) == (c.run_id, c.source)
        assert close(row_of(summary["metrics"], "metric", c.metric)["final"], c.points[-1][1])
    assert sc["runs"][0].startswith(f"mlflow:{a.run_id}") and sc["runs"][1].startswith(f"dvclive:{b.run_id}")
    for c in (a, b):
        assert close(row_of(sc["metrics"], "metric", c.metric)[c.run_id], c.points[-1][1])
    diff = {r["key"]: r for r in rows(sc["config_diff"])}
    assert close(diff["lr"][a.run_id], float(a.config["lr"])) and close(diff["lr"][b.run_id], b.config["lr"])
