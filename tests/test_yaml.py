"""runwise._yaml: YAML from run directories read as plain data, never executed, never expanded without bound."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from runwise import _yaml


def test_plain_yaml_reads_as_its_data() -> None:
    assert _yaml.loads("lr: 0.001\nlayers: [64, 64]\nopt:\n  name: adam\n  betas: [0.9, 0.999]\nfp16: false\n") == {
        "lr": 0.001, "layers": [64, 64], "opt": {"name": "adam", "betas": [0.9, 0.999]}, "fp16": False}


def test_python_tags_are_read_as_data_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = (f"hit: !!python/object/apply:os.system ['touch {marker}']\n"
            f"also: !!python/object/new:os.system ['touch {marker}']\n"
            "fn: !!python/name:builtins.print ''\n"
            "mod: !!python/module:os ''\n")
    data = _yaml.loads(text)
    assert not marker.exists()
    assert data["hit"] == [f"touch {marker}"] and data["fn"] == "<!!python/name:builtins.print>"
    assert data["mod"] == "<!!python/module:os>"


def test_a_namespace_dumped_by_pyyaml_reads_as_its_fields() -> None:
    # what Lightning's save_hparams_to_yaml can leave when hparams hold an argparse.Namespace
    text = yaml.dump({"args": argparse.Namespace(lr=0.01, depth=3), "seed": 1})
    assert "!!python/object:argparse.Namespace" in text
    assert _yaml.loads(text) == {"args": {"lr": 0.01, "depth": 3}, "seed": 1}


def test_shared_values_read_once_each_place() -> None:
    assert _yaml.loads("base: &b {lr: 1}\nrun: *b\n") == {"base": {"lr": 1}, "run": {"lr": 1}}


def test_an_alias_bomb_is_refused() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]  # 9**9 values
    with pytest.raises(_yaml.YamlError, match="expands to over 100,000 values"):
        _yaml.loads("\n".join(lines))


def test_a_list_holding_itself_is_refused() -> None:
    with pytest.raises(_yaml.YamlError, match="expands"):
        _yaml.loads("a: &a [1, *a]\n")


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(_yaml.YamlError, match="not valid YAML at line 3"):
        _yaml.loads("a: 1\nb: [1, 2\n")


def test_a_file_over_the_limit_is_not_read(tmp_path: Path) -> None:
    p = tmp_path / "hparams.yaml"
    p.write_text("a: " + "x" * 2000 + "\n")
    with pytest.raises(_yaml.YamlError, match="over the 1,000 read"):
        _yaml.load(p, max_bytes=1000)
    assert _yaml.load(p)["a"] == "x" * 2000
