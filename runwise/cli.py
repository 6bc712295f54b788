"""The `runwise` command line: parse, build the tool's input model, call its handler, render.

Every command maps onto one tool of `runwise.tools` (the same handlers the MCP server calls);
`local`, `tb` and `init` are conveniences over them (see `runwise.commands`). Errors are one line
on stderr (`runwise: error: ...`, exit 1); usage errors exit 2; Ctrl-C exits 130; a bug prints
its type and message, and the traceback only with RUNWISE_DEBUG=1; a reader that leaves early
(`runwise history --csv | head`) ends it quietly with exit 0.

Start-up is kept to argparse's: nothing here imports pydantic, numpy, the config or the tools
until a command runs (tests/test_cli.py checks it, bench/bench_cli_start.py measures it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from runwise import commands as c
from runwise.errors import RunwiseError
from runwise.formatting import FORMATS, error_reason

# a command returns the text to print, or the exit code when it printed as it went (`watch`)
Command = Callable[[argparse.Namespace], "str | int"]

EPILOG = """\
run references: latest (default), an id, a unique id prefix, a name, source:id (jsonl:exp1,
tensorboard:run1, wandb:3kx9a2bq), a log file path, and REF@STEP (compare at a step: a@5000, b@12k).
project root: --root, else $RUNWISE_PROJECT_ROOT, else $CLAUDE_PROJECT_DIR, else the current directory;
a root on object storage is a URL (s3://BUCKET/PREFIX, gs://...; pip install 'runwise[remote]').
"""

# Input-model fields -> the option a person typed, for validation errors.
_FLAGS = {
    "limit": "-n", "top_n": "--top", "max_runs": "-n", "max_points": "-n", "max_metrics": "-n", "max_keys": "-n",
    "max_anomalies": "-n", "window_steps": "-w", "threshold_pct": "-t", "runs": "RUNS (give 2 to 16)",
    "step": "--step", "start_step": "--start", "end_step": "--end", "output_lines": "--lines",
    "keys": "-k", "prefix": "-p", "metric": "METRIC", "run": "the run reference", "budget": "--budget",
}


# ---------------------------------------------------------------- parser


def _columns() -> int:
    """Terminal width as argparse would find it, without importing shutil (which loads bz2 and lzma)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno() if sys.__stdout__ else 1).columns
    except (ValueError, OSError):
        return 80


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter with the terminal width looked up once per process, not per option."""

    width: int | None = None

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            if _Formatter.width is None:
                _Formatter.width = _columns() - 2  # what HelpFormatter does with shutil's width
            width = _Formatter.width
        super().__init__(prog, indent_increment, max_help_position, width)


def _common(*, with_defaults: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the command; after it, unset ones must not override."""
    d: Callable[[object], object] = (lambda v: v) if with_defaults else (lambda v: argparse.SUPPRESS)
    p = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
    g = p.add_argument_group("global options")
    g.add_argument("--root", metavar="DIR|URL", default=d(None), help="project root (see below)")
    g.add_argument("--format", choices=FORMATS, default=d("text"), help="output format (default: text)")
    g.add_argument("--json", dest="format", action="store_const", const="json", default=d("text"),
                   help="same as --format json")
    g.add_argument("--budget", type=int, metavar="TOKENS", default=d(None),
                   help="most tokens the answer may cost, 100 to 50,000 (default: the command's own)")
    return p


def _keys_opt(p: argparse.ArgumentParser, *names: str) -> None:
    p.add_argument(*(names or ("-k", "--keys")), dest="keys", action="append", metavar="KEYS",
                   help="metric names or prefixes, comma-separated or repeated (e.g. -k train/loss,val/)")


def _summary_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-anomalies", action="store_true", help="skip the anomaly checks")
    p.add_argument("--no-spark", action="store_true", help="no sparklines")
    p.add_argument("-m", "--max-metrics", type=int, default=8, metavar="N",
                   help="metrics to show (default 8)")


def _ref(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", nargs="?", default="latest", metavar="RUN", help="run reference (default: latest)")


# `--source` of list and best: the sources on disk (the cloud has `runwise api`)
SOURCE_CHOICES = ["all", "wandb", "tensorboard", "jsonl", "mlflow", "dvclive", "trackio", "hf", "csv"]


def _run_summary(p: argparse.ArgumentParser) -> None:
    _ref(p)
    _keys_opt(p)
    _summary_opts(p)


def _list_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--limit", type=int, default=15, metavar="N", help="runs to show (default 15)")
    p.add_argument("--source", choices=SOURCE_CHOICES, default="all")
    p.add_argument("-m", "--metric", help="metric to show per run (default: the loss)")
    p.add_argument("--no-spark", action="store_true", help="no sparkline column")


def _latest_opts(p: argparse.ArgumentParser) -> None:
    _keys_opt(p)
    _summary_opts(p)


def _compare_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("refs", nargs="+", metavar="RUN", help="run references (2 to 16)")
    p.add_argument("-f", "--filter", default="", metavar="PREFIX", help="only metrics starting with PREFIX")
    p.add_argument("-g", "--group", action="store_true", help="group metrics by prefix (train/, val/, ...)")
    p.add_argument("-t", "--threshold", type=float, default=0.0, metavar="PCT",
                   help="hide metrics that change by less than PCT %%")
    p.add_argument("-d", "--diff", action=argparse.BooleanOptionalAction, default=True,
                   help="show config differences (default: on)")
    p.add_argument("--step", type=int, metavar="N", help="compare every run at step N")
    p.add_argument("-n", "--max-metrics", type=int, default=20, metavar="N",
                   help="metrics to show (default 20)")
    p.add_argument("--group-by", metavar="KEY",
                   help="aggregate runs per group: 'seed' (configs equal but for seed/name keys) or a config key")


def _config_opts(p: argparse.ArgumentParser) -> None:
    _ref(p)
    p.add_argument("-p", "--prefix", default="", help="only keys starting with PREFIX")
    p.add_argument("-n", "--max-keys", type=int, default=100, metavar="N", help="keys to show (default 100)")


def _best_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("metric", metavar="METRIC", help="metric to rank by, e.g. val/loss")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--max", dest="mode", action="store_const", const="max", help="higher is better")
    mode.add_argument("--min", dest="mode", action="store_const", const="min", help="lower is better")
    p.set_defaults(mode="auto")
    p.add_argument("-n", "--runs", type=int, default=100, metavar="N",
                   help="rank the N newest runs (default 100)")
    p.add_argument("--top", type=int, default=5, metavar="N", help="ranked runs to show (default 5)")
    p.add_argument("--final", action="store_true", help="rank by the final value instead of the best")
    p.add_argument("--source", choices=SOURCE_CHOICES, default="all")


def _history_opts(p: argparse.ArgumentParser) -> None:
    _ref(p)
    _keys_opt(p)
    p.add_argument("-n", "--points", type=int, metavar="N", help="points per metric (default: ~360 in all)")
    p.add_argument("--start", type=int, metavar="STEP", help="first step")
    p.add_argument("--end", type=int, metavar="STEP", help="last step")
    p.add_argument("--csv", action="store_true", help="one CSV: metric,step,value")


def _stats_opts(p: argparse.ArgumentParser) -> None:
    _ref(p)
    _keys_opt(p)


def _stability_opts(p: argparse.ArgumentParser) -> None:
    _ref(p)
    _keys_opt(p)
    p.add_argument("-w", "--window", type=int, metavar="STEPS",
                   help="rolling window in steps (default span/20)")
    p.add_argument("--csv", action="store_true", help="the stability table as CSV")


def _keys_opts(p: argparse.ArgumentParser) -> None:
    _ref(p)
    p.add_argument("-p", "--prefix", default="", help="only keys starting with PREFIX")


def _seconds(text: str) -> float:
    """An --interval value: seconds, 0.1 to 3600."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be 0.1 to 3600 seconds, got {text}")
    return value


def _live_common(p: argparse.ArgumentParser) -> None:
    _ref(p)
    _keys_opt(p)
    p.add_argument("--lines", type=int, default=5, metavar="N", help="console lines to show (default 5)")
    p.add_argument("--interval", type=_seconds, default=1.0, metavar="SECONDS",
                   help="seconds between reads while following (default 1)")


def _live_opts(p: argparse.ArgumentParser) -> None:
    _live_common(p)
    p.add_argument("-f", "--follow", action="store_true",
                   help="redraw until the run ends (as `runwise watch`), then print its verdict")


def _watch_opts(p: argparse.ArgumentParser) -> None:
    _live_common(p)


def _anomalies_opts(p: argparse.ArgumentParser) -> None:
    _ref(p)
    _keys_opt(p)
    p.add_argument("-n", "--max", dest="max_anomalies", type=int, default=20, metavar="N",
                   help="anomalies to show (default 20)")


def _local_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", metavar="FILE", help="log file or run directory")
    what = p.add_mutually_exclusive_group()
    for flag in ("keys", "history", "stats", "stability"):
        what.add_argument(f"--{flag}", dest="mode", action="store_const", const=flag,
                          help=f"show {flag} instead of the summary")
    p.set_defaults(mode="summary")
    _keys_opt(p, "-k", "--metrics")
    _summary_opts(p)
    p.add_argument("-n", "--limit", type=int, default=15, metavar="N",
                   help="logs to list when no FILE is given (default 15)")


def _tb_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("-r", "--run", metavar="RUN", help="TensorBoard run to summarize")
    p.add_argument("-n", "--limit", type=int, default=15, metavar="N", help="runs to list (default 15)")
    _keys_opt(p)
    _summary_opts(p)


def _init_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="project name (default: the root directory's name)")
    p.add_argument("--force", action="store_true", help="overwrite an existing runwise.json")


def _cache_opts(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", title="actions")
    common = _common(with_defaults=False)
    sub.add_parser("info", parents=[common], formatter_class=_Formatter,
                   help="the cache directory, its size and entries, hit and miss counts (the default)")
    clear = sub.add_parser("clear", parents=[common], formatter_class=_Formatter,
                           help="remove every entry, or with RUN only that run's")
    clear.add_argument("ref", nargs="?", metavar="RUN", help="run reference (default: every entry)")
    p.set_defaults(action="info", ref=None)


# name (runs commands.cmd_<name>), options, help, description (default: the help)
COMMANDS: tuple[tuple[str, Callable[[argparse.ArgumentParser], None], str, str], ...] = (
    ("list", _list_opts, "list runs, newest first, with final loss and a sparkline", ""),
    ("latest", _latest_opts, "summarize the most recent run", ""),
    ("run", _run_summary, "summarize a run: state, main metrics, anomalies, how it ended", ""),
    ("compare", _compare_opts, "compare 2-16 runs: final/best values, where they diverge, config keys that matter",
     "Compare runs side by side: final and best values, values at common checkpoints, the step where the "
     "runs diverge beyond their noise, and the config keys that differ, ranked by how much of the difference "
     "they explain. REF@STEP compares at that step; --step N puts every run at step N; --group-by seed "
     "aggregates seeds (mean/std/min/max). --no-diff hides the config differences."),
    ("config", _config_opts, "show a run's hyperparameters (flattened keys)", ""),
    ("notes", _ref, "show a run's name, notes, tags, group and segments", ""),
    ("best", _best_opts, "rank runs by a metric's best (or final) value", ""),
    ("history", _history_opts, "metric curves, downsampled so spikes survive", ""),
    ("stats", _stats_opts, "per-metric statistics on full-resolution data", ""),
    ("stability", _stability_opts, "noise and trend per metric: rolling std, slope, verdict", ""),
    ("keys", _keys_opts, "list a run's metric keys with point counts and step ranges", ""),
    ("live", _live_opts, "status of a running job: step, speed, latest values, console tail", ""),
    ("watch", _watch_opts, "follow a run live until it ends, then print its verdict (live --follow)",
     "Follow a run in the terminal: the step with a progress bar and ETA when its config names the total "
     "(max_steps, ...), steps/s, the time since the last write, the key metrics with sparklines, findings as "
     "they appear and the last console lines, redrawn every --interval seconds until the run ends or Ctrl-C. "
     "Then the run's verdict; the exit code is 0, or 1 for a crashed or failed run. When stdout is not a "
     "terminal (or with --format md/json), a line (a JSON object) is written each time the step changes."),
    ("anomalies", _anomalies_opts,
     "spikes, NaN/inf, divergence, overfitting, plateaus, gradient trouble", ""),
    ("report", c.report_opts, "one markdown report of runs, with charts when written to a file (-o)",
     "One markdown document about 1 to 16 runs, for a GitHub issue or a lab notebook: each run's verdict and "
     "findings with their evidence, its key metrics, and for several runs the comparison and the config diff "
     "(the MCP report tool returns the same). With -o FILE it is written there, with PNG charts of the key "
     "metrics next to it (FILE's stem + _<metric>.png; needs pip install 'runwise[plot]'; --no-charts: none)."),
    ("local", _local_opts,
     "list the JSONL logs, or analyse one log file (.jsonl, .wandb, tfevents, run dir)",
     "Without FILE: list the JSONL logs under the logs dir, newest first. With FILE (a path relative "
     "to the working directory, inside the project roots): summarize it, or show its keys, history, "
     "stats or stability. Here -k/--metrics picks metrics, and --keys lists them."),
    ("tb", _tb_opts, "list TensorBoard runs, or summarize one with -r RUN", ""),
    ("api", c.api_options, "W&B cloud runs (wandb.Api): list, summarize (-r), rank (--best), compare (-c)",
     "Runs on W&B's servers, read through wandb.Api (pip install 'runwise[wandb]'): list a project's runs "
     "(--state S), summarize one (-r RUN, -k KEYS; --history: its curves), rank runs (--best METRIC "
     "[--max]), compare two (-c A,B [-f PREFIX] [-t PCT]; a local reference such as wandb:abc works too). "
     "The project: -p, else runwise.json's wandb_project, else the local W&B runs'. Fetched histories are "
     "kept in the disk cache. References elsewhere: wandb-cloud:ENTITY/PROJECT/RUN_ID or cloud:RUN_ID."),
    # the file name is spelled out (config.CONFIG_FILE): importing config would load pydantic for --help
    ("init", _init_opts, "write a starter runwise.json into the project root", ""),
    ("cache", _cache_opts, "show or clear the disk cache of parsed runs (cache info, cache clear [RUN])",
     "The disk cache keeps runs that took a while to parse, for the next process: `cache info` shows its "
     "directory, size, entries and hit/miss counts; `cache clear` removes every entry, `cache clear RUN` "
     "that run's. runwise.json's cache_max_bytes caps its size (default 2 GiB; least recently used "
     "entries go first); 0 or \"cache\": false turns it off."),
)


_READ_NO_RUNS = ("init", "cache", "api")  # commands that read no runs of the project root


class _Version(argparse.Action):
    """`--version`: the installed version is looked up only when asked (importlib.metadata is slow to load)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
        option_string: str | None = None,
    ) -> None:
        from runwise import __version__

        sys.stdout.write(f"runwise {__version__}\n")
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `runwise` parser with one subcommand per operation.

    Every command is listed; with `only`, just that command gets its options (the rest is what
    `runwise --help` shows), which keeps start-up at argparse's own cost.
    """
    common = _common(with_defaults=False)
    parser = argparse.ArgumentParser(
        prog="runwise", parents=[_common(with_defaults=True)], epilog=EPILOG,
        description="Analyse ML training runs (W&B, TensorBoard, JSONL) in few words.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, options, help, description in COMMANDS:
        p = sub.add_parser(name, parents=[common], help=help, description=description or help, epilog=EPILOG,
                           formatter_class=_Formatter)
        func: Command = getattr(c, f"cmd_{name}")
        p.set_defaults(func=func)
        if only is None or only == name:
            options(p)
    return parser


def _command_in(argv: Sequence[str]) -> str:
    """The command `argv` names (the first word that is not a global option or its value), or ''."""
    value_next = False
    for word in argv:
        if value_next:
            value_next = False
        elif word == "--":
            return ""
        elif word.startswith("--"):
            name = word[2:]
            # --root DIR / --format FMT / --budget N, also abbreviated as argparse allows (--ro DIR)
            value_next = "=" not in name and any(opt.startswith(name) for opt in ("root", "format", "budget"))
        elif not word.startswith("-"):
            return word
    return ""


# ---------------------------------------------------------------- entry point


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _validation_message(exc: Exception) -> str | None:
    """One line for pydantic's ValidationError (an input model refused a value), else None.

    pydantic is imported here, not at the top: it is only needed once a model has been validated.
    """
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return None
    parts = []
    for err in exc.errors()[:3]:
        msg = error_reason(err)
        if not err["loc"]:  # a check across options (an inverted --start/--end range)
            parts.append(f"invalid options: {msg}")
            continue
        field = str(err["loc"][0])
        where = _FLAGS.get(field, field)
        got = err.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        parts.append(f"invalid value for {where}: {msg}{shown}")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        command = _command_in(words)
        parser = build_parser(only=command)  # '' (no command) or a typo: no command's options
        try:
            args = parser.parse_args(words)
        except SystemExit as exc:  # -h, --version, usage errors: argparse has printed them
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if args.command is None:
            parser.print_help()
            return 0
        if args.command not in _READ_NO_RUNS:
            from runwise._root import prefetch

            # a root on object storage: the store worker lists and fetches it while the command imports its tools
            prefetch(args.root, once=args.command != "watch" and not getattr(args, "follow", False))
        result = args.func(args)
        if isinstance(result, int):  # the command printed as it went (`watch`): its exit code
            sys.stdout.flush()
            return result
        print(result)
        sys.stdout.flush()
    except KeyboardInterrupt:
        print("\nrunwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `runwise history --csv | head`: the reader has all it wanted; not an error
        _drop_stdout()
        return 0
    except RunwiseError as exc:
        return _fail(str(exc))
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}")
    except Exception as exc:
        message = _validation_message(exc)
        if message is not None:
            return _fail(message)
        if os.environ.get("RUNWISE_DEBUG"):  # a bug: still one line, unless asked for the traceback
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc} (set RUNWISE_DEBUG=1 for the traceback)")
    return 0


def _drop_stdout() -> None:
    """Point stdout at the null device, so the interpreter's last flush finds no closed pipe to complain of."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _fail(message: str) -> int:
    print(f"runwise: error: {_one_line(message)}", file=sys.stderr)
    return 1
