"""Hugging Face Trainer output directories: `trainer_state.json`, top-level and in `checkpoint-N/`.

An output directory is any directory under the project root (or under a directory named in
`hf_dirs` in runwise.json, or `RUNWISE_HF_DIR`) that holds `trainer_state.json` itself (written by
`trainer.save_state()`) or in `checkpoint-N/` folders (written at every checkpoint). Its id is its
path relative to the project root. `.`-folders, `wandb`, `mlruns`, `node_modules` and the like
are not searched.

Which state is read: the top-level one and the newest checkpoint's (highest N); the one with the
higher `global_step` is the latest word (a tie goes to the top-level one, written after the last
checkpoint). One that is empty, cut short or not a TrainerState is skipped with a warning and the
next (the next newest checkpoint) is read; when none is readable, a one-line SourceError.

- `log_history`: each numeric key of an entry is one series at the entry's `step` (`loss`,
  `grad_norm`, `learning_rate`, `epoch`, `eval_loss`, `eval_*` ...); NaN and Infinity (Python's
  json writes them bare) are kept. An entry with `train_runtime` is the final one train() adds: its
  values (`train_runtime`, `train_loss`, `train_samples_per_second`, `total_flos` ...) are summary
  values, not points, and `train_runtime` is the runtime (of the last train() call only, for a
  resumed run). Entries without an integer step are skipped and counted in `Run.warnings`.
- Config: the TrainerState's own `train_batch_size`, `num_train_epochs`, `max_steps`,
  `logging_steps`, `eval_steps`, `save_steps` (and `trial_params` under `trial.`), and the model's
  `config.json` (beside the state read, else top-level) under `model.`. `training_args.bin` is a
  pickle: it is never opened.
- Summary: the last value of each series, the final entry, `global_step`, `epoch`, `best_metric`,
  `best_global_step`, `best_model_checkpoint`, and `train_results.json`, `eval_results.json` and
  `all_results.json` when the output directory holds them (written by `trainer.save_metrics`).

State: "finished" when the final entry is there (train() returned) or `global_step` reached
`max_steps` (the Trainer saves a checkpoint at the last step; the final entry is only in a state
`save_state()` wrote); else "running" when a state changed within LIVE_SECONDS, or within 1.5
times the interval between the two newest checkpoints when that is longer (checkpoints can be
minutes apart); else "unknown". `max_steps` in the config gives live_status its ETA, and the two
newest checkpoints' steps and times give the step rate (`summary["_steps_per_sec"]`) while no
final entry says it.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runwise._flat import flatten
from runwise.errors import SourceError, why_unread
from runwise.model import FINISHED, LIVE_SECONDS, RUNNING, UNKNOWN, Run, RunEntry, Series, make_series
from runwise.parsers import Progress
from runwise.parsers._walk import Skipped, files_stamp, is_inside, walk

if TYPE_CHECKING:
    from runwise.config import RunwiseConfig

STATE = "trainer_state.json"
MODEL_CONFIG = "config.json"
RESULTS = ("train_results.json", "eval_results.json", "all_results.json")  # later ones win on a shared key
MAX_STATE_BYTES = 512 * 1024 * 1024  # a larger trainer_state.json is not read
MAX_SIDE_BYTES = 1024 * 1024  # config.json, *_results.json
PRUNE = frozenset({"wandb", "mlruns", "node_modules", "__pycache__", "site-packages"})
CONFIG_FIELDS = ("train_batch_size", "num_train_epochs", "max_steps", "logging_steps", "eval_steps", "save_steps")
BEST_FIELDS = ("best_metric", "best_global_step", "best_model_checkpoint")
_CHECKPOINT = re.compile(r"checkpoint-([0-9]+)$")


def _is_state(name: str) -> bool:
    return name == STATE


def checkpoint_step(d: Path) -> int | None:
    """N of a `checkpoint-N` directory, else None."""
    m = _CHECKPOINT.match(d.name)
    return int(m.group(1)) if m else None


def checkpoints(d: Path, roots: Sequence[Path] | None = None) -> list[tuple[int, Path]]:
    """(N, state file) of every `checkpoint-N/trainer_state.json` in `d`, newest (highest N) first;
    with `roots`, only those that resolve inside them (a link to outside is not followed)."""
    try:
        children = list(os.scandir(d))
    except OSError:
        return []
    out = []
    for c in children:
        n = checkpoint_step(Path(c.name))
        f = Path(c.path) / STATE
        if n is not None and f.is_file() and (roots is None or is_inside(f, roots)):
            out.append((n, f))
    return sorted(out, key=lambda t: -t[0])


def is_output_dir(d: Path) -> bool:
    """Whether `d` holds a trainer_state.json, itself or in a checkpoint-N folder."""
    return d.is_dir() and ((d / STATE).is_file() or bool(checkpoints(d)))


def discover(cfg: RunwiseConfig, notes: list[str] | None = None) -> list[RunEntry]:
    """Every output directory under the project root and the `hf_dirs`."""
    skipped = Skipped()
    found: list[Path] = []
    seen: set[str] = set()
    # the search of the whole root notes no links (those are the other sources', or no source's, business)
    listings = walk([cfg.root], cfg.roots, want=_is_state, skipped=Skipped(), show=cfg.relative, prune=PRUNE)
    listings += walk(cfg.hf_dirs, cfg.roots, want=_is_state, skipped=skipped, show=cfg.relative, prune=PRUNE)
    for listed in listings:
        if not listed.files:
            continue
        d = listed.path.parent if checkpoint_step(listed.path) is not None else listed.path
        key = os.path.realpath(d)
        if key not in seen:
            seen.add(key)
            found.append(d)
    entries = []
    for d in found:
        files = _files(d, cfg.roots)
        mtime, size = files_stamp(files)
        run_id = cfg.relative(d)
        entries.append(RunEntry(run_id, "hf", (d, *files), name=run_id, mtime=mtime, size=size,
                                extra={"name_final": True}))
    if notes is not None:
        notes.extend(skipped.notes("hf", "hf_dirs"))
    return entries


def _files(d: Path, roots: Sequence[Path]) -> list[Path]:
    """The files of output directory `d` runwise reads (those that exist, inside the roots)."""
    files = [d / STATE, *(p for _, p in checkpoints(d, roots)), *(d / n for n in RESULTS)]
    return [f for f in files if f.is_file() and is_inside(f, roots)]


def display_name(entry: RunEntry, cfg: RunwiseConfig) -> str:
    return entry.name


def refresh(entry: RunEntry, cfg: RunwiseConfig, previous: Run, progress: Progress | None = None) -> Run | None:
    return None  # a state file is rewritten whole at every save: always read in full


def load(entry: RunEntry, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    run = read_output_dir(entry.paths[0], cfg)
    run.id = entry.id
    return run


def load_file(path: Path, cfg: RunwiseConfig, progress: Progress | None = None) -> Run:
    """An output directory, a checkpoint directory (that checkpoint's state alone) or a trainer_state.json."""
    return read_output_dir(path.parent if path.is_file() else path, cfg)


# ---------------------------------------------------------------- reading


@dataclass(slots=True)
class _State:
    path: Path
    data: dict[str, Any]

    @property
    def global_step(self) -> int:
        g = self.data.get("global_step")
        return g if isinstance(g, int) and not isinstance(g, bool) else -1


def _read_state(path: Path) -> _State:
    """One trainer_state.json; ValueError (one line) when it is empty, cut short or not a TrainerState."""
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            raise ValueError(f"larger than {MAX_STATE_BYTES:,} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(str(exc.strerror or exc)) from None
    if not raw.strip():
        raise ValueError("empty file")
    try:
        data = json.loads(raw)  # the standard module: it reads the bare NaN / Infinity Python's json writes
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        cut = isinstance(exc, json.JSONDecodeError) and exc.pos >= len(raw.rstrip()) - 1
        raise ValueError("cut short (ends mid-JSON)" if cut else f"not JSON ({_line(exc)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("log_history", []), list):
        raise ValueError("not a TrainerState (no log_history list)")
    return _State(path, data)


def _line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _choose(d: Path, ckpts: list[tuple[int, Path]], cfg: RunwiseConfig, warnings: list[str]) -> _State:
    """The latest readable state of output directory `d`, whose checkpoints are `ckpts` (see the module docstring)."""
    failed: list[tuple[Path, str]] = []

    def attempt(p: Path) -> _State | None:
        try:
            return _read_state(p)
        except ValueError as exc:
            failed.append((p, str(exc)))
            return None

    top = attempt(d / STATE) if (d / STATE).is_file() and is_inside(d / STATE, cfg.roots) else None
    newest = None
    for _, p in ckpts:
        newest = attempt(p)
        if newest is not None:
            break
    states = [s for s in (top, newest) if s is not None]
    if not states:
        if failed:
            p, why = failed[0]
            raise SourceError(f"{cfg.relative(p)}: not read: {why}", path=str(p))
        raise SourceError(f"{cfg.relative(d)}: no {STATE} here or in a checkpoint-N folder", path=str(d))
    chosen = max(states, key=lambda s: (s.global_step, s is top))
    for p, why in failed:
        warnings.append(f"{cfg.relative(p)}: not read: {why}; read {cfg.relative(chosen.path)} "
                        f"(step {chosen.global_step}) instead")
    return chosen


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _read_side(path: Path, warnings: list[str], cfg: RunwiseConfig) -> dict[str, Any]:
    """A small JSON object beside the state (config.json, *_results.json); {} with a warning if unreadable."""
    try:
        if path.stat().st_size > MAX_SIDE_BYTES:
            raise ValueError(f"larger than {MAX_SIDE_BYTES:,} bytes")
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:
        warnings.append(f"{cfg.relative(path)}: not read: {why_unread(exc, limit=200)}")
        return {}
    if not isinstance(data, dict):
        warnings.append(f"{cfg.relative(path)}: not a JSON object; not read")
        return {}
    return data


def read_output_dir(d: Path, cfg: RunwiseConfig) -> Run:
    """Read one Trainer output directory (or one checkpoint directory) into a Run."""
    warnings: list[str] = []
    ckpts = checkpoints(d, cfg.roots)  # listed once: for the state to read and for the step rate
    state = _choose(d, ckpts, cfg, warnings)
    data = state.data
    columns: dict[str, tuple[list[int], list[float]]] = {}
    non_numeric: dict[str, str] = {}
    final: dict[str, Any] = {}
    no_step = 0
    for entry in data.get("log_history", []):
        if not isinstance(entry, dict):
            no_step += 1
            continue
        step = entry.get("step")
        if "train_runtime" in entry:  # the final entry train() adds: summary values, not points
            final = {k: v for k, v in entry.items() if k != "step"}
            continue
        if not isinstance(step, int) or isinstance(step, bool):
            no_step += 1
            continue
        for k, v in entry.items():
            if k == "step" or v is None:
                continue
            if _number(v):
                col = columns.setdefault(str(k), ([], []))
                col[0].append(step)
                col[1].append(float(v))
            else:
                non_numeric[str(k)] = "string" if isinstance(v, str) else type(v).__name__
    if no_step:
        warnings.append(f"{cfg.relative(state.path)}: skipped {no_step} log_history "
                        f"entr{'ies' if no_step > 1 else 'y'} without an integer step")
    history: dict[str, Series] = {k: make_series(k, s, v) for k, (s, v) in sorted(columns.items())}
    for k in history:
        non_numeric.pop(k, None)

    config: dict[str, Any] = {k: data[k] for k in CONFIG_FIELDS if _number(data.get(k))}
    if isinstance(data.get("trial_params"), dict):
        flatten({"trial": data["trial_params"]}, out=config)
    model_cfg = state.path.parent / MODEL_CONFIG
    if not model_cfg.is_file():
        model_cfg = d / MODEL_CONFIG
    if model_cfg.is_file() and is_inside(model_cfg, cfg.roots):
        config.update(flatten({"model": _read_side(model_cfg, warnings, cfg)}))

    summary: dict[str, Any] = {k: float(s.values[-1]) for k, s in history.items() if len(s)}
    summary.update(final)
    for name in RESULTS:
        if (d / name).is_file() and is_inside(d / name, cfg.roots):
            summary.update(flatten(_read_side(d / name, warnings, cfg), sep="/"))
    for k in ("global_step", "epoch", "total_flos", "num_input_tokens_seen", *BEST_FIELDS):
        v = data.get(k)
        if v is not None and (_number(v) or isinstance(v, str)):
            summary[k] = v

    newest, rate, window = _times(d, state, ckpts)
    rt: Any = final.get("train_runtime")
    runtime = float(rt) if _number(rt) and math.isfinite(rt) else None
    if runtime is None and rate is not None:
        summary["_steps_per_sec"] = rate
    ms: Any = data.get("max_steps")
    max_steps = int(ms) if _number(ms) and math.isfinite(ms) and ms > 0 else None
    reached = max_steps is not None and state.global_step >= max_steps
    notes = ""
    if final and max_steps is not None and 0 <= state.global_step < max_steps:
        notes = f"train() ended at step {state.global_step} of max_steps {max_steps} (stopped early)"
    if final or reached:
        run_state = FINISHED
    elif newest and time.time() - newest < window:
        run_state = RUNNING
    else:
        run_state = UNKNOWN
    return Run(
        id=cfg.relative(d), source="hf", path=cfg.relative(d), name="", state=run_state, notes=notes,
        config=config, summary=summary, runtime=runtime, last_write=newest or None, history=history,
        non_numeric=non_numeric, warnings=warnings, segments=[cfg.relative(state.path)],
    )


def _times(d: Path, state: _State, ckpts: list[tuple[int, Path]]) -> tuple[float, float | None, float]:
    """Newest mtime of the states, the step rate between the two newest checkpoints `ckpts[:2]` (None
    without two), and how long after its last write the run still counts as running."""
    newest = 0.0
    ck = ckpts[:2]
    for p in [d / STATE, *(p for _, p in ck), state.path]:
        try:
            newest = max(newest, p.stat().st_mtime)
        except OSError:
            continue
    rate, window = None, LIVE_SECONDS
    if len(ck) == 2:
        try:
            dt = ck[0][1].stat().st_mtime - ck[1][1].stat().st_mtime
        except OSError:
            dt = 0.0
        if dt > 0 and ck[0][0] > ck[1][0]:
            rate = (ck[0][0] - ck[1][0]) / dt
            window = max(LIVE_SECONDS, 1.5 * dt)
    return newest, rate, window
