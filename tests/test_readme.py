"""README.md's example outputs are what the code prints for examples/ today."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from runwise import cli
from runwise.config import RunwiseConfig
from runwise.server.app import build_server

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
# each "$ runwise --root examples ..." block: the command, then its output up to the fence
SHOWN = re.findall(r"```\n\$ (runwise --root examples [^\n]+)\n(.*?)```", README, re.S)


def test_readme_shows_cli_examples() -> None:
    assert len(SHOWN) >= 3


@pytest.mark.parametrize(("command", "shown"), SHOWN, ids=[c for c, _ in SHOWN])
def test_cli_example_output(command: str, shown: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = shlex.split(command)[1:]
    argv[1] = str(REPO / "examples")  # --root examples, wherever pytest runs
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip() == shown.strip()


@pytest.mark.anyio
async def test_summarize_run_example() -> None:
    pattern = r"from `summarize_run` \(`(\{.*?\})`\), ([\d,]+) characters as\n.*?```json\n(.*?)```"
    found = re.search(pattern, README, re.S)
    assert found is not None, "README.md lost the summarize_run example"
    args: dict[str, Any] = json.loads(found.group(1))
    server = build_server(lambda: RunwiseConfig.load(REPO / "examples", env={}))
    async with Client(server) as client:
        result = await client.call_tool("summarize_run", args)
    assert not result.is_error
    assert result.structured_content == json.loads(found.group(3))
    compact = json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    assert len(compact) == int(found.group(2).replace(",", ""))



def test_python_api_example_runs_in_examples(tmp_path: Path) -> None:
    """The README's Python block runs unchanged in examples/ and prints what its comments promise."""
    block = re.search(r"```python\n(from runwise import RunAnalyzer\n.*?)```", README, re.S)
    assert block is not None, "README.md lost the Python API example"
    env = {k: v for k, v in os.environ.items() if k not in ("RUNWISE_PROJECT_ROOT", "CLAUDE_PROJECT_DIR")}
    env["RUNWISE_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-c", block.group(1)], cwd=REPO / "examples", env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "jsonl:lr_warmup: finished, 4,000 steps" in out  # summarize_run of the latest run
    assert "best by best val_loss (lowest): jsonl:lr_warmup = 0.4116 at step 3,000" in out
    assert "metric,step,value" in out  # the history as CSV
