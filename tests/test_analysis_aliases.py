from __future__ import annotations

import pytest

from runwise.analysis.aliases import ROLES, find_metric, group_prefix, higher_is_better, is_validation

DISTRACTORS = ["_runtime", "epoch", "system/gpu.0.temp", "misc/seed"]


@pytest.mark.parametrize(
    ("role", "key"),
    [
        ("loss", "loss"), ("loss", "train/loss"), ("loss", "training_loss"), ("loss", "train_loss"),
        ("loss", "train/loss_step"), ("loss", "trainer/loss"), ("loss", "Loss/train"), ("loss", "epoch_loss"),
        ("val_loss", "val/loss"), ("val_loss", "val_loss"), ("val_loss", "eval/loss"),
        ("val_loss", "eval_loss"),
        ("val_loss", "validation/loss"), ("val_loss", "valid/loss"), ("val_loss", "test/loss"),
        ("val_loss", "Loss/val"), ("val_loss", "validation_loss"),
        ("accuracy", "acc"), ("accuracy", "accuracy"), ("accuracy", "train/acc"),
        ("val_accuracy", "val/acc"), ("val_accuracy", "eval/accuracy"), ("val_accuracy", "val_acc"),
        ("grad_norm", "grad_norm"), ("grad_norm", "train/grad_norm"), ("grad_norm", "gradient_norm"),
        ("grad_norm", "grad/norm"), ("grad_norm", "global_grad_norm"),
        ("throughput", "steps_per_sec"), ("throughput", "samples_per_sec"), ("throughput", "tokens_per_sec"),
        ("throughput", "throughput"), ("throughput", "it/s"), ("throughput", "perf/tokens_per_sec_per_gpu"),
        ("lr", "lr"), ("lr", "learning_rate"), ("lr", "train/lr"), ("lr", "optimizer/lr"), ("lr", "lr-AdamW"),
    ],
)
def test_common_names_are_recognised(role: str, key: str) -> None:
    assert find_metric([*DISTRACTORS, key], role) == key


def test_case_insensitive() -> None:
    assert find_metric(["TRAIN/LOSS", "Val/Loss"], "loss") == "TRAIN/LOSS"
    assert find_metric(["TRAIN/LOSS", "Val/Loss"], "val_loss") == "Val/Loss"


def test_exact_alias_beats_suffix_match() -> None:
    assert find_metric(["model/train/loss", "loss"], "loss") == "loss"


def test_suffix_match_when_no_exact_alias() -> None:
    keys = ["model/train/loss", "model/val/loss", "lr"]
    assert find_metric(keys, "loss") == "model/train/loss"
    assert find_metric(keys, "val_loss") == "model/val/loss"


def test_training_roles_never_pick_validation_keys() -> None:
    assert find_metric(["val/loss", "eval/accuracy"], "loss") is None
    assert find_metric(["val/loss", "eval/accuracy"], "accuracy") is None


def test_preferred_wins_when_present() -> None:
    keys = ["train/loss", "custom_objective"]
    assert find_metric(keys, "loss", preferred="custom_objective") == "custom_objective"
    assert find_metric(keys, "loss", preferred="not_logged") == "train/loss"


def test_nothing_fits() -> None:
    assert find_metric(DISTRACTORS, "loss") is None
    assert find_metric([], "lr") is None


def test_unknown_role_raises() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        find_metric(["loss"], "losss")


def test_roles_constant() -> None:
    assert ROLES == ("loss", "val_loss", "accuracy", "val_accuracy", "grad_norm", "throughput", "lr")


def test_every_role_finds_its_key_among_all_kinds() -> None:
    """One key per role in one run: each role takes its own (validation roles only validation keys)."""
    keys = ["train/loss", "val/loss", "train/acc", "val/acc", "grad_norm", "perf/samples_per_sec", "lr"]
    assert {role: find_metric(keys, role) for role in ROLES} == dict(zip(ROLES, keys, strict=True))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("val/loss", True), ("eval/acc", True), ("valid/loss", True), ("validation/loss", True),
        ("test/loss", True), ("val_loss", True), ("eval_loss", True), ("Loss/val", True),
        ("model/val/loss", True), ("train/loss", False), ("loss", False), ("value_head/loss", False),
        ("interval_loss", False),
    ],
)
def test_is_validation(key: str, expected: bool) -> None:
    assert is_validation(key) is expected


def test_configured_validation_prefixes() -> None:
    assert is_validation("holdout/loss", ["holdout"])
    assert is_validation("holdout_acc", ["holdout"])
    assert not is_validation("holdoutx/loss", ["holdout"])
    assert not is_validation("holdout/loss")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("val/acc", True), ("accuracy", True), ("eval/f1", True), ("auc", True), ("bleu", True),
        ("rouge1", True), ("episode_reward", True), ("eval/return", True), ("precision", True),
        ("recall", True), ("mAP", True), ("val/iou", True), ("score", True), ("tokens_per_sec", True),
        ("throughput", True), ("loss", False), ("val/loss", False), ("error_rate", False),
        ("perplexity", False), ("ppl", False), ("mse", False), ("mae", False), ("wer", False), ("cer", False),
        ("lr", False), ("something_else", False), ("train/top1_err", False),
    ],
)
def test_higher_is_better(key: str, expected: bool) -> None:
    assert higher_is_better(key) is expected


@pytest.mark.parametrize(
    ("key", "prefix"), [("train/loss", "train"), ("loss", ""), ("val/acc/top1", "val"), ("/odd", "")]
)
def test_group_prefix(key: str, prefix: str) -> None:
    assert group_prefix(key) == prefix
