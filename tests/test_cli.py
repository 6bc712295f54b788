"""The command line: main([...]) with capsys; exit codes, stdout, one-line errors on stderr."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from runwise import cli, commands
from runwise.config import RunwiseConfig
from tests.conftest import SPIKE_STEP, training_rows, write_jsonl

COMMANDS = sorted(cli.build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]



VERDICTS = ("healthy", "watch", "broken", "no verdict")


def _run_line(out: str) -> str:
    """A summary's line about the run: the one after the verdict line that leads it."""
    verdict, run_line = out.splitlines()[:2]
    assert verdict.startswith(VERDICTS), out
    return run_line


def run(capsys: pytest.CaptureFixture[str], root: Path, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--root", str(root), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 1
    assert out == ""
    assert err.startswith("runwise: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


# ---------------------------------------------------------------- commands


def test_list_shows_runs_newest_first(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, err = run(capsys, project, "list")
    assert code == 0, err
    assert out.splitlines()[0].startswith("2 runs")
    assert out.index("run_b") < out.index("run_a")
    assert "spark" in out
    code, out, _ = run(capsys, project, "list", "--no-spark", "-n", "1")
    assert code == 0 and "spark" not in out and "run_a" not in out.split("\n\n")[1]


def test_global_options_work_before_and_after_the_command(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    assert cli.main(["list", "--root", str(project), "--format", "json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert cli.main(["--json", "--root", str(project), "list"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert after["total"] == before["total"] == 2


def test_run_summarizes(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "run", "run_a")
    assert code == 0
    assert _run_line(out).startswith("jsonl:run_a")
    assert _first_column(out)[:2] == ["train/loss", "val/loss"] and "min_step" in out


def test_latest_is_the_newest_run_and_reports_the_spike(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    code, out, _ = run(capsys, project, "latest")
    assert code == 0
    assert _run_line(out).startswith("jsonl:run_b")
    assert f"step {SPIKE_STEP}" in out
    code, out, _ = run(capsys, project, "latest", "--no-anomalies", "-k", "val/loss")
    assert code == 0 and "anomaly checks off" in out and "grad_norm" not in out


def test_keys_accept_commas_and_repeats(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "stats", "run_a", "-k", "val/loss,lr", "-k", "grad_norm")
    assert code == 0
    body = out.split("\n\n")[1]
    assert [line.split()[0] for line in body.splitlines()[2:]] == ["val/loss", "lr", "grad_norm"]


def test_compare_shows_deltas_and_config_diff_by_default(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    code, out, _ = run(capsys, project, "compare", "run_a", "run_b")
    assert code == 0
    assert "delta_pct" in out and "config differences:" in out
    assert "warmup" in out
    code, out, _ = run(capsys, project, "compare", "run_a", "run_b", "--no-diff", "-f", "val/")
    assert code == 0
    assert "config differences" not in out and "train/loss" not in out and "val/loss" in out


def test_compare_at_a_step(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "compare", "run_a@100", "run_b@100")
    assert code == 0 and "step@run_a" in out
    code, data, _ = run(capsys, project, "--json", "compare", "run_a", "run_b", "--step", "50")
    assert code == 0 and json.loads(data)["at_steps"] == [50, 50]


def test_config_notes_keys(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "config", "run_a", "-p", "optimizer")
    assert code == 0 and "optimizer.name" in out and "adam" in out and "batch_size" not in out
    code, out, _ = run(capsys, project, "notes", "run_a")
    assert code == 0 and "baseline at the default lr" in out and "baseline" in out
    code, out, _ = run(capsys, project, "keys", "run_a", "-p", "val")
    assert code == 0 and "val/loss" in out and "train/loss" not in out


def test_best(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "best", "val/loss")
    assert code == 0 and "jsonl:run_b" in out.splitlines()[0]
    code, out, _ = run(capsys, project, "--json", "best", "val/loss", "--max", "--final", "--top", "1")
    ranking = json.loads(out)["ranking"]
    assert code == 0 and len(ranking["rows"]) == 1 and ranking["rows"][0][1] == "run_a"
    code, out, _ = run(capsys, project, "best", "train/loss", "--final")
    assert code == 0 and "final" in out.splitlines()[0]


def test_history_csv_is_one_long_csv(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "history", "run_a", "-k", "val/loss,lr", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["metric"] for r in rows} == {"val/loss", "lr"}
    assert all(int(r["step"]) % 10 == 0 for r in rows if r["metric"] == "val/loss")


def test_history_text_and_window(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(
        capsys, project, "history", "run_b", "-k", "train/loss", "--start", "100", "--end", "199"
    )
    assert code == 0 and "train/loss:" in out
    steps = [int(line.split()[0].replace(",", "")) for line in out.split("\n\n")[-1].splitlines()[3:]]
    assert steps and min(steps) >= 100 and max(steps) <= 199
    assert SPIKE_STEP in steps  # downsampling keeps the spike


def test_stability_csv(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "stability", "run_a", "-w", "20", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and "verdict" in rows[0] and rows[0]["metric"] == "train/loss"


def test_live_and_anomalies(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "live")
    assert code == 0 and out.startswith("jsonl:run_b") and "step 299" in out
    code, out, _ = run(capsys, project, "anomalies", "run_b")
    assert code == 0 and _spikes(out) == [["spike", "warning", "train/loss", f"{SPIKE_STEP:,}"]]
    # the same check on the run without the planted spike finds none (it can fail)
    code, out, _ = run(capsys, project, "anomalies", "run_a")
    assert code == 0 and out.startswith("jsonl:run_a: no anomalies") and _spikes(out) == []


def _spikes(out: str) -> list[list[str]]:
    """kind, severity, metric and step of each spike row in an anomalies table."""
    blocks = out.split("\n\n")
    tables = [b.splitlines() for b in blocks if b.startswith("kind ")]
    return [line.split()[:4] for table in tables for line in table[2:] if line.split()[0] == "spike"]


def test_local_without_a_file_lists_the_logs(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "local")
    assert code == 0 and out.startswith("2 runs (2 jsonl)")
    assert _first_column(out) == ["run_b", "run_a"]  # newest first
    code, out, _ = run(capsys, project, "local", "-n", "1", "--no-spark")
    assert code == 0 and _first_column(out) == ["run_b"] and _no_spark(out)


def test_local_path_is_relative_to_the_working_directory(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "logs")
    code, out, _ = run(capsys, project, "local", "run_a.jsonl", "--keys")
    assert code == 0 and "train/loss" in out and "first_step" in out
    code, out, _ = run(capsys, project, "local", "run_a.jsonl", "--stats", "-k", "lr")
    assert code == 0 and "lr" in out and "train/loss" not in out


def test_tb_lists_tensorboard_runs(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = run(capsys, project, "tb")
    assert code == 0 and "0 runs" in out and "run_a" not in out


def test_init_writes_and_refuses_to_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, tmp_path, "init", "--name", "demo")
    assert code == 0 and "runwise.json" in out
    assert RunwiseConfig.load(tmp_path).project_name == "demo"
    assert_one_line_error(*run(capsys, tmp_path, "init"), "--force")
    code, _, _ = run(capsys, tmp_path, "init", "--force")
    assert code == 0 and RunwiseConfig.load(tmp_path).project_name == tmp_path.name


def test_init_and_the_config_find_the_same_project_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, claude, runwise_root = (tmp_path / name for name in ("here", "claude", "runwise"))
    for d in (here, claude, runwise_root):
        d.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.delenv("RUNWISE_PROJECT_ROOT", raising=False)
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    for env, expected in (({}, here), ({"CLAUDE_PROJECT_DIR": claude}, claude),
                          ({"RUNWISE_PROJECT_ROOT": runwise_root}, runwise_root)):
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        assert cli.main(["init", "--name", expected.name]) == 0, capsys.readouterr().err
        assert (expected / "runwise.json").is_file()
        cfg = RunwiseConfig.load()
        assert cfg.root == expected.resolve() and cfg.project_name == expected.name
    monkeypatch.setenv("RUNWISE_PROJECT_ROOT", str(tmp_path / "missing"))
    capsys.readouterr()
    assert_one_line_error(*run_env(capsys, "init"), "missing", "not a directory")
    assert_one_line_error(*run_env(capsys, "list"), "missing", "not a directory")


def run_env(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Like `run`, without --root: the project root comes from the environment."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- errors


def test_unknown_run_is_one_line(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    assert_one_line_error(*run(capsys, project, "run", "run_c"), "run_c", "run_a")


def test_unknown_metric_names_the_available_ones(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    assert_one_line_error(*run(capsys, project, "stats", "-k", "vall/loss"), "vall/loss", "val/loss")
    assert_one_line_error(*run(capsys, project, "best", "nope"), "nope")


def test_path_outside_the_root_is_refused(
    capsys: pytest.CaptureFixture[str], project: Path, tmp_path: Path
) -> None:
    outside = write_jsonl(tmp_path / "elsewhere" / "x.jsonl", training_rows(steps=5))
    assert_one_line_error(*run(capsys, project, "local", str(outside)), "outside the project roots")
    assert_one_line_error(*run(capsys, project, "run", str(outside)), "outside the project roots")


def test_invalid_config_names_the_key(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    (project / "runwise.json").write_text(json.dumps({"anomaly_detection": {"spike_threshold": -1}}))
    assert_one_line_error(*run(capsys, project, "list"), "anomaly_detection.spike_threshold")
    (project / "runwise.json").write_text("{not json")
    assert_one_line_error(*run(capsys, project, "list"), "runwise.json", "line 1")


def test_bad_option_values(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    assert_one_line_error(*run(capsys, project, "history", "-n", "2"), "-n")
    assert_one_line_error(*run(capsys, project, "compare", "run_a"), "2 to 16")
    assert_one_line_error(*run(capsys, project.parent / "missing", "list"), "not a directory")
    code, _, err = run(capsys, project, "history", "run_a", "--start", "500", "--end", "100")
    assert_one_line_error(code, _, err, "invalid options: start_step 500 is after end_step 100")
    code, _, err = run(capsys, project, "compare", "run_a@-5", "run_b")
    assert_one_line_error(code, _, err, "must be from 0 upwards, got -5")
    assert "Value error" not in err


def test_budget_is_a_global_option(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    from runwise.tokens import estimate_tokens

    answers = []
    for argv in (["--budget", "300", "--json", "history", "run_b"], ["--json", "history", "run_b", "--budget=300"]):
        code, out, err = run(capsys, project, *argv)
        assert code == 0, err
        answers.append(json.loads(out))
    assert answers[0] == answers[1]
    text = json.dumps(answers[0], separators=(",", ":"), ensure_ascii=False)
    assert estimate_tokens(text) <= 300
    code, out, _ = run(capsys, project, "--json", "history", "run_b")
    assert code == 0 and estimate_tokens(json.dumps(json.loads(out), separators=(",", ":"))) > 300  # 300 shaped it
    code, out, _ = run(capsys, project, "--budget", "100", "--json", "stats", "run_b")
    assert code == 0 and "cut to the 100-token budget" in json.loads(out)["notes"][0]
    assert_one_line_error(*run(capsys, project, "--budget", "5", "stats"), "--budget", "100")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bogus"]) == 2
    assert cli.main(["history", "-n", "many"]) == 2
    assert "invalid int value" in capsys.readouterr().err


def test_interrupt_and_bugs_have_no_traceback(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(args: object) -> str:
        raise KeyboardInterrupt

    def broken(args: object) -> str:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(commands, "cmd_list", interrupted)
    code, out, err = run(capsys, project, "list")
    assert code == 130 and err.strip() == "runwise: interrupted"
    monkeypatch.setattr(commands, "cmd_list", broken)
    assert_one_line_error(*run(capsys, project, "list"), "internal error", "ZeroDivisionError", "boom")


# ---------------------------------------------------------------- help, formats, contracts


def test_bare_runwise_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: runwise")
    for command in COMMANDS:
        assert f"    {command} " in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("runwise ")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert cli.main([command, "-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: runwise {command}")
    assert "--root" in out and "--format" in out


def test_every_tool_has_a_command() -> None:
    from runwise.tools import TOOLS

    assert sorted(commands.TOOL_COMMANDS) == sorted(t.name for t in TOOLS)
    for names in commands.TOOL_COMMANDS.values():
        assert all(name.split()[0] in COMMANDS for name in names)


FORMAT_CASES = [
    ["list"],
    ["latest"],
    ["run", "run_a"],
    ["compare", "run_a", "run_b", "-g"],
    ["config", "run_a"],
    ["notes", "run_b"],
    ["best", "val/loss"],
    ["history", "-k", "val/loss", "-n", "8"],
    ["stats"],
    ["stability"],
    ["keys"],
    ["live"],
    ["anomalies", "run_b"],
    ["local"],
    ["tb"],
]


@pytest.mark.parametrize("argv", FORMAT_CASES, ids=lambda a: " ".join(a))
def test_json_output_parses(capsys: pytest.CaptureFixture[str], project: Path, argv: list[str]) -> None:
    code, out, err = run(capsys, project, "--format", "json", *argv)
    assert code == 0, err
    assert isinstance(json.loads(out), dict)


@pytest.mark.parametrize("argv", FORMAT_CASES, ids=lambda a: " ".join(a))
def test_markdown_output_has_real_tables(
    capsys: pytest.CaptureFixture[str], project: Path, argv: list[str]
) -> None:
    code, out, err = run(capsys, project, "--format", "md", *argv)
    assert code == 0, err
    assert out.startswith("## ")
    lines = out.splitlines()
    tables = [i for i, line in enumerate(lines) if line.startswith("|---") or line.startswith("|--")]
    if argv[0] not in ("tb", "notes"):  # no TensorBoard runs in the fixture; notes are key/value lines
        assert tables, out
    for i in tables:
        header = lines[i - 1]
        assert header.startswith("| ") and header.endswith(" |")
        width = header.count(" | ")
        j = i + 1
        while j < len(lines) and lines[j].startswith("|"):
            assert lines[j].replace("\\|", "").count(" | ") == width, lines[j]
            j += 1


@pytest.mark.parametrize("argv", FORMAT_CASES, ids=lambda a: " ".join(a))
def test_text_output_has_no_trailing_spaces(
    capsys: pytest.CaptureFixture[str], project: Path, argv: list[str]
) -> None:
    code, out, err = run(capsys, project, *argv)
    assert code == 0, err
    assert out.strip() and all(line == line.rstrip() for line in out.splitlines())


# ---------------------------------------------------------------- start-up

HEAVY = ("numpy", "pydantic", "runwise.tools", "runwise.config", "runwise.render", "importlib.metadata", "rich")


def _heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_importing_the_cli_loads_no_numpy_pydantic_or_tools() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import runwise.cli"],
                          capture_output=True, text=True, timeout=60, check=True)
    imported = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "runwise.cli" in imported and "argparse" in imported  # the listing is what we think it is
    assert _heavy(imported) == []


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"], ["history", "-h"], ["bogus"]], ids=" ".join)
def test_help_loads_no_numpy_pydantic_or_tools(argv: list[str]) -> None:
    code = ("import sys\nfrom runwise.cli import main\ncode = main(sys.argv[1:])\n"
            "print(code, ','.join(sorted(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    exit_code, modules = done.stderr.splitlines()[-1].split(" ")
    assert int(exit_code) == (2 if argv == ["bogus"] else 0)
    assert "usage: runwise" in done.stdout + done.stderr
    assert _heavy(modules.split(",")) == []


def test_each_command_gets_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    # the parser builds only the named command's options; global options may come first, with values
    assert cli._command_in(["--root", "list", "history", "-n", "5"]) == "history"
    assert cli._command_in(["--ro=x", "--fo", "json", "--json", "stats"]) == "stats"
    assert cli._command_in(["--help"]) == "" and cli._command_in([]) == ""
    assert cli.main(["history", "-h"]) == 0
    assert "--csv" in capsys.readouterr().out


# ---------------------------------------------------------------- pipes

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RUNWISE = [sys.executable, "-m", "runwise"]


def test_a_closed_pipe_ends_quietly() -> None:
    # the reader is gone before runwise writes: every write meets a closed pipe
    with subprocess.Popen([*RUNWISE, "--root", str(EXAMPLES), "history", "--csv"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 0, err
    assert err == ""


@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ") if fcntl else True, reason="needs Linux pipe sizes")
def test_runwise_into_head_exits_0() -> None:
    # `runwise --root examples history --csv -n 1000 | head -1` through a pipe that holds one page, so
    # runwise is still writing when head leaves
    assert fcntl is not None
    argv = [*RUNWISE, "--root", str(EXAMPLES), "history", "--csv", "-n", "1000"]
    full = subprocess.run(argv, capture_output=True, timeout=120, check=True).stdout
    read_end, write_end = os.pipe()
    page = fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    assert len(full) > 3 * page  # more than the pipe holds
    with subprocess.Popen(argv, stdout=write_end, stderr=subprocess.PIPE) as runwise, \
            subprocess.Popen(["head", "-1"], stdin=read_end, stdout=subprocess.PIPE) as head:
        os.close(read_end)
        os.close(write_end)
        first, _ = head.communicate(timeout=120)
        _, err = runwise.communicate(timeout=120)
    assert first == full.splitlines(keepends=True)[0] == b"metric,step,value\n"
    assert (runwise.returncode, head.returncode) == (0, 0), err
    assert err == b""


# ---------------------------------------------------------------- the original runwise's CLI forms


def _table_rows(text: str) -> list[list[str]]:
    """The rows of the first table in a text answer (after its header and rule)."""
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if len(lines) >= 2 and lines[1].startswith("---"):
            return [line.split() for line in lines[2:]]
    return []


def _first_column(text: str) -> list[str]:
    return [row[0] for row in _table_rows(text)]


def _no_spark(text: str) -> bool:
    return "spark" not in text and not any(c in text for c in "▁▂▃▄▅▆▇█")


# Each form as the original README writes it (its metric names are those of examples/), and what
# the answer must show. Role names stand for keys: loss -> train/loss, val_loss -> val/loss.
ORIGINAL_FORMS: list[tuple[str, Callable[[str], bool]]] = [
    ("list", lambda out: out.startswith("2 runs") and "spark" in out),
    ("list --no-spark", lambda out: out.startswith("2 runs") and _no_spark(out)),
    ("latest", lambda out: _run_line(out).startswith("jsonl:lr_warmup") and "spark" in out),
    ("latest -k loss,val_loss", lambda out: _first_column(out) == ["train/loss", "val/loss"]),
    ("latest --no-anomalies", lambda out: "anomaly checks off" in out.splitlines()[0]),
    ("latest --no-spark", lambda out: _run_line(out).startswith("jsonl:lr_warmup") and _no_spark(out)),
    ("run baseline", lambda out: _run_line(out).startswith("jsonl:baseline") and "spark" in out),
    ("run baseline --no-spark --no-anomalies",
     lambda out: _run_line(out).startswith("jsonl:baseline") and "anomaly checks off" in out and _no_spark(out)),
    ("compare baseline lr_warmup", lambda out: "delta_pct" in out and "schedule.warmup_steps" in out),
    ("compare baseline lr_warmup -f val", lambda out: _first_column(out) == ["val/loss", "val/acc"]),
    ("compare baseline lr_warmup -g", lambda out: "\ntrain:\n" in out and "\nval:\n" in out),
    ("compare baseline lr_warmup -t 5",
     lambda out: all(abs(float(row[-1])) >= 5 for row in _table_rows(out)) and "val/acc" not in out),
    ("compare baseline lr_warmup -d", lambda out: "config differences:" in out),
    ("compare baseline@2000 lr_warmup@2000", lambda out: "step@baseline" in out and "2,000" in out),
    ("compare baseline@1000 lr_warmup@2000", lambda out: "1,000" in out and "2,000" in out),
    ("compare baseline@2000 lr_warmup -f val", lambda out: _first_column(out) == ["val/loss", "val/acc"]),
    ("config", lambda out: out.startswith("jsonl:lr_warmup") and "schedule.warmup_steps" in out),
    ("config baseline", lambda out: out.startswith("jsonl:baseline") and "constant" in out),
    ("notes", lambda out: out.startswith("jsonl:lr_warmup")),
    ("notes baseline", lambda out: "constant learning rate, no warm-up" in out),
    ("best val/loss", lambda out: _first_column(out) == ["1", "2"] and "lr_warmup = 0.4116" in out),
    ("best val/acc --max", lambda out: "(highest): jsonl:lr_warmup" in out),
    ("best val/loss -n 20", lambda out: "considered: 2" in out),
    ("history", lambda out: out.startswith("jsonl:lr_warmup") and "train/loss:" in out),
    ("history -k loss,val_loss", lambda out: "train/loss:" in out and "val/loss:" in out and "lr:" not in out),
    ("history baseline -k loss -n 100", lambda out: "up to 100 points" in out and " of 401 points" in out),
    ("stats", lambda out: "grad_norm" in out and "mean" in out),
    ("stats -k loss,val_loss,grad_norm", lambda out: _first_column(out) == ["train/loss", "val/loss", "grad_norm"]),
    ("stability", lambda out: "verdict" in out),
    ("stability -k loss,val_loss", lambda out: _first_column(out) == ["train/loss", "val/loss"]),
    ("stability -w 50", lambda out: all(row[-1] == "50" for row in _table_rows(out))),
    ("stability --csv", lambda out: out.startswith("metric,verdict,")),
    ("keys", lambda out: "perf/samples_per_sec" in out),
    ("keys baseline", lambda out: out.startswith("jsonl:baseline") and "val/acc" in out),
    ("live", lambda out: out.startswith("jsonl:lr_warmup") and "step 4,000" in out),
    ("local", lambda out: out.startswith("2 runs (2 jsonl)") and "baseline" in out and "lr_warmup" in out),
    ("local logs/baseline.jsonl --keys", lambda out: "first_step" in out and "val/acc" in out),
    ("local logs/baseline.jsonl --history -k loss,val_loss",
     lambda out: "train/loss:" in out and "val/loss:" in out),
    ("local logs/baseline.jsonl --stats -k loss,val_loss",
     lambda out: _first_column(out) == ["train/loss", "val/loss"]),
    ("local logs/baseline.jsonl --stability -k loss", lambda out: _first_column(out) == ["train/loss"]),
    ("tb", lambda out: out.startswith("0 runs")),
    ("latest --format md", lambda out: out.startswith("## Summarize a run")),
    ("list --format md", lambda out: out.startswith("## List runs") and "|---" in out),
    ("compare baseline lr_warmup --format md", lambda out: out.startswith("## Compare runs") and "|---" in out),
]


@pytest.fixture
def in_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as the original README does: in the project, no --root, no project variables."""
    monkeypatch.chdir(EXAMPLES)
    monkeypatch.delenv("RUNWISE_PROJECT_ROOT", raising=False)
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)


@pytest.mark.parametrize(("form", "shows"), ORIGINAL_FORMS, ids=[form for form, _ in ORIGINAL_FORMS])
def test_original_cli_form(capsys: pytest.CaptureFixture[str], in_examples: None, form: str,
                           shows: Callable[[str], bool]) -> None:
    code = cli.main(form.split())
    out, err = capsys.readouterr()
    assert code == 0, err
    assert shows(out), out


def test_original_tb_forms(capsys: pytest.CaptureFixture[str]) -> None:
    # runwise tb / runwise tb -r RUN, on the TensorBoard fixtures (examples/ has no TensorBoard run)
    root = Path(__file__).resolve().parent / "data" / "tensorboard"
    assert cli.main(["--root", str(root), "tb"]) == 0
    assert "txb" in capsys.readouterr().out
    assert cli.main(["--root", str(root), "tb", "-r", "txb", "--no-spark"]) == 0
    out = capsys.readouterr().out
    assert _run_line(out).startswith("tensorboard:txb") and "train/loss" in out and _no_spark(out)


def test_best_n_ranks_the_newest_runs(capsys: pytest.CaptureFixture[str], in_examples: None) -> None:
    # highest final val/loss: baseline of both runs, lr_warmup when only the newest run is considered
    assert cli.main(["best", "val/loss", "--max", "--final"]) == 0
    assert "(highest): jsonl:baseline" in capsys.readouterr().out
    assert cli.main(["best", "val/loss", "--max", "--final", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "(highest): jsonl:lr_warmup" in out and "considered: 1" in out
    assert cli.main(["best", "val/loss", "--top", "1"]) == 0
    assert _first_column(capsys.readouterr().out) == ["1"]


def test_a_role_name_no_run_has_is_named(capsys: pytest.CaptureFixture[str], in_examples: None) -> None:
    # the original README's `-k loss,val_loss,accuracy`: examples/ logs no training accuracy
    assert_one_line_error(*run_env(capsys, "latest", "-k", "loss,val_loss,accuracy"), "'accuracy'", "val/acc")
