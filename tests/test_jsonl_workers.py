"""JSONL worker processes: every way a child can be missing, hang or be abandoned still gives the
one-process read, and no child outlives the read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runwise.errors import SourceError
from runwise.model import Run
from runwise.parsers import jsonl_workers
from runwise.parsers.jsonl import read_jsonl

HANG = "import time; time.sleep(60)"


@pytest.fixture
def big(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Run]:
    """A log, its one-process read, and the split lowered so that it is read in two parts."""
    rows: list[object] = [{"config": {"lr": 0.1}}]
    rows += [{"step": i, "loss": 1.0 / (i + 1), **({"val": float(i)} if i % 7 == 0 else {})} for i in range(3000)]
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    single = read_jsonl(path)
    monkeypatch.setattr(jsonl_workers, "PARALLEL_BYTES", 1000)
    monkeypatch.setattr(jsonl_workers.os, "cpu_count", lambda: 2)
    with path.open("rb") as fp:
        assert len(jsonl_workers.split(fp, path.stat().st_size)) == 2
    return path, single


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Popen objects the read starts, recorded; any still running at the end are killed."""
    procs: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real(*args, **kwargs)
        procs.append(proc)
        return proc

    monkeypatch.setattr(jsonl_workers.subprocess, "Popen", popen)
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def same_run(a: Run, b: Run) -> None:
    assert sorted(a.history) == sorted(b.history) == ["loss", "val"]
    for key in a.history:
        np.testing.assert_array_equal(a.history[key].steps, b.history[key].steps)
        np.testing.assert_array_equal(a.history[key].values, b.history[key].values)
    assert (a.config, a.warnings) == (b.config, b.warnings)


def gone(pid: int) -> bool:
    """True once `pid` is reaped; a zombie still answers signal 0."""
    if sys.platform == "win32":  # no zombies there, and os.kill(pid, 0) would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_worker_really_reads_its_part(big: tuple[Path, Run], started: list[Any],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline the fallbacks below are compared with: one child, its Part used, then reaped."""
    path, single = big
    here: list[tuple[int, int]] = []
    real = jsonl_workers.read_part

    def read_part(p: str, lo: int, hi: int, **kw: Any) -> Any:
        here.append((lo, hi))
        return real(p, lo, hi, **kw)

    monkeypatch.setattr(jsonl_workers, "read_part", read_part)
    same_run(read_jsonl(path), single)
    assert len(started) == 1 and started[0].returncode == 0 and gone(started[0].pid)
    assert len(here) == 1 and here[0][0] == 0  # only the first part was read in this process


@pytest.mark.parametrize("cpus", [2, 4])
def test_parallel_parts_give_the_same_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Any],
                                          cpus: int) -> None:
    """A big file is split across worker processes: same columns, same global line numbers."""
    rows: list[object] = [{"config": {"lr": 0.1}}]
    rows += [{"step": i, "loss": 1.0 / (i + 1), **({"val": float(i)} if i % 7 == 0 else {})} for i in range(3000)]
    path = tmp_path / "p.jsonl"
    lines = [json.dumps(r).encode() for r in rows]
    lines[2500] = b"{broken"  # damage in a later part
    path.write_bytes(b"\n".join(lines) + b"\n")
    single = read_jsonl(path)
    monkeypatch.setattr(jsonl_workers, "PARALLEL_BYTES", 1000)
    monkeypatch.setattr(jsonl_workers.os, "cpu_count", lambda: cpus)
    with path.open("rb") as fp:
        assert len(jsonl_workers.split(fp, path.stat().st_size)) == cpus
    split = read_jsonl(path)
    assert [p.returncode for p in started] == [0] * (cpus - 1)  # every later part came from a worker
    same_run(split, single)
    assert "1 not JSON (first at line 2501)" in split.warnings[0]


@pytest.mark.parametrize("executable", [None, ""])
def test_no_interpreter_reads_every_part_here(big: tuple[Path, Run], started: list[Any],
                                               monkeypatch: pytest.MonkeyPatch, executable: str | None) -> None:
    """An embedded interpreter may have no sys.executable: no child is started, nothing escapes."""
    path, single = big
    monkeypatch.setattr(sys, "executable", executable)
    same_run(read_jsonl(path), single)
    assert started == []


def test_a_frozen_application_starts_no_children(big: tuple[Path, Run], started: list[Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """In a frozen app sys.executable is the app itself: running it would start the app again."""
    path, single = big
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    same_run(read_jsonl(path), single)
    assert started == []


def test_a_hung_worker_is_killed_and_its_part_read_here(big: tuple[Path, Run], started: list[Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path, single = big
    monkeypatch.setattr(jsonl_workers, "WORKER", HANG)
    monkeypatch.setattr(jsonl_workers, "WAIT_SECONDS", 0.5)
    monkeypatch.setattr(jsonl_workers, "WAIT_BYTES_PER_SECOND", 10**12)
    t0 = time.monotonic()
    same_run(read_jsonl(path), single)
    assert time.monotonic() - t0 < 20
    assert len(started) == 1
    proc = started[0]
    assert proc.returncode is not None and proc.returncode != 0 and gone(proc.pid)
    assert proc.stdout.closed and proc.stderr.closed


@pytest.mark.parametrize(
    "code",
    [
        "import sys; sys.stdout.write('hello')",  # not a pickle
        "import sys; sys.stdout.buffer.write(b'\\x80\\x05')",  # a cut pickle
        "import pickle, sys; sys.stdout.buffer.write(pickle.dumps([1, 2]))",  # a pickle of something else
        "import sys; sys.stderr.write('boom' * 10000); sys.exit(1)",  # a failure with a long message
    ],
    ids=["text", "cut", "other", "exit"],
)
def test_a_worker_that_gives_no_part_has_its_part_read_here(big: tuple[Path, Run], started: list[Any],
                                                            monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    path, single = big
    monkeypatch.setattr(jsonl_workers, "WORKER", code)
    same_run(read_jsonl(path), single)
    assert len(started) == 1 and gone(started[0].pid)


def test_a_failing_first_part_kills_and_reaps_every_worker(big: tuple[Path, Run], started: list[Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = big
    monkeypatch.setattr(jsonl_workers.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(jsonl_workers, "WORKER", HANG)

    def first_part_fails(*args: Any, **kwargs: Any) -> Any:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(jsonl_workers, "read_part", first_part_fails)
    with pytest.raises(SourceError, match="Input/output error"):
        read_jsonl(path)
    assert len(started) == 3
    for proc in started:
        assert proc.returncode is not None and gone(proc.pid)
        assert proc.stdout.closed and proc.stderr.closed


def test_a_child_that_imports_another_runwise_gives_its_part_back(
    big: tuple[Path, Run], started: list[Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The child checks it runs the parent's copy of runwise; another copy (ahead on its path) bows out."""
    path, single = big
    monkeypatch.setattr(jsonl_workers, "PACKAGE_PARENT", str(tmp_path))
    same_run(read_jsonl(path), single)
    assert [p.returncode for p in started] == [jsonl_workers.WRONG_RUNWISE]


def test_the_child_gets_this_environment_unchanged(big: tuple[Path, Run], started: list[Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No PYTHONPATH is set for the child: site-packages must not go ahead of the standard library."""
    path, single = big
    kwargs: list[dict[str, Any]] = []
    real = jsonl_workers.subprocess.Popen  # the recording one from `started`

    def popen(*args: Any, **kw: Any) -> Any:
        kwargs.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(jsonl_workers.subprocess, "Popen", popen)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    same_run(read_jsonl(path), single)
    assert len(kwargs) == 1 and kwargs[0].get("env") is None
    assert started[0].returncode == 0


@pytest.mark.parametrize("where", ["installed", "source tree"])
def test_the_package_parent_never_goes_ahead_of_the_standard_library(tmp_path: Path, where: str) -> None:
    """The child's sys.path, from the same start-up code as a worker's: stdlib first, parent last if added."""
    parent = sysconfig.get_paths()["purelib"] if where == "installed" else str(tmp_path)
    code = jsonl_workers.WORKER.split("from runwise")[0] + "print(repr(sys.path))"
    out = subprocess.run([sys.executable, "-c", code, parent], capture_output=True, text=True, check=True).stdout
    path = eval(out)  # the repr of a list of str, printed by our own child
    stdlib = sysconfig.get_paths()["stdlib"]
    assert stdlib in path and parent in path
    assert path.index(stdlib) < path.index(parent)
    if where == "source tree":
        assert path[-1] == parent  # appended, after the child's own site-packages
    assert path.count(parent) == 1


def test_windows_children_open_no_console(big: tuple[Path, Run], monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows every child gets CREATE_NO_WINDOW (simulated: the flag is recorded, not passed on)."""
    path, single = big
    flags: list[int] = []
    real = subprocess.Popen

    def popen(*args: Any, creationflags: int = 0, **kw: Any) -> Any:
        flags.append(creationflags)
        return real(*args, **kw)  # this is not Windows: Popen refuses the flag here

    monkeypatch.setattr(jsonl_workers.subprocess, "Popen", popen)
    monkeypatch.setattr(jsonl_workers.sys, "platform", "win32")
    monkeypatch.setattr(jsonl_workers.subprocess, "CREATE_NO_WINDOW", 0x08000000, raising=False)
    same_run(read_jsonl(path), single)
    assert flags == [0x08000000]
    monkeypatch.setattr(jsonl_workers.sys, "platform", "linux")
    assert jsonl_workers.creation_flags() == 0  # elsewhere Popen would refuse any flag
