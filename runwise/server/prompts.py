"""MCP prompts: the usual workflows, each a short plan of which runwise tools to call, in which order,
and what to read in their answers.

Every prompt takes run references (as the tools take them: 'latest', an id, a unique prefix, a
display name, 'source:id', a log path; 'ref@STEP' where a step makes sense). A reference is looked
up once when the prompt is rendered (in a worker thread: the SDK runs these sync functions in one):
the plan then names the run's canonical key, or says that the reference did not resolve and how to
find the run. Nothing here reads a run's log, and a W&B cloud reference is not looked up (that asks
W&B's servers: the tools do it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts import Prompt
from pydantic import Field

from runwise.config import RunwiseConfig

REF_CHARS = 1_000  # a reference longer than this is not one (the tools' own cap is smaller)
MAX_REPORT_RUNS = 16
NOTES = ("Pass on what `notes` fields say (sampled, downsampled, left out, truncated, still being written): "
         "never present a sampled or truncated answer as the whole run.")

CLOUD_PREFIXES = ("wandb-cloud:", "cloud:")  # runwise.parsers.wandb_cloud
Ref = Annotated[str, Field(min_length=1, max_length=REF_CHARS)]


def split_refs(text: str) -> list[str]:
    """`'run_a, run_b run_c'` -> the references in it: separated by commas or whitespace, in order, once each."""
    return list(dict.fromkeys(r for r in re.split(r"[\s,]+", text.strip()) if r))


def _describe(refs: list[str], load_config: Callable[[], RunwiseConfig]) -> list[str]:
    """One line per reference: the run it names (its canonical key), or why it named none."""
    from runwise import runs  # here: resolving is work for the prompt's thread, not for start-up
    from runwise.errors import RunwiseError

    try:
        cfg = load_config()
        entries, _ = runs.discover(cfg)
    except (RunwiseError, OSError) as exc:
        return [f"- Runs could not be listed now ({_first_line(exc)}): start with list_runs."]
    lines = []
    for ref in refs:
        if ref.startswith(CLOUD_PREFIXES):  # looking it up would ask W&B's servers: the tools do that
            lines.append(f"- `{ref}` is a W&B cloud run, fetched when a tool reads it.")
            continue
        try:
            base, step = runs.split_step(ref)
            entry = runs.resolve(base, cfg, entries)
        except (RunwiseError, OSError) as exc:
            lines.append(f"- `{ref}` names no run now: {_first_line(exc)}")
            continue
        at = f", at step {step:,}" if step is not None else ""
        name = f" ('{entry.name}')" if entry.name and entry.name != entry.id else ""
        lines.append(f"- `{ref}` is {entry.key}{name}{at}.")
    return lines


def _base(ref: str) -> str:
    """`ref` without a trailing '@STEP' ('run_b@12k' -> 'run_b'), as the tools other than compare_runs take it."""
    return re.sub(r"@-?\d[\d_,]*[kKmM]?$", "", ref.strip())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _plan(title: str, refs: list[str], steps: list[str], load_config: Callable[[], RunwiseConfig]) -> str:
    runs_part = "\n".join(_describe(refs, load_config)) if refs else ""
    numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    head = f"{title}\n\nRuns:\n{runs_part}\n\n" if runs_part else f"{title}\n\n"
    return f"{head}Use the runwise tools in this order:\n{numbered}\n\n{NOTES}"


def register(server: MCPServer, load_config: Callable[[], RunwiseConfig]) -> None:
    """Add the workflow prompts to `server`; `load_config` gives the project a reference is looked up in."""

    def diagnose_run(run: Annotated[Ref, Field(description="Run reference ('latest', id, name, source:id)")]) -> str:
        return _plan(f"Diagnose the training run `{run}`: is it healthy, and if not, where and why did it go wrong?",
                     [run], [
            f"summarize_run run='{run}': read `verdict` first (healthy/watch/broken and the worst finding), then "
            "`ending` (how it stopped), the LR phase and validation trend in `summary`, and `checks_skipped`.",
            f"detect_anomalies run='{run}': for each finding give its kind, metric, `step` (or `steps`) and the "
            "evidence (`value` vs `baseline`); `related` says which other metrics moved at the same step.",
            "For the worst finding, call what its `next` column suggests (get_history around that step with "
            "start_step/end_step) to see the curve there; spikes are kept by the downsampling.",
            f"If the cause may be a setting, get_config run='{run}' (the optimizer, lr, warmup, clipping keys).",
            "Answer: the verdict, the findings with their steps, the likely cause, and one concrete next action.",
        ], load_config)

    def explain_difference(
        run_a: Annotated[Ref, Field(description="The baseline run reference ('ref@STEP' compares at a step)")],
        run_b: Annotated[Ref, Field(description="The run compared with it")],
    ) -> str:
        base_a, base_b = _base(run_a), _base(run_b)  # the tools other than compare_runs take no '@STEP'
        return _plan(f"Compare `{run_a}` (baseline) with `{run_b}` and explain what made the difference.",
                     [run_a, run_b], [
            f"compare_runs runs=['{run_a}', '{run_b}']: read `summary`, the `metrics` table (final values and "
            "delta_pct), `best` (best values and their steps) and `divergence` (the step where they split "
            "beyond noise).",
            "Read `config_diff`: the keys that differ, ranked by how much they explain; those are the candidate "
            "causes. If `config_omitted` > 0, ask again with config_diff keys of interest via get_config prefix=.",
            f"summarize_run on '{base_a}' and on '{base_b}': does either verdict name a finding (a spike, "
            "divergence, NaN) that explains the gap better than a config key?",
            "If they split at a step, get_history keys=<that metric> for both runs around it.",
            "Answer: which run is better on which metric and by how much, from which step, and the config "
            "keys (with both values) most likely responsible.",
        ], load_config)

    def watch_run(run: Annotated[Ref, Field(description="The training run to watch ('latest': the newest)")]) -> str:
        return _plan(f"Watch the training run `{run}` until it ends, and say at once when something goes wrong.",
                     [run], [
            f"live_status run='{run}': note the run's `state`, `steps_per_s`, `last_write_age_s`, the latest "
            "values with their `trend`, `recent_anomalies` and the console `output_tail`.",
            "Repeat live_status every few minutes (not more often than the run writes). A new entry in "
            "`recent_anomalies`, a NaN/inf value, a drop in steps_per_s, or a last write long ago while "
            "the state is still running: report it right away, with its step.",
            f"Once the state is no longer running (finished, crashed, failed): summarize_run run='{run}' and "
            "read `verdict` and `ending`.",
            f"If it ended badly, detect_anomalies run='{run}' for where it started, with steps.",
            "Answer: how it ended, its final key metrics, and every problem seen, with its step.",
        ], load_config)

    def best_of_sweep(
        metric: Annotated[str, Field(min_length=1, max_length=REF_CHARS,
                                     description="The metric to rank by, e.g. 'val/loss'")],
        group: Annotated[str, Field(max_length=REF_CHARS,
                                    description="Optional: only runs whose id or name starts with this")] = "",
    ) -> str:
        which = f"runs whose id or name starts with '{group}'" if group else "all runs"
        return _plan(f"Find the best run by `{metric}` among {which}, and what made it best.", [], [
            "list_runs (raise limit= for a large sweep): the runs of the sweep"
            + (f" (keep those starting with '{group}')" if group else "") + ", their state and last step.",
            f"find_best_run metric='{metric}': the `ranking` (best value, its step, final value, state); "
            "`without_metric` says how many runs lack it, and a crashed or running leader is worth a remark.",
            f"compare_runs runs=[<best>, <runner-up>, <a typical run>] prefix='{metric.split('/')[0]}': "
            "`config_diff` ranks the config keys that explain the gap; `divergence` says from which step.",
            "summarize_run on the best run: is it healthy (`verdict`), or best by luck of a spike?",
            "Answer: the best run with its value and step, the margin over the runner-up, and the config "
            "settings that set it apart (and any seed noise: group_by='seed' in compare_runs).",
        ], load_config)

    def write_report(
        runs: Annotated[str, Field(min_length=1, max_length=REF_CHARS * 4,
                                   description="One or more run references, separated by spaces or commas")],
    ) -> str:
        refs = split_refs(runs)[:MAX_REPORT_RUNS]
        listed = ", ".join(f"'{r}'" for r in refs)
        return _plan(f"Write a markdown report on {listed}.", refs, [
            f"report runs=[{listed}]: the markdown document (verdict and findings with their evidence, the "
            "key metrics table" + (", the comparison and the config diff" if len(refs) > 1 else "") + ").",
            "Check it against summarize_run on each run (and compare_runs for several runs) if anything in it "
            "looks off; add the findings' steps where the report gives none.",
            "Give the report as it is, then a short conclusion on top: what went well, what went wrong, "
            "what to try next.",
        ], load_config)

    for fn, title in (
        (diagnose_run, "Diagnose a run"),
        (explain_difference, "Compare two runs and explain the difference"),
        (watch_run, "Watch a training run until it ends"),
        (best_of_sweep, "Best run of a sweep, and what made it best"),
        (write_report, "Write a markdown report"),
    ):
        server.add_prompt(Prompt.from_function(fn, title=title, description=_DESCRIPTIONS[fn.__name__]))


_DESCRIPTIONS = {
    "diagnose_run": "Is a run healthy? Verdict, anomalies with steps, likely cause, next action.",
    "explain_difference": "Compare two runs: which is better, from which step, and the config keys that explain it.",
    "watch_run": "Watch a running job with live_status until it ends; report problems as they appear.",
    "best_of_sweep": "Rank a sweep's runs by a metric, then explain what set the best one apart.",
    "write_report": "A markdown report on one or more runs (the report tool), checked and concluded.",
}

__all__ = ["register", "split_refs"]
