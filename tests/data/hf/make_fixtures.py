"""Write the Hugging Face Trainer fixtures in tests/data/hf/ with the real `transformers.Trainer`.

Requirements (not runwise's): Python 3.11, torch 2.13.0 (CPU), transformers 5.24.0, accelerate 1.15.0.
Run from anywhere:  python tests/data/hf/make_fixtures.py
It rewrites tests/data/hf/project/ and tests/data/hf/expected.json.

The model is a tiny BertForSequenceClassification built from a small BertConfig (nothing is
downloaded), trained on random token ids with random labels, on the CPU, with max_steps=40,
logging_steps=2, evaluation and a checkpoint every 10 steps, save_total_limit=2 and
load_best_model_at_end on eval_loss. Output directories are given relative to the project
directory (the script runs in it), so `best_model_checkpoint` holds no machine path.

Runs (output directories under project/):
- outputs/bert-tiny-lr3e-5  finished; trainer.save_state() writes the top-level trainer_state.json
  (with the final train_runtime entry) and save_metrics writes train/eval/all_results.json
- outputs/bert-tiny-lr1e-4  killed: a callback raises at step 25, so checkpoint-10 and checkpoint-20
  are all there is (no top-level state, no final entry)
- runs/exp 2                killed at step 25 like the one above, then a second Trainer resumes with
  train(resume_from_checkpoint="runs/exp 2/checkpoint-20") to step 40; save_state at the end
- runs/exp-nan              a callback's on_log sets the loss the Trainer just appended to
  state.log_history to NaN at step 12 (the Trainer then writes it with json.dumps, as `NaN`);
  it runs to max_steps but save_state is not called: the newest checkpoint is the last word

To keep the fixtures small, every file but trainer_state.json, config.json and *_results.json is
DELETED after training: model weights (*.safetensors, *.bin), optimizer.pt, scheduler.pt,
rng_state.pth, training_args.bin (a pickle runwise never opens).

expected.json holds, per run, what `TrainerState.load_from_json` reads back from every
trainer_state.json (top-level and each checkpoint): global_step, max_steps, the step counts,
best_metric, best_global_step, best_model_checkpoint and log_history; plus config.json and the
*_results.json files as json.load reads them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import TrainerState

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "project"
KEEP = ("trainer_state.json", "config.json", "all_results.json", "train_results.json", "eval_results.json")


class Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, 100, (n, 16), generator=g)
        self.labels = (self.ids[:, 0] % 2).long()  # learnable: the parity of the first token

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(16, dtype=torch.long), "labels": self.labels[i]}


class Kill(TrainerCallback):
    """Raise at a step: the process dies mid-training as a kill would leave it (checkpoints only)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step == self.at:
            raise KeyboardInterrupt(f"killed at step {self.at}")


class NanLoss(TrainerCallback):
    """Set the training loss the Trainer just logged at `at` to NaN."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        last = state.log_history[-1]
        if state.global_step == self.at and "loss" in last:
            last["loss"] = float("nan")


def trainer(out: str, lr: float, callbacks: list[TrainerCallback]) -> Trainer:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=2)
    args = TrainingArguments(
        output_dir=out, max_steps=40, per_device_train_batch_size=8, per_device_eval_batch_size=16,
        learning_rate=lr, logging_steps=2, eval_strategy="steps", eval_steps=10, save_steps=10,
        save_total_limit=2, load_best_model_at_end=True, metric_for_best_model="eval_loss", report_to="none",
        use_cpu=True, seed=0, data_seed=0, dataloader_num_workers=0, disable_tqdm=True,
    )
    return Trainer(model=BertForSequenceClassification(cfg), args=args, train_dataset=Data(256, 1),
                   eval_dataset=Data(64, 2), callbacks=callbacks)


def killed(out: str, lr: float) -> None:
    try:
        trainer(out, lr, [Kill(25)]).train()
    except KeyboardInterrupt:
        pass


def strip(d: Path) -> None:
    for p in sorted(d.rglob("*"), reverse=True):
        if p.is_file() and p.name not in KEEP:
            p.unlink()


def read_state(path: Path) -> dict[str, object]:
    s = TrainerState.load_from_json(str(path))
    keep = ("epoch", "global_step", "max_steps", "logging_steps", "eval_steps", "save_steps", "train_batch_size",
            "num_train_epochs", "num_input_tokens_seen", "total_flos", "best_metric", "best_global_step",
            "best_model_checkpoint", "log_history")
    return {k: v for k, v in dataclasses.asdict(s).items() if k in keep}


def main() -> None:
    shutil.rmtree(PROJECT, ignore_errors=True)
    PROJECT.mkdir(parents=True)
    os.chdir(PROJECT)

    t = trainer("outputs/bert-tiny-lr3e-5", 3e-5, [])
    result = t.train()
    t.save_model()
    t.save_metrics("train", result.metrics)
    t.save_metrics("eval", t.evaluate())
    t.save_state()

    killed("outputs/bert-tiny-lr1e-4", 1e-4)

    killed("runs/exp 2", 1e-3)
    t = trainer("runs/exp 2", 1e-3, [])
    result = t.train(resume_from_checkpoint="runs/exp 2/checkpoint-20")
    t.save_model()
    t.save_metrics("train", result.metrics)
    t.save_state()

    trainer("runs/exp-nan", 1e-3, [NanLoss(12)]).train()

    expected: dict[str, object] = {}
    for out in ("outputs/bert-tiny-lr3e-5", "outputs/bert-tiny-lr1e-4", "runs/exp 2", "runs/exp-nan"):
        d = PROJECT / out
        strip(d)
        run: dict[str, object] = {"states": {}, "files": {}}
        for f in sorted(d.rglob("trainer_state.json")):
            run["states"][f.parent.relative_to(d).as_posix()] = read_state(f)  # type: ignore[index]
        for f in sorted(d.rglob("*.json")):
            if f.name != "trainer_state.json":
                run["files"][f.relative_to(d).as_posix()] = json.loads(f.read_text())  # type: ignore[index]
        expected[out] = run
    text = json.dumps(expected, sort_keys=True)
    assert "NaN" in text  # the planted NaN, written by json.dumps
    (HERE / "expected.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
