"""runwise's bulk decoder against wandb's own protobuf classes, on every fixture and on damage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runwise.parsers.wandb.segment import read_log

pytest.importorskip("wandb.proto.wandb_internal_pb2")
from tests import wandb_reference as ref  # noqa: E402

DATA = Path(__file__).parent / "data" / "wandb"
LOGS = sorted(DATA.glob("*/run-*.wandb"))


def check(path: Path) -> int:
    want = ref.history(path.read_bytes())
    got = read_log(path.parent, path).history
    assert sorted(got) == sorted(want)
    for key, (steps, values) in want.items():
        np.testing.assert_array_equal(got[key][0], steps)
        np.testing.assert_array_equal(got[key][1], values)  # NaN == NaN here
    return sum(len(s) for s, _ in want.values())


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.parent.name)
def test_same_history_as_protobuf(path: Path) -> None:
    assert check(path) > 0


@pytest.mark.parametrize("where", [0.3, 0.5, 0.77, 0.9])
def test_same_history_when_cut(tmp_path: Path, where: float) -> None:
    raw = next(DATA.glob("*kil00001/run-kil00001.wandb")).read_bytes()
    d = tmp_path / "run"
    d.mkdir()
    p = d / "run-kil00001.wandb"
    p.write_bytes(raw[: int(len(raw) * where)])
    assert check(p) > 0
    assert read_log(d, p).damage.truncated


@pytest.mark.parametrize("at", [3000, 20000, 40000])
def test_same_history_when_flipped(tmp_path: Path, at: int) -> None:
    raw = bytearray(next(DATA.glob("*kil00001/run-kil00001.wandb")).read_bytes())
    raw[at] ^= 0x5A
    d = tmp_path / "run"
    d.mkdir()
    p = d / "run-kil00001.wandb"
    p.write_bytes(bytes(raw))
    check(p)
    seg = read_log(d, p)
    assert seg.damage.bad_chunks == 1 and any("damaged" in w for w in seg.warnings)
