"""`runwise report [RUN ...] [-o FILE] [--charts/--no-charts]`: the report tool's markdown, printed or written.

Without -o the markdown is printed: the same text the MCP `report` tool returns. With -o FILE
it is written to FILE, and PNG charts of the key metrics (one per metric, every run a line) go
next to it as `<FILE's stem>_<metric>.png`, linked from a `## Charts` section by relative path.
The charts need matplotlib (`pip install 'runwise[plot]'`), imported only when they are drawn;
without it the report is written without them and says how to get them. FILE is the user's:
it may be anywhere but inside a log directory or a run's own directory, which runwise only reads.

Like `runwise.commands`, this module imports only argparse and `runwise.errors` at module level.
"""

from __future__ import annotations

import argparse

from runwise.errors import RunwiseError

TYPE_CHECKING = False  # typing is not imported at run time (see runwise.commands); nor is pathlib, for --help
if TYPE_CHECKING:
    from pathlib import Path

    from runwise.config import RunwiseConfig
    from runwise.model import Run

PLOT_HINT = "pip install 'runwise[plot]'"
CHART_POINTS = 2_000  # points per line: each bucket's min and max are kept, so spikes show
CHART_SIZE = (7.0, 3.6)  # inches, at CHART_DPI
CHART_DPI = 100


class ReportTarget(RunwiseError):
    """The report file named with -o would go where runwise only reads: a log directory or a run's directory."""

    def __init__(self, path: Path, inside: Path) -> None:
        super().__init__(f"will not write {path} inside {inside} (runwise only reads log directories); "
                         "choose -o outside it")
        self.path, self.inside = path, inside


def report_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("refs", nargs="*", metavar="RUN", help="run references, 1 to 16 (default: latest)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the markdown to FILE, with charts next to it")
    p.add_argument("--charts", action=argparse.BooleanOptionalAction, default=True,
                   help=f"PNG charts of the key metrics next to FILE (default: on; needs {PLOT_HINT})")


def cmd_report(args: argparse.Namespace) -> str:
    from pathlib import Path

    from runwise import commands, runs
    from runwise.tools.report import ReportOutput

    refs: list[str] = args.refs or ["latest"]
    out = commands.call_as("report", ReportOutput, args, runs=refs)
    if not args.output:
        return out.model_dump_json(indent=2) if args.format == "json" else out.markdown
    cfg = commands._config(args)
    loaded = [runs.get_run(ref, cfg)[0] for ref in refs]  # read already by the tool: from memory
    target = Path(args.output).expanduser().absolute()
    check_target(target, cfg, loaded)
    charts: list[Path] = []
    extra = ""
    if args.charts:
        try:
            charts = draw_charts(target, out.key_metrics, loaded)
        except ImportError:
            extra = f"\n_Charts left out: matplotlib is not installed ({PLOT_HINT})._\n"
        else:
            extra = charts_section(charts, out.key_metrics)
    target.write_text(out.markdown + extra, encoding="utf-8")
    if args.format == "json":
        import json

        return json.dumps({"written": str(target), "charts": [str(c) for c in charts],
                           "verdicts": dict(zip(out.runs, out.verdicts, strict=True))}, indent=2)
    said = f"wrote {target}" + (f" and {len(charts)} chart{'s' if len(charts) != 1 else ''}" if charts else "")
    if args.charts and not charts and extra:
        said += f" (no charts: {PLOT_HINT})"
    return said


def check_target(target: Path, cfg: RunwiseConfig, loaded: list[Run]) -> None:
    """Raise ReportTarget if `target` is in a log directory or a run's directory (the project root is the user's)."""
    from pathlib import Path

    root = cfg.root.resolve()
    dirs = [cfg.logs_dir, cfg.wandb_dir, *cfg.tensorboard_dirs]
    for run in loaded:
        where = Path(run.path) if Path(run.path).is_absolute() else cfg.root / run.path
        dirs.append(where if where.is_dir() else where.parent)
    parent = target.parent.resolve()
    for d in dirs:
        d = d.resolve()
        if d != root and parent.is_relative_to(d):
            raise ReportTarget(target, d)


def chart_name(target: Path, metric: str, taken: set[str]) -> str:
    """`<stem>_<metric>.png` with the metric's name as letters, digits and underscores; unique among `taken`."""
    import re

    slug = re.sub(r"[^A-Za-z0-9]+", "_", metric).strip("_") or "metric"
    name, n = f"{target.stem}_{slug}.png", 2
    while name in taken:
        name, n = f"{target.stem}_{slug}_{n}.png", n + 1
    taken.add(name)
    return name


def draw_charts(target: Path, metrics: list[str], loaded: list[Run]) -> list[Path]:
    """One PNG per metric next to `target`, every run that has it a line; raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib.figure import Figure

    from runwise.analysis.downsample import downsample

    written: list[Path] = []
    taken: set[str] = set()
    several = len(loaded) > 1
    for metric in metrics:
        fig = Figure(figsize=CHART_SIZE, dpi=CHART_DPI)
        ax = fig.add_subplot()
        for run in loaded:
            s = run.history.get(metric)
            if s is None or not len(s):
                continue
            d = downsample(s.steps, s.values, max_points=CHART_POINTS)
            ax.plot(d.steps, d.values, linewidth=1.0, label=run.id)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if several:
            ax.legend(fontsize="small")
        fig.tight_layout()
        path = target.with_name(chart_name(target, metric, taken))
        fig.savefig(path, format="png")
        written.append(path)
    return written


def charts_section(charts: list[Path], metrics: list[str]) -> str:
    """The `## Charts` section: one image per chart, linked by its file name (the charts sit next to the report)."""
    from urllib.parse import quote

    if not charts:
        return ""
    images = [f"![{metric}]({quote(path.name)})" for metric, path in zip(metrics, charts, strict=True)]
    return "\n## Charts\n\n" + "\n\n".join(images) + "\n"
