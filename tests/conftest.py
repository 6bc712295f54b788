"""Shared fixtures: small JSONL projects written the way training scripts write them (json.dumps).

Fixtures
  project   a project root with logs/run_a.jsonl (older) and logs/run_b.jsonl (newer, with a
            planted train/loss spike at step 150) and a runwise.json
  cfg       the RunwiseConfig of `project`

Helpers (import them: `from tests.conftest import write_jsonl, training_rows, write_project, ask`)
  training_rows(...)   rows of a synthetic run: train/loss every step, val/loss every N steps, lr
  write_jsonl(p, rows) one json.dumps line per row
  write_project(root)  the two-run project above, under any root
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runwise import parsers, runs
from runwise.config import RunwiseConfig
from runwise.model import RunEntry

RUN_A_CONFIG = {"lr": 0.0003, "batch_size": 32, "optimizer": {"name": "adam", "beta1": 0.9}, "seed": 1}
RUN_B_CONFIG = {
    "lr": 0.001,
    "batch_size": 32,
    "optimizer": {"name": "adam", "beta1": 0.9},
    "seed": 1,
    "warmup": 20,
}
SPIKE_STEP = 150


def training_rows(
    *,
    steps: int = 200,
    loss0: float = 2.5,
    loss_end: float = 0.5,
    val_every: int = 10,
    lr: float = 3e-4,
    seed: int = 0,
    spike_at: int | None = None,
    config: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A synthetic run: one row per step (train/loss, lr, grad_norm), val/loss every `val_every` steps.

    The loss decays exponentially from `loss0` towards `loss_end` with 1% noise; `spike_at` multiplies
    train/loss by 8 at that step. A first row holds `config` and `_meta` (at step 0).
    """
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    if config is not None or meta is not None:
        head: dict[str, Any] = {"step": 0}
        if config is not None:
            head["config"] = config
        if meta is not None:
            head["_meta"] = meta
        rows.append(head)
    for s in range(steps):
        clean = loss_end + (loss0 - loss_end) * math.exp(-4.0 * s / steps)
        loss = clean * (1 + 0.01 * rng.gauss(0, 1))
        if s == spike_at:
            loss *= 8
        row: dict[str, Any] = {
            "step": s,
            "train/loss": round(loss, 6),
            "lr": lr,
            "grad_norm": round(1 + rng.random(), 4),
        }
        if s % val_every == 0:
            row["val/loss"] = round(clean * 1.1, 6)
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]], *, age_s: float | None = None) -> Path:
    """Write one json.dumps line per row; `age_s` sets the file's mtime that many seconds back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fp:
        for row in rows:
            fp.write(json.dumps(row) + "\n")
    if age_s is not None:
        t = time.time() - age_s
        os.utime(path, (t, t))
    return path


def age_files(root: Path, seconds: float = 3600.0) -> None:
    """Make every file under `root` look written `seconds` ago (a checkout leaves them new: 'running')."""
    then = time.time() - seconds
    for dirpath, _, files in os.walk(root):
        for f in files:
            os.utime(Path(dirpath) / f, (then, then))


def copied_project(tmp_path: Path, fixture: Path) -> RunwiseConfig:
    """A project at tmp_path/proj: a copy of a source's committed `fixture` folder (runwise never writes into
    fixtures), JSONL runs logs/run_a and logs/run_b beside it (write_project), every file an hour old; no cache."""
    root = tmp_path / "proj"
    shutil.copytree(fixture, root)
    write_project(root)
    age_files(root)
    runs.clear_cache()
    return RunwiseConfig(root, env={"RUNWISE_NO_CACHE": "1", "RUNWISE_CACHE_DIR": str(tmp_path / "cache")})


def load_run(source: Any, cfg: RunwiseConfig, run_id: str) -> Any:
    """Run `run_id` as the source module `source` discovers and loads it."""
    entry = next(e for e in source.discover(cfg, []) if e.id == run_id)
    return source.load(entry, cfg)


def ask(tool: str, cfg: RunwiseConfig, **fields: Any) -> dict[str, Any]:
    """Tool `tool`'s answer to `fields` through its handler (`ToolSpec.run`), as JSON-ready data."""
    from runwise.tools import TOOLS_BY_NAME

    spec = TOOLS_BY_NAME[tool]
    out: dict[str, Any] = spec.run(spec.input.model_validate(fields), cfg).model_dump(mode="json")
    return out


def runwise_mcp() -> str:
    """The installed `runwise-mcp` console script beside this interpreter; the test is skipped without it."""
    exe = Path(sys.executable).parent / "runwise-mcp"
    if not exe.exists():
        pytest.skip("runwise-mcp is not installed as a console script (pip install -e .)")
    return str(exe)


ONE_RUN_TOOLS = ("summarize_run", "get_history", "get_stats", "get_stability", "get_config", "get_run_context",
                 "list_keys", "live_status", "detect_anomalies")  # the tools that take one `run`


def ask_every_tool(cfg: RunwiseConfig, ref: str, shown: str, *, in_report: str | None = None) -> None:
    """Every one-run tool on run `ref`, then a report of it beside jsonl:run_b: each answer shows `shown`
    (the report shows `in_report`, by default `shown` too)."""
    for tool in ONE_RUN_TOOLS:
        assert shown in json.dumps(ask(tool, cfg, run=ref)), tool
    assert (in_report or shown) in json.dumps(ask("report", cfg, runs=[ref, "jsonl:run_b"]))


def write_project(root: Path) -> Path:
    """Write the two-run project of the `project` fixture under `root`; returns `root`."""
    root.mkdir(parents=True, exist_ok=True)
    a = training_rows(
        steps=200,
        loss0=2.5,
        loss_end=0.6,
        lr=3e-4,
        seed=1,
        config=RUN_A_CONFIG,
        meta={"name": "run_a", "notes": "baseline at the default lr", "tags": ["baseline"]},
    )
    b = training_rows(
        steps=300,
        loss0=2.5,
        loss_end=0.4,
        lr=1e-3,
        seed=2,
        spike_at=SPIKE_STEP,
        config=RUN_B_CONFIG,
        meta={"name": "run_b", "tags": ["lr-sweep"]},
    )
    write_jsonl(root / "logs" / "run_a.jsonl", a, age_s=7200)  # both old enough not to count as running
    write_jsonl(root / "logs" / "run_b.jsonl", b, age_s=3600)
    (root / "runwise.json").write_text(json.dumps({"project_name": "fixture project", "logs_dir": "logs"}))
    return root


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="session", autouse=True)
def _examples_in_write_order() -> None:
    """examples/logs/lr_warmup.jsonl is the latest run (README's examples say so), as make_examples.py left
    them; a checkout writes both files in one tick of the file system's clock often enough (same mtime, and
    then the listing order decides), so the tests put lr_warmup a second after baseline."""
    base, warm = EXAMPLES / "logs" / "baseline.jsonl", EXAMPLES / "logs" / "lr_warmup.jsonl"
    if base.is_file() and warm.is_file() and warm.stat().st_mtime <= base.stat().st_mtime:
        t = base.stat().st_mtime + 1.0
        os.utime(warm, (t, t))


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Tests never see the caller's runwise settings, and never write to the real cache dir."""
    for name in (
        "RUNWISE_PROJECT_ROOT",
        "CLAUDE_PROJECT_DIR",
        "RUNWISE_WANDB_DIR",
        "RUNWISE_LOGS_DIR",
        "RUNWISE_CSV_DIR",
        "RUNWISE_NO_CACHE",
        "RUNWISE_DEBUG",
        "WANDB_API_KEY",
        "MLFLOW_TRACKING_URI",
        "RUNWISE_MLFLOW_TRACKING_URI",
        "RUNWISE_TRACKIO_DIR",
        "TRACKIO_DIR",
        "RUNWISE_HF_DIR",
        "RUNWISE_TOKEN",
        "RUNWISE_TOKEN_FILE",
        "RUNWISE_MAX_CONCURRENCY",
        "RUNWISE_MAX_REQUEST_BYTES",
        "RUNWISE_CALL_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNWISE_CACHE_DIR", str(tmp_path_factory.mktemp("runwise-cache")))
    yield


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with two JSONL runs (run_a older, run_b newer with a loss spike) and runwise.json."""
    return write_project(tmp_path / "proj")


@pytest.fixture
def cfg(project: Path) -> RunwiseConfig:
    return RunwiseConfig.load(project)


@pytest.fixture
def anyio_backend() -> str:
    """The MCP tests (`@pytest.mark.anyio`) run on asyncio, as the MCP SDK's stdio server does."""
    return "asyncio"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run keys read whole from their files (every whole read goes through parsers.load)."""
    seen: list[str] = []
    real = parsers.load

    def counting(entry: RunEntry, cfg: RunwiseConfig, progress: Any = None) -> Any:
        seen.append(entry.key)
        return real(entry, cfg, progress)

    monkeypatch.setattr(parsers, "load", counting)
    return seen
