"""Write the TensorBoard fixtures under tests/data/tensorboard/ with the real writers.

    python tests/data/make_tb_fixtures.py

Writers: tensorboardX's SummaryWriter (simple_value scalars, text, histogram, image, add_hparams)
and tensorboard's own EventFileWriter with tensorboard's protos for TF2-style tensor scalars
(the layout TF2's C++ writer produces: rank-0 tensors with plugin "scalars"), in every numeric
form seen in the wild. Event files are renamed to `events.out.tfevents.<n>.fixture` (the writers
put the host name in the file name); their order is kept.

Layout (roots as runwise discovers them):
    runs/txb/                 tensorboardX: train/loss every step, val/acc every 10, lr, text,
                              histogram, image, and add_hparams in child dir 1700000000.5/
    runs/tf2/                 tensor scalars: f32 content, float_val, double_val, f64 content,
                              half_val, int64_val, shape [1], metadata only on the first event;
                              tensorboard's hparams session_start, a text tensor
    runs/restarted/           two files of one writer dir: steps 0..39, then 25..59 (restart)
    logs/keras/train/, logs/keras/validation/   Keras-like epoch_loss / epoch_accuracy
    lightning_logs/version_0/ a short tensorboardX run
"""

from __future__ import annotations

import math
import shutil
import struct
import time
from pathlib import Path

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboardX import SummaryWriter

OUT = Path(__file__).parent / "tensorboard"
T0 = 1_700_000_000.0


def loss(step: int) -> float:
    return 2.5 * math.exp(-step / 20) + 0.05 * math.sin(step)


def neutral_names(d: Path, start: int = 0) -> None:
    """Rename event files (host name in the name) to events.out.tfevents.<n>.fixture, in order."""
    for k, f in enumerate(sorted(p for p in d.iterdir() if "tfevents" in p.name)):
        f.rename(d / f"events.out.tfevents.{int(T0) + start + k:d}.fixture")


def tensorboardx_run(d: Path) -> None:
    with SummaryWriter(str(d)) as w:
        for step in range(60):
            wall = T0 + step * 0.5
            w.add_scalar("train/loss", loss(step), step, walltime=wall)
            w.add_scalar("lr", 0.1 * 0.95**step, step, walltime=wall)
            if step % 10 == 0:
                w.add_scalar("val/acc", 0.5 + step / 200, step, walltime=wall)
        w.add_scalar("train/loss_nan", float("nan"), 60, walltime=T0 + 30)
        w.add_scalar("train/loss_nan", float("inf"), 61, walltime=T0 + 30.5)
        w.add_text("notes", "baseline run, seed 0", 0, walltime=T0)
        w.add_histogram("weights/fc1", np.linspace(-1, 1, 50), 10, walltime=T0 + 5)
        w.add_image("samples", np.zeros((3, 4, 4), dtype=np.uint8), 10, walltime=T0 + 5)
        w.add_hparams(
            {"lr": 0.1, "batch_size": 32, "optimizer": "sgd", "nesterov": True},
            {"hparam/best_acc": 0.8},
            name="1700000000.5",
        )
    neutral_names(d)
    neutral_names(d / "1700000000.5")


def tensor(dtype: int, shape: list[int], **fields: object) -> tensor_pb2.TensorProto:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape]
    return tensor_pb2.TensorProto(
        dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims), **fields
    )


def scalar_value(
    tag: str, t: tensor_pb2.TensorProto, with_metadata: bool = True
) -> summary_pb2.Summary.Value:
    md = scalar_metadata.create_summary_metadata(display_name="", description="") if with_metadata else None
    return summary_pb2.Summary.Value(tag=tag, tensor=t, metadata=md)


def tf2_run(d: Path) -> None:
    w = EventFileWriter(str(d))
    hp = hparams_summary.hparams_pb(
        {"lr": 0.001, "layers": 4, "act": "gelu"}, trial_id="g1", start_time_secs=T0
    )
    w.add_event(event_pb2.Event(wall_time=T0, summary=hp))
    text = tensor(types_pb2.DT_STRING, [], string_val=[b"tf2 run: tensor scalars"])
    w.add_event(
        event_pb2.Event(
            wall_time=T0,
            summary=summary_pb2.Summary(
                value=[
                    summary_pb2.Summary.Value(
                        tag="description/text_summary",
                        tensor=text,
                        metadata=text_metadata.create_summary_metadata(display_name="", description=""),
                    )
                ]
            ),
        )
    )
    for step in range(40):
        v = loss(step)
        values = [
            scalar_value("f32_content", tensor(types_pb2.DT_FLOAT, [], tensor_content=struct.pack("<f", v))),
            scalar_value("f32_val", tensor(types_pb2.DT_FLOAT, [], float_val=[v])),
            scalar_value("f64_val", tensor(types_pb2.DT_DOUBLE, [], double_val=[v])),
            scalar_value("f64_content", tensor(types_pb2.DT_DOUBLE, [], tensor_content=struct.pack("<d", v))),
            scalar_value(
                "f16_val", tensor(types_pb2.DT_HALF, [], half_val=[int(np.float16(v).view(np.uint16))])
            ),
            scalar_value("i64_val", tensor(types_pb2.DT_INT64, [], int64_val=[step * 1000 - 5])),
            scalar_value("shape1", tensor(types_pb2.DT_FLOAT, [1], float_val=[v * 2])),
            scalar_value(
                "tf1_style",
                tensor(types_pb2.DT_FLOAT, [], tensor_content=struct.pack("<f", -v)),
                with_metadata=step == 0,
            ),
        ]
        for value in values:  # TF2 writes one event per scalar
            w.add_event(
                event_pb2.Event(wall_time=T0 + step, step=step, summary=summary_pb2.Summary(value=[value]))
            )
    w.close()
    neutral_names(d)


def restarted_run(d: Path) -> None:
    with SummaryWriter(str(d), filename_suffix=".a") as w:
        for step in range(40):
            w.add_scalar("train/loss", loss(step), step, walltime=T0 + step)
    with SummaryWriter(str(d), filename_suffix=".b") as w:
        for step in range(25, 60):
            w.add_scalar("train/loss", loss(step) + 1.0, step, walltime=T0 + 100 + step)
    neutral_names(d)


def keras_run(d: Path) -> None:
    for split, offset in (("train", 0.0), ("validation", 0.1)):
        w = EventFileWriter(str(d / split))
        for epoch in range(5):
            ev = event_pb2.Event(
                wall_time=T0 + 60 * epoch,
                step=epoch,
                summary=summary_pb2.Summary(
                    value=[
                        scalar_value(
                            "epoch_loss",
                            tensor(
                                types_pb2.DT_FLOAT,
                                [],
                                tensor_content=struct.pack("<f", 1 / (epoch + 1) + offset),
                            ),
                        ),
                        scalar_value(
                            "epoch_accuracy",
                            tensor(
                                types_pb2.DT_FLOAT,
                                [],
                                tensor_content=struct.pack("<f", 0.6 + epoch / 20 - offset),
                            ),
                        ),
                    ]
                ),
            )
            w.add_event(ev)
        w.close()
        neutral_names(d / split)


def lightning_run(d: Path) -> None:
    with SummaryWriter(str(d)) as w:
        for step in range(0, 100, 10):
            w.add_scalar("train_loss", loss(step), step, walltime=T0 + step)
            w.add_scalar("epoch", step // 50, step, walltime=T0 + step)
    neutral_names(d)


class FakeClock:
    """The writers stamp their first event with time.time(): make it T0 + small ticks instead."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def main() -> None:
    time.time = FakeClock()  # deterministic wall times in every event
    if OUT.exists():
        shutil.rmtree(OUT)
    tensorboardx_run(OUT / "runs" / "txb")
    tf2_run(OUT / "runs" / "tf2")
    restarted_run(OUT / "runs" / "restarted")
    keras_run(OUT / "logs" / "keras")
    lightning_run(OUT / "lightning_logs" / "version_0")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
