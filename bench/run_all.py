"""One benchmark command: make the large inputs once, run every bench, write bench/RESULTS.md.

    python bench/run_all.py                          # every bench, full size (hours on a small machine)
    python bench/run_all.py --quick                  # smaller inputs and fewer repeats: a smoke test
    python bench/run_all.py --only jsonl,concurrent  # some benches (names below; --list shows them)
    python bench/run_all.py --skip wandb,wandb_live  # all but some
    python bench/run_all.py --out PATH               # the results file (default bench/RESULTS.md)

First the inputs the chosen benches read are made, each by its own generator in a child process
(under bench/_data/, git-ignored; an input already made is kept): the 1M-row W&B run
(make_wandb_big.py), the 1M-row JSONL run, the 1M-step tfevents file, the tokens project, the
labelled scenario suite and the 1,000-run project. With --quick, inputs that take many minutes to
make (the W&B run, the large project) are not made: the benches that need them are skipped, saying so.

Then each bench runs in its own process, one after the other, its output shown as it goes and kept
in bench/_results/run_all/<name>.log. A bench that has a `--json PATH` option writes its figures
there (rows made by bench/_common.figure: runwise's figure, the peer's figure measured beside it in
the same run, their ratio, the target and whether it was met); a bench without one is reported by
its exit status. A bench that fails, times out or is skipped is a row saying so.

RESULTS.md holds one row per figure (bench, what, runwise, peer, ratio, target, result), a table
of the bench runs (command, time, exit status), the machine (CPU model, cores, RAM, OS, Python),
the exact command and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "_data"
LOGS = HERE / "_results" / "run_all"


@dataclass
class Input:
    """An input some benches read, made by `code` (run as `python -c code` from the repository root)."""

    name: str
    code: str
    quick_code: str | None  # None: not made with --quick (too long); benches needing it are skipped
    ready: Any = None  # callable: is it made already (for --quick, where it is not made)?


@dataclass
class Bench:
    name: str
    script: str
    full: list[str] = field(default_factory=list)
    quick: list[str] | None = None  # None: pass --quick if the script has it, else no arguments
    needs: tuple[str, ...] = ()  # inputs it cannot run without (skipped if one is missing)
    quick_needs: tuple[str, ...] | None = None  # the same with --quick (default: needs)
    peer: str = ""  # what it is compared with, for the runs table
    uses: tuple[str, ...] = ()  # inputs it reads if present (made first; it says itself when one is missing)

    def inputs(self, quick: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(required, optional) inputs in this mode."""
        if quick:
            return (self.needs if self.quick_needs is None else self.quick_needs), ()
        return self.needs, self.uses


_PY = "import sys; sys.path[:0] = ['bench', '.']; "
INPUTS = {
    "wandb_1m": Input(
        "1M-row W&B run (bench/make_wandb_big.py, the real wandb client, offline)",
        _PY + "import make_wandb_big; raise SystemExit(make_wandb_big.main([]))",
        None,
        lambda: (DATA / "wandb_big_1000000.done").exists(),
    ),
    "jsonl_1m": Input(
        "1M-row JSONL run (bench_jsonl.generate)",
        _PY + "from pathlib import Path; from bench_jsonl import generate; "
        "p = Path('bench/_data/jsonl/logs/big.jsonl').resolve(); p.exists() or generate(p, 1_000_000)",
        _PY + "from pathlib import Path; from bench_jsonl import generate; "
        "p = Path('bench/_data/jsonl/logs/big.jsonl').resolve(); p.exists() or generate(p, 1_000_000)",
    ),
    "jsonl_200k": Input(
        "200,000-row JSONL run (bench_jsonl.generate), for --quick",
        "",
        _PY + "from pathlib import Path; from bench_jsonl import generate; "
        "p = Path('bench/_data/jsonl_200000/logs/big.jsonl').resolve(); p.exists() or generate(p, 200_000)",
    ),
    "tb": Input(
        "tfevents file of 5 tags, 1M steps (100,000 with --quick) (bench_tensorboard.generate)",
        _PY + "from pathlib import Path; from bench_tensorboard import generate; "
        "generate(Path('bench/_data/tb_1000000').resolve(), 1_000_000)",
        _PY + "from pathlib import Path; from bench_tensorboard import generate; "
        "generate(Path('bench/_data/tb_100000').resolve(), 100_000)",
    ),
    "tokens": Input(
        "tokens project, a 1M-step run (100,000 with --quick) (bench_tokens.project)",
        _PY + "from bench_tokens import project; project(1_000_000)",
        _PY + "from bench_tokens import project; project(100_000)",
    ),
    "scenarios": Input(
        "labelled scenario suite, written by all three sources' writers (bench_diagnosis)",
        _PY + "from bench_diagnosis import suite_dir, written_suite; written_suite(suite_dir())",
        _PY + "from bench_diagnosis import suite_dir, written_suite; written_suite(suite_dir())",
    ),
    "mlflow": Input(
        "MLflow run of 10 metrics x 200,000 steps (20,000 with --quick), SQLite and file store "
        "(bench_mlflow.generate; MLFLOW_PYTHON: a Python with mlflow)",
        _PY + "import os, sys; from bench_mlflow import HERE, generate; "
        "generate(HERE / '_data' / 'mlflow_200000', 200_000, os.environ.get('MLFLOW_PYTHON', sys.executable))",
        _PY + "import os, sys; from bench_mlflow import HERE, generate; "
        "generate(HERE / '_data' / 'mlflow_20000', 20_000, os.environ.get('MLFLOW_PYTHON', sys.executable))",
    ),
    "large_project": Input(
        "1,000-run project (bench_large_project.generate)",
        _PY + "from bench.bench_large_project import DATA, generate; "
        "generate(DATA / 'large_project', runs=1000, big=10, wandb=5, tensorboard=495)",
        None,
        lambda: (DATA / "large_project" / "made.json").exists(),
    ),
}

BENCHES = [
    Bench("cli_start", "bench_cli_start.py", [], ["--repeat", "5"], peer='python -c "import argparse"'),
    Bench("fresh_cli", "bench_fresh_cli.py", [], ["--repeat", "3"], ("jsonl_1m",),
          peer='python -c "import numpy, pydantic"'),
    Bench("mcp", "bench_mcp.py", [], ["--repeat", "3"], peer="a bare MCPServer"),
    Bench("tokens", "bench_tokens.py", [], ["--steps", "100000"], ("tokens",), peer="o200k and Claude tokenizers"),
    Bench("jsonl", "bench_jsonl.py", [], ["--rows", "200000", "--repeat", "1"], ("jsonl_1m",), ("jsonl_200k",),
          "an orjson loop, 1 and N processes"),
    Bench("concurrent", "bench_concurrent.py", [], ["--rows", "200000", "--repeat", "1"], ("jsonl_1m",),
          ("jsonl_200k",), "one call"),
    Bench("appends", "bench_appends.py", [], ["--repeat", "1"], ("jsonl_1m",), peer="an uncached full parse"),
    Bench("repeat", "bench_repeat.py", [], ["--sources", "jsonl", "--repeat", "1"], ("jsonl_1m",),
          uses=("tb", "wandb_1m")),
    Bench("http", "bench_http.py", [], ["--repeat", "5"], ("jsonl_1m",), peer="the same server over stdio"),
    Bench("wandb", "bench_wandb.py", [], ["--repeat", "1"], ("wandb_1m",), peer="wandb's protobuf parser"),
    Bench("wandb_live", "bench_wandb_live.py", [], ["--repeat", "1"], ("wandb_1m",), peer="a full read"),
    Bench("tensorboard", "bench_tensorboard.py", [], ["--steps", "100000", "--repeat", "1"], ("tb",),
          peer="rustboard, EventAccumulator, tbparse"),
    Bench("tb_live", "bench_tb_live.py", [], ["--steps", "100000", "--repeat", "1"], ("tb",), peer="a full read"),
    Bench("diagnosis", "bench_diagnosis.py", [], ["--sources", "jsonl", "--steps", "100000", "--repeat", "1"],
          ("scenarios",), peer="runwise 0.4.0 (PyPI)"),
    Bench("mlflow", "bench_mlflow.py", [], ["--steps", "20000", "--repeat", "1"], ("mlflow",),
          peer="MlflowClient.get_metric_history"),
    Bench("large_project", "bench_large_project.py", [], [], ("large_project",)),
    # needs moto[server] and s3fs (both in the dev extra): a root on moto's S3 server on 127.0.0.1
    Bench("remote", "bench_remote.py", [], ["--rows", "200000", "--steps", "100000", "--repeat", "1"],
          ("jsonl_1m", "tb"), ("jsonl_200k", "tb"), "local disk (needs moto[server], s3fs)"),
]


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------
# the machine


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    physical: set[tuple[str, str]] = set()
    try:
        phys = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (x.strip() for x in line.partition(":"))
            if key == "model name":
                cpu = value
            elif key == "physical id":
                phys = value
            elif key == "core id":
                core = value
                physical.add((phys, core))
    except OSError:
        pass
    ram = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    os_name = f"{platform.system()} {platform.release()}"
    try:
        release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        os_name = f"{release.get('PRETTY_NAME', '').strip(chr(34))} ({os_name})"
    except OSError:
        pass
    cores = f"{os.cpu_count()} logical"
    if physical:
        cores += f", {len(physical)} physical"
    try:
        cores += f" ({len(os.sched_getaffinity(0))} usable by this process)"
    except (AttributeError, OSError):
        pass
    return {"CPU": cpu, "Cores": cores, "RAM": ram or "?", "OS": os_name,
            "Python": f"{platform.python_implementation()} {platform.python_version()}"}


def revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + (" (with uncommitted changes)" if dirty else "")


# ----------------------------------------------------------------------------------------------
# running children


def run(argv: list[str], log_path: Path, timeout: float, prefix: str = "    ") -> tuple[int | str, float]:
    """Run `argv` from the repository root, its output shown with `prefix` and kept in `log_path`.

    Returns its exit status (or "timeout" / "could not start: ...") and its wall seconds.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    with log_path.open("w") as out:
        out.write(f"$ {shlex.join(argv)}\n")
        try:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
        except OSError as exc:
            return f"could not start: {exc}", 0.0

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                print(prefix + line.rstrip("\n"), flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            status: int | str = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the child's own process group: it and what it started
            proc.wait()
            status = "timeout"
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        reader.join(timeout=10)
    return status, time.perf_counter() - started


def last_line(path: Path) -> str:
    """The last non-empty line a child printed (for a bench without figures), shortened."""
    try:
        lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if len(lines) > 1 else ""


def has_option(script: Path, option: str) -> bool:
    """Whether the script defines `option` (an argparse option spelled out in its source)."""
    return f'"{option}"' in script.read_text()


# ----------------------------------------------------------------------------------------------
# the results file


def fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        s = f"{x:,}"
    elif isinstance(x, float):
        a = abs(x)
        s = f"{x:,.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 0.1 else f"{x:.3g}"
    else:
        s = str(x)
    return f"{s} {unit}".strip()


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def verdict(passed: Any) -> str:
    return "PASS" if passed is True else "FAIL" if passed is False else "—"


def render(rows: list[dict[str, Any]], runs: list[dict[str, Any]], info: dict[str, str], command: str,
           started: str, quick: bool) -> str:
    passed = sum(r["result"] == "PASS" for r in rows)
    failed = sum(r["result"] == "FAIL" for r in rows)
    lines = [
        "# Benchmark results",
        "",
        f"Made by `{command}` on {started}" + (" (**--quick**: smaller inputs and fewer repeats, a smoke test; "
                                               "not the figures to quote)" if quick else "") + ".",
        f"runwise revision {revision()}.",
        "",
        f"**{passed} PASS, {failed} FAIL**, {len(rows) - passed - failed} rows without a target.",
        "",
        "Each bench ran in its own process, one after the other; the peer's figure was measured by the same "
        "bench in the same run, alternating with runwise's (see each bench's docstring). "
        "Ratio = runwise's figure / the peer's (for times: below 1 means runwise is faster). "
        "A result of — means the row has no target.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "## Figures",
        "",
        "| bench | what | runwise | peer | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peer = fmt(r.get("peer"), r.get("unit", "")) if r.get("peer") is not None else "—"
        if r.get("peer_name"):
            peer = f"{peer} ({r['peer_name']})" if peer != "—" else f"— ({r['peer_name']})"
        ratio = f"{r['ratio']:.2f}x" if isinstance(r.get("ratio"), int | float) else "—"
        lines.append("| " + " | ".join(cell(c) for c in (
            r["bench"], r["what"], fmt(r.get("runwise"), r.get("unit", "")), peer, ratio, r.get("target") or "—",
            r["result"])) + " |")
    lines += [
        "",
        "## Bench runs",
        "",
        "| bench | command | compared with | seconds | exit status | figures |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append("| " + " | ".join(cell(str(c)) for c in (
            r["bench"], f"`{r['command']}`" if r["command"] else "—", r["peer"] or "—",
            f"{r['seconds']:.0f}" if r["seconds"] is not None else "—", r["status"], r["figures"])) + " |")
    lines += ["", "Logs of the last run: bench/_results/run_all/<bench>.log (git-ignored).", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [b.name for b in BENCHES]
    ap.add_argument("--only", default="", help=f"comma-separated benches to run, of: {', '.join(names)}")
    ap.add_argument("--skip", default="", help="comma-separated benches not to run")
    ap.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats (a smoke test)")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="results file (default bench/RESULTS.md)")
    ap.add_argument("--timeout", type=float, default=4 * 3600, help="seconds allowed per bench and per input")
    ap.add_argument("--list", action="store_true", help="list the benches and exit")
    args = ap.parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "bench/run_all.py", *raw])
    if args.list:
        for b in BENCHES:
            present = (HERE / b.script).exists()
            log(f"{b.name:14s} bench/{b.script}" + ("" if present else "  (not present)"))
        return 0
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    unknown = (only | skip) - set(names)
    if unknown:
        ap.error(f"unknown bench(es) {sorted(unknown)}; choose from {', '.join(names)}")
    chosen = [b for b in BENCHES if (not only or b.name in only) and b.name not in skip]
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info = machine()
    log(f"run_all: {len(chosen)} bench(es){' (--quick)' if args.quick else ''}; "
        + "; ".join(f"{k} {v}" for k, v in info.items()))
    LOGS.mkdir(parents=True, exist_ok=True)

    # 1. inputs, once, before any bench
    wanted: list[str] = []
    for b in chosen:
        if (HERE / b.script).exists():
            for need in (n for group in b.inputs(args.quick) for n in group):
                if need not in wanted:
                    wanted.append(need)
    missing: dict[str, str] = {}  # input -> why it is not there
    for i, name in enumerate(wanted, 1):
        inp = INPUTS[name]
        code = inp.quick_code if args.quick else inp.code
        if not code:
            if inp.ready is not None and inp.ready():
                log(f"[input {i}/{len(wanted)}] {inp.name}: already made")
            else:
                missing[name] = f"{inp.name} is not made with --quick (it takes long): run without --quick once"
                log(f"[input {i}/{len(wanted)}] {inp.name}: not made with --quick")
            continue
        log(f"[input {i}/{len(wanted)}] {inp.name} ...")
        status, secs = run([sys.executable, "-c", code], LOGS / f"input-{name}.log", args.timeout)
        log(f"[input {i}/{len(wanted)}] {inp.name}: exit {status}, {secs:.0f} s")
        if status != 0:
            missing[name] = f"making the {inp.name} failed (exit {status}; bench/_results/run_all/input-{name}.log)"

    # 2. the benches, one at a time
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for i, b in enumerate(chosen, 1):
        script = HERE / b.script
        head = f"[{i}/{len(chosen)}] {b.name}"
        entry: dict[str, Any] = {"bench": b.name, "command": "", "peer": b.peer, "seconds": None, "figures": 0}
        runs.append(entry)

        def one(what: str, result: str, _b: Bench = b) -> None:
            rows.append({"bench": _b.name, "what": what, "runwise": None, "result": result})

        if not script.exists():
            entry["status"] = "skipped: no such script"
            one(f"skipped: bench/{b.script} does not exist (yet)", "—")
            log(f"{head}: skipped (bench/{b.script} does not exist)")
            continue
        lacking = [missing[n] for n in b.inputs(args.quick)[0] if n in missing]
        if lacking:
            entry["status"] = "skipped: missing input"
            one(f"skipped: {lacking[0]}", "—")
            log(f"{head}: skipped ({lacking[0]})")
            continue
        cmd = [sys.executable, str(Path("bench") / b.script)]
        if args.quick:
            if b.quick is not None:
                cmd += b.quick
            elif has_option(script, "--quick"):
                cmd.append("--quick")
        else:
            cmd += b.full
        json_path = LOGS / f"{b.name}.json"
        json_path.unlink(missing_ok=True)
        with_json = has_option(script, "--json")
        if with_json:
            cmd += ["--json", str(json_path)]
        shown = shlex.join(["python", *cmd[1:]]).replace(str(LOGS), "bench/_results/run_all")
        entry["command"] = shown
        log(f"{head}: {shown}")
        status, secs = run(cmd, LOGS / f"{b.name}.log", args.timeout)
        entry["seconds"], entry["status"] = secs, status
        figures: list[dict[str, Any]] = []
        if with_json and json_path.exists():
            try:
                figures = list(json.loads(json_path.read_text()).get("rows", []))
            except (OSError, ValueError, AttributeError) as exc:
                one(f"its --json output could not be read: {exc}", "FAIL")
        for f in figures:
            rows.append({**f, "bench": b.name, "what": str(f.get("what", "?")), "result": verdict(f.get("pass"))})
        entry["figures"] = len(figures)
        if status != 0 and (status == "timeout" or not any(f.get("pass") is False for f in figures)):
            why = "timed out" if status == "timeout" else f"exited with status {status}"
            one(f"the bench {why}{'' if figures else ' (no figures)'}; see bench/_results/run_all/{b.name}.log",
                "FAIL")
        elif not figures:
            last = last_line(LOGS / f"{b.name}.log")
            one("exit status 0" + (" (it wrote no figures)" if with_json else " (it has no --json option: no figures)")
                + (f"; its last line: {last}" if last else ""), "PASS")
        log(f"{head}: exit {status}, {secs:.0f} s, {len(figures)} figure(s)")

    args.out.write_text(render(rows, runs, info, command, started, args.quick))
    failed = sum(r["result"] == "FAIL" for r in rows)
    shown_out = args.out.resolve()
    try:
        shown_out = shown_out.relative_to(ROOT)
    except ValueError:
        pass
    log(f"wrote {shown_out}: {len(rows)} row(s), {failed} FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
