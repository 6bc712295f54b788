"""Write the MLflow fixtures with MLflow itself: `mlflow.db` (SQLite store), `mlruns/` (file store) and
`expected.json`, what `MlflowClient` reads back from each, so the tests need no MLflow.

Requirements (a separate venv; MLflow is never a runwise dependency):
    python -m venv /tmp/venv-mlflow && /tmp/venv-mlflow/bin/pip install mlflow
    /tmp/venv-mlflow/bin/python tests/data/mlflow/make_fixtures.py

Each store gets two experiments: `baseline` (a finished run with a note and tags, a failed run with
NaN values) and `sweep` (a run killed mid-training in a child process that exits without ending it,
so it stays RUNNING). Metric names hold '/' (nested folders in the file store).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3.x refuses the file store without it
# no user name or machine path in the committed tags
TAGS = {"mlflow.user": "fixture", "mlflow.source.name": "make_fixtures.py"}
T0 = 1_764_000_000_000  # ms: fixed timestamps, so a rerun writes the same points

KILLED = """
import os, sys
TAGS = {"mlflow.user": "fixture", "mlflow.source.name": "make_fixtures.py"}
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("sweep")
mlflow.start_run(run_name="killed-mid", tags=TAGS)
mlflow.log_params({"lr": 0.01, "batch_size": 64})
for s in range(12):
    mlflow.log_metric("train/loss", 2.0 - 0.1 * s, step=s, timestamp=START + 1000 * s)
os._exit(9)  # killed: no end_run, the run stays RUNNING
""".replace("START", str(T0 + 500_000))


def write(uri: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("baseline")
    with mlflow.start_run(run_name="warm-lr", tags=TAGS):
        mlflow.log_params({"lr": 0.001, "batch_size": 32, "optimizer": "adam", "use_amp": True})
        mlflow.set_tags({"team": "vision", "mlflow.note.content": "baseline at the default lr"})
        for s in range(40):
            ts = T0 + 1000 * s
            mlflow.log_metric("train/loss", round(2.5 * math.exp(-s / 15) + 0.3, 6), step=s, timestamp=ts)
            mlflow.log_metric("lr", 0.001, step=s, timestamp=ts)
            if s % 5 == 0:
                mlflow.log_metric("eval/val/loss", round(2.7 * math.exp(-s / 15) + 0.35, 6), step=s, timestamp=ts)
    with mlflow.start_run(run_name="diverged lr 0.1", tags=TAGS):
        mlflow.log_params({"lr": 0.1, "batch_size": 32, "optimizer": "sgd"})
        mlflow.set_tag("reason", "nan loss")
        for s in range(20):
            value = float("nan") if s >= 15 else round(2.5 - 0.05 * s + (0.8 if s == 10 else 0), 6)
            mlflow.log_metric("train/loss", value, step=s, timestamp=T0 + 200_000 + 1000 * s)
        mlflow.end_run(status="FAILED")
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", KILLED, uri], check=False, env=env)
    mlflow.set_experiment("sweep")
    with mlflow.start_run(run_name="lr-0.003", tags=TAGS):
        mlflow.log_params({"lr": 0.003, "batch_size": 64})
        for s in range(0, 100, 10):
            mlflow.log_metric("train/loss", round(2.0 * math.exp(-s / 40) + 0.2, 6), step=s, timestamp=T0 + 900_000 + s)


def expected(uri: str) -> list[dict[str, object]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    out = []
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            metrics = {
                key: [[m.step, m.value, m.timestamp] for m in client.get_metric_history(run.info.run_id, key)]
                for key in sorted(run.data.metrics)
            }
            out.append({
                "run_id": run.info.run_id, "experiment": exp.name, "name": run.info.run_name,
                "status": run.info.status, "start_time": run.info.start_time, "end_time": run.info.end_time,
                "params": run.data.params, "tags": run.data.tags, "metrics": metrics,
            })
    return sorted(out, key=lambda r: (str(r["experiment"]), str(r["name"])))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # artifacts land here, not in the repo
        db = Path(tmp) / "mlflow.db"
        store = Path(tmp) / "mlruns"
        write(f"sqlite:///{db}")
        write(store.as_uri())
        con = sqlite3.connect(db)  # small pages: a fixture of tens of KB; MLflow reads it the same
        con.execute("PRAGMA page_size = 512")
        con.execute("VACUUM")
        con.close()
        result = {"sqlite": expected(f"sqlite:///{db}"), "file": expected(store.as_uri())}
        for name in ("mlflow.db", "mlruns"):
            target = HERE / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        shutil.copy(db, HERE / "mlflow.db")
        shutil.copytree(store, HERE / "mlruns", ignore=shutil.ignore_patterns("artifacts", ".trash"))
    text = json.dumps(result, indent=1, sort_keys=True)
    (HERE / "expected.json").write_text(text.replace(str(HERE), "<fixtures>") + "\n")
    print("wrote", HERE)


if __name__ == "__main__":
    main()
