"""runwise reads the same points as TensorBoard's EventAccumulator on every fixture.

`EventAccumulator.Scalars()` returns only `simple_value` scalars; TF2 tensor scalars are compared
against `Tensors()`. The fast (template) decoder is checked against the Python decoder on
generated tensorboardX-layout files, across chunk boundaries.
"""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from runwise.config import RunwiseConfig
from runwise.parsers.tensorboard import events as tfevents
from runwise.parsers.tensorboard import run as tb

DATA = Path(__file__).parent / "data" / "tensorboard"
RUN_DIRS = sorted(p.parent for p in DATA.rglob("*tfevents*"))
SINGLE_WRITER = sorted({d for d in RUN_DIRS if d.name != "restarted"})

ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def accumulate(run_dir: Path) -> object:
    acc = ea_mod.EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def cfg() -> RunwiseConfig:
    return RunwiseConfig(DATA, env={})


@pytest.mark.parametrize("run_dir", SINGLE_WRITER, ids=lambda p: p.relative_to(DATA).as_posix())
def test_same_points_as_event_accumulator(run_dir: Path, cfg: RunwiseConfig) -> None:
    from tensorboard.util import tensor_util

    acc = accumulate(run_dir)
    run = tb.load_file(run_dir, cfg)
    own = {t: s for t, s in run.history.items()}
    expected: dict[str, tuple[list[int], list[float]]] = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        expected[tag] = ([e.step for e in events], [e.value for e in events])
    for tag in acc.Tags()["tensors"]:
        events = acc.Tensors(tag)
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        expected[tag] = (
            [e.step for e in events],
            [tensor_util.make_ndarray(e.tensor_proto).item() for e in events],
        )
    if run_dir.name == "txb":  # add_hparams' metric lives in the child directory
        child = accumulate(run_dir / "1700000000.5").Scalars("hparam/best_acc")
        expected["hparam/best_acc"] = ([e.step for e in child], [e.value for e in child])
    assert sorted(own) == sorted(expected)
    for tag, (steps, values) in expected.items():
        assert own[tag].steps.tolist() == steps, tag
        np.testing.assert_array_equal(own[tag].values, np.array(values, dtype=np.float64), err_msg=tag)


def test_tf2_forms_are_all_read(cfg: RunwiseConfig) -> None:
    run = tb.load_file(DATA / "runs" / "tf2", cfg)
    forms = ["f32_content", "f32_val", "f64_val", "f64_content", "f16_val", "i64_val", "shape1", "tf1_style"]
    assert sorted(run.history) == sorted(forms)
    assert run.history["f64_val"].values[3] == pytest.approx(
        2.5 * math.exp(-3 / 20) + 0.05 * math.sin(3), abs=1e-12
    )
    assert run.history["i64_val"].values[:3].tolist() == [-5.0, 995.0, 1995.0]
    assert run.history["f16_val"].values[0] == float(np.float16(2.5))


def _tensorboardx_stream(steps: list[int], tags: list[str]) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    buf = io.BytesIO()
    w = RecordWriter(buf)
    w.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
    rng = np.random.default_rng(0)
    for step in steps:
        for tag in tags:
            value = summary_pb2.Summary.Value(tag=tag, simple_value=float(rng.normal()))
            ev = event_pb2.Event(
                wall_time=1.7e9 + step / 7, step=step, summary=summary_pb2.Summary(value=[value])
            )
            w.write(ev.SerializeToString())
    return buf.getvalue()


@pytest.mark.parametrize("chunk", [97, 4096, 1 << 20])
def test_fast_path_equals_python_decoder(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = [0, 1, 2, 127, 128, 300, 16383, 16384, 2**21, 2**35, 2**62, -1, -(2**40)] + list(
        range(1000, 1400)
    )
    raw = _tensorboardx_stream(steps, ["a", "loss/train", "x" * 40, "b"])
    fast = tfevents.read_events(io.BytesIO(raw), path="x", chunk_size=chunk)
    monkeypatch.setattr(tfevents, "MIN_GROUP", 10**9)  # everything through the Python decoder
    slow = tfevents.read_events(io.BytesIO(raw), path="x", chunk_size=chunk)
    assert sorted(fast.scalars) == sorted(slow.scalars) == sorted(["a", "loss/train", "x" * 40, "b"])
    for tag in fast.scalars:
        for got, want in zip(fast.scalars[tag].arrays(), slow.scalars[tag].arrays(), strict=True):
            np.testing.assert_array_equal(got, want)
    assert fast.scalars["a"].arrays()[0].tolist() == steps
    assert fast.file_version == "brain.Event:2" and fast.stats.records == 1 + 4 * len(steps)


def test_event_accumulator_reads_the_bench_generator_layout(tmp_path: Path) -> None:
    raw = _tensorboardx_stream(list(range(50)), ["loss"])
    (tmp_path / "events.out.tfevents.1.x").write_bytes(raw)
    acc = accumulate(tmp_path)
    cols = tfevents.read_events(io.BytesIO(raw), path="x")
    steps, values, _ = cols.scalars["loss"].arrays()
    assert [e.step for e in acc.Scalars("loss")] == steps.tolist()
    assert [e.value for e in acc.Scalars("loss")] == values.tolist()


def test_tensorboardx_add_scalar_bytes_match_the_generator(tmp_path: Path) -> None:
    """The bench generator's records are byte-identical to tensorboardX's add_scalar records."""
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(tmp_path)) as w:
        for step in (0, 5, 300):
            w.add_scalar("loss", 0.25 * step, step, walltime=1.7e9 + step)
    (path,) = tmp_path.iterdir()
    txb = list(tfevents.iter_records(io.BytesIO(path.read_bytes()), path="x"))[1:]
    from tensorboard.compat.proto import event_pb2, summary_pb2

    ours = [
        event_pb2.Event(
            wall_time=1.7e9 + s,
            step=s,
            summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="loss", simple_value=0.25 * s)]),
        ).SerializeToString()
        for s in (0, 5, 300)
    ]
    assert txb == ours
    shutil.rmtree(tmp_path)


def test_data_crc_is_checked_on_fast_and_slow_paths() -> None:
    raw = bytearray(_tensorboardx_stream(list(range(100)), ["loss", "acc"]))
    starts = [0]
    while starts[-1] < len(raw):
        starts.append(starts[-1] + 16 + int.from_bytes(raw[starts[-1] : starts[-1] + 8], "little"))
    starts.pop()
    raw[starts[0] + 14] ^= 0x01  # inside the file_version event (Python decoder)
    raw[starts[51] + 12 + 3] ^= 0x01  # wall-time byte of an add_scalar event (varies per record)
    raw[starts[80] + 12 + 20] ^= 0x01  # a byte the layout template shares (tag or framing of fields)
    checked = tfevents.read_events(io.BytesIO(bytes(raw)), path="x")
    assert checked.stats.bad_crc == 3 and checked.stats.records == 1 + 200 - 3
    assert sorted(checked.stats.damage_offsets) == [starts[0], starts[51], starts[80]]
    assert checked.file_version is None
    assert sum(tc.arrays()[0].size for tc in checked.scalars.values()) == 198
    unchecked = tfevents.read_events(io.BytesIO(bytes(raw)), path="x", check_crc=False)
    assert unchecked.stats.bad_crc == 0


@pytest.mark.parametrize("chunk", [4096, 1 << 20])
def test_resync_in_a_long_stream(chunk: int) -> None:
    raw = _tensorboardx_stream(list(range(1000)), ["loss", "acc"])
    starts = [0]
    while starts[-1] < len(raw):
        starts.append(starts[-1] + 16 + int.from_bytes(raw[starts[-1] : starts[-1] + 8], "little"))
    damaged = bytearray(raw[: starts[700]] + b"\x00\x13" * 50 + raw[starts[700] :])
    shifted = starts[1500] + 100
    damaged[shifted + 2] ^= 0x01  # the length of record 1500: framing is lost there
    cols = tfevents.read_events(io.BytesIO(bytes(damaged)), path="x", chunk_size=chunk)
    assert cols.stats.lost_framing == 2 and cols.stats.skipped_bytes == 100 + starts[1501] - starts[1500]
    assert cols.stats.records == 2001 - 1
    assert sorted(cols.stats.damage_offsets) == [starts[700], shifted]
