"""JSON number texts parsed at once (wandb.columns.numbers): the one-array orjson path and the cast
it falls back to must both give what float() gives each text."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runwise.parsers.wandb import columns
from runwise.parsers.wandb.walk import u64view


def parse(texts: list[bytes]) -> tuple[list[float], list[bool]]:
    buf = bytearray(b"\x01".join(texts) + bytes(48))  # the cast reads whole 8-byte words
    starts, pos = [], 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + 1
    vs = np.array(starts, np.int64)
    ve = vs + np.array([len(t) for t in texts], np.int64)
    out, ok = columns.numbers(np.frombuffer(buf, np.uint8), u64view(buf), vs, ve)
    return out.tolist(), ok.tolist()


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


PLAIN = [b"0.1", b"-2.5e-07", b"12", b"-0", b"-0.0", b"1.8996149680726107", b"9007199254740993", b"1E+300"]


@pytest.mark.parametrize("texts", [PLAIN, PLAIN + [b"NaN", b"Infinity", b"-Infinity"]], ids=["json", "nan-inf"])
def test_numbers_equal_float_of_each_text(texts: list[bytes]) -> None:
    got, ok = parse(texts)
    assert all(ok)
    assert all(same(g, float(t)) for g, t in zip(got, texts, strict=True))


def test_the_json_path_takes_plain_numbers_and_leaves_nan_to_the_cast(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[bool] = []
    real = columns._json_numbers
    monkeypatch.setattr(columns, "_json_numbers", lambda *a: taken.append(real(*a)) or taken[-1])
    parse(PLAIN)
    parse(PLAIN + [b"NaN"])
    assert taken == [True, False]


def test_texts_that_are_not_one_number_each_are_not_usable() -> None:
    got, ok = parse([b"1,2", b"3", b"true", b"false", b'"x"', b"[1]", b"4"])
    assert ok == [False, True, True, True, False, False, True]
    assert got[1:4] == [3.0, 1.0, 0.0] and got[6] == 4.0


def test_a_short_text_at_the_end_of_the_buffer_next_to_a_long_one() -> None:
    """The cast reads whole 8-byte words up to the longest text's width; a window buffer ends 16
    zero bytes after its last record, so a short text there must not make it read past the end."""
    texts = [b"NaN", b"-1.234567890123456789012345678901234e-05", b"1"]
    buf = bytearray(b"\x01".join(texts) + bytes(16))
    vs = np.array([0, 4, len(buf) - 17], np.int64)
    ve = vs + np.array([len(t) for t in texts], np.int64)
    out, ok = columns.numbers(np.frombuffer(buf, np.uint8), u64view(buf), vs, ve)
    assert ok.all() and math.isnan(out[0]) and out.tolist()[1:] == [float(texts[1]), 1.0]
