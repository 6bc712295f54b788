"""Recognise metric roles (loss, validation loss, gradient norm ...) from common key names.

Matching is case-insensitive and tiered: the configured `preferred` key, then an exact alias
(earlier aliases win), then a key ending in "/<alias>" (e.g. "model/train/loss"), then a loose
pattern for roles whose names vary most (throughput, learning rate). Training roles never match
validation keys, and validation roles only match validation keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Each role and its key names, the exact aliases in order of preference. The one list of roles.
_ALIASES: dict[str, tuple[str, ...]] = {
    "loss": (
        "loss", "train/loss", "training_loss", "train_loss", "train/loss_step", "trainer/loss",
        "loss/train", "training/loss", "train/loss_epoch", "train_loss_step", "train_loss_epoch",
        "epoch_loss", "train/epoch_loss", "train/total_loss", "total_loss", "losses/train",
        "train/avg_loss", "avg_loss", "train/lm_loss", "lm_loss",
    ),
    "val_loss": (
        "val/loss", "val_loss", "eval/loss", "eval_loss", "validation/loss", "valid/loss",
        "validation_loss", "valid_loss", "loss/val", "loss/validation", "loss/valid", "loss/eval",
        "val/loss_epoch", "val_loss_epoch", "val/total_loss", "dev/loss", "dev_loss",
        "test/loss", "test_loss", "loss/test",
    ),
    "accuracy": (
        "accuracy", "acc", "train/acc", "train/accuracy", "train_acc", "train_accuracy",
        "training_accuracy", "training/accuracy", "acc/train", "accuracy/train", "train/acc_step",
        "train_acc_step", "train/acc_epoch", "train_acc_epoch", "train/top1", "top1",
    ),
    "val_accuracy": (
        "val/acc", "val/accuracy", "val_acc", "val_accuracy", "eval/accuracy", "eval/acc",
        "eval_accuracy", "eval_acc", "validation/accuracy", "validation/acc", "valid/acc",
        "valid/accuracy", "validation_accuracy", "valid_acc", "acc/val", "accuracy/val",
        "accuracy/validation", "val/top1", "val_acc_epoch", "dev/acc", "dev/accuracy",
        "test/acc", "test/accuracy", "test_acc", "test_accuracy", "accuracy/test",
    ),
    "grad_norm": (
        "grad_norm", "train/grad_norm", "gradient_norm", "grad/norm", "global_grad_norm",
        "train/gradient_norm", "train/global_grad_norm", "grad_norm/total", "grad_norm_total",
        "total_grad_norm", "gradients/norm", "optim/grad_norm", "optimizer/grad_norm",
        "grad_l2_norm", "grad_2.0_norm_total", "norm/grad", "gradnorm",
    ),
    "throughput": (
        "throughput", "steps_per_sec", "steps_per_second", "samples_per_sec", "samples_per_second",
        "tokens_per_sec", "tokens_per_second", "it/s", "its", "examples_per_sec",
        "examples_per_second", "train/steps_per_second", "train/samples_per_second",
        "train/tokens_per_second", "train/throughput", "perf/throughput", "perf/tokens_per_sec",
        "perf/samples_per_sec", "perf/steps_per_sec", "throughput/tokens_per_sec", "tok/s",
        "tokens/s", "samples/s", "tps",
    ),
    "lr": (
        "lr", "learning_rate", "train/lr", "train/learning_rate", "optimizer/lr", "optim/lr",
        "trainer/lr", "opt/lr", "lr/group0", "lr/pg0", "lr_0", "learning-rate", "lr-adam",
        "lr-adamw", "lr-sgd",
    ),
}

ROLES = tuple(_ALIASES)  # ("loss", "val_loss", "accuracy", "val_accuracy", "grad_norm", "throughput", "lr")
_VALIDATION_ROLES = frozenset(r for r in ROLES if r.startswith("val_"))

# Loose fallbacks for names that vary too much to list (Lightning's "lr-AdamW/pg1", "perf/...").
_PATTERNS: dict[str, re.Pattern[str]] = {
    "throughput": re.compile(r"(per_sec|per_second|throughput|/s$|_per_s$|(^|/)(tps|mfu)$)"),
    "lr": re.compile(r"(^|/)(lr|learning_rate)([-_/]|$)"),
}

_VAL_SEGMENTS = frozenset({"val", "eval", "valid", "validation", "test", "dev"})
_VAL_PREFIXES = ("val/", "eval/", "valid/", "validation/", "test/", "val_", "eval_", "valid_",
                 "validation_", "test_")
_SEPARATORS = "/_.-"

_HIGHER = frozenset({
    "acc", "accuracy", "top1", "top5", "f1", "auc", "auroc", "auprc", "bleu", "rouge", "rouge1",
    "rouge2", "rougel", "reward", "rewards", "return", "returns", "precision", "recall", "map",
    "ap", "iou", "miou", "score", "throughput", "tps", "mfu", "r2", "dice", "ndcg", "mrr", "psnr",
    "ssim", "success", "winrate", "em",
})
_LOWER = frozenset({
    "loss", "losses", "error", "err", "perplexity", "ppl", "mse", "mae", "rmse", "wer", "cer",
    "nll", "kl", "fid", "latency", "regret", "cost", "bpb", "bpc", "time", "duration",
})
_RATE_SUFFIX = re.compile(r"(per_sec|per_second|/s|_per_s)$")
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")


def find_metric(keys: Iterable[str], role: str, *, preferred: str | None = None) -> str | None:
    """Return the key among `keys` that plays `role` (one of ROLES), or None if nothing fits."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    key_list = list(keys)
    if preferred:
        if preferred in key_list:
            return preferred
        folded = [k for k in key_list if k.lower() == preferred.lower()]
        if folded:
            return folded[0]
    validation = role in _VALIDATION_ROLES
    candidates = [k for k in key_list if is_validation(k) == validation]
    lowered = [k.lower() for k in candidates]
    aliases = _ALIASES[role]
    rank = {alias: i for i, alias in enumerate(aliases)}

    best: tuple[int, int, str] | None = None
    for key, low in zip(candidates, lowered, strict=True):
        if low in rank:
            score = (rank[low], len(key), key)
            best = score if best is None or score < best else best
    if best is not None:
        return best[2]
    for key, low in zip(candidates, lowered, strict=True):
        for alias in aliases:
            if low.endswith("/" + alias):
                score = (rank[alias], len(key), key)
                best = score if best is None or score < best else best
                break
    if best is not None:
        return best[2]
    pattern = _PATTERNS.get(role)
    if pattern is not None:
        loose = sorted((len(k), k) for k, low in zip(candidates, lowered, strict=True) if pattern.search(low))
        if loose:
            return loose[0][1]
    return None


def is_validation(key: str, validation_prefixes: Iterable[str] = ()) -> bool:
    """True for validation/evaluation keys: "val/loss", "eval_acc", "Loss/val", configured prefixes."""
    low = key.lower()
    if low.startswith(_VAL_PREFIXES):
        return True
    for prefix in validation_prefixes:
        p = prefix.lower()
        if not p:
            continue
        if low == p or (low.startswith(p) and (p[-1] in _SEPARATORS or low[len(p)] in _SEPARATORS)):
            return True
    parts = low.split("/")
    # "Loss/val", "model/val/loss": a validation word as a path segment (the metric's own name aside)
    return any(part in _VAL_SEGMENTS for part in parts[1:]) or any(
        part in _VAL_SEGMENTS or part.startswith(_VAL_PREFIXES[5:]) for part in parts[:-1]
    )


def higher_is_better(key: str) -> bool:
    """Heuristic direction of a metric from its name: accuracy-like True, loss-like False (default False)."""
    low = key.lower()
    if _RATE_SUFFIX.search(low):
        return True
    for token in reversed([t for t in _TOKEN_SPLIT.split(low) if t]):
        stem = token.rstrip("0123456789") or token
        if token in _HIGHER or stem in _HIGHER:
            return True
        if token in _LOWER or stem in _LOWER:
            return False
    return False


def group_prefix(key: str) -> str:
    """The section a key belongs to: the part before its first "/" ("train/loss" -> "train", "loss" -> "")."""
    head, sep, _ = key.partition("/")
    return head if sep else ""
