"""Write the DVCLive fixtures under tests/data/dvclive/project with the real writer, `dvclive.Live`.

Requirements (test-time only; runwise never imports dvclive):
    python -m venv /tmp/venv-dvclive && /tmp/venv-dvclive/bin/pip install dvclive
    /tmp/venv-dvclive/bin/python tests/data/dvclive/make_fixtures.py

Runs written (each a DVCLive directory, referenced by its path relative to `project/`):
    dvclive               a finished run: log_params (nested), log_metric per step with nested names
                          ("train/loss", "val/acc") and a NaN at one step, next_step, end
    experiments/killed    a run killed mid-training: a subprocess that exits hard (os._exit) before
                          end(); then the last 3 bytes of plots/metrics/train/loss.tsv are cut off
                          by this script, so its last line is half-written (no newline)
    experiments/resumed   a run logged to step 4 and ended, then continued with Live(resume=True)
                          to step 9 and ended again

expected.json holds what the files say, read with the standard library only (csv with a tab
delimiter, json): per run, every TSV's steps, values ("nan" for NaN) and timestamps, the complete
rows only (the half-written last row of the killed run is left out and counted), metrics.json,
and the params each script passed to log_params. The tests compare runwise's reading with it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "project"

PARAMS = {"lr": 0.001, "epochs": 6, "model": {"name": "tiny-mlp", "layers": [16, 8]}, "seed": 7, "use_amp": False}


def loss(step: int) -> float:
    return round(2.0 * 0.8**step + 0.1, 6)


def finished(d: Path) -> None:
    from dvclive import Live

    with Live(str(d), save_dvc_exp=False) as live:
        live.log_params(PARAMS)
        live.log_param("notes", "baseline run")
        for step in range(6):
            live.log_metric("train/loss", loss(step), timestamp=True)
            live.log_metric("lr", 0.001 * (1 - step / 6), timestamp=True)
            if step % 2 == 1:
                live.log_metric("val/acc", math.nan if step == 3 else 0.5 + step / 20, timestamp=True)
            live.next_step()


KILLED = """
import os, sys
from dvclive import Live
live = Live(sys.argv[1], save_dvc_exp=False)
live.log_params({"lr": 0.01, "batch_size": 4})
for step in range(5):
    live.log_metric("train/loss", round(1.5 - step * 0.1, 6), timestamp=True)
    live.log_metric("grad_norm", round(3.0 + step, 6), timestamp=True)
    live.next_step()
os._exit(137)  # killed: no end()
"""


def killed(d: Path) -> None:
    subprocess.run([sys.executable, "-c", KILLED, str(d)], check=False)
    tsv = d / "plots" / "metrics" / "train" / "loss.tsv"
    data = tsv.read_bytes()
    tsv.write_bytes(data[:-3])  # the last line half-written, as a kill mid-write leaves it


def resumed(d: Path) -> None:
    from dvclive import Live

    with Live(str(d), save_dvc_exp=False) as live:
        live.log_params({"lr": 0.002, "phase": 1})
        for step in range(5):
            live.log_metric("loss", loss(step), timestamp=True)
            live.next_step()
    with Live(str(d), save_dvc_exp=False, resume=True) as live:
        live.log_params({"lr": 0.002, "phase": 2})
        for _ in range(5):
            live.log_metric("loss", loss(live.step), timestamp=True)
            live.next_step()


def read_back(d: Path) -> dict[str, object]:
    metrics: dict[str, object] = {}
    top = d / "plots" / "metrics"
    for tsv in sorted(top.rglob("*.tsv")):
        raw = tsv.read_text(encoding="utf-8")
        half = not raw.endswith("\n")
        rows = list(csv.DictReader(raw.splitlines(), delimiter="\t"))
        if half:
            rows = rows[:-1]
        value_key = next(k for k in rows[0] if k not in ("timestamp", "step"))
        metrics[tsv.relative_to(top).with_suffix("").as_posix()] = {
            "steps": [int(r["step"]) for r in rows],
            "values": [r[value_key] if r[value_key].lower() != "nan" else "nan" for r in rows],
            "timestamps": [int(r["timestamp"]) for r in rows],
            "half_written_lines": int(half),
        }
    out: dict[str, object] = {"metrics": metrics}
    mj = d / "metrics.json"
    out["metrics.json"] = json.loads(mj.read_text()) if mj.exists() else None
    return out


def main() -> None:
    if PROJECT.exists():
        shutil.rmtree(PROJECT)
    # written outside any git repository (inside one, DVCLive runs `dvc init` there), then copied
    work = Path(tempfile.mkdtemp(prefix="dvclive-fixtures-"))
    os.chdir(work)
    runs = {"dvclive": finished, "experiments/killed": killed, "experiments/resumed": resumed}
    params = {"dvclive": {**PARAMS, "notes": "baseline run"}, "experiments/killed": {"lr": 0.01, "batch_size": 4},
              "experiments/resumed": {"lr": 0.002, "phase": 2}}
    expected = {}
    for rel, write in runs.items():
        write(work / rel)
        expected[rel] = {**read_back(work / rel), "params": params[rel]}
    shutil.copytree(work, PROJECT)
    shutil.rmtree(work)
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
