"""Resume across processes: a growing run that one process read (and left in the disk cache) is read by
the next process from the bytes appended since, and the answer equals a full uncached read.

Every read here is a real subprocess (`python -c CHILD`): nothing in memory carries over. The child
watches the source's parse functions and reports the byte ranges it parsed. The runs are real: a
JSONL log appended to, a TensorBoard run written by tensorboardX with its writer kept open, and a W&B
run written offline by the wandb client, cut and then grown by appending the rest of its own bytes (as
the client appends them). The child sets cache.MIN_SECONDS to 0: these runs are too small to be slow.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from runwise import _state, cache

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys
from pathlib import Path
root, ref, source = sys.argv[1:4]
from runwise import cache, runs
from runwise.config import RunwiseConfig
cache.MIN_SECONDS = 0.0  # the test's runs are small: write them as if they were slow to read
if os.environ.get("BEHIND_BYTES"):  # how far behind its files an entry is written again
    runs._BEHIND_BYTES, runs._BEHIND_SHARE = int(os.environ["BEHIND_BYTES"]), 0.0
parsed, full = [], []

def size_of(path):
    return os.stat(path).st_size

if source == "jsonl":
    from runwise.parsers import jsonl
    real_part, real_parts = jsonl.read_part, jsonl.jsonl_workers.read_parts
    def read_part(path, start, end, **kw):
        parsed.append([str(path), start, end])
        return real_part(path, start, end, **kw)
    def read_parts(path, size, **kw):
        full.append(str(path)); parsed.append([str(path), 0, size])
        return real_parts(path, size, **kw)
    jsonl.read_part, jsonl.jsonl_workers.read_parts = read_part, read_parts
elif source == "tensorboard":
    from runwise.parsers.tensorboard import resume, run as tb_run
    def watch(real, whole):
        def read_events(fp, *, path, start=0, **kw):
            if whole:
                full.append(path)
            parsed.append([path, start, os.fstat(fp.fileno()).st_size])
            return real(fp, path=path, start=start, **kw)
        return read_events
    tb_run.read_events = watch(tb_run.read_events, True)
    resume.read_events = watch(resume.read_events, False)
elif source == "wandb":
    from runwise.parsers.wandb import run as wb_run, segment
    real_log, real_on = wb_run.read_log, wb_run.read_on
    def read_log(d, log, **kw):
        full.append(str(log)); parsed.append([str(log), 0, size_of(log)])
        return real_log(d, log, **kw)
    def read_on(d, previous, *a, **kw):
        parsed.append([str(previous.log), previous.cursor.pos, size_of(previous.log)])
        return real_on(d, previous, *a, **kw)
    wb_run.read_log, wb_run.read_on = read_log, read_on
    segment.read_log = read_log

cfg = RunwiseConfig.load(Path(root))
run, _ = runs.get_run(ref, cfg)
fields = {k: getattr(run, k) for k in run.__dataclass_fields__ if k not in ("history", "resume")}
history = {k: [s.steps.tolist(), [repr(v) for v in s.values.tolist()]] for k, s in run.history.items()}
print(json.dumps({"parsed": parsed, "full": full, "fields": fields, "history": history,
                  "counts": cache.stats(cfg.cache_dir)}, default=str))
"""


def child(root: Path, ref: str, source: str, *, cache_on: bool = True, behind: int = 0) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWISE_", "WANDB_", "BEHIND_"))}
    if behind:
        env["BEHIND_BYTES"] = str(behind)
    env["PYTHONPATH"] = str(REPO)
    env["RUNWISE_CACHE_DIR"] = str(root / "cache")
    if not cache_on:
        env["RUNWISE_NO_CACHE"] = "1"
    done = subprocess.run([sys.executable, "-c", CHILD, str(root), ref, source], capture_output=True, text=True,
                          cwd=root, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def read_on_from_disk(root: Path, ref: str, source: str, grow: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """Process A reads the run; `grow()` appends to it and returns {file: size before}; process B
    reads it again. Checks that B parsed exactly the appended bytes of each grown file and nothing
    else, read nothing whole, and answered as an uncached process does. Returns B's report and the sizes."""
    first = child(root, ref, source)
    assert first["full"], "process A read the run whole"
    assert first["counts"]["writes"] == 1
    before = grow()
    second = child(root, ref, source)
    uncached = child(root, ref, source, cache_on=False)
    assert second["full"] == [], f"process B read {second['full']} whole"
    assert second["counts"]["resumed"] == 1
    assert second["history"] == uncached["history"]
    assert second["fields"] == uncached["fields"]
    assert first["history"] != second["history"]  # it did grow
    return second, before


def parsed_bytes(report: dict[str, Any]) -> int:
    return sum(end - start for _, start, end in report["parsed"])


# ---------------------------------------------------------------- JSONL


def jsonl_rows(steps: range) -> bytes:
    out = []
    for s in steps:
        row: dict[str, Any] = {"step": s, "loss": 1.0 / (s + 1), "acc": s / 1e4}
        if s % 10 == 0:
            row["val/loss"] = math.nan if s == 40 else 2.0 / (s + 1)
        if s == 0:
            row["config"] = {"lr": 0.1, "layers": [64, {"kind": "mlp"}]}
            row["_meta"] = {"name": "growing", "tags": ["a"]}
        out.append(json.dumps(row).encode() + b"\n")
    return b"".join(out)


def test_jsonl_next_process_parses_only_the_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "live.jsonl"
    log.parent.mkdir()
    head = jsonl_rows(range(45_000))  # over two blocks of lines: each key's columns are in several chunks
    rest = jsonl_rows(range(45_000, 45_500))
    cut = 25  # process A sees half a line at the end: it is parsed again, with what follows it
    log.write_bytes(head + rest[:cut])

    def grow() -> dict[str, int]:
        with log.open("ab") as fp:
            fp.write(rest[cut:])
        return {str(log): len(head) + cut}

    second, _ = read_on_from_disk(tmp_path, "live", "jsonl", grow)
    assert second["parsed"] == [[str(log), len(head), len(head) + len(rest)]]  # from the last complete line
    assert second["fields"]["name"] == "growing" and len(second["history"]["loss"][0]) == 45_500


# ---------------------------------------------------------------- TensorBoard (tensorboardX)


def test_tensorboard_next_process_parses_only_the_appended_records(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    run_dir = tmp_path / "runs" / "live"
    writer = SummaryWriter(str(run_dir), flush_secs=3600)
    try:
        writer.add_text("notes", "first words", 0)
        for i in range(2000):
            writer.add_scalar("train/loss", 2.0 * math.exp(-i / 500), i)
            if i % 10 == 0:
                writer.add_scalar("lr", 1e-3 * (1 - i / 4000), i)
        writer.flush()
        (events,) = run_dir.glob("events.out.tfevents.*")

        def grow() -> dict[str, int]:
            size = events.stat().st_size
            for i in range(2000, 2600):
                writer.add_scalar("train/loss", 2.0 * math.exp(-i / 500), i)
                if i % 100 == 0:
                    writer.add_scalar("eval/acc", i / 4000, i)  # a tag the first read never saw
            writer.flush()
            return {str(events): size}

        second, before = read_on_from_disk(tmp_path, "live", "tensorboard", grow)
        size = events.stat().st_size
    finally:
        writer.close()
    assert [(p, s, e) for p, s, e in second["parsed"]] == [("runs/live/" + events.name, before[str(events)], size)]
    assert parsed_bytes(second) == size - before[str(events)]


# ---------------------------------------------------------------- W&B (the wandb client, offline)


WANDB_SCRIPT = r"""
import math, wandb
run = wandb.init(id="grow0001", name="growing-run", project="runwise-tests", config={"lr": 0.1},
                 settings=wandb.Settings(host="test-host", x_disable_meta=True, x_disable_stats=True))
for s in range(3000):
    row = {"loss": 1 / (s + 1), "acc": s / 3000, "opt": {"lr": 0.1 * (1 - s / 3000)}}
    if s % 7 == 3:
        row["val/loss"] = math.sin(s)
    if s == 1500:
        row["blob"] = "x" * 40_000  # a record over two blocks
    run.log(row, step=s)
run.finish()
"""


@pytest.fixture(scope="module")
def wandb_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("wandb")
    work = tmp_path_factory.mktemp("wandb_grow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    data = Path(tempfile.gettempdir()) / "runwise-test-wandb-data"
    env.update(WANDB_MODE="offline", WANDB_DIR=str(work), WANDB_SILENT="true", WANDB_DATA_DIR=str(data),
               WANDB_CACHE_DIR=str(data / "cache"), WANDB_CONFIG_DIR=str(data / "config"),
               WANDB_DISABLE_GIT="true", WANDB_DISABLE_CODE="true", WANDB_CONSOLE="off")
    subprocess.run([sys.executable, "-c", WANDB_SCRIPT], cwd=work, env=env, check=True, timeout=600,
                   capture_output=True)
    return next((work / "wandb").glob("offline-run-*"))


def test_wandb_next_process_parses_only_the_appended_bytes(wandb_run_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "wandb" / wandb_run_dir.name
    shutil.copytree(wandb_run_dir, run_dir)
    log = next(run_dir.glob("*.wandb"))
    raw = log.read_bytes()
    cut = len(raw) * 3 // 5 + 11  # inside a record: the writer had not finished it
    log.write_bytes(raw[:cut])

    def grow() -> dict[str, int]:
        with log.open("ab") as fp:
            fp.write(raw[cut:])
        return {str(log): cut}

    second, _ = read_on_from_disk(tmp_path, "grow0001", "wandb", grow)
    ((path, start, end),) = second["parsed"]
    assert (path, end) == (str(log), len(raw))
    assert cut - 32 * 1024 <= start <= cut  # from the start of the chunk the cut was in (chunks fit in a block)
    assert second["fields"]["state"] == "finished"


# ---------------------------------------------------------------- what is stored, and what is refused


def test_a_stored_state_decodes_to_equal_objects(tmp_path: Path) -> None:
    """Every kind of value a state holds goes through encode and decode (and JSON) unchanged."""
    from runwise.parsers._growth import FileMark
    from runwise.parsers.wandb.log import Cursor

    arr = np.arange(5, dtype=np.int64)
    state = {"a": [1, 2.5, math.inf, -math.inf, None, True, "x"], (1, "k"): b"\x00\xff", b"key": Path("/p/q"),
             "mark": FileMark(1, 2, 3, 4, b"digest"), "cursor": Cursor(10, (b"ab", b"c"), 7, 12),
             "chunks": [arr, arr[:2] + 10], "one": [np.array([1.5])], "floats": [np.array([0.5, 1.0]), np.array([2.0])],
             "same": arr, "again": arr, "nan": math.nan}
    tree, arrays = _state.encode(state)
    back = _state.decode(orjson.loads(orjson.dumps(tree)), arrays.__getitem__)
    assert math.isnan(back.pop("nan")) and math.isnan(state.pop("nan"))  # type: ignore[arg-type]
    for key in ("chunks", "one", "floats", "same", "again"):
        got, want = back.pop(key), state.pop(key)
        got, want = (got, want) if isinstance(want, list) else ([got], [want])
        assert [(x.dtype, x.tolist()) for x in got] == [(x.dtype, x.tolist()) for x in want]
    assert back == state
    assert len(arrays) == 4  # each list of chunks packed in one, the list of one, arr once for "same" and "again"


class Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("value", [Evil(), {1, 2}, np.array(["a"]), object(), 2**70])
def test_values_outside_the_allowlist_are_not_encoded(value: object) -> None:
    with pytest.raises((_state.StateError, TypeError)):
        tree, _ = _state.encode({"x": value})
        orjson.dumps(tree)  # an int over 64 bits: orjson refuses it (cache.write then stores no state)


@pytest.mark.parametrize("tree", [
    {"~": "o", "c": "os:system", "s": "", "f": {}},  # not allowlisted
    {"~": "o", "c": "runwise.parsers._growth:FileMark", "s": "0", "f": {}},  # another signature
    {"~": "o", "c": "runwise.parsers._growth:FileMark", "s": None, "f": {"dev": 1}},
    {"~": "x"}, {"no": "tag"}, {"~": "a", "m": "s:0"}, {"~": "a", "m": 3}, {"~": "f", "v": "1e5"},
    {"~": "b", "v": "@@@"}, {"~": "d", "k": [[1]], "v": [1]}, {"~": "A", "m": "r:0", "n": [1, 1]},
])
def test_foreign_trees_are_refused(tree: dict[str, Any]) -> None:
    if tree.get("s") is None and tree.get("c"):
        from runwise.parsers._growth import FileMark

        tree["s"] = _state.signature(FileMark)  # the right signature, the wrong fields
    arrays = {"r:0": np.zeros(3), "s:0": np.array(["x"])}
    with pytest.raises(_state.StateError):
        _state.decode(tree, lambda m: arrays[m])


def test_a_corrupt_resume_part_is_discarded_and_the_run_read_whole(tmp_path: Path) -> None:
    """Process A leaves an entry; its resume tree is then damaged: process B discards the entry,
    reads the run whole (equal to an uncached read) and writes the entry again."""
    log = tmp_path / "logs" / "live.jsonl"
    log.parent.mkdir()
    log.write_bytes(jsonl_rows(range(500)))
    child(tmp_path, "live", "jsonl")
    (entry,) = (tmp_path / "cache").glob("*.npz")
    with np.load(entry, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    tree = orjson.loads(arrays["resume"].tobytes())
    tree["f"]["mark"]["c"] = "runwise.parsers.jsonl_rows:Evil"
    arrays["resume"] = np.frombuffer(orjson.dumps(tree), dtype=np.uint8)
    with entry.open("wb") as fp:
        np.savez(fp, **arrays)
    with log.open("ab") as fp:
        fp.write(jsonl_rows(range(500, 600)))
    second = child(tmp_path, "live", "jsonl")
    assert second["full"] == [str(log)]
    assert second["counts"]["discarded"] == 1 and second["counts"]["writes"] == 2
    assert second["history"] == child(tmp_path, "live", "jsonl", cache_on=False)["history"]


def test_one_entry_per_run_however_often_it_grows(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "live.jsonl"
    log.parent.mkdir()
    log.write_bytes(jsonl_rows(range(200)))
    child(tmp_path, "live", "jsonl")
    for k in range(3):
        with log.open("ab") as fp:
            fp.write(jsonl_rows(range(200 + 10 * k, 210 + 10 * k)))
        time.sleep(0.01)
        child(tmp_path, "live", "jsonl")
    assert len(cache.entries(tmp_path / "cache")) == 1


def test_an_entry_far_behind_is_written_again(tmp_path: Path) -> None:
    """B reads on from A's entry; the entry is then `behind` bytes or more behind the log, so B writes
    it again, and C parses only what was appended after B's read."""
    log = tmp_path / "logs" / "live.jsonl"
    log.parent.mkdir()
    log.write_bytes(jsonl_rows(range(1000)))
    child(tmp_path, "live", "jsonl")
    small, big = jsonl_rows(range(1000, 1010)), jsonl_rows(range(1010, 1200))
    with log.open("ab") as fp:
        fp.write(small)  # fewer bytes than `behind`: B reads on, and leaves the entry as it was
    b = child(tmp_path, "live", "jsonl", behind=len(small) + 1)
    assert (b["full"], b["counts"]["writes"]) == ([], 1)
    with log.open("ab") as fp:
        fp.write(big)  # now the entry is far behind: the next reader writes it again
    size = log.stat().st_size
    c = child(tmp_path, "live", "jsonl", behind=len(small) + 1)
    assert (c["full"], c["counts"]["writes"], parsed_bytes(c)) == ([], 2, len(small) + len(big))
    with log.open("ab") as fp:
        fp.write(jsonl_rows(range(1200, 1205)))
    d = child(tmp_path, "live", "jsonl", behind=len(small) + 1)
    assert (d["full"], d["parsed"][0][1], d["counts"]["writes"]) == ([], size, 2)
    assert d["history"] == child(tmp_path, "live", "jsonl", cache_on=False)["history"]
    assert len(cache.entries(tmp_path / "cache")) == 1


def test_equal_large_arrays_are_stored_once() -> None:
    rows = np.arange(20_000, dtype=np.int64)
    state = {"a": [rows[:10_000].copy(), rows[10_000:].copy()], "b": [rows[:10_000].copy(), rows[10_000:].copy()],
             "c": rows.copy(), "d": rows + 1, "small": [np.arange(3), np.arange(3)]}
    tree, arrays = _state.encode(state)
    assert len(arrays) == 3  # a and b (packed: rows again) and c once, d, the small list packed in one
    back = _state.decode(orjson.loads(orjson.dumps(tree)), arrays.__getitem__)
    assert {k: [x.tolist() for x in v] if isinstance(v, list) else v.tolist() for k, v in back.items()} == \
        {k: [x.tolist() for x in v] if isinstance(v, list) else v.tolist() for k, v in state.items()}
