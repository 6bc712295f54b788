"""Tokens of every tool's answer, counted by two real tokenizers and by runwise's own estimate.

    python bench/bench_tokens.py [--steps 1000000] [--json PATH]

Generates once (into bench/_data/tokens_<steps>/, ignored by git) a project of JSONL runs written
with json.dumps (tests/budget_runs.py): `long`, 6 metrics x --steps steps with a planted one-step
loss spike and grad_norm dip; `wide`, 300 metrics; `odd`, unicode and 150-character names, nan/inf,
1e-12 and 1e12; `short_a`..`short_d`, 3,000-4,500 steps, to compare.

Table 1: for each tool's default answer on each run, the text the MCP server sends (compact
JSON): characters, runwise.tokens.estimate_tokens, o200k (bpe-openai) and Claude (the
tokenizer.json of the anthropic 0.34.0 wheel) counts, estimate / max(real), the tool's default
budget, and the time the call took. Table 2: the largest real count over all runs for budgets of
300, 1,000 and 5,000 tokens. Last, whether get_history's default kept the planted spike and dip.

Exits 1 if a default answer or a budgeted one is over its budget by either tokenizer, or the
estimate is below a real count. `--json PATH` also writes the figures there (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from runwise import runs  # noqa: E402
from runwise.config import RunwiseConfig  # noqa: E402
from runwise.tokens import estimate_tokens  # noqa: E402
from runwise.tools import TOOLS, TOOLS_BY_NAME  # noqa: E402
from tests.budget_runs import dip_step, spike_step, write_project  # noqa: E402
from tests.tokenizers import answer_text, count_claude, count_o200k  # noqa: E402

RUNS = ("long", "wide", "odd", "short_a")
BUDGETS = (300, 1_000, 5_000)


def project(steps: int) -> Path:
    root = HERE / "_data" / f"tokens_{steps}"
    done = root / ".done"
    if not done.exists():
        print(f"writing the runs ({steps:,} steps) into {root.relative_to(HERE.parent)} ...", flush=True)
        write_project(root, steps)
        done.touch()
    return root


def arguments(tool: str, run: str) -> dict[str, object]:
    if tool == "compare_runs":
        return {"runs": [run, *[r for r in ("short_b", "short_c", "short_d") if r != run][:3]]}
    if tool == "find_best_run":
        return {"metric": "train/loss"}
    if tool == "list_runs":
        return {}
    if tool == "report":  # one run's report
        return {"runs": [run]}
    return {"run": run}


def answer(cfg: RunwiseConfig, tool: str, run: str, budget: int | None = None) -> tuple[str, float]:
    spec = TOOLS_BY_NAME[tool]
    req = spec.input.model_validate({**arguments(tool, run), "budget": budget})
    start = time.perf_counter()
    out = spec.run(req, cfg)
    return answer_text(out), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="steps of the long run (default 1,000,000)")
    parser.add_argument("--json", help="also write the figures to this JSON file (for bench/run_all.py)")
    args = parser.parse_args()
    cfg = RunwiseConfig.load(project(args.steps), env={})
    runs.clear_cache()
    for spec in TOOLS:  # read every run once, outside the timings
        if spec.name == "get_run_context":
            for run in RUNS:
                answer(cfg, spec.name, run)
    failures: list[str] = []
    print(f"\n{'tool':17} {'run':8} {'chars':>6} {'estimate':>8} {'o200k':>6} {'claude':>6} {'est/max':>7} "
          f"{'budget':>6} {'seconds':>7}")
    ratios = []
    worst_default = 0.0  # largest real count / the tool's default budget
    for spec in TOOLS:
        for run in RUNS if spec.name not in ("list_runs", "find_best_run") else RUNS[:1]:
            text, seconds = answer(cfg, spec.name, run)
            est, o200k, claude = estimate_tokens(text), count_o200k(text), count_claude(text)
            ratios.append(est / max(o200k, claude, 1))
            worst_default = max(worst_default, max(o200k, claude) / spec.budget)
            flag = ""
            if max(o200k, claude) > spec.budget:
                flag = "  OVER BUDGET"
                failures.append(f"{spec.name} on {run}: {max(o200k, claude)} > {spec.budget}")
            if est < max(o200k, claude):
                flag += "  ESTIMATE LOW"
                failures.append(f"{spec.name} on {run}: estimate {est} < {max(o200k, claude)}")
            print(f"{spec.name:17} {run:8} {len(text):6,} {est:8,} {o200k:6,} {claude:6,} {ratios[-1]:7.2f} "
                  f"{spec.budget:6,} {seconds:7.2f}{flag}")
    print(f"\nestimate / max(o200k, claude): mean {sum(ratios) / len(ratios):.2f}, min {min(ratios):.2f}, "
          f"max {max(ratios):.2f} over {len(ratios)} default answers")
    print(f"\nlargest real count (max of o200k and Claude) over runs {', '.join(RUNS)}, per budget:")
    print(f"{'tool':17} " + " ".join(f"{b:>7,}" for b in BUDGETS))
    for spec in TOOLS:
        worst = []
        for budget in BUDGETS:
            most = 0
            for run in RUNS:
                text, _ = answer(cfg, spec.name, run, budget)
                most = max(most, count_o200k(text), count_claude(text))
                if estimate_tokens(text) < max(count_o200k(text), count_claude(text)):
                    failures.append(f"{spec.name} on {run}, budget {budget}: estimate below a real count")
            if most > budget:
                failures.append(f"{spec.name}, budget {budget}: {most} tokens")
            worst.append(most)
        print(f"{spec.name:17} " + " ".join(f"{w:7,}" for w in worst))
    history = TOOLS_BY_NAME["get_history"].run(TOOLS_BY_NAME["get_history"].input(run="long"), cfg)
    kept = (spike_step(args.steps) in history.metrics["train/loss"].steps,
            dip_step(args.steps) in history.metrics["grad_norm"].steps)
    print(f"\nget_history default on long: loss spike at step {spike_step(args.steps):,} kept: {kept[0]}; "
          f"grad_norm dip at step {dip_step(args.steps):,} kept: {kept[1]}")
    if not all(kept):
        failures.append("get_history default lost a planted one-step spike or dip")
    for f in failures:
        print("FAIL", f)
    if args.json:
        sys.path.insert(0, str(HERE))
        from _common import figure, write_figures

        over = [f for f in failures if "estimate" not in f and "spike" not in f]
        write_figures(args.json, "tokens", [
            figure("largest default answer / its budget, max(o200k, Claude)", worst_default,
                   target="<= 1", passed=worst_default <= 1),
            figure(f"answers over budget (defaults and budgets {', '.join(f'{b:,}' for b in BUDGETS)})", len(over),
                   target="0", passed=not over),
            figure("runwise's estimate / max(o200k, Claude), smallest over the default answers", min(ratios),
                   peer_name="o200k and Claude tokenizers", target=">= 1", passed=min(ratios) >= 1),
            figure("runwise's estimate / max(o200k, Claude), mean", sum(ratios) / len(ratios)),
            figure("get_history default keeps the planted spike and dip", all(kept), target="True",
                   passed=all(kept)),
        ], steps=args.steps, failures=failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
