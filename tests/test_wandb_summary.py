"""The summary of a W&B log, taken from the last update of each key, against wandb's own classes
decoding every summary record in full: on every fixture, in windows of one block, and on a log
whose last summary record is cut off."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from runwise.parsers.wandb.columns import Columns, decode_window
from runwise.parsers.wandb.log import BLOCK, Damage, iter_windows
from runwise.parsers.wandb.segment import flat_summary, read_log

pytest.importorskip("wandb.proto.wandb_internal_pb2")
from tests import wandb_reference as ref  # noqa: E402

DATA = Path(__file__).parent / "data" / "wandb"
LOGS = [p for p in sorted(DATA.glob("*/run-*.wandb")) if ref.summary(p.read_bytes())]


def bulk(raw: bytes, window: int) -> dict[tuple[str, ...], Any]:
    """The summary the bulk decoder keeps, reading `window` bytes at a time."""
    cols = Columns()
    for win in iter_windows(io.BytesIO(raw), path="x", damage=Damage(), window=window):
        decode_window(win, cols)
    return {p: v for p, (off, v) in cols.summary.items() if cols.removed.get(p, -1) < off}


def test_fixtures_have_summaries() -> None:
    assert len(LOGS) >= 5


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.parent.name)
@pytest.mark.parametrize("window", [BLOCK, 256 * BLOCK])
def test_last_updates_equal_the_full_decode(path: Path, window: int) -> None:
    raw = path.read_bytes()
    assert bulk(raw, window) == ref.summary(raw)


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.parent.name)
def test_segment_summary_is_the_flattened_reference(path: Path) -> None:
    want = flat_summary(ref.summary(path.read_bytes()))
    assert want and read_log(path.parent, path).summary == want


def test_cut_last_summary_record_falls_back_to_the_one_before(tmp_path: Path) -> None:
    src = next(p for p in LOGS if "fin00001" in p.parent.name)
    raw = src.read_bytes()
    offs = ref.summary_offsets(raw)
    assert len(offs) >= 2
    cut = raw[: offs[-1] + 12]  # inside the last summary record: a truncated tail
    want = ref.summary(cut)
    assert want != ref.summary(raw)  # the cut record changed something: the test can tell
    d = tmp_path / src.parent.name
    d.mkdir()
    p = d / src.name
    p.write_bytes(cut)
    seg = read_log(d, p)
    assert seg.damage.truncated
    assert seg.summary == flat_summary(want)
    assert bulk(cut, BLOCK) == want
