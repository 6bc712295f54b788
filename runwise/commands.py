"""The commands of the `runwise` CLI: each builds a tool's input model, calls its handler, renders.

A command takes the parsed arguments and returns the text to print (or, when it printed as it went,
its exit code: `watch`); it raises RunwiseError,
pydantic's ValidationError or OSError, which `runwise.cli.main` turns into one-line errors.

Only the standard library and `runwise.errors` / `runwise.formatting` are imported here at
module level: `runwise --help` must not pay for pydantic, numpy or the tool modules. Each
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os

from runwise.cli_api import api_options as api_options  # `runwise api`: W&B cloud runs
from runwise.cli_api import cmd_api as cmd_api
from runwise.cli_report import cmd_report as cmd_report  # in a module of their own
from runwise.cli_report import report_opts as report_opts
from runwise.errors import ConfigError
from runwise.formatting import split_keys

TYPE_CHECKING = False  # typing is not imported at run time: `runwise --help` would pay for it
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from pydantic import BaseModel

    from runwise.config import RunwiseConfig

    Out = TypeVar("Out", bound=BaseModel)

# Which command answers with which tool (every tool has at least one command).
TOOL_COMMANDS = {
    "list_runs": ("list", "tb", "local"), "summarize_run": ("run", "latest", "local", "tb"),
    "compare_runs": ("compare",), "get_config": ("config",), "get_run_context": ("notes",),
    "find_best_run": ("best",),
    "get_history": ("history", "local --history"), "get_stats": ("stats", "local --stats"),
    "get_stability": ("stability", "local --stability"), "list_keys": ("keys", "local --keys"),
    "live_status": ("live", "watch"), "detect_anomalies": ("anomalies",), "report": ("report",),
}


# ---------------------------------------------------------------- plumbing


def _config(args: argparse.Namespace) -> RunwiseConfig:
    from runwise.config import RunwiseConfig

    cfg: RunwiseConfig | None = getattr(args, "_cfg", None)
    if cfg is None:
        cfg = RunwiseConfig.load(args.root)
        args._cfg = cfg
    return cfg


def _keys(args: argparse.Namespace) -> list[str] | None:
    keys: list[str] | None = getattr(args, "keys", None)
    return split_keys(keys)


def call(tool: str, args: argparse.Namespace, **fields: Any) -> BaseModel:
    """Validate `fields` (and the global --budget) with the tool's input model; the tool's answer, as the MCP server's.

    The answer is held to the same size cap and token budget (`--budget`, else the tool's default).
    """
    from runwise.cli_progress import for_stderr
    from runwise.tools import TOOLS_BY_NAME  # imported here: `--help` needs no numpy

    spec = TOOLS_BY_NAME[tool]
    budget = getattr(args, "budget", None)
    req = spec.input.model_validate(fields if budget is None else {**fields, "budget": budget})
    cfg = _config(args)
    progress = for_stderr()  # a bar on stderr for a read that takes a while, only on a terminal
    try:
        out: BaseModel = spec.run(req, cfg, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    return out


def call_as(tool: str, kind: type[Out], args: argparse.Namespace, **fields: Any) -> Out:
    """`call`, for a command that uses the output's fields (CSV forms): typed as `kind`."""
    out = call(tool, args, **fields)
    if not isinstance(out, kind):
        raise TypeError(f"{tool} answered with {type(out).__name__}, not {kind.__name__}")
    return out


def show(tool: str, args: argparse.Namespace, **fields: Any) -> str:
    """Run a tool and render its output in the chosen format.

    The text a command printed about unchanged runs is kept on disk (runwise.answers): the same
    command in the next process prints it again without reading the configuration, importing the
    tools or listing and reading the runs.
    """
    from runwise import answers

    form = f"text:{args.format}:{getattr(args, 'budget', None)}"
    q = answers.quick(tool, form, fields, args.root)
    if q is not None and (kept := answers.quick_get(q)) is not None:
        return kept
    from runwise.render import render
    from runwise.tools import TOOLS_BY_NAME

    cfg = _config(args)
    t = answers.ticket(cfg, tool, form, fields, proof=True) if q is not None else None
    out = call(tool, args, **fields)
    text = render(out, args.format, title=TOOLS_BY_NAME[tool].title)
    if q is not None and t is not None:
        answers.quick_put(q, t, text)
    return text


def _summary_fields(args: argparse.Namespace, run: str) -> dict[str, Any]:
    return {"run": run, "keys": _keys(args), "anomalies": not args.no_anomalies,
            "max_metrics": args.max_metrics, **({"spark_width": 0} if args.no_spark else {})}


# ---------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> str:
    return show("list_runs", args, source=args.source, limit=args.limit, sparklines=not args.no_spark,
                metric=args.metric)


def cmd_latest(args: argparse.Namespace) -> str:
    return show("summarize_run", args, **_summary_fields(args, "latest"))


def cmd_run(args: argparse.Namespace) -> str:
    return show("summarize_run", args, **_summary_fields(args, args.ref))


def cmd_compare(args: argparse.Namespace) -> str:
    return show("compare_runs", args, runs=args.refs, step=args.step, prefix=args.filter, group=args.group,
                threshold_pct=args.threshold, config_diff=args.diff, max_metrics=args.max_metrics,
                group_by=args.group_by)


def cmd_config(args: argparse.Namespace) -> str:
    return show("get_config", args, run=args.ref, prefix=args.prefix, max_keys=args.max_keys)


def cmd_notes(args: argparse.Namespace) -> str:
    return show("get_run_context", args, run=args.ref)


def cmd_best(args: argparse.Namespace) -> str:
    use = "final" if args.final else "best"
    return show("find_best_run", args, metric=args.metric, mode=args.mode, use=use, top_n=args.top,
                max_runs=args.runs, source=args.source)


def cmd_history(args: argparse.Namespace) -> str:
    fields = {"run": args.ref, "keys": _keys(args), "max_points": args.points, "start_step": args.start,
              "end_step": args.end}
    if args.csv:
        from runwise.render import history_csv
        from runwise.tools.metrics import GetHistoryOutput

        return history_csv(call_as("get_history", GetHistoryOutput, args, **fields).metrics)
    return show("get_history", args, **fields)


def cmd_stats(args: argparse.Namespace) -> str:
    return show("get_stats", args, run=args.ref, keys=_keys(args))


def cmd_stability(args: argparse.Namespace) -> str:
    fields = {"run": args.ref, "keys": _keys(args), "window_steps": args.window}
    if args.csv:
        from runwise.render import table_csv
        from runwise.tools.metrics import GetStabilityOutput

        return table_csv(call_as("get_stability", GetStabilityOutput, args, **fields).stability)
    return show("get_stability", args, **fields)


def cmd_keys(args: argparse.Namespace) -> str:
    return show("list_keys", args, run=args.ref, prefix=args.prefix)


def cmd_live(args: argparse.Namespace) -> str | int:
    if args.follow:
        return cmd_watch(args)
    return show("live_status", args, run=args.ref, keys=_keys(args), output_lines=args.lines)


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow the run until it ends (runwise.follow); the exit code: 0, or 1 for a crashed or failed run."""
    from runwise.follow import Follower, follow

    budget = getattr(args, "budget", None)
    follower = Follower(args.ref, _config(args), keys=_keys(args), lines=args.lines, budget=budget)
    return follow(follower, interval=args.interval, fmt_name=args.format)


def cmd_anomalies(args: argparse.Namespace) -> str:
    return show("detect_anomalies", args, run=args.ref, keys=_keys(args), max_anomalies=args.max_anomalies)


def cmd_local(args: argparse.Namespace) -> str:
    """Without FILE: the JSONL logs of the logs dir (as `list --source jsonl`); with it: that file."""
    if not args.file:
        return show("list_runs", args, source="jsonl", limit=args.limit, sparklines=not args.no_spark)
    from pathlib import Path

    cfg = _config(args)
    # a path typed at a terminal is relative to the working directory, not to the project root
    ref = str(cfg.check_inside(Path(args.file).expanduser().absolute()))
    if args.mode == "keys":
        return show("list_keys", args, run=ref)
    if args.mode == "history":
        return show("get_history", args, run=ref, keys=_keys(args))
    if args.mode == "stats":
        return show("get_stats", args, run=ref, keys=_keys(args))
    if args.mode == "stability":
        return show("get_stability", args, run=ref, keys=_keys(args))
    return show("summarize_run", args, **_summary_fields(args, ref))


def cmd_tb(args: argparse.Namespace) -> str:
    if not args.run:
        return show("list_runs", args, source="tensorboard", limit=args.limit, sparklines=not args.no_spark)
    ref = args.run if args.run.startswith("tensorboard:") else f"tensorboard:{args.run}"
    return show("summarize_run", args, **_summary_fields(args, ref))


def cmd_init(args: argparse.Namespace) -> str:
    """Write a starter runwise.json into the project root (--root, else the environment, else here)."""
    import json

    from runwise._root import project_root_dir
    from runwise.config import CONFIG_FILE, starter_config

    root = project_root_dir(args.root, os.environ)
    target = root / CONFIG_FILE
    if target.exists() and not args.force:
        raise ConfigError(f"{target} already exists; use --force to overwrite it")
    name = args.name or root.resolve().name or "ML Project"
    data = starter_config(name)
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.format == "json":
        return json.dumps({"written": str(target), "config": data}, indent=2)
    return (f"wrote {target} (project {name!r}; logs_dir {data['logs_dir']!r}, "
            f"wandb_dir {data['wandb_dir']!r})\n"
            "edit schema_inline to name your loss and primary metric, then run: runwise list")


def _size(n: int) -> str:
    """Bytes as people read them: 512 B, 3.4 MiB, 2.0 GiB."""
    if n < 1024:
        return f"{n} B"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:,.1f} {unit}"


def cmd_cache(args: argparse.Namespace) -> str:
    """`cache info`: where the disk cache is, what it holds, how often it answered; `cache clear [RUN]`."""
    import json

    from runwise import answers, cache

    cfg = _config(args)
    if args.action == "clear":
        removed, freed = _clear_cache(args.ref, cfg)
        if args.format == "json":
            return json.dumps({"directory": str(cfg.cache_dir), "run": args.ref, "removed": removed, "bytes": freed})
        whose = f" of {args.ref}" if args.ref else ""
        entries = "entry" if removed == 1 else "entries"
        return f"removed {removed} cache {entries}{whose} ({_size(freed)}) from {cfg.cache_dir}"
    info = cache.info(cfg.cache_dir)
    data = {"directory": info.directory, "enabled": cfg.cache_enabled, "entries": info.entries, "bytes": info.bytes,
            "max_bytes": cfg.cache_max_bytes, **info.counts, "answers": answers.count(cfg.cache_dir)}
    if args.format == "json":
        return json.dumps(data, indent=2)
    state = "" if cfg.cache_enabled else " (off)"
    counts = ", ".join(f"{v:,} {k}" for k, v in info.counts.items())
    return (f"cache: {info.directory}{state}\n"
            f"entries: {info.entries:,}, {_size(info.bytes)} of at most {_size(cfg.cache_max_bytes)}\n"
            f"counts: {counts}\n"
            f"answers kept: {data['answers']:,} (in {answers.store_path(cfg.cache_dir)})")


def _forget(cfg: RunwiseConfig, key: str) -> None:
    """Drop run `key`'s row from the run index; a damaged index is rebuilt at its next use anyway."""
    import sqlite3

    from runwise import runs

    try:
        runs.run_index(cfg).forget(key)
    except (sqlite3.Error, OSError):
        pass


def _clear_cache(ref: str | None, cfg: RunwiseConfig) -> tuple[int, int]:
    """Remove every entry, kept answer and the run index, or the entries, answers and index row of run `ref`."""
    from runwise import answers, cache, index

    if not ref:
        index.clear(cfg.cache_dir)
        answers.clear(cfg.cache_dir)
        return cache.clear(cfg.cache_dir)
    from runwise import runs
    from runwise.errors import RunNotFound

    try:
        entry = runs.resolve(runs.split_step(ref)[0], cfg)
    except RunNotFound:  # a run whose files are gone: its entries are found by the key they were stored under
        keys = {k for e in cache.entries(cfg.cache_dir) if (k := cache.entry_key(e.path))}
        named = [k for k in keys if ref in (k, k.partition(":")[2])]
        if len(named) != 1:
            raise
        _forget(cfg, named[0])
        answers.clear(cfg.cache_dir, named[0])
        return cache.clear(cfg.cache_dir, key=named[0])
    entry = runs.canonical_entry(entry)  # the key a run read by its path is cached under
    _forget(cfg, entry.key)
    answers.clear(cfg.cache_dir, entry.key)
    paths = list(dict.fromkeys([*entry.paths, *(p.resolve() for p in entry.paths)]))  # as listed, and as stored
    return cache.clear(cfg.cache_dir, key=entry.key, paths=paths)
