"""The example project: reproducible from its script, and the CLI finds what was planted in it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runwise import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_examples_are_what_the_script_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for name in ("baseline.jsonl", "lr_warmup.jsonl"):
        assert (tmp_path / "logs" / name).read_bytes() == (EXAMPLES / "logs" / name).read_bytes()
    assert sum(p.stat().st_size for p in EXAMPLES.rglob("*") if p.is_file()) < 200_000


def test_cli_finds_the_planted_spike(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--root", str(EXAMPLES), "anomalies", "baseline"]) == 0
    out = capsys.readouterr().out
    assert "train/loss spike" in out and "at step 2,350" in out
    assert cli.main(["--root", str(EXAMPLES), "anomalies", "lr_warmup", "-k", "train/loss"]) == 0
    assert "train/loss spike" not in capsys.readouterr().out


def test_python_dash_m_runwise() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runwise", "--root", str(EXAMPLES), "best", "val/acc"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "lr_warmup" in done.stdout.splitlines()[0]


def test_best_by_a_role_name_reads_the_runs_key(capsys: pytest.CaptureFixture[str]) -> None:
    # the original runwise named metrics by role ('val_loss'); the examples log 'val/loss'
    assert cli.main(["--root", str(EXAMPLES), "--json", "best", "val_loss"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [row[1] for row in out["ranking"]["rows"]] == ["lr_warmup", "baseline"]
    assert out["ranking"]["rows"][0][4] == 0.4116 and out["ranking"]["rows"][0][5] == 3000
    assert "'val_loss' read as the run's val/loss" in out["notes"][0]
    assert cli.main(["--root", str(EXAMPLES), "best", "val_los"]) == 1  # not a role: no guessing
    assert "unknown metric 'val_los'" in capsys.readouterr().err
