"""A W&B log read in parts by child processes must read exactly like one read in one process.

The log is a real offline run written here by the wandb client (skipped without wandb), with rows
big enough to span several blocks. Windows are made one block long, so any block boundary is a
split point; the children get that window size on their command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runwise.parsers.wandb import log as wlog
from runwise.parsers.wandb import segment, workers
from runwise.parsers.wandb.live import LogState
from runwise.parsers.wandb.log import BLOCK, FIRST, FULL, MIDDLE

pytest.importorskip("wandb")

ROWS = 1500
SCRIPT = r"""
import math, sys, wandb
run = wandb.init(id="wrk00001", name="workers-run", project="runwise-tests", config={"lr": 0.1},
                 settings=wandb.Settings(host="test-host", x_disable_meta=True, x_disable_stats=True))
for s in range(ROWS):
    row = {"loss": 1 / (s + 1), "acc": s / ROWS, "opt": {"lr": 0.1 * (1 - s / ROWS)}, "epoch": s // 500}
    if s % 7 == 3:
        row["val/loss"] = math.sin(s)
    if s % 400 == 17:  # a row of about 100 KB: its records span four blocks
        row["blob"] = "x" * 100_000
    if s % 300 == 5:
        row["note"] = f"note {s}"
    run.log(row, step=s)
    if s % 100 == 0:
        print(f"step {s}", flush=True)
    if s == 700:
        run.config.update({"late": s})
run.summary["best"] = 0.5
run.finish()
""".replace("ROWS", str(ROWS))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of a real offline run (about 0.7 MB of log)."""
    work = tmp_path_factory.mktemp("wandb_workers")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    data = Path(tempfile.gettempdir()) / "runwise-test-wandb-data"
    env.update(WANDB_MODE="offline", WANDB_DIR=str(work), WANDB_SILENT="true", WANDB_DATA_DIR=str(data),
               WANDB_CACHE_DIR=str(data / "cache"), WANDB_CONFIG_DIR=str(data / "config"),
               WANDB_DISABLE_GIT="true", WANDB_DISABLE_CODE="true")
    subprocess.run([sys.executable, "-c", SCRIPT], cwd=work, env=env, check=True, timeout=600,
                   capture_output=True)
    return next((work / "wandb").glob("offline-run-*"))


@pytest.fixture
def run_dir(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the run to damage or cut; windows of one block everywhere."""
    monkeypatch.setattr(wlog, "WINDOW", BLOCK)
    d = tmp_path / source.name
    shutil.copytree(source, d)
    return d


def log_of(d: Path) -> Path:
    return next(d.glob("*.wandb"))


def block_starts(raw: bytes) -> dict[int, int]:
    """Block offset -> type of its first chunk (real bytes walked)."""
    out = {}
    for b in range(BLOCK, len(raw) - 7, BLOCK):
        out[b] = raw[b + 6]
    return out


def snapshot(seg: segment.Segment) -> dict[str, Any]:
    """Everything a read leaves: the Segment and the state a later read of the grown file goes on from."""
    out: dict[str, Any] = {f: getattr(seg, f) for f in (
        "id", "info", "config", "summary", "non_numeric", "output", "start_time", "last_time", "runtime",
        "exit_code", "state", "damage", "warnings", "size")}
    out["history"] = {k: (s.tolist(), v.tobytes()) for k, (s, v) in seg.history.items()}
    out["keys"] = list(seg.history)
    st = seg.resume
    if st is not None:
        c = st.cols
        out["resume"] = (st.cursor, st.damage, st.mark, st.others.info, st.others.config, st.others.output,
                         st.others.start_time, st.others.exit_code, st.others.exit_runtime,
                         st.others.output_time, c.kinds, c.media, c.summary, c.removed, c.others, c.last_step,
                         c.rows, c.undecodable, c.numbered, list(c.steps),
                         {k: (np.concatenate(c.steps[k]).tolist(), np.concatenate(c.values[k]).tobytes())
                          for k in c.steps})
    return out


def single_seg(d: Path) -> segment.Segment:
    """A read in this process only, whatever the size."""
    log = log_of(d)
    with log.open("rb") as fp:
        return segment._scan(fp, d, log, LogState(log), None, log.stat().st_size)


def single(d: Path) -> dict[str, Any]:
    return snapshot(single_seg(d))


def split_read(d: Path, cuts: list[int], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return snapshot(split_seg(d, cuts, monkeypatch))


def split_seg(d: Path, cuts: list[int], monkeypatch: pytest.MonkeyPatch) -> segment.Segment:
    seen: list[list[int]] = []
    real = workers.read_parts

    def spy(path: str, cuts_: list[int], **kw: Any) -> Any:
        seen.append(cuts_)
        return real(path, cuts_, **kw)

    monkeypatch.setattr(workers, "split", lambda size, window=None: cuts)
    monkeypatch.setattr(workers, "read_parts", spy)
    got = segment.read_log(d, log_of(d))
    assert seen == [cuts]
    return got


def middles(raw: bytes) -> list[int]:
    """Blocks that begin in the middle of a record spanning three blocks or more."""
    return [b for b, t in block_starts(raw).items() if t == MIDDLE]


def spanning(raw: bytes) -> list[int]:
    """Blocks that begin inside a split record (their first chunk is neither FULL nor FIRST)."""
    return [b for b, t in block_starts(raw).items() if t not in (FULL, FIRST, 0)]


def test_fixture_has_records_spanning_blocks(run_dir: Path) -> None:
    raw = log_of(run_dir).read_bytes()
    span = spanning(raw)
    assert len(raw) > 20 * BLOCK
    assert len(span) >= 6
    assert len(middles(raw)) >= 3


@pytest.mark.parametrize("which", ["first-span", "long-span", "many"])
def test_split_read_equals_single_read(run_dir: Path, monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    raw = log_of(run_dir).read_bytes()
    span = spanning(raw)
    long = middles(raw)[1]
    cuts = {"first-span": [0, span[0]], "long-span": [0, long, long + BLOCK],
            "many": [0, BLOCK, span[1], span[1] + 2 * BLOCK, (len(raw) // BLOCK) * BLOCK]}[which]
    want = single(run_dir)
    assert want["damage"] == wlog.Damage() and len(want["history"]["loss"][0]) == ROWS
    assert split_read(run_dir, cuts, monkeypatch) == want


def test_big_log_goes_parallel_by_itself(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    size = log_of(run_dir).stat().st_size
    monkeypatch.setattr(workers, "PARALLEL_BYTES", size // 3)
    cuts = workers.split(size)
    assert len(cuts) == min(os.cpu_count() or 1, 4) and all(c % BLOCK == 0 for c in cuts)
    if len(cuts) == 1:
        pytest.skip("one CPU: no split")
    called: list[int] = []
    real = workers.read_parts
    monkeypatch.setattr(workers, "read_parts", lambda *a, **k: called.append(1) or real(*a, **k))
    got = snapshot(segment.read_log(run_dir, log_of(run_dir)))
    assert called and got == single(run_dir)


@pytest.mark.parametrize("child", [
    "import sys; sys.exit(3)",  # dies
    "import sys; sys.stdout.buffer.write(b'garbage')",  # not a pickle
    "import pickle, sys; sys.stdout.buffer.write(pickle.dumps(42))",  # a pickle of something else
    "import time; time.sleep(120)",  # hangs: killed after WAIT_SECONDS
])
def test_child_that_fails_is_read_here(run_dir: Path, monkeypatch: pytest.MonkeyPatch, child: str) -> None:
    raw = log_of(run_dir).read_bytes()
    span = spanning(raw)
    started: list[workers.Worker] = []

    class Spy(workers.Worker):
        def __init__(self, *a: Any) -> None:
            super().__init__(*a)
            started.append(self)

    monkeypatch.setattr(workers, "WORKER", child)
    monkeypatch.setattr(workers, "Worker", Spy)
    monkeypatch.setattr(workers, "WAIT_SECONDS", 3.0)
    monkeypatch.setattr(workers, "WAIT_BYTES_PER_SECOND", 1 << 40)
    want = single(run_dir)
    assert split_read(run_dir, [0, span[0], span[2]], monkeypatch) == want
    assert len(started) == 2 and all(w.proc.returncode is not None for w in started)  # reaped


def test_wrong_part_from_a_child_is_read_here(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that answers with a real Part of another range (or of the wrong shape) is not merged."""
    span = spanning(log_of(run_dir).read_bytes())
    other = ("import pickle, sys; from runwise.parsers.wandb.workers import read_part; "  # the whole log
             f"sys.stdout.buffer.write(pickle.dumps(read_part(sys.argv[2], 0, -1, window={BLOCK})))")
    monkeypatch.setattr(workers, "WORKER", "import sys; sys.path.append(sys.argv[1]); " + other)
    assert split_read(run_dir, [0, span[0]], monkeypatch) == single(run_dir)


def flip(path: Path, at: int) -> None:
    with path.open("r+b") as fp:
        fp.seek(at)
        b = fp.read(1)
        fp.seek(at)
        fp.write(bytes([b[0] ^ 0xFF]))


def test_damage_mid_file_reads_the_same(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad chunks before a split point (inside the record that spans it), at a split point and inside
    a part: the same records lost and the same damage counted as in one read."""
    log = log_of(run_dir)
    raw = log.read_bytes()
    span = spanning(raw)
    long = middles(raw)[0]
    later = long + 6 * BLOCK
    flip(log, long - 100)  # a piece of the record that spans the cut at `long`, before the cut
    flip(log, span[0] + 20)  # the first chunk of a part
    flip(log, later + 2 * BLOCK + 500)  # inside a part
    want = single(run_dir)
    assert want["damage"].bad_chunks == 3 and want["damage"].dropped_records >= 2
    assert split_read(run_dir, sorted({0, span[0], long, later}), monkeypatch) == want


@pytest.mark.parametrize("back", [10, 0])
def test_cut_log_then_grown_reads_the_same(run_dir: Path, monkeypatch: pytest.MonkeyPatch, back: int) -> None:
    """A log cut inside a chunk (or on a block end, inside a record) read in parts leaves the state a
    single read leaves; reading on from it once the file has grown gives the full read."""
    log = log_of(run_dir)
    raw = log.read_bytes()
    span = spanning(raw)
    cuts = [0, span[0], span[1]]
    n = span[-2] - back  # the block before span[-2] ends inside a record that goes on there
    assert cuts[-1] < n - BLOCK
    log.write_bytes(raw[:n])
    seg = split_seg(run_dir, cuts, monkeypatch)
    one = single_seg(run_dir)
    assert seg.damage.truncated and seg.resume is not None and one.resume is not None
    assert snapshot(seg) == snapshot(one)
    log.write_bytes(raw)
    on = segment.read_on(run_dir, seg.resume)
    assert on is not None
    assert snapshot(on) == snapshot(segment.read_on(run_dir, one.resume))  # type: ignore[arg-type]
    full = single(run_dir)
    assert {k: v for k, v in snapshot(on).items() if k != "resume"} == {k: v for k, v in full.items() if k != "resume"}
