"""Following a run (`runwise watch`, `runwise live --follow`) and the progress bar of slow reads.

A writer (a thread of the test, json.dumps lines as a training script writes them) appends to a
JSONL run while runwise follows it: under tmux (the screen redrawn in place), through a pipe (one
line per step change), and in-process (exit codes). A JSONL run ends with a `_meta` row giving its
state, the end record the JSONL reader recognises (runwise/parsers/jsonl.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runwise import cli, cli_progress, follow
from runwise.config import RunwiseConfig
from tests.conftest import write_jsonl

RUNWISE = [sys.executable, "-m", "runwise"]
TOTAL = 1000  # the run's configured max_steps
HEAD = 300  # rows written at once before the writer starts ticking (a run that has been going a while)


class Writer(threading.Thread):
    """Appends one row every `pace` seconds to a JSONL run until told to end it with a state."""

    def __init__(self, path: Path, *, pace: float = 0.2, head: int = HEAD) -> None:
        super().__init__(daemon=True)
        self.path, self.pace = path, pace
        self.step = head
        self.spike = threading.Event()
        self.end_state: str | None = None
        self.ended = threading.Event()
        self.stop = threading.Event()
        rows = [{"step": 0, "config": {"max_steps": TOTAL, "lr": 1e-3}, "_meta": {"name": "demo"}}]
        rows += [self._row(s) for s in range(head)]
        write_jsonl(path, rows)

    def _row(self, step: int, spike: bool = False) -> dict[str, object]:
        loss = 0.5 + 2.0 * math.exp(-3.0 * step / TOTAL) * (1 + 0.01 * math.sin(7.0 * step))
        grad = 1.0 + 0.1 * (step % 3)
        return {"step": step, "train/loss": loss * (8 if spike else 1), "lr": 1e-3, "grad_norm": grad}

    def finish(self, state: str) -> None:
        self.end_state = state

    def run(self) -> None:
        with self.path.open("a", encoding="utf-8") as fp:
            while not self.stop.is_set():
                if self.end_state is not None:
                    exit_code = 0 if self.end_state == "finished" else 1
                    fp.write(json.dumps({"_meta": {"state": self.end_state, "exit_code": exit_code}}) + "\n")
                    fp.flush()
                    self.ended.set()
                    return
                spike = self.spike.is_set()
                self.spike.clear()
                fp.write(json.dumps(self._row(self.step, spike)) + "\n")
                fp.flush()
                self.step += 1
                time.sleep(self.pace)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "logs").mkdir(parents=True)
    (root / "runwise.json").write_text(json.dumps({"project_name": "follow", "logs_dir": "logs"}))
    return root


@pytest.fixture
def writer(root: Path) -> Iterator[Writer]:
    w = Writer(root / "logs" / "demo.jsonl")
    w.start()
    yield w
    w.stop.set()
    w.join(timeout=10)


def _ended_run(root: Path, state: str, name: str = "done") -> Path:
    rows: list[dict[str, object]] = [{"step": 0, "config": {"max_steps": 50}}]
    rows += [{"step": s, "train/loss": 2.0 - s / 50} for s in range(50)]
    rows.append({"_meta": {"state": state, "exit_code": 0 if state == "finished" else 1}})
    return write_jsonl(root / "logs" / f"{name}.jsonl", rows, age_s=600)


class Lines:
    """A child's stdout, line by line, with a timeout (a child that never writes a line fails, not hangs)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.queue: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout
        self.thread = threading.Thread(target=lambda: [self.queue.put(line) for line in stdout], daemon=True)
        self.thread.start()

    def next(self, timeout: float = 60.0) -> str:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from runwise in {timeout:.0f}s") from None

    def rest(self) -> list[str]:
        """The lines not taken yet, once the child has closed its stdout."""
        self.thread.join(timeout=30)
        out = []
        while not self.queue.empty():
            out.append(self.queue.get())
        return out


def _steps(text: str) -> list[int]:
    return [int(s.replace(",", "")) for s in re.findall(r"step ([\d,]+) of", text)]


# ---------------------------------------------------------------- under tmux: the screen redrawn in place


class Tmux:
    """A tmux server of its own (its own socket), with one 120x40 window running `command`."""

    def __init__(self, socket: str, command: str) -> None:
        self.base = ["tmux", "-L", socket]
        subprocess.run([*self.base, "new-session", "-d", "-s", "follow", "-x", "120", "-y", "40", command],
                       check=True, timeout=30)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-t", "follow"], capture_output=True, text=True,
                              check=True, timeout=30).stdout

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if re.search(pattern, screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on screen after {timeout:.0f}s:\n{screen}")
            time.sleep(0.2)

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "follow", *keys], check=True, timeout=30)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[[str], Tmux]]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux): the on-screen checks need a terminal")
    made: list[Tmux] = []

    def start(argv: str) -> Tmux:
        cache = tmp_path / "cache"
        command = (f"env RUNWISE_CACHE_DIR={cache} TERM=xterm-256color {argv}; echo EXIT=$?; sleep 600")
        t = Tmux(f"runwise-follow-{os.getpid()}-{len(made)}", command)
        made.append(t)
        return t

    yield start
    for t in made:
        t.close()


def _watch(root: Path, *extra: str) -> str:
    return " ".join([*RUNWISE, "--root", str(root), *extra])


def test_watch_redraws_until_the_run_finishes_then_prints_the_verdict(
    root: Path, writer: Writer, tmux: Callable[[str], Tmux]
) -> None:
    t = tmux(_watch(root, "watch", "demo", "--interval", "0.3"))
    first = t.wait_for(r"running\s+step [\d,]+ of 1,000")
    assert "steps/s" in first and "last write" in first and "train/loss" in first
    time.sleep(1.5)
    second = t.wait_for(r"running\s+step [\d,]+ of 1,000")
    assert _steps(second)[0] > _steps(first)[0], (first, second)  # the step advanced on screen
    assert len(_steps(second)) == 1  # redrawn in place, not printed again below
    assert "ETA" in second and "━" in second  # the progress bar, with the time left to step 1,000
    writer.spike.set()  # a finding appears while following: marked new
    t.wait_for(r"new train/loss spike")
    writer.finish("finished")
    end = t.wait_for(r"EXIT=\d+")
    assert "EXIT=0" in end
    assert re.search(r"^verdict: (watch|broken): .*train/loss spike", end, re.M), end
    assert "finished" in end


def test_ctrl_c_on_screen_exits_130_without_a_traceback(
    root: Path, writer: Writer, tmux: Callable[[str], Tmux]
) -> None:
    t = tmux(_watch(root, "live", "--follow", "demo", "--interval", "0.3"))
    t.wait_for(r"running\s+step")
    t.keys("C-c")
    end = t.wait_for(r"EXIT=\d+")
    assert "EXIT=130" in end and "runwise: interrupted" in end
    assert "Traceback" not in end


# ---------------------------------------------------------------- through a pipe: plain lines


@contextlib.contextmanager
def _spawn(root: Path, *argv: str) -> Iterator[subprocess.Popen[str]]:
    """`runwise --root ROOT ARGV...` with pipes; killed when the block is left, however it is left."""
    proc = subprocess.Popen([*RUNWISE, "--root", str(root), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_piped_follow_writes_clean_lines_and_the_verdict(root: Path, writer: Writer) -> None:
    with _spawn(root, "watch", "demo", "--interval", "0.2") as proc:
        out = Lines(proc)
        lines = [out.next(), out.next()]
        writer.finish("crashed")
        code = proc.wait(timeout=60)
        assert proc.stderr is not None
        err = proc.stderr.read()
        lines += out.rest()
    assert code == 1, err  # a crashed run
    assert err == ""
    text = "".join(lines)
    assert "\x1b" not in text  # no escape codes: no live display, no colours, no progress bar
    steps = _steps(text)
    assert len(steps) >= 2 and steps == sorted(steps) and steps[-1] > steps[0]
    assert lines[0].startswith("jsonl:demo: running, step ")
    assert re.search(r"^jsonl:demo: crashed, step ", text, re.M)
    assert re.search(r"^verdict: ", text, re.M) and re.search(r"^ended: crashed at step", text, re.M)


def test_ctrl_c_while_following_exits_130(root: Path, writer: Writer) -> None:
    with _spawn(root, "watch", "demo", "--interval", "0.2") as proc:
        assert Lines(proc).next().startswith("jsonl:demo: running")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert code == 130
    assert err.strip() == "runwise: interrupted"


def test_json_follow_is_one_object_a_line(
    root: Path, writer: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    threading.Timer(1.0, writer.finish, args=("finished",)).start()
    assert cli.main(["--root", str(root), "--json", "watch", "demo", "--interval", "0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    objects = [json.loads(line) for line in lines]
    assert objects[0]["run"]["state"] == "running" and objects[-2]["run"]["state"] == "finished"
    assert objects[-1]["state"] == "finished" and objects[-1]["verdict"].startswith(("healthy", "watch"))


def test_a_closed_pipe_ends_following_quietly(root: Path) -> None:
    _ended_run(root, "finished")
    with subprocess.Popen([*RUNWISE, "--root", str(root), "watch", "done"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 0, err
    assert err == ""


# ---------------------------------------------------------------- exit codes, runs that are not running


@pytest.mark.parametrize(("state", "code"), [("finished", 0), ("crashed", 1), ("failed", 1)])
def test_a_run_that_ended_prints_its_status_once_and_its_verdict(
    root: Path, capsys: pytest.CaptureFixture[str], state: str, code: int
) -> None:
    _ended_run(root, state)
    assert cli.main(["--root", str(root), "live", "--follow", "done"]) == code
    out = capsys.readouterr().out
    assert out.startswith(f"jsonl:done: {state}, step 49")
    assert out.count("jsonl:done: ") == 2  # the status once, then the verdict's summary line
    assert re.search(r"^verdict: (healthy|watch|broken)", out, re.M)
    assert ("ended: " in out) == (state != "finished")


def test_live_without_follow_answers_once(root: Path, writer: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert cli.main(["--root", str(root), "live", "demo"]) == 0
    assert time.monotonic() - started < 30
    out = capsys.readouterr().out
    assert out.startswith("jsonl:demo: running") and "verdict" not in out


def test_an_unknown_run_is_one_line(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--root", str(root), "watch", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("runwise: error: ") and captured.err.count("\n") == 1


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_bad_interval_is_a_usage_error(root: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    assert cli.main(["--root", str(root), "watch", "--interval", value]) == 2
    assert "--interval" in capsys.readouterr().err


# ---------------------------------------------------------------- the follower


def test_following_latest_stays_on_the_run_it_started_with(root: Path) -> None:
    _ended_run(root, "finished")
    f = follow.Follower("latest", RunwiseConfig.load(root))
    f.poll()
    _ended_run(root, "finished", name="newer")
    os.utime(root / "logs" / "newer.jsonl")  # now the newest run
    assert f.poll().status.run.id == "done" and f.ref == "jsonl:done"


def test_pace_and_eta_come_from_the_writes(root: Path) -> None:
    path = root / "logs" / "paced.jsonl"
    rows: list[dict[str, object]] = [{"step": 0, "config": {"max_steps": 100}}]
    write_jsonl(path, rows + [{"step": s, "loss": 1.0} for s in range(11)])
    t0 = time.time() - 30
    os.utime(path, (t0, t0))
    f = follow.Follower("paced", RunwiseConfig.load(root))
    first = f.poll()
    assert first.step == 10 and first.total == 100
    with path.open("a") as fp:
        fp.writelines(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(11, 31))
    os.utime(path, (t0 + 5, t0 + 5))  # 20 steps written in 5 s
    second = f.poll()
    assert second.step == 30 and second.rate == pytest.approx(4.0)
    assert second.eta == pytest.approx(70 / 4.0)


def test_findings_are_announced_once(root: Path) -> None:
    w = Writer(root / "logs" / "demo.jsonl", head=HEAD)
    f = follow.Follower("demo", RunwiseConfig.load(root))
    f.poll()
    assert f.found == 0  # a clean run so far
    with (root / "logs" / "demo.jsonl").open("a") as fp:
        fp.writelines(json.dumps(w._row(s, spike=s == HEAD + 5)) + "\n" for s in range(HEAD, HEAD + 10))
    f.poll()
    f.poll()
    assert f.found == 1
    [(message, new)] = f.last_findings(follow.MAX_FINDINGS)
    assert new and f"step {HEAD + 5}" in message


# ---------------------------------------------------------------- progress bars on stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_slow_read_shows_a_bar_that_goes_away() -> None:
    screen = _Terminal()
    bar = cli_progress.ReadProgress(screen, delay=0.0, force_terminal=True)
    bar(25.0, 100.0)
    bar(50.0, 100.0)
    bar.close()
    assert "runwise: reading" in screen.getvalue() and "50%" in screen.getvalue()


def test_a_quick_read_shows_nothing() -> None:
    screen = _Terminal()
    bar = cli_progress.ReadProgress(screen, delay=60.0, force_terminal=True)
    bar(50.0, 100.0)
    bar.close()
    assert screen.getvalue() == ""


def test_the_cli_shows_the_bar_on_a_terminal_only(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _ended_run(root, "finished")
    monkeypatch.setattr(cli_progress, "DELAY", 0.0)  # every read counts as slow
    assert cli.main(["--root", str(root), "stats", "done"]) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal here: no bar
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    from runwise import runs

    runs.clear_cache()  # read the run again, so that there is a read to show
    monkeypatch.setenv("RUNWISE_NO_CACHE", "1")  # ... not the answer the first call kept on disk
    assert cli.main(["--root", str(root), "--json", "stats", "done"]) == 0
    assert "runwise: reading" in terminal.getvalue()
    out = capsys.readouterr().out
    assert "\x1b" not in out and json.loads(out)["run"].startswith("jsonl:done")


def test_piped_reads_have_no_escape_codes(root: Path) -> None:
    _ended_run(root, "finished")
    done = subprocess.run([*RUNWISE, "--root", str(root), "stats", "done"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TERM": "xterm-256color", "FORCE_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and done.stderr == ""


def test_the_server_and_the_tools_never_import_rich() -> None:
    code = ("import sys, runwise.server.app, runwise.tools, runwise.api\n"
            "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
