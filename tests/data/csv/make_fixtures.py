"""Write the CSV-log fixtures with the real writers, and expected.json as pandas reads them back.

Requirements (a venv of its own, not runwise's): Python 3.11, torch 2.14.1 (CPU is enough), lightning 2.6.6,
stable-baselines3 2.9.2 + gymnasium 1.4.0, keras 3.15.1 (run with the torch backend), ultralytics 8.4.190
(+ torchvision 0.29.1, Pillow), pandas 3.1.1, PyYAML. No network is needed (YOLO is built from its yaml).
Run from the repository root:

    KERAS_BACKEND=torch python tests/data/csv/make_fixtures.py

It rewrites tests/data/csv/project/ and tests/data/csv/expected.json:

- `lightning_logs/version_0/`: Lightning's CSVLogger in a tiny `Trainer.fit` (3 epochs of 4 batches):
  `train_loss` every step, `val_loss` once per epoch (a sparse column), `train_loss` logged as NaN
  at step NAN_STEP; `hparams.yaml` holds an `argparse.Namespace` (Lightning writes a python tag).
- `lightning_logs/version_1/`: a second fit in the same logger directory, then killed: after the
  writer finished, this script cuts the file's last line in the middle (post-processing, as a kill
  mid-write leaves it).
- `sb3/ppo_cartpole/progress.csv`: Stable-Baselines3 PPO on CartPole-v1, 3 updates, CSV output.
- `logs/keras_history.csv`: Keras' CSVLogger on a tiny model, 4 epochs with validation.
- `runs/detect/train/`: Ultralytics YOLOv8n (from `yolov8n.yaml`, no weights) trained 2 epochs on 4
  generated 64x64 images: `results.csv` and `args.yaml` (post-processed: absolute paths made
  relative); the checkpoints are deleted.

expected.json: for every file, every column pandas reads (`read_csv(skipinitialspace=True)`), with
the steps and values of the rows whose cell is not empty in the file (the csv module tells which),
NaN written as "nan"; a half-written last line is left out of pandas' read and counted.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "project"
NAN_STEP = 5
STEP_COLUMNS = ("step", "global_step", "_step", "iteration", "time/total_timesteps", "epoch")


def lightning_runs() -> None:
    import lightning as L
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self, lr: float = 0.05, args: argparse.Namespace | None = None) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(3, 1)

        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            shown = torch.tensor(float("nan")) if self.global_step == NAN_STEP else loss
            self.log("train_loss", shown, on_step=True, on_epoch=False)
            return loss

        def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y), on_step=False, on_epoch=True)

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
    data = DataLoader(TensorDataset(x, y), batch_size=8)
    for lr in (0.05, 0.1):
        model = Tiny(lr=lr, args=argparse.Namespace(hidden=4, optimizer="sgd"))
        trainer = L.Trainer(max_epochs=3, logger=CSVLogger(str(PROJECT), name="lightning_logs"),
                            log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, accelerator="cpu", limit_val_batches=2)
        trainer.fit(model, data, data)
    killed = PROJECT / "lightning_logs" / "version_1" / "metrics.csv"
    raw = killed.read_bytes()
    start = raw.rstrip(b"\r\n").rfind(b"\n") + 1
    last = raw[start:].rstrip(b"\r\n")
    killed.write_bytes(raw[:start] + last[: len(last) // 2])  # the kill: the last line cut mid-way


def sb3_run() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    out = PROJECT / "sb3" / "ppo_cartpole"
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    model.set_logger(configure(str(out), ["csv"]))
    model.learn(total_timesteps=192)


def keras_run() -> None:
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    (PROJECT / "logs").mkdir(parents=True, exist_ok=True)
    model.fit(x, y, epochs=4, batch_size=16, validation_split=0.25, verbose=0,
              callbacks=[keras.callbacks.CSVLogger(str(PROJECT / "logs" / "keras_history.csv"))])


def ultralytics_run() -> None:
    """YOLOv8n built from its yaml (no weights to download) on 4 generated images, 2 epochs."""
    import numpy as np
    from PIL import Image
    from ultralytics import YOLO

    data = Path(os.environ.get("TMPDIR", "/tmp")) / "runwise-yolo-data"
    shutil.rmtree(data, ignore_errors=True)
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (data / "images" / split).mkdir(parents=True)
        (data / "labels" / split).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data / "images" / split / f"{i}.jpg")
            (data / "labels" / split / f"{i}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    (data / "data.yaml").write_text(f"path: {data}\ntrain: images/train\nval: images/val\nnames:\n  0: box\n")
    model = YOLO("yolov8n.yaml")
    model.train(data=str(data / "data.yaml"), epochs=2, imgsz=64, batch=2, workers=0, device="cpu", plots=False,
                amp=False, pretrained=False, project=str(PROJECT / "runs" / "detect"), name="train", verbose=False)
    out = PROJECT / "runs" / "detect" / "train"
    shutil.rmtree(out / "weights", ignore_errors=True)  # checkpoints: not needed
    args = out / "args.yaml"  # post-processed: this machine's absolute paths made relative
    args.write_text(args.read_text().replace(f"{PROJECT}/", "").replace(str(data), "data"))


def expected_of(path: Path) -> dict[str, object]:
    import pandas as pd

    raw = path.read_bytes()
    half = 0
    end = raw.rfind(b"\n") + 1
    if end < len(raw):
        half, raw = 1, raw[:end]
    text = raw.decode("utf-8")
    frame = pd.read_csv(io.StringIO(text), skipinitialspace=True)
    cells = list(csv.reader(io.StringIO(text, newline="")))
    names = [c.strip() for c in cells[0]]
    assert [str(c).strip() for c in frame.columns] == names, (list(frame.columns), names)
    step_col = next((c for c in STEP_COLUMNS if c in names), None)
    out: dict[str, object] = {}
    for i, name in enumerate(names):
        if name == step_col or not pd.api.types.is_numeric_dtype(frame.iloc[:, i]):
            continue
        steps, values = [], []
        for r, row in enumerate(cells[1:]):
            if row[i].strip() in ("", "NA"):
                continue
            v = float(frame.iloc[r, i])
            steps.append(int(frame[step_col].iloc[r]) if step_col else r)
            values.append("nan" if math.isnan(v) else v)
        order = sorted(range(len(steps)), key=lambda k: steps[k])  # stable, as runwise sorts
        out[name] = {"steps": [steps[k] for k in order], "values": [values[k] for k in order]}
    return {"step_column": step_col, "rows": len(frame), "half_written_lines": half, "columns": out}


def main() -> None:
    if PROJECT.exists():
        shutil.rmtree(PROJECT)
    PROJECT.mkdir(parents=True)
    lightning_runs()
    sb3_run()
    keras_run()
    ultralytics_run()
    expected = {}
    for p in sorted(PROJECT.rglob("*.csv")):
        expected[p.relative_to(PROJECT).as_posix()] = expected_of(p)
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print("wrote", len(expected), "files", file=sys.stderr)


if __name__ == "__main__":
    main()
