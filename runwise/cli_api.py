"""`runwise api`: W&B cloud runs through wandb.Api (runwise.parsers.wandb_cloud), with the seed's options.

  runwise api -p PROJECT [-e ENTITY]            list the project's runs (newest first; --state S)
  runwise api -p PROJECT -r RUN [-k KEYS]       summarize one run (--history: its metric curves)
  runwise api -p PROJECT --best METRIC [--max]  rank the project's runs by a metric
  runwise api -p PROJECT -c A,B [-f PREFIX] [-t PCT]   compare two runs (a local reference such as
                                                `wandb:abc` may stand for either)

Each form calls the same tool as the other commands, on `wandb-cloud:` references. Only the standard
library is imported at module level: `runwise --help` must not pay for more.
"""

from __future__ import annotations

import argparse

from runwise.formatting import split_keys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATES = ("running", "finished", "crashed", "failed")


def api_options(p: argparse.ArgumentParser) -> None:
    """The options of `runwise api`."""
    p.add_argument("-p", "--project", metavar="PROJECT",
                   help="W&B project (default: runwise.json's wandb_project, else the local runs' project)")
    p.add_argument("-e", "--entity", metavar="ENTITY", help="W&B entity (default: wandb_entity, else yours)")
    p.add_argument("-r", "--run", metavar="RUN", help="summarize this run (its id)")
    p.add_argument("-k", "--keys", dest="keys", action="append", metavar="KEYS",
                   help="metric names or prefixes, comma-separated or repeated")
    p.add_argument("--history", action="store_true", help="with -r: the metric curves instead of the summary")
    p.add_argument("--best", metavar="METRIC", help="rank the project's runs by METRIC")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--max", dest="mode", action="store_const", const="max", help="with --best: higher is better")
    mode.add_argument("--min", dest="mode", action="store_const", const="min", help="with --best: lower is better")
    p.set_defaults(mode="auto", func=cmd_api)
    p.add_argument("-c", "--compare", metavar="A,B", help="compare two runs (ids, or local references)")
    p.add_argument("-f", "--filter", default="", metavar="PREFIX", help="with -c: only metrics starting with PREFIX")
    p.add_argument("-t", "--threshold", type=float, default=0.0, metavar="PCT",
                   help="with -c: hide metrics that change by less than PCT %%")
    p.add_argument("--state", choices=STATES, help="list only runs in this state")
    p.add_argument("-n", "--limit", type=int, default=15, metavar="N", help="runs to list or rank (default 15)")


def _ref(run: str) -> str:
    """A cloud reference for a run id (`cloud:ID`, resolved with the project given); a reference that
    names its source (`wandb:abc`, `cloud:E/P/ID`) stays as it is."""
    return run if ":" in run else f"cloud:{run}"


def _show(tool: str, args: argparse.Namespace, **fields: Any) -> str:
    from runwise.commands import call
    from runwise.render import render
    from runwise.tools import TOOLS_BY_NAME

    return render(call(tool, args, **fields), args.format, title=TOOLS_BY_NAME[tool].title)


def cmd_api(args: argparse.Namespace) -> str:
    """Run one form of `runwise api` (see the module docstring) on the project given."""
    from runwise.commands import _config
    from runwise.errors import ConfigError

    cfg = _config(args)
    cfg.wandb_project = args.project or cfg.wandb_project
    cfg.wandb_entity = args.entity or cfg.wandb_entity
    cfg.wandb_state = args.state
    keys = split_keys(args.keys)
    if args.compare:
        refs = [r.strip() for r in args.compare.split(",") if r.strip()]
        if len(refs) != 2:
            raise ConfigError(f"-c takes two runs, A,B; got {args.compare!r}")
        return _show("compare_runs", args, runs=[_ref(r) for r in refs], prefix=args.filter,
                     threshold_pct=args.threshold)
    if args.best:
        return _show("find_best_run", args, metric=args.best, mode=args.mode, source="wandb-cloud",
                     max_runs=args.limit)
    if args.run:
        if args.history:
            return _show("get_history", args, run=_ref(args.run), keys=keys)
        return _show("summarize_run", args, run=_ref(args.run), keys=keys)
    if args.history:
        raise ConfigError("--history needs a run: -r RUN")
    return _show("list_runs", args, source="wandb-cloud", limit=args.limit)
