"""MCP completions through the official `mcp` client: run references, `source:`, `@step`, metric names, groups;
for prompt arguments and resource template arguments alike, in memory and over stdio."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp_types import Completion, PromptReference, ResourceTemplateReference

from runwise import runs
from runwise.config import RunwiseConfig
from runwise.server import completions
from runwise.server.app import build_server
from tests.conftest import training_rows, write_jsonl

DIAGNOSE = PromptReference(type="ref/prompt", name="diagnose_run")
COMPARE = PromptReference(type="ref/prompt", name="explain_difference")
BEST = PromptReference(type="ref/prompt", name="best_of_sweep")
REPORT = PromptReference(type="ref/prompt", name="write_report")
SUMMARY = ResourceTemplateReference(type="ref/resource", uri="runwise://run/{ref}/summary")
HISTORY = ResourceTemplateReference(type="ref/resource", uri="runwise://run/{ref}/history/{metric}")
METRICS = ["grad_norm", "lr", "train/loss", "val/loss"]


@pytest.fixture
def server(project: Path) -> MCPServer:
    return build_server(lambda: RunwiseConfig.load(project, env={}))


async def complete(
    server: MCPServer, ref: PromptReference | ResourceTemplateReference, name: str, value: str,
    context: dict[str, str] | None = None,
) -> Completion:
    async with Client(server) as client:
        return (await client.complete(ref, {"name": name, "value": value}, context)).completion


async def values(
    server: MCPServer, ref: Any, name: str, value: str, context: dict[str, str] | None = None
) -> list[str]:
    return (await complete(server, ref, name, value, context)).values


@pytest.mark.anyio
async def test_completions_capability_is_advertised(server: MCPServer) -> None:
    async with Client(server) as client:
        assert client.server_capabilities.completions is not None


@pytest.mark.anyio
async def test_partial_id_or_name_completes_newest_first(server: MCPServer) -> None:
    got = await complete(server, DIAGNOSE, "run", "run")
    assert got.values == ["run_b", "run_a"] and got.total == 2 and got.has_more is False
    assert await values(server, COMPARE, "run_a", "RUN_A") == ["run_a"]  # case does not matter
    assert await values(server, COMPARE, "run_b", "_b") == ["run_b"]  # a name that holds the text
    assert await values(server, DIAGNOSE, "run", "") == ["latest", "run_b", "run_a", "jsonl:"]


@pytest.mark.anyio
async def test_source_prefix_and_source_keys(server: MCPServer) -> None:
    assert await values(server, DIAGNOSE, "run", "js") == ["jsonl:"]
    assert await values(server, DIAGNOSE, "run", "jsonl:") == ["jsonl:run_b", "jsonl:run_a"]
    assert await values(server, DIAGNOSE, "run", "jsonl:run_a") == ["jsonl:run_a"]
    assert await values(server, DIAGNOSE, "run", "wandb:") == []  # no W&B run in this project


@pytest.mark.anyio
async def test_cloud_prefixes_are_offered_once_a_wandb_project_is_set(project: Path) -> None:
    server = build_server(lambda: RunwiseConfig.load(project, env={}))
    assert await values(server, DIAGNOSE, "run", "cl") == []
    (project / "runwise.json").write_text(json.dumps({"logs_dir": "logs", "wandb_project": "demo"}))
    assert await values(server, DIAGNOSE, "run", "cl") == ["cloud:", "wandb-cloud:"]  # prefix match first
    assert await values(server, DIAGNOSE, "run", "wandb") == ["wandb-cloud:"]
    assert await values(server, DIAGNOSE, "run", "cloud:") == ["cloud:", "wandb-cloud:"]  # no ids: on W&B's servers


@pytest.mark.anyio
async def test_at_step_offers_steps_of_that_runs_range(server: MCPServer) -> None:
    got = await values(server, COMPARE, "run_b", "run_b@")  # run_b logs steps 0..299
    assert got[0] == "run_b@299"  # its last step first
    assert got == ["run_b@299", "run_b@70", "run_b@150", "run_b@220", "run_b@0"]
    assert await values(server, COMPARE, "run_b", "run_b@2") == ["run_b@299", "run_b@220"]
    assert (await values(server, COMPARE, "run_a", "jsonl:run_a@"))[0] == "jsonl:run_a@199"
    assert (await values(server, COMPARE, "run_a", "latest@"))[0] == "latest@299"
    assert await values(server, COMPARE, "run_a", "nope@") == []


@pytest.mark.anyio
async def test_metric_names_of_the_latest_run(server: MCPServer) -> None:
    assert await values(server, BEST, "metric", "train/") == ["train/loss"]
    assert await values(server, BEST, "metric", "") == METRICS
    assert await values(server, BEST, "metric", "loss") == ["train/loss", "val/loss"]  # the ones that hold it


@pytest.mark.anyio
async def test_metric_names_of_the_run_the_context_names(project: Path) -> None:
    write_jsonl(project / "logs" / "run_c.jsonl",
                [{"step": s, "eval/acc": s / 10, "eval/f1": s / 20} for s in range(10)], age_s=9000)
    server = build_server(lambda: RunwiseConfig.load(project, env={}))
    assert await values(server, HISTORY, "metric", "eval/", {"ref": "run_c"}) == ["eval/acc", "eval/f1"]
    assert await values(server, HISTORY, "metric", "eval/", {"ref": "run_c@5"}) == ["eval/acc", "eval/f1"]
    assert await values(server, HISTORY, "metric", "eval/") == []  # the latest run (run_b) has none
    assert await values(server, HISTORY, "metric", "", {"ref": "run_b"}) == METRICS
    assert await values(server, BEST, "metric", "e", {"group": "run_c"}) == ["eval/acc", "eval/f1"]
    assert await values(server, HISTORY, "metric", "", {"ref": "no_such_run"}) == []


@pytest.mark.anyio
async def test_unknown_partial_gives_no_values_and_no_error(server: MCPServer) -> None:
    got = await complete(server, DIAGNOSE, "run", "zzz_unknown")
    assert got.values == [] and got.total == 0 and got.has_more is False
    assert await values(server, BEST, "metric", "zzz/") == []
    other = await complete(server, DIAGNOSE, "other_argument", "run")
    assert other.values == [] and other.total == 0 and other.has_more is False


@pytest.mark.anyio
async def test_a_project_without_runs_completes_nothing(tmp_path: Path) -> None:
    server = build_server(lambda: RunwiseConfig.load(tmp_path, env={}))
    assert await values(server, DIAGNOSE, "run", "") == []  # not even 'latest': it would name nothing
    assert await values(server, BEST, "metric", "") == []
    assert await values(server, COMPARE, "run_a", "latest@") == []


@pytest.mark.anyio
async def test_runs_completes_its_last_reference(server: MCPServer) -> None:
    assert await values(server, REPORT, "runs", "run_a, r") == ["run_a, run_b"]  # run_a is given already
    assert await values(server, REPORT, "runs", "run_a run_b@29") == ["run_a run_b@299"]


@pytest.mark.anyio
async def test_group_completes_name_prefixes(server: MCPServer) -> None:
    assert await values(server, BEST, "group", "") == ["run_"]


@pytest.mark.anyio
async def test_resource_template_ref_completes_like_a_run_argument(server: MCPServer) -> None:
    assert await values(server, SUMMARY, "ref", "run_") == ["run_b", "run_a"]
    assert await values(server, SUMMARY, "ref", "jsonl%3Arun_a") == ["jsonl:run_a"]  # sent percent-encoded
    assert (await values(server, HISTORY, "ref", "run_a@"))[0] == "run_a@199"
    assert await values(server, HISTORY, "metric", "val", {"ref": "jsonl%3Arun_a"}) == ["val/loss"]


@pytest.mark.anyio
async def test_values_are_bounded_with_total_and_has_more(tmp_path: Path) -> None:
    for i in range(130):
        write_jsonl(tmp_path / "logs" / f"sweep_{i:03d}.jsonl", [{"step": 0, "loss": 1.0}], age_s=5000 + i)
    server = build_server(lambda: RunwiseConfig.load(tmp_path, env={}))
    got = await complete(server, DIAGNOSE, "run", "sweep_")
    assert len(got.values) == completions.MAX_VALUES and got.total == 130 and got.has_more is True
    assert got.values[:2] == ["sweep_000", "sweep_001"]  # newest first


@pytest.mark.anyio
async def test_references_complete_without_reading_a_run(server: MCPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("a run was read for a completion")

    monkeypatch.setattr(runs, "load", no_read)
    assert await values(server, DIAGNOSE, "run", "run") == ["run_b", "run_a"]
    assert await values(server, DIAGNOSE, "run", "jsonl:") == ["jsonl:run_b", "jsonl:run_a"]


@pytest.mark.anyio
async def test_a_large_log_is_read_at_its_ends_for_steps(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("a large run was read whole for a completion")

    big = write_jsonl(project / "logs" / "big.jsonl", training_rows(steps=3000), age_s=600)  # the newest run
    assert big.stat().st_size > 3 * 64 * 1024  # more than the head that an ends read takes
    monkeypatch.setattr(runs, "LIST_LOAD_BYTES", 100_000)  # big.jsonl counts as large
    monkeypatch.setattr(runs, "load", no_read)
    server = build_server(lambda: RunwiseConfig.load(project, env={}))
    assert await values(server, COMPARE, "run_b", "big@") == ["big@2999", "big@700", "big@1500", "big@2200", "big@0"]
    assert await values(server, BEST, "metric", "train") == ["train/loss"]  # of the latest run: big


@pytest.mark.anyio
async def test_completions_over_stdio(project: Path, tmp_path: Path) -> None:
    write_jsonl(project / "logs" / "run_c.jsonl", training_rows(steps=20), age_s=9000)
    params = StdioServerParameters(command=sys.executable, args=["-m", "runwise.server", "--root", str(project)],
                                   env={"RUNWISE_NO_CACHE": "1"}, cwd=str(tmp_path))
    async with Client(params) as client:
        refs = (await client.complete(DIAGNOSE, {"name": "run", "value": "run_"})).completion
        steps = (await client.complete(SUMMARY, {"name": "ref", "value": "run_c@"})).completion
        metrics = (await client.complete(HISTORY, {"name": "metric", "value": "val"}, {"ref": "run_c"})).completion
    assert refs.values == ["run_b", "run_a", "run_c"]
    assert steps.values[0] == "run_c@19"
    assert metrics.values == ["val/loss"]
