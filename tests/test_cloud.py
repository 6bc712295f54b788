"""W&B cloud runs (runwise.parsers.wandb_cloud, `runwise api`) against a loopback GraphQL server.

The real `wandb.Api` (and its wandb-core service) talks to tests/cloud/loopback.py on 127.0.0.1; that
server answers with runs synced from W&B fixtures the real client wrote offline (tests/data/wandb),
read by runwise's own local reader. Nothing here reaches the internet.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runwise import cli, runs
from runwise.config import RunwiseConfig
from runwise.errors import CloudError, RunNotFound, RunwiseError
from runwise.model import Run
from runwise.parsers import wandb as local
from runwise.parsers import wandb_cloud
from runwise.parsers.wandb_cloud import client
from runwise.tools import TOOLS_BY_NAME
from tests.cloud.loopback import CloudRun, Loopback

DATA = Path(__file__).parent / "data" / "wandb"
FIN = "offline-run-20261128_020038-fin00001"  # 60 steps, train/loss, train/acc, val/loss, opt.lr, epoch
PFX = "offline-run-20261128_020304-pfx00001"  # loss = 1, 2, 3
ENTITY, PROJECT = "me", "runwise-fixtures"
CLOUD = f"wandb-cloud:{ENTITY}/{PROJECT}/fin00001"
PAGE = 16  # steps per scan_history page in these tests: 60 steps are 4 pages


@pytest.fixture(scope="session")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loopback]:
    lb = Loopback(entity=ENTITY)
    server = lb.start()
    yield lb
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def wandb_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wandb-home")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project whose wandb/ holds the fixture runs (the local copies of the cloud runs)."""
    (tmp_path / "wandb").mkdir()
    for name in (FIN, PFX):
        shutil.copytree(DATA / name, tmp_path / "wandb" / name)
    return tmp_path


@pytest.fixture
def local_runs(root: Path) -> dict[str, Run]:
    cfg = RunwiseConfig.load(root, env={})
    return {name: local.load_file(root / "wandb" / name, cfg) for name in (FIN, PFX)}


@pytest.fixture
def cloud(
    loopback: Loopback, wandb_home: Path, local_runs: dict[str, Run], monkeypatch: pytest.MonkeyPatch
) -> Loopback:
    """The loopback server holding both fixture runs, and the environment pointing wandb.Api at it."""
    loopback.reset()
    for run in local_runs.values():
        loopback.add(CloudRun.of(run, ENTITY, PROJECT))
    monkeypatch.setenv("WANDB_BASE_URL", loopback.url)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_DIR"):
        monkeypatch.setenv(name, str(wandb_home / name.lower()))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("RUNWISE_WANDB_TIMEOUT", raising=False)
    monkeypatch.setattr(wandb_cloud, "PAGE_SIZE", PAGE)
    runs.clear_cache()
    wandb_cloud._finished.clear()
    wandb_cloud._detected.clear()
    return loopback


def cfg_of(root: Path, **env: str) -> RunwiseConfig:
    return RunwiseConfig.load(root, env={"RUNWISE_CACHE_DIR": str(root / "cache"), **env})


def api_cli(root: Path, *args: str) -> list[str]:
    return ["--root", str(root), "api", "-p", PROJECT, *args]


def network(lb: Loopback) -> int:
    return sum(lb.calls.values())


# ---------------------------------------------------------------- the run model


def test_cloud_run_equals_its_local_copy(cloud: Loopback, root: Path, local_runs: dict[str, Run]) -> None:
    want = local_runs[FIN]
    got, _ = runs.get_run(CLOUD, cfg_of(root))
    assert (got.source, got.id, got.state) == ("wandb-cloud", f"{ENTITY}/{PROJECT}/fin00001", "finished")
    assert (got.name, got.tags, got.notes, got.group, got.job_type) == (
        want.name, want.tags, want.notes, want.group, want.job_type)
    assert (got.config, got.summary, got.project) == (want.config, want.summary, want.project)
    assert got.start_time == pytest.approx(want.start_time)
    assert sorted(got.history) == sorted(want.history)
    for key, s in want.history.items():
        np.testing.assert_array_equal(got.history[key].steps, s.steps)
        np.testing.assert_array_equal(got.history[key].values, s.values)
    assert got.warnings == []


def test_history_is_fetched_in_pages(cloud: Loopback, root: Path) -> None:
    runs.get_run(CLOUD, cfg_of(root))
    pages = [json.loads(v["spec"]) for op, v in cloud.log if op == "SampledHistoryPage"]
    loss = [(p["minStep"], p["maxStep"]) for p in pages if "train/loss" in p["keys"]]
    assert loss == [(0, 15), (16, 31), (32, 47), (48, 59)]  # 60 steps, 16 a page
    assert len(pages) == 5 * 4  # five numeric keys


def test_a_page_cap_is_said(cloud: Loopback, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wandb_cloud, "MAX_PAGES", 2)
    run, _ = runs.get_run(CLOUD, cfg_of(root))
    assert run.last_step == 31
    assert run.warnings == ["history fetched up to step 31 of 59: at most 2 pages of 16 steps per key"]


def test_a_second_read_costs_no_network(cloud: Loopback, root: Path) -> None:
    cfg = cfg_of(root)
    first, _ = runs.get_run(CLOUD, cfg)
    runs.clear_cache()  # a new process: only the disk cache is left
    wandb_cloud._finished.clear()
    before = network(cloud)
    again, _ = runs.get_run(CLOUD, cfg)
    assert network(cloud) == before
    assert again.summary == first.summary and sorted(again.history) == sorted(first.history)
    np.testing.assert_array_equal(again.history["train/loss"].values, first.history["train/loss"].values)


def test_a_running_run_fetches_only_new_steps(cloud: Loopback, root: Path, local_runs: dict[str, Run]) -> None:
    run = local_runs[FIN]
    cloud.add(CloudRun.of(run, ENTITY, PROJECT, upto=29, state="running"))
    cfg = cfg_of(root)
    first, _ = runs.get_run(CLOUD, cfg)
    assert first.state == "running" and first.last_step == 29
    cloud.add(CloudRun.of(run, ENTITY, PROJECT, upto=44, state="running"))
    cloud.log.clear()
    second, _ = runs.get_run(CLOUD, cfg)  # the same process: read on from the run in memory
    starts = {json.loads(v["spec"])["minStep"] for op, v in cloud.log if op == "SampledHistoryPage"}
    assert second.last_step == 44 and min(starts) == 30
    cloud.add(CloudRun.of(run, ENTITY, PROJECT))  # it finished
    runs.clear_cache()  # a new process: read on from the disk cache's entry
    cloud.log.clear()
    third, _ = runs.get_run(CLOUD, cfg)
    starts = {json.loads(v["spec"])["minStep"] for op, v in cloud.log if op == "SampledHistoryPage"}
    assert third.state == "finished" and min(starts) == 45
    for key, s in run.history.items():
        np.testing.assert_array_equal(third.history[key].steps, s.steps)
        np.testing.assert_array_equal(third.history[key].values, s.values)


# ---------------------------------------------------------------- the tools: as for the local copy


def _same(value: Any) -> Any:
    """A tool answer with the run's reference, id and source spelled as the local copy's."""
    text = json.dumps(value, sort_keys=True)
    for cloud_form in (CLOUD, f"{ENTITY}/{PROJECT}/fin00001", "wandb-cloud"):
        text = text.replace(cloud_form, {"wandb-cloud": "wandb"}.get(cloud_form, "fin00001"))
    return json.loads(text.replace("wandb:fin00001", "fin00001"))


@pytest.mark.parametrize(("tool", "fields"), [
    ("summarize_run", {}),
    ("get_stats", {}),
    ("get_history", {"keys": ["train/loss", "val/loss"]}),
    ("detect_anomalies", {}),
    ("get_stability", {}),
    ("get_config", {}),
])
def test_tools_answer_as_for_the_local_copy(cloud: Loopback, root: Path, tool: str, fields: dict[str, Any]) -> None:
    cfg = cfg_of(root)
    spec = TOOLS_BY_NAME[tool]
    # a budget that cuts nothing: the cloud run's longer id would otherwise cut its answer elsewhere
    answers = [spec.run(spec.input.model_validate({"run": ref, "budget": 20_000, **fields}), cfg)
               .model_dump(mode="json") for ref in ("wandb:fin00001", CLOUD)]
    local_answer, cloud_answer = _same(answers[0]), _same(answers[1])
    if tool == "summarize_run":  # W&B's runtime is the summary's _runtime; the local reader's, its exit record's
        assert cloud_answer["run"].pop("runtime_s") == pytest.approx(local_answer["run"].pop("runtime_s"), abs=0.01)
    assert cloud_answer == local_answer


def test_compare_a_cloud_run_with_a_local_run(cloud: Loopback, root: Path) -> None:
    spec = TOOLS_BY_NAME["compare_runs"]
    out = spec.run(spec.input.model_validate({"runs": [CLOUD, "wandb:fin00001"]}), cfg_of(root))
    text = json.dumps(out.model_dump(mode="json"))
    assert "fin00001" in text and out.model_dump()["summary"]
    same = spec.run(spec.input.model_validate({"runs": ["wandb:fin00001", "wandb:fin00001@59"]}), cfg_of(root))
    assert same.model_dump()["summary"]


def test_list_and_rank_cloud_runs(cloud: Loopback, root: Path) -> None:
    cfg = cfg_of(root)
    cfg.wandb_project = PROJECT
    spec = TOOLS_BY_NAME["list_runs"]
    out = spec.run(spec.input.model_validate({"source": "wandb-cloud"}), cfg).model_dump()
    ids = [row[0] for row in out["runs"]["rows"]]
    assert sorted(ids) == [f"{ENTITY}/{PROJECT}/fin00001", f"{ENTITY}/{PROJECT}/pfx00001"]
    best = TOOLS_BY_NAME["find_best_run"]
    ranked = best.run(best.input.model_validate({"metric": "loss", "source": "wandb-cloud"}), cfg).model_dump()
    # pfx00001 logs `loss` (lowest 1); fin00001's train/loss plays the role (lowest 1/60)
    ids = [row[1] for row in ranked["ranking"]["rows"]]
    assert ids == [f"{ENTITY}/{PROJECT}/{r}" for r in ("fin00001", "pfx00001")]


# ---------------------------------------------------------------- `runwise api`


@pytest.mark.parametrize(("args", "expect"), [
    ((), "fin-run"),
    (("--state", "finished"), "fin00001"),
    (("-r", "fin00001"), "healthy"),
    (("-r", "fin00001", "-k", "train/loss"), "train/loss"),
    (("-r", "fin00001", "--history", "-k", "val/loss"), "val/loss"),
    (("--best", "val/loss"), "best by best val/loss (lowest)"),
    (("--best", "train/acc", "--max"), "(highest)"),
    (("-c", "fin00001,wandb:fin00001", "-f", "train/", "-t", "1"), "fin00001"),
    (("-c", "fin00001,pfx00001"), "pfx00001"),
    (("-r", f"{ENTITY}/{PROJECT}/fin00001".replace(f"{ENTITY}/", "cloud:me/")), "fin-run"),
])
def test_every_api_form(
    cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], expect: str
) -> None:
    code = cli.main(api_cli(root, *args))
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    assert expect in out


def test_api_state_filter_asks_w_and_b(cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(api_cli(root, "--state", "running")) == 0
    assert "0 runs" in capsys.readouterr().out
    assert {"state": "running"} in [json.loads(v["filters"]) for op, v in cloud.log if op == "Runs"]


def test_project_from_the_local_runs(cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--root", str(root), "run", "cloud:fin00001"]) == 0  # runwise-fixtures, entity: yours
    assert "fin-run" in capsys.readouterr().out
    assert ("Run", {"entity": ENTITY, "name": "fin00001", "project": PROJECT}) in cloud.log


def test_project_from_runwise_json(cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (root / "runwise.json").write_text(json.dumps({"wandb_project": PROJECT, "wandb_entity": ENTITY}))
    shutil.rmtree(root / "wandb")
    assert cli.main(["--root", str(root), "stats", "cloud:pfx00001"]) == 0
    assert "loss" in capsys.readouterr().out


# ---------------------------------------------------------------- one line, never a hang


def one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("runwise: error: ") and "Traceback" not in err, err
    return err


def test_server_error_is_one_line(cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud.status["Run"] = 500
    started = time.monotonic()
    err = one_error_line(capsys, cli.main(api_cli(root, "-r", "fin00001")))
    assert "W&B request failed" in err and time.monotonic() - started < 30


def test_slow_answer_times_out(
    cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNWISE_WANDB_TIMEOUT", "2")
    client.api(2)  # made before the server slows down: only the run's request is slow
    cloud.delay["Run"] = 15
    started = time.monotonic()
    err = one_error_line(capsys, cli.main(api_cli(root, "-r", "fin00001")))
    assert "W&B did not answer within 2 s" in err and time.monotonic() - started < 8  # not the 15 s answer


def test_no_wandb_installed(
    cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    err = one_error_line(capsys, cli.main(api_cli(root, "-r", "fin00001")))
    assert "pip install 'runwise[wandb]'" in err


def test_no_api_key(
    cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    err = one_error_line(capsys, cli.main(api_cli(root, "-r", "fin00001")))
    assert "no W&B API key" in err


def test_wrong_project(cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = one_error_line(capsys, cli.main(["--root", str(root), "api", "-p", "nope", "-r", "fin00001"]))
    assert "me/nope/fin00001" in err
    err = one_error_line(capsys, cli.main(["--root", str(root), "api", "-p", "nope"]))
    assert "no such project" in err


@pytest.mark.parametrize("how", ["hidden", "403"])
def test_private_run(cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str], how: str) -> None:
    if how == "hidden":
        cloud.private.add("fin00001")  # W&B answers a run the key may not see as no run
    else:
        cloud.status["Run"] = 403
    err = one_error_line(capsys, cli.main(api_cli(root, "-r", "fin00001")))
    assert ("no run matches" in err) if how == "hidden" else ("refused access" in err), err


def test_errors_are_runwise_errors(cloud: Loopback, root: Path) -> None:
    with pytest.raises(RunNotFound):
        runs.get_run(f"wandb-cloud:{ENTITY}/{PROJECT}/nothere", cfg_of(root))
    with pytest.raises(CloudError, match="names no W&B project"):
        runs.get_run("cloud:fin00001", cfg_of(root / "wandb" / FIN / "files"))
    assert issubclass(CloudError, RunwiseError)


def test_the_server_and_cli_start_without_wandb() -> None:
    import subprocess

    code = ("import sys, runwise.cli, runwise.server, runwise.parsers.wandb_cloud; "
            "sys.exit('wandb' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------- a run written now, offline, synced


FRESH_SCRIPT = r"""
import math, wandb
run = wandb.init(id="fresh001", name="fresh-run", project="runwise-fixtures", config={"lr": 0.1, "opt": {"b": 2}},
                 tags=["fresh"], notes="written offline by the test",
                 settings=wandb.Settings(host="test-host", x_disable_meta=True, x_disable_stats=True))
for s in range(400):
    row = {"train/loss": 2.0 / (s + 1) + (5.0 if s == 250 else 0.0), "lr": 0.1 * (1 - s / 400)}
    if s % 25 == 24:
        row["val/loss"] = 3.0 / (s + 1)
    run.log(row, step=s)
run.summary["best"] = 0.5
run.finish()
"""


@pytest.fixture(scope="module")
def fresh_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run written now by the real wandb client, offline (400 steps, a loss spike at 250, val every 25)."""
    import os
    import subprocess

    work = tmp_path_factory.mktemp("fresh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(work), WANDB_SILENT="true", WANDB_DATA_DIR=str(work / "d"),
               WANDB_CACHE_DIR=str(work / "c"), WANDB_CONFIG_DIR=str(work / "cfg"), WANDB_DISABLE_GIT="true",
               WANDB_DISABLE_CODE="true", WANDB_CONSOLE="off")
    subprocess.run([sys.executable, "-c", FRESH_SCRIPT], cwd=work, env=env, check=True, timeout=600,
                   capture_output=True)
    return next((work / "wandb").glob("offline-run-*"))


def test_a_run_written_offline_reads_the_same_from_the_cloud(
    cloud: Loopback, root: Path, fresh_run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(fresh_run_dir, root / "wandb" / fresh_run_dir.name)
    cfg = cfg_of(root)
    want = local.load_file(root / "wandb" / fresh_run_dir.name, cfg)
    cloud.add(CloudRun.of(want, ENTITY, PROJECT))
    monkeypatch.setattr(wandb_cloud, "PAGE_SIZE", 100)
    ref = f"wandb-cloud:{ENTITY}/{PROJECT}/fresh001"
    got, _ = runs.get_run(ref, cfg)
    assert (got.config, got.summary, got.tags, got.notes) == (want.config, want.summary, want.tags, want.notes)
    pages = [json.loads(v["spec"]) for op, v in cloud.log if op == "SampledHistoryPage"]
    assert len([p for p in pages if "train/loss" in p["keys"]]) == 4  # 400 steps, 100 a page
    for tool in ("get_stats", "detect_anomalies"):
        spec = TOOLS_BY_NAME[tool]
        outs = [spec.run(spec.input.model_validate({"run": r, "budget": 20_000}), cfg).model_dump(mode="json")
                for r in ("wandb:fresh001", ref)]
        text = [json.dumps(o, sort_keys=True).replace(f"{ENTITY}/{PROJECT}/", "").replace("wandb-cloud", "wandb")
                for o in outs]
        assert text[1] == text[0]
    assert "250" in json.dumps(outs[1])  # the spike is found at full resolution


def test_the_recorded_requests_are_the_ones_answered() -> None:
    record = json.loads((Path(__file__).parent / "cloud" / "requests.json").read_text())
    lb = Loopback(entity=ENTITY)
    assert {r["operation"] for r in record["requests"]} == set(record["queries"])
    for op in record["queries"]:
        assert op in ("Viewer", "GetDefaultEntity") or "project" in lb.answer(op, {
            "entity": ENTITY, "project": PROJECT, "name": "x", "runName": "x", "run": "x",
            "spec": json.dumps({"keys": ["_step"], "minStep": 0, "maxStep": 1, "samples": 1})})


# ---------------------------------------------------------------- through the MCP server


@pytest.mark.anyio
async def test_mcp_tools_on_a_cloud_run(cloud: Loopback, root: Path) -> None:
    from mcp import Client

    from runwise.server.app import build_server

    server = build_server(lambda: cfg_of(root))
    async with Client(server) as mcp:
        ok = await mcp.call_tool("get_stats", {"run": CLOUD, "keys": ["val/loss"]})
        steps = await mcp.call_tool("compare_runs", {"runs": [f"{CLOUD}@29", "wandb:fin00001@29"]})
        cloud.status["Run"] = 500
        bad = await mcp.call_tool("summarize_run", {"run": f"wandb-cloud:{ENTITY}/{PROJECT}/pfx00001"})
    assert not ok.is_error and "val/loss" in json.dumps(ok.structured_content)
    assert not steps.is_error, steps.content
    assert bad.is_error and "W&B request failed" in bad.content[0].text and "\n" not in bad.content[0].text


def test_progress_reaches_the_end(cloud: Loopback, root: Path) -> None:
    seen: list[tuple[float, float]] = []
    runs.get_run(CLOUD, cfg_of(root), progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] > 0
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))


def test_no_network(
    cloud: Loopback, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("RUNWISE_WANDB_TIMEOUT", "10")
    started = time.monotonic()
    err = one_error_line(capsys, cli.main(api_cli(root, "-r", "fin00001")))
    assert "cannot reach W&B" in err and time.monotonic() - started < 15, err


@pytest.mark.parametrize(("text", "said"), [
    ("POST http://127.0.0.1:40155/graphql giving up after 2 attempt(s): HTTP 500: Internal Server Error",
     "W&B request failed"),  # a port holding "401" is not a refusal
    ("HTTP 401: Unauthorized", "W&B refused access"),
    ("403 Client Error: Forbidden for url", "W&B refused access"),
])
def test_errors_are_named_by_their_status_not_by_digits_in_a_url(text: str, said: str) -> None:
    from runwise.parsers.wandb_cloud.client import translate

    assert str(translate(RuntimeError(text), "run me/p/x", 30.0)).startswith(said)
