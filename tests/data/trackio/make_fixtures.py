"""Write the Trackio fixtures with the real `trackio` package (offline: no server, no network).

Requirements: Python 3.11 and `pip install trackio` (made with trackio 0.43.0; psutil NOT installed,
so trackio logs no CPU metrics by itself, and no GPU: the system metrics here are written with
trackio's own `trackio.log_system()`, the call its GPU/CPU monitors make). Run from anywhere:

    python tests/data/trackio/make_fixtures.py

It points TRACKIO_DIR at this folder (before importing trackio, which reads it at import) and writes
two projects, each one SQLite file `<project>.db` as trackio names it:

- `glue-sst2.db`
  - "bert-base-lr3e-4": finished (`trackio.finish()`): 30 steps of train/loss, NaN at step 17, a
    spike (loss 9.5) at step 23, eval/accuracy every 10 steps, a string (`phase`), a list
    (`layer_norms`), a trackio.Histogram and a trackio.Table (step 29) that are not series, +inf
    in grad_norm at step 5; config with a nested dict; 3 system-metric samples.
  - "run 2": killed mid-training: a child process logs 12 steps, waits for trackio's sender
    thread to write them, then exits with os._exit(1) (no finish(), no atexit flush).
  - "run 2" again with resume="must": resumed by name, steps 12..19 appended to the same run.
- `tiny.db`: "only-run", 3 steps (a project with a single run).

Afterwards, to keep them small, each database is checkpointed and VACUUMed with a 512-byte page
size by the standard library's sqlite3 (the checkpoint folds the -wal back; the file is put back
in WAL mode, the mode trackio leaves it in, so only `<project>.db` remains), and the `.lock`
files trackio leaves are removed. Rows, tables and JSON are trackio's own, unchanged. expected.json is what
trackio's own reader (`trackio.sqlite_storage.SQLiteStorage`) reads back: get_runs,
get_logs, get_system_logs, get_run_config; NaN/inf written as the strings "NaN"/"Infinity".
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ["TRACKIO_DIR"] = str(HERE)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

KILLED_CHILD = """
import os, time, trackio
trackio.init(project="glue-sst2", name="run 2", config={"lr": 1e-3, "batch_size": 16}, embed=False)
for step in range(12):
    trackio.log({"train/loss": 3.0 - 0.1 * step}, step=step)
time.sleep(2.5)  # let trackio's sender thread write what was logged
os._exit(1)  # killed: no finish(), no atexit handlers
"""


def finished_run() -> None:
    import trackio

    config = {"lr": 3e-4, "batch_size": 32, "model": "bert-base-uncased",
              "optimizer": {"name": "adamw", "betas": [0.9, 0.999]}, "warmup": 0.1}
    trackio.init(project="glue-sst2", name="bert-base-lr3e-4", config=config, embed=False)
    for step in range(30):
        loss = 2.5 * math.exp(-step / 12) + 0.05
        if step == 17:
            loss = math.nan
        if step == 23:
            loss = 9.5
        row: dict[str, object] = {"train/loss": loss, "train/lr": 3e-4 * min(1.0, (step + 1) / 3)}
        row["grad_norm"] = math.inf if step == 5 else 1.0 + 0.01 * step
        if step % 10 == 9:
            row["eval/accuracy"] = 0.70 + 0.05 * (step // 10)
        if step == 0:
            row["phase"] = "warmup"
            row["layer_norms"] = [1.0, 2.0]
        if step == 29:  # trackio media kept inline in the row: not series
            row["weights"] = trackio.Histogram([0.1, 0.2, 0.2, 0.5], num_bins=4)
            row["samples"] = trackio.Table(columns=["text", "label"], data=[["good film", 1]])
        trackio.log(row, step=step)
        if step % 10 == 0:
            trackio.log_system({"gpu/0/utilization": 50.0 + step, "gpu/0/memory_used": 3.5,
                                "cpu/utilization": 12.5})
    trackio.finish()


def killed_run() -> None:
    subprocess.run([sys.executable, "-c", KILLED_CHILD], check=False, env=dict(os.environ))


def resumed_run() -> None:
    import trackio

    trackio.init(project="glue-sst2", name="run 2", resume="must", embed=False)
    for step in range(12, 20):
        trackio.log({"train/loss": 3.0 - 0.1 * step}, step=step)
    trackio.finish()


def tiny_project() -> None:
    import trackio

    trackio.init(project="tiny", name="only-run", config={"seed": 1}, embed=False)
    for step in range(3):
        trackio.log({"loss": 1.0 / (step + 1)})
    trackio.finish()


def jsonable(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def expected() -> dict[str, object]:
    from trackio.sqlite_storage import SQLiteStorage

    out: dict[str, object] = {}
    for project in ("glue-sst2", "tiny"):
        runs = {}
        for name in SQLiteStorage.get_runs(project):
            runs[name] = {
                "logs": jsonable(SQLiteStorage.get_logs(project, name)),
                "system": jsonable(SQLiteStorage.get_system_logs(project, name)),
                "config": jsonable(SQLiteStorage.get_run_config(project, name)),
            }
        out[project] = runs
    return out


def tidy() -> None:
    for db in HERE.glob("*.db"):
        con = sqlite3.connect(db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode = DELETE")  # the page size changes only outside WAL mode
        con.execute("PRAGMA page_size = 512")
        con.execute("VACUUM")
        con.execute("PRAGMA journal_mode = WAL")  # back to the mode trackio leaves its files in
        con.close()
    for extra in [*HERE.glob("*.lock"), *HERE.glob("*.db-wal"), *HERE.glob("*.db-shm")]:
        extra.unlink()


def main() -> None:
    for old in [*HERE.glob("*.db*"), *HERE.glob("*.lock")]:
        old.unlink()
    finished_run()
    killed_run()
    time.sleep(0.5)
    resumed_run()
    tiny_project()
    data = expected()
    tidy()
    (HERE / "expected.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    import trackio

    data["_trackio_version"] = trackio.__version__
    print(f"trackio {trackio.__version__}:", {p: list(r) for p, r in data.items() if not p.startswith("_")})


if __name__ == "__main__":
    main()
