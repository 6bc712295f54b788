"""The `runwise` command line: parse, build the tool's input model, call its handler, render.

Every command maps onto one tool of `runwise.tools` (the same handlers the MCP server calls);
`local`, `tb` and `init` are conveniences over them (see `runwise.commands`). Errors are one line
on stderr (`runwise: error: ...`, exit 1); usage errors exit 2; Ctrl-C exits 130; a bug prints
its type and message, and the traceback only with RUNWISE_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from runwise import commands as c
from runwise.config import CONFIG_FILE
from runwise.errors import RunwiseError
from runwise.render import FORMATS

Command = Callable[[argparse.Namespace], str]

EPILOG = """\
run references: latest (default), an id, a unique id prefix, a name, source:id (jsonl:exp1,
tensorboard:run1, wandb:3kx9a2bq), a log file path, and REF@STEP (compare at a step: a@5000, b@12k).
project root: --root, else $RUNWISE_PROJECT_ROOT, else $CLAUDE_PROJECT_DIR, else the current directory.
"""

# Input-model fields -> the option a person typed, for validation errors.
_FLAGS = {
    "limit": "-n", "top_n": "-n", "max_points": "-n", "max_metrics": "-n", "max_keys": "-n",
    "max_anomalies": "-n", "window_steps": "-w", "threshold_pct": "-t", "runs": "RUNS (give 2 to 8)",
    "step": "--step", "start_step": "--start", "end_step": "--end", "output_lines": "--lines",
    "keys": "-k", "prefix": "-p", "metric": "METRIC", "run": "the run reference",
}


# ---------------------------------------------------------------- parser


def _common(*, with_defaults: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the command; after it, unset ones must not override."""
    d: Callable[[Any], Any] = (lambda v: v) if with_defaults else (lambda v: argparse.SUPPRESS)
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options")
    g.add_argument("--root", metavar="DIR", default=d(None), help="project root (see below)")
    g.add_argument("--format", choices=FORMATS, default=d("text"), help="output format (default: text)")
    g.add_argument("--json", dest="format", action="store_const", const="json", default=d("text"),
                   help="same as --format json")
    return p


def _keys_opt(p: argparse.ArgumentParser, *names: str) -> None:
    p.add_argument(*(names or ("-k", "--keys")), dest="keys", action="append", metavar="KEYS",
                   help="metric names or prefixes, comma-separated or repeated (e.g. -k train/loss,val/)")


def _summary_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-anomalies", action="store_true", help="skip the anomaly checks")
    p.add_argument("-m", "--max-metrics", type=int, default=8, metavar="N",
                   help="metrics to show (default 8)")


def _ref(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", nargs="?", default="latest", metavar="RUN", help="run reference (default: latest)")


def build_parser() -> argparse.ArgumentParser:
    """The `runwise` parser with one subcommand per operation."""
    from runwise import __version__

    common = _common(with_defaults=False)
    parser = argparse.ArgumentParser(
        prog="runwise", parents=[_common(with_defaults=True)], epilog=EPILOG,
        description="Analyse ML training runs (W&B, TensorBoard, JSONL) in few words.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"runwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def add(name: str, func: Command, help: str, description: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=description or help, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = add("list", c.cmd_list, "list runs, newest first, with final loss and a sparkline")
    p.add_argument("-n", "--limit", type=int, default=15, metavar="N", help="runs to show (default 15)")
    p.add_argument("--source", choices=["all", "wandb", "tensorboard", "jsonl"], default="all")
    p.add_argument("-m", "--metric", help="metric to show per run (default: the loss)")
    p.add_argument("--no-spark", action="store_true", help="no sparkline column")

    p = add("latest", c.cmd_latest, "summarize the most recent run")
    _keys_opt(p)
    _summary_opts(p)

    p = add("run", c.cmd_run, "summarize a run: state, main metrics, anomalies, how it ended")
    _ref(p)
    _keys_opt(p)
    _summary_opts(p)

    p = add("compare", c.cmd_compare, "compare 2-8 runs: final values (or at a step), deltas, config diff",
            "Compare runs side by side. REF@STEP compares at that step; --step N puts every run at step N. "
            "The config differences are shown by default (they answer which change made B better); "
            "--no-diff hides them.")
    p.add_argument("refs", nargs="+", metavar="RUN", help="run references (2 to 8)")
    p.add_argument("-f", "--filter", default="", metavar="PREFIX", help="only metrics starting with PREFIX")
    p.add_argument("-g", "--group", action="store_true", help="group metrics by prefix (train/, val/, ...)")
    p.add_argument("-t", "--threshold", type=float, default=0.0, metavar="PCT",
                   help="hide metrics that change by less than PCT %%")
    p.add_argument("-d", "--diff", action=argparse.BooleanOptionalAction, default=True,
                   help="show config differences (default: on)")
    p.add_argument("--step", type=int, metavar="N", help="compare every run at step N")
    p.add_argument("-n", "--max-metrics", type=int, default=20, metavar="N",
                   help="metrics to show (default 20)")

    p = add("config", c.cmd_config, "show a run's hyperparameters (flattened keys)")
    _ref(p)
    p.add_argument("-p", "--prefix", default="", help="only keys starting with PREFIX")
    p.add_argument("-n", "--max-keys", type=int, default=100, metavar="N", help="keys to show (default 100)")

    p = add("notes", c.cmd_notes, "show a run's name, notes, tags, group and segments")
    _ref(p)

    p = add("best", c.cmd_best, "rank runs by a metric's best (or final) value")
    p.add_argument("metric", metavar="METRIC", help="metric to rank by, e.g. val/loss")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--max", dest="mode", action="store_const", const="max", help="higher is better")
    mode.add_argument("--min", dest="mode", action="store_const", const="min", help="lower is better")
    p.set_defaults(mode="auto")
    p.add_argument("-n", "--top", type=int, default=5, metavar="N", help="runs to show (default 5)")
    p.add_argument("--final", action="store_true", help="rank by the final value instead of the best")
    p.add_argument("--source", choices=["all", "wandb", "tensorboard", "jsonl"], default="all")

    p = add("history", c.cmd_history, "metric curves, downsampled so spikes survive")
    _ref(p)
    _keys_opt(p)
    p.add_argument("-n", "--points", type=int, metavar="N", help="points per metric (default: ~360 in all)")
    p.add_argument("--start", type=int, metavar="STEP", help="first step")
    p.add_argument("--end", type=int, metavar="STEP", help="last step")
    p.add_argument("--csv", action="store_true", help="one CSV: metric,step,value")

    p = add("stats", c.cmd_stats, "per-metric statistics on full-resolution data")
    _ref(p)
    _keys_opt(p)

    p = add("stability", c.cmd_stability, "noise and trend per metric: rolling std, slope, verdict")
    _ref(p)
    _keys_opt(p)
    p.add_argument("-w", "--window", type=int, metavar="STEPS",
                   help="rolling window in steps (default span/20)")
    p.add_argument("--csv", action="store_true", help="the stability table as CSV")

    p = add("keys", c.cmd_keys, "list a run's metric keys with point counts and step ranges")
    _ref(p)
    p.add_argument("-p", "--prefix", default="", help="only keys starting with PREFIX")

    p = add("live", c.cmd_live, "status of a running job: step, speed, latest values, console tail")
    _ref(p)
    _keys_opt(p)
    p.add_argument("--lines", type=int, default=5, metavar="N", help="console lines to show (default 5)")

    p = add("anomalies", c.cmd_anomalies,
            "spikes, NaN/inf, divergence, overfitting, plateaus, gradient trouble")
    _ref(p)
    _keys_opt(p)
    p.add_argument("-n", "--max", dest="max_anomalies", type=int, default=20, metavar="N",
                   help="anomalies to show (default 20)")

    p = add("local", c.cmd_local, "analyse one log file (.jsonl, .wandb, tfevents or a run directory)",
            "Analyse a log file given by path (relative to the working directory; it must lie inside "
            "the project roots). Default: summarize it. FILE defaults to the newest *.jsonl under the "
            "logs dir. Here -k/--metrics picks metrics, and --keys lists them.")
    p.add_argument("file", nargs="?", metavar="FILE", help="log file or run directory")
    what = p.add_mutually_exclusive_group()
    for flag in ("keys", "history", "stats", "stability"):
        what.add_argument(f"--{flag}", dest="mode", action="store_const", const=flag,
                          help=f"show {flag} instead of the summary")
    p.set_defaults(mode="summary")
    _keys_opt(p, "-k", "--metrics")
    _summary_opts(p)

    p = add("tb", c.cmd_tb, "list TensorBoard runs, or summarize one with -r RUN")
    p.add_argument("-r", "--run", metavar="RUN", help="TensorBoard run to summarize")
    p.add_argument("-n", "--limit", type=int, default=15, metavar="N", help="runs to list (default 15)")
    _keys_opt(p)
    _summary_opts(p)

    p = add("init", c.cmd_init, f"write a starter {CONFIG_FILE} into the project root")
    p.add_argument("--name", help="project name (default: the root directory's name)")
    p.add_argument("--force", action="store_true", help=f"overwrite an existing {CONFIG_FILE}")
    return parser


# ---------------------------------------------------------------- entry point


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        field = str(err["loc"][0]) if err["loc"] else ""
        where = _FLAGS.get(field, field or "input")
        got = err.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        parts.append(f"invalid value for {where}: {err['msg']}{shown}")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(list(argv) if argv is not None else None)
        except SystemExit as exc:  # -h, --version, usage errors: argparse has printed them
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if args.command is None:
            parser.print_help()
            return 0
        text = args.func(args)
        print(text)
        sys.stdout.flush()
    except KeyboardInterrupt:
        print("\nrunwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `runwise history --csv | head`: the reader left
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except RunwiseError as exc:
        return _fail(str(exc))
    except ValidationError as exc:
        return _fail(_validation_message(exc))
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}")
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("RUNWISE_DEBUG"):
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc} (set RUNWISE_DEBUG=1 for the traceback)")
    return 0


def _fail(message: str) -> int:
    print(f"runwise: error: {_one_line(message)}", file=sys.stderr)
    return 1
