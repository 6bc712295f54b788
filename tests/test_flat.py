"""The one flattener (runwise._flat) under each source's rule, with known answers."""

from __future__ import annotations

from typing import Any

import pytest

from runwise import _flat
from runwise.analysis.compare import flatten_config
from runwise.parsers.wandb import records

NESTED: dict[str, Any] = {
    "opt": {"lr": 0.1, "betas": [0.9, 0.99], "sched": {"kind": "cos"}},
    "img": {"_type": "image-file", "path": "a.png"},
    "empty": {},
    "lr": {"desc": None, "value": 0.5},
    "n": 3,
}


def test_default_rule_keeps_empty_mappings_and_walks_the_rest() -> None:
    assert _flat.flatten(NESTED) == {
        "opt.lr": 0.1, "opt.betas": [0.9, 0.99], "opt.sched.kind": "cos", "img._type": "image-file",
        "img.path": "a.png", "empty": {}, "lr.desc": None, "lr.value": 0.5, "n": 3,
    }


def test_wandb_rule_keeps_media_objects_whole() -> None:
    out: dict[str, Any] = {"old": 1}
    records.flatten(NESTED, "run", out)
    assert out == {
        "old": 1, "run.opt.lr": 0.1, "run.opt.betas": [0.9, 0.99], "run.opt.sched.kind": "cos",
        "run.img": {"_type": "image-file", "path": "a.png"}, "run.empty": {}, "run.lr.desc": None,
        "run.lr.value": 0.5, "run.n": 3,
    }
    records.flatten(7, "x", out)
    assert out["x"] == 7


def test_jsonl_row_rule_joins_with_a_slash_and_drops_empty_objects() -> None:
    assert _flat.flatten({"train": NESTED}, sep="/", whole=_flat.never) == {
        "train/opt/lr": 0.1, "train/opt/betas": [0.9, 0.99], "train/opt/sched/kind": "cos",
        "train/img/_type": "image-file", "train/img/path": "a.png", "train/lr/desc": None,
        "train/lr/value": 0.5, "train/n": 3,
    }


def test_config_rule_unwraps_wandb_wrappers_at_every_level() -> None:
    cfg = {**NESTED, "model": {"value": {"depth": {"value": 4}, "kept": {"value": 1, "unit": "s"}}}}
    assert flatten_config(cfg) == {
        "opt.lr": 0.1, "opt.betas": [0.9, 0.99], "opt.sched.kind": "cos", "img._type": "image-file",
        "img.path": "a.png", "empty": {}, "lr": 0.5, "n": 3, "model.depth": 4, "model.kept.value": 1,
        "model.kept.unit": "s",
    }


def test_an_empty_separator_is_refused() -> None:
    with pytest.raises(ValueError, match="sep"):
        _flat.flatten({"a": {"b": 1}}, sep="")


def test_wandb_empty_key_gives_no_leading_dot() -> None:
    # as before the flatteners were merged: a value under an empty key flattens to its own keys
    out: dict[str, object] = {}
    records.flatten({"lr": 0.1, "opt": {"beta": 0.9}, "img": {"_type": "image-file"}}, "", out)
    assert out == {"lr": 0.1, "opt.beta": 0.9, "img": {"_type": "image-file"}}
    out = {}
    records.flatten({}, "", out)
    assert out == {"": {}}
