"""Index rows of large W&B and TensorBoard runs read at their ends only (runs._ends_run).

The runs are real: a W&B run written offline by the wandb client (skipped without wandb), event files
written by tensorboardX. LIST_LOAD_BYTES and the ends readers' head and tail sizes are made small, so
these small runs take the path a run of hundreds of MB takes. The partial row must agree with the row
of a whole read wherever it says something (state, steps, final values), leave out what the ends do not
tell, and give way to a whole read whenever the ends cannot be trusted.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from runwise import index, runs
from runwise.config import RunwiseConfig
from runwise.model import CRASHED, FINISHED, UNKNOWN, RunEntry
from runwise.parsers.tensorboard import ends as tb_ends
from runwise.parsers.wandb import ends as wb_ends
from runwise.parsers.wandb.log import BLOCK, CHUNK_HEADER, FIRST, FULL, HEADER_LEN, LAST, MIDDLE
from tests.conftest import write_jsonl

ROWS = 2000
SCRIPT = r"""
import math, wandb
run = wandb.init(id="ends0001", name="ends-run", project="runwise-tests", config={"lr": 0.1},
                 settings=wandb.Settings(host="test-host", x_disable_meta=True, x_disable_stats=True))
run.log({"once": 7.0}, step=0)
for s in range(ROWS):
    row = {"loss": 1 / (s + 1), "acc": s / ROWS, "opt": {"lr": 0.1 * (1 - s / ROWS)}}
    if s % 7 == 3:
        row["val/loss"] = math.sin(s)
    if s % 97 == 5:
        row["rare"] = s * 0.5
    if s % 150 == 17:  # about 40 KB: its records span two blocks (FIRST, MIDDLE, LAST chunks)
        row["blob"] = "x" * 40_000
    run.log(row, step=s)
run.finish()
""".replace("ROWS", str(ROWS))


def _age(root: Path, seconds: float = 600) -> None:
    t = time.time() - seconds
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (t, t))


def _cfg(root: Path) -> RunwiseConfig:
    runs.clear_cache()  # a new process: nothing in memory
    return RunwiseConfig.load(root, env={"RUNWISE_CACHE_DIR": str(root / "cache")})


def _entry(cfg: RunwiseConfig) -> RunEntry:
    (entry,) = runs.discover(cfg)[0]
    return entry


def _whole(cfg: RunwiseConfig, entry: RunEntry) -> index.Row:
    row = runs.index_rows([entry], cfg, whole=True)[entry.key]
    assert isinstance(row, index.Row) and not row.partial
    return row


def _ends(cfg: RunwiseConfig, entry: RunEntry) -> index.Row:
    got = runs._ends_run(entry, cfg)
    assert got is not None, "the ends reader declined"
    return index.partial_row(got[0], entry.key, tail=got[1])


def _agree(ends: index.Row, whole: index.Row) -> None:
    """The partial row says only what the whole read says."""
    assert ends.partial
    same = ("name", "state", "first_step", "last_step", "runtime", "config_digest", "tags")
    assert [getattr(ends, f) for f in same] == [getattr(whole, f) for f in same]
    assert ends.metrics and set(ends.metrics) <= set(whole.metrics)
    for name, m in ends.metrics.items():
        w = whole.metrics[name]
        assert (m.final, m.final_step) == (w.final, w.final_step), name
        assert m.last == w.last or (math.isnan(m.last) and math.isnan(w.last)), name
        assert m.count == 0 and m.min is None and m.spark is None


# ---------------------------------------------------------------- W&B


@pytest.fixture(scope="module")
def wandb_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of a real finished offline run (about 1.5 MB of log)."""
    pytest.importorskip("wandb")
    work = tmp_path_factory.mktemp("wandb_ends")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    data = Path(tempfile.gettempdir()) / "runwise-test-wandb-data"
    env.update(WANDB_MODE="offline", WANDB_DIR=str(work), WANDB_SILENT="true", WANDB_DATA_DIR=str(data),
               WANDB_CACHE_DIR=str(data / "cache"), WANDB_CONFIG_DIR=str(data / "config"),
               WANDB_DISABLE_GIT="true", WANDB_DISABLE_CODE="true", WANDB_CONSOLE="off")
    subprocess.run([sys.executable, "-c", SCRIPT], cwd=work, env=env, check=True, timeout=600,
                   capture_output=True)
    return next((work / "wandb").glob("offline-run-*"))


@pytest.fixture
def wandb_project(wandb_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project holding a copy of the run, which counts as large."""
    root = tmp_path / "proj"
    shutil.copytree(wandb_source, root / "wandb" / wandb_source.name)
    _age(root)
    monkeypatch.setattr(wb_ends, "HEAD_BYTES", 2 * BLOCK)
    monkeypatch.setattr(wb_ends, "TAIL_BYTES", 6 * BLOCK)
    monkeypatch.setattr(runs, "LIST_LOAD_BYTES", 4 * BLOCK)
    return root


def _log(root: Path) -> Path:
    return next((root / "wandb").glob("offline-run-*/*.wandb"))


def test_wandb_row_from_the_ends_agrees_with_the_whole_read(wandb_project: Path, reads: list[str]) -> None:
    cfg = _cfg(wandb_project)
    entry = _entry(cfg)
    assert entry.size > 8 * BLOCK + 6 * BLOCK  # a middle that the ends do not read
    ends = runs.index_rows([entry], cfg)[entry.key]
    assert reads == []  # not read whole
    assert isinstance(ends, index.Row)
    whole = _whole(cfg, entry)
    assert reads == [entry.key]
    _agree(ends, whole)
    assert ends.state == FINISHED and ends.first_step == 0 and ends.last_step == ROWS - 1
    assert ends.name == "ends-run"
    assert {"loss", "acc", "opt.lr", "val/loss"} <= set(ends.metrics)
    # logged at step 0 only: the head has it, but it may have gone on in the middle: left out
    assert "once" in whole.metrics and "once" not in ends.metrics
    assert whole.metrics["rare"].final_step == 1945 and ends.metrics["rare"].final_step == 1945


def test_wandb_tail_found_from_any_block(wandb_project: Path) -> None:
    """Wherever the tail starts (in a block whose first chunk ends a record or goes on with a blob), its
    first record is found, and the row is the same."""
    cfg = _cfg(wandb_project)
    entry = _entry(cfg)
    whole = _whole(cfg, entry)
    raw = _log(wandb_project).read_bytes()
    kinds = set()
    for b in range(4 * BLOCK, len(raw) - 2 * BLOCK, BLOCK):
        kinds.add(raw[b + 6])
        runs.clear_cache()
        wb_ends.TAIL_BYTES = len(raw) - b - 100  # pytest's monkeypatch restores it
        _agree(_ends(cfg, entry), whole)
    assert {MIDDLE, LAST} <= kinds  # blocks start mid-record: in a blob's middle, at a record's end


def test_wandb_record_start_skips_the_end_of_a_split_record(wandb_project: Path) -> None:
    raw = _log(wandb_project).read_bytes()
    mid = [b for b in range(BLOCK, len(raw), BLOCK) if raw[b + 6] not in (FULL, FIRST)]
    assert mid
    with _log(wandb_project).open("rb") as fp:
        for b in mid:
            start = wb_ends.record_start(fp, b + 10, len(raw))
            assert start is not None and b < start < b + 2 * BLOCK and raw[start + 6] in (FULL, FIRST)
        assert wb_ends.record_start(fp, HEADER_LEN, len(raw)) == HEADER_LEN


def test_wandb_run_killed_mid_record(wandb_project: Path, reads: list[str]) -> None:
    """A run cut off inside a record (no exit record): crashed, from the ends as from the whole read."""
    log = _log(wandb_project)
    raw = log.read_bytes()
    at = len(raw) - 3 * BLOCK - 1000
    while raw[at + 6] != FULL:  # a chunk header near there, then cut inside its payload
        at += 1
    log.write_bytes(raw[: at + CHUNK_HEADER + 5])
    _age(wandb_project)
    cfg = _cfg(wandb_project)
    entry = _entry(cfg)
    ends = _ends(cfg, entry)
    whole = _whole(cfg, entry)
    _agree(ends, whole)
    assert ends.state == CRASHED and whole.last_step is not None and whole.last_step < ROWS - 1


def test_wandb_damaged_tail_is_read_whole(wandb_project: Path, reads: list[str]) -> None:
    log = _log(wandb_project)
    raw = bytearray(log.read_bytes())
    raw[len(raw) - BLOCK - 200] ^= 0xFF  # a flipped byte in the tail
    log.write_bytes(bytes(raw))
    _age(wandb_project)
    cfg = _cfg(wandb_project)
    entry = _entry(cfg)
    assert runs._ends_run(entry, cfg) is None
    row = runs.index_rows([entry], cfg)[entry.key]
    assert isinstance(row, index.Row) and not row.partial and reads == [entry.key]


def test_wandb_resumed_run_is_read_whole(wandb_project: Path) -> None:
    d = next((wandb_project / "wandb").glob("offline-run-*"))
    shutil.copytree(d, d.with_name(d.name + "-1"))  # a second segment of the same run id
    cfg = _cfg(wandb_project)
    entry = _entry(cfg)
    assert len(entry.paths) == 2
    assert runs._ends_run(entry, cfg) is None and wb_ends.ends_run(entry, cfg) is None


# ---------------------------------------------------------------- TensorBoard

STEPS = 6000


def _write_tb(run_dir: Path, *, diverge: bool = False) -> Path:
    """Tags at different cadences: a loss every step, an lr every 10, an eval every 250, one at step 0
    only; with `diverge`, the loss is NaN for the last 300 steps."""
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(run_dir)) as w:
        w.add_scalar("once", 3.0, 0)
        for i in range(STEPS):
            loss = math.nan if diverge and i >= STEPS - 300 else 2.0 * math.exp(-i / 2000) + 0.001 * (i % 7)
            w.add_scalar("train/loss", loss, i)
            if i % 10 == 0:
                w.add_scalar("lr", 1e-3 * (1 - i / STEPS), i)
            if i % 250 == 0:
                w.add_scalar("eval/acc", i / STEPS, i)
    _age(run_dir)
    (path,) = run_dir.glob("events.out.tfevents.*")
    return path


@pytest.fixture
def tb_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    _write_tb(root / "runs" / "big")
    monkeypatch.setattr(tb_ends, "HEAD_BYTES", 8 * 1024)
    monkeypatch.setattr(tb_ends, "TAIL_BYTES", 40 * 1024)
    monkeypatch.setattr(runs, "LIST_LOAD_BYTES", 64 * 1024)
    return root


def _events(root: Path) -> Path:
    (path,) = (root / "runs" / "big").glob("events.out.tfevents.*")
    return path


def test_tensorboard_row_from_the_ends_agrees_with_the_whole_read(tb_project: Path, reads: list[str]) -> None:
    cfg = _cfg(tb_project)
    entry = _entry(cfg)
    assert entry.size > 3 * (8 + 40) * 1024
    ends = runs.index_rows([entry], cfg)[entry.key]
    assert reads == []
    assert isinstance(ends, index.Row)
    again = runs.index_rows([entry], _cfg(tb_project))[entry.key]
    assert again == ends and reads == []  # the second listing answers from the index
    whole = _whole(cfg, entry)
    _agree(ends, whole)
    assert ends.state == UNKNOWN and ends.first_step == 0 and ends.last_step == STEPS - 1
    assert set(ends.metrics) == {"train/loss", "lr", "eval/acc"}  # "once" is in the head only
    assert ends.metrics["eval/acc"].final_step == 5750 and ends.metrics["lr"].final_step == 5990


def test_tensorboard_tail_found_from_any_offset(tb_project: Path) -> None:
    cfg = _cfg(tb_project)
    entry = _entry(cfg)
    whole = _whole(cfg, entry)
    size = _events(tb_project).stat().st_size
    for tail in range(40 * 1024, 40 * 1024 + 97):  # every offset within two records
        runs.clear_cache()
        tb_ends.TAIL_BYTES = tail
        _agree(_ends(cfg, entry), whole)
    with _events(tb_project).open("rb") as fp:
        assert tb_ends.record_start(fp, 0, size) == 0


def test_tensorboard_writer_killed_mid_record(tb_project: Path) -> None:
    path = _events(tb_project)
    path.write_bytes(path.read_bytes()[:-20])
    _age(tb_project)
    cfg = _cfg(tb_project)
    entry = _entry(cfg)
    ends = _ends(cfg, entry)
    whole = _whole(cfg, entry)
    _agree(ends, whole)
    assert ends.state == CRASHED


def test_tensorboard_damaged_tail_is_read_whole(tb_project: Path, reads: list[str]) -> None:
    path = _events(tb_project)
    raw = bytearray(path.read_bytes())
    raw[len(raw) - 5000] ^= 0x01
    path.write_bytes(bytes(raw))
    _age(tb_project)
    cfg = _cfg(tb_project)
    entry = _entry(cfg)
    assert runs._ends_run(entry, cfg) is None
    row = runs.index_rows([entry], cfg)[entry.key]
    assert isinstance(row, index.Row) and not row.partial and reads == [entry.key]


def test_a_tail_of_nan_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss is NaN all through the tail: its last finite value is earlier, so only a whole read tells it."""
    root = tmp_path / "proj"
    _write_tb(root / "runs" / "big", diverge=True)
    monkeypatch.setattr(tb_ends, "HEAD_BYTES", 8 * 1024)
    monkeypatch.setattr(tb_ends, "TAIL_BYTES", 10 * 1024)
    monkeypatch.setattr(runs, "LIST_LOAD_BYTES", 64 * 1024)
    cfg = _cfg(root)
    entry = _entry(cfg)
    assert runs._ends_run(entry, cfg) is None
    row = runs.index_rows([entry], cfg)[entry.key]
    assert isinstance(row, index.Row) and not row.partial
    assert row.metrics["train/loss"].final_step == STEPS - 301 and math.isnan(row.metrics["train/loss"].last)


def test_a_restarted_writer_is_read_whole(tb_project: Path) -> None:
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(tb_project / "runs" / "big"), filename_suffix=".restart") as w:  # a second file
        w.add_scalar("train/loss", 0.1, 100)
    cfg = _cfg(tb_project)
    entry = _entry(cfg)
    assert len(entry.paths) == 2
    assert runs._ends_run(entry, cfg) is None


def test_hparams_metrics_are_left_out_unless_the_tail_has_them(tb_project: Path) -> None:
    """add_hparams writes its metric into a child directory; the run's own file could log that tag in its
    middle, where the ends do not look: the partial row leaves it out, and takes the config."""
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(tb_project / "runs" / "big"), filename_suffix=".hp") as w:
        w.add_hparams({"lr": 0.1, "layers": 4}, {"hparam/acc": 0.9})
    (own,) = [p for p in (tb_project / "runs" / "big").iterdir() if p.name.endswith(".hp")]
    own.unlink()  # keep the run at one event file of its own: only the child directory's
    _age(tb_project)
    cfg = _cfg(tb_project)
    entry = _entry(cfg)
    assert len(entry.paths) == 2
    ends, whole = _ends(cfg, entry), _whole(cfg, entry)
    _agree(ends, whole)
    assert "hparam/acc" in whole.metrics and "hparam/acc" not in ends.metrics


# ---------------------------------------------------------------- JSONL


def test_jsonl_metrics_the_tail_does_not_hold_are_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           reads: list[str]) -> None:
    rows: list[dict[str, Any]] = [{"step": s, "warmup/lr": s * 1e-4} for s in range(50)]  # the head only
    rows += [{"step": s, "train/loss": 1 / (s + 1)} for s in range(30_000)]
    path = write_jsonl(tmp_path / "logs" / "big.jsonl", rows, age_s=600)
    monkeypatch.setattr(runs, "LIST_LOAD_BYTES", path.stat().st_size // 4)
    cfg = _cfg(tmp_path)
    entry = _entry(cfg)
    ends = runs.index_rows([entry], cfg)[entry.key]
    assert isinstance(ends, index.Row) and reads == []
    whole = _whole(cfg, entry)
    _agree(ends, whole)
    assert set(whole.metrics) == {"warmup/lr", "train/loss"} and set(ends.metrics) == {"train/loss"}


def test_jsonl_tail_of_nan_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"step": s, "train/loss": 1 / (s + 1) if s < 30_000 else math.nan} for s in range(60_000)]
    path = write_jsonl(tmp_path / "logs" / "big.jsonl", rows, age_s=600)  # json.dumps writes NaN
    monkeypatch.setattr(runs, "LIST_LOAD_BYTES", path.stat().st_size // 4)
    cfg = _cfg(tmp_path)
    entry = _entry(cfg)
    assert runs._ends_run(entry, cfg) is None
    row = runs.index_rows([entry], cfg)[entry.key]
    assert isinstance(row, index.Row) and not row.partial and row.metrics["train/loss"].final_step == 29_999
