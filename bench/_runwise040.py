"""runwise 0.4.0, as published on PyPI under this name, scored on the scenario suite for reference.

It is installed in its own venv (bench/_data/venv-runwise040: `python -m venv`, then
`pip install runwise==0.4.0 tensorboard`; 0.4.0 reads event files only through the tensorboard
package, as its `runwise tb` help says) and run there as a child process
(bench/_runwise040_child.py), which imports nothing of this repository.

What it reads (from its installed source):
  JSONL        `logs/*.jsonl`, one JSON object per line (`parse_local_log`): the suite's files as
               written.
  TensorBoard  event files through tensorboard's EventAccumulator (`TensorBoardParser`): the
               suite's run directories as written.
  W&B          `wandb/run-<date>_<time>-<id>/files/wandb-history.jsonl` only. wandb 0.31 offline
               writes `offline-run-*/run-<id>.wandb` and no history file, and 0.4.0 skips
               directories not named `run-*`, so it finds no W&B run of the suite as written.
               It is fed the same runs converted to its layout: each history record of the
               `.wandb` log, decoded with wandb's own protobuf classes, as one JSON line
               ({"_step": step, key: value, ...}), in `run-<date>_<time>-<id>/files/`.
Its findings become (kind, metric, step) through KIND_MAP and are scored with the suite's matcher.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.scenarios.score import Finding  # noqa: E402 - the shape the suite's matcher reads

VENV = HERE / "_data" / "venv-runwise040"
REQUIREMENTS = ("runwise==0.4.0", "tensorboard")
CHILD = HERE / "_runwise040_child.py"

# 0.4.0's anomaly types -> this project's kinds; "nan" and "gradient" are split by their message.
KIND_MAP = {
    "spike": "spike", "overfit": "overfitting", "plateau": "plateau", "system": "throughput_drop",
    "nan": "nan | inf (by 'NaN'/'Inf' in its message)",
    "gradient": "vanishing_gradient | exploding_gradient (by 'Vanishing'/'explosion' in its message)",
}
MODES = {
    "api": "its detect_anomalies() on the full history its reader returns, metric keys set to the scenario's",
    "tool": "as its tools call it: W&B MCP detect_anomalies (200 rows, loss_key given), "
            "`runwise tb` (100 rows, loss tag 'loss'), JSONL analyze_local_log (no anomaly check)",
}


def python(log: Any = print) -> Path:
    """The venv's interpreter, creating the venv and installing REQUIREMENTS the first time."""
    py = VENV / "bin" / "python"
    marker = VENV / "installed.txt"
    want = "\n".join(REQUIREMENTS)
    if py.exists() and marker.exists() and marker.read_text() == want:
        return py
    log(f"  installing {' '.join(REQUIREMENTS)} into {VENV.relative_to(ROOT)} (once) ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    done = subprocess.run([str(py), "-m", "pip", "install", "-q", *REQUIREMENTS], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(REQUIREMENTS)} failed: {done.stderr.strip()[-600:]}")
    version = subprocess.run([str(py), "-I", "-c", "import runwise; print(runwise.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != "0.4.0":
        raise RuntimeError(f"the venv holds runwise {version!r}, not 0.4.0")
    marker.write_text(want)
    return py


def _records(data: bytes) -> Iterable[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    from tests.wandb_reference import records

    for payload in records(data):
        yield pb.Record.FromString(payload)


def wandb_layout(project: Path, out: Path) -> dict[str, str]:
    """Write every offline run under `project` in 0.4.0's layout under `out`; run name -> run id."""
    from tests.wandb_reference import _flat  # W&B's history rows flattened as the reference reader does

    ids: dict[str, str] = {}
    for log in sorted(project.rglob("*.wandb")):
        run_dir = log.parent
        name, run_id, rows = "", "", []
        for r in _records(log.read_bytes()):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                name, run_id = r.run.display_name, r.run.run_id
            elif kind == "history":
                row: dict[str, Any] = {}
                for item in r.history.item:
                    key = ".".join(item.nested_key) if len(item.nested_key) else item.key
                    _flat(key, json.loads(item.value_json), row)
                if r.history.HasField("step"):
                    row["_step"] = r.history.step.num
                rows.append(row)
        if not run_id:
            continue
        stamp = run_dir.name.split("run-", 1)[-1].rsplit("-", 1)[0]  # offline-run-<date>_<time>-<id>
        files = out / f"run-{stamp}-{run_id}" / "files"
        files.mkdir(parents=True, exist_ok=True)
        with (files / "wandb-history.jsonl").open("w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        ids[name or run_id] = run_id
    return ids


def run_jobs(jobs: list[dict[str, Any]], *, timeout: float = 1800) -> dict[str, Any]:
    """Run 0.4.0 on `jobs` (see bench/_runwise040_child.py) in its venv; id -> its result."""
    py = python()
    done = subprocess.run([str(py), "-I", str(CHILD)], input=json.dumps({"jobs": jobs}), capture_output=True,
                          text=True, timeout=timeout, cwd=VENV)
    if done.returncode != 0:
        raise RuntimeError(f"runwise 0.4.0 child failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])["results"]
    return out


def kind_of(raw: dict[str, Any]) -> str:
    """This project's kind for one 0.4.0 finding."""
    t, msg = raw["type"], raw["message"]
    if t == "nan":
        return "inf" if msg.startswith("Inf") else "nan"
    if t == "gradient":
        return "vanishing_gradient" if msg.startswith("Vanishing") else "exploding_gradient"
    return {"spike": "spike", "overfit": "overfitting", "plateau": "plateau", "system": "throughput_drop"}.get(t, t)


def findings(raws: list[dict[str, Any]]) -> list[Finding]:
    """0.4.0's findings (child output) as Finding objects for the matcher."""
    out = []
    for raw in raws:
        step = int(raw["step"]) if raw.get("step") is not None else -1
        out.append(Finding(kind=kind_of(raw), metric=str(raw["metric"]), step=step, message=str(raw["message"])))
    return out
