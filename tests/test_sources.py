"""The source registry: every source module provides the `Source` protocol's functions, as declared."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from runwise import parsers
from runwise.parsers import SOURCES, Source


def _protocol_methods() -> dict[str, inspect.Signature]:
    out = {}
    for name, fn in vars(Source).items():
        if inspect.isfunction(fn) and not name.startswith("_"):
            sig = inspect.signature(fn)
            out[name] = sig.replace(parameters=list(sig.parameters.values())[1:])  # without self
    return out


def test_the_protocol_has_the_five_source_functions() -> None:
    assert sorted(_protocol_methods()) == ["discover", "display_name", "load", "load_file", "refresh"]


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_each_source_module_matches_the_protocol(source: str) -> None:
    """mypy checks the types (parsers._CHECKED); this checks names, order and defaults, which it does not."""
    mod = parsers.source_module(source)
    for name, expected in _protocol_methods().items():
        got = inspect.signature(getattr(mod, name))
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == [
            (p.name, p.kind, p.default) for p in expected.parameters.values()
        ], (source, name)
        assert str(got.return_annotation) == str(expected.return_annotation), (source, name)


def test_files_stamp_is_the_newest_mtime_and_the_total_size_of_the_files_there(tmp_path: Path) -> None:
    from runwise.parsers._walk import files_stamp

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"y" * 32)
    os.utime(a, (1_700_000_000, 1_700_000_000))
    os.utime(b, (1_700_000_500, 1_700_000_500))
    assert files_stamp([a, b, tmp_path / "missing"]) == (1_700_000_500.0, 42)
    assert files_stamp([]) == (0.0, 0)
