"""Diagnosis an agent can trust, in figures: the tables issue 8 asks for ("What must be shown").

    python bench/bench_diagnosis.py                        # every part, every source
    python bench/bench_diagnosis.py --parts 1,3            # only some parts
    python bench/bench_diagnosis.py --sources jsonl        # only some sources (parts 1-2)
    python bench/bench_diagnosis.py --names a,b,c          # only some scenarios (parts 1-3)
    python bench/bench_diagnosis.py --steps 200000 --repeat 3   # a smaller / shorter speed part

1. The labelled scenario suite (tests/scenarios) is written once through the real writers of all
   three sources (json.dumps, tensorboardX, wandb offline) into bench/_data/scenarios/<hash>/,
   keyed by a hash of suite.py and write.py, and scored per source by the suite's own scorer
   (score_source: the detect_anomalies tool on every run, every row a finding): recall over the
   labels (kind, metric and step right; lasting anomalies dated at onset within the label's
   tolerance), false findings over all healthy runs, extra findings on anomalous runs; the missed
   labels and false findings are listed. Targets: recall >= 0.95 and at most 1 false finding per
   source.
2. The same runs and labels scored with runwise 0.4.0 from PyPI (bench/_runwise040.py says how it
   is installed, what it reads and how its kinds are mapped), for reference. No target.
3. Tokens of the default answers, counted with o200k (bpe-openai) and the Claude tokenizer
   (anthropic 0.34.0's tokenizer.json) on the text the MCP server sends (tests/tokenizers.py):
   summarize_run and detect_anomalies (<= 400 each) and get_history (<= 2,000, and every labelled
   one-step spike's step among the returned points of its metric) on every scenario, compare_runs (<= 2,000) on groups
   of 4 scenarios in suite order. Runs of the JSONL project (the answers do not depend on the
   source).
4. Speed on 1,000,000-step metrics generated in memory (loss, val loss every 100 steps, grad norm,
   lr, throughput; a loss spike with a grad-norm jump planted at step 612,345): stability on each
   metric (each metric timed alone; their sum is printed too), detect_anomalies on the whole
   history, and a 4-run comparison (compare_series on each metric of 4 runs, one of which
   diverges, and rank_config_keys on their configs). Each repeated --repeat times (interleaved,
   median and min, wall and CPU time, bench/_common.py); target: median wall time < 1 s.

Exit status 1 when a target is missed. Figures go to bench/_results/diagnosis.json; `--json PATH`
also writes the main figures, side by side with runwise 0.4.0 where part 2 ran, there (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import _runwise040 as r040  # noqa: E402
from _common import Side, figure, repeat, write_figures  # noqa: E402

SOURCES = ("jsonl", "tensorboard", "wandb")
SCENARIO_DATA = HERE / "_data" / "scenarios"
SUITE_FILES = ("tests/scenarios/suite.py", "tests/scenarios/write.py")
RECALL_TARGET = 0.95
FALSE_TARGET = 1
TOKEN_LIMITS = {"summarize_run": 400, "detect_anomalies": 400, "get_history": 2_000, "compare_runs": 2_000}
SECONDS_TARGET = 1.0


def log(msg: str) -> None:
    print(msg, flush=True)


def heading(title: str) -> None:
    log("")
    log(title)
    log("=" * len(title))


# ---------------------------------------------------------------------------------------------
# the suite on disk


def suite_dir() -> Path:
    """bench/_data/scenarios/<hash of the suite's definition and writer>: the written suite, reused."""
    h = hashlib.sha256()
    for rel in SUITE_FILES:
        h.update(rel.encode())
        h.update((ROOT / rel).read_bytes())
    return SCENARIO_DATA / h.hexdigest()[:12]


def written_suite(out: Path) -> dict[str, Path]:
    """Project dir per source under `out`, writing the whole suite there first if it is not there yet.

    tensorboardX prints a line for every NaN/inf it is given: the writers' output is counted, not shown.
    """
    from tests.scenarios.write import write_suite

    marker = out / "written.json"
    if marker.exists():
        done = {k: out / v for k, v in json.loads(marker.read_text()).items()}
        if all(s in done for s in SOURCES):
            log(f"suite reused from {out.relative_to(ROOT)}")
            return done
    if SCENARIO_DATA.exists():  # older versions of the suite (~200 MB each): keep the two latest
        older = sorted((d for d in SCENARIO_DATA.iterdir() if d.is_dir() and d != out), key=lambda d: d.stat().st_mtime)
        for old in older[:-2]:
            shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        shutil.rmtree(out)
    log(f"writing the suite through jsonl, tensorboardX and wandb (offline) into {out.relative_to(ROOT)} ...")
    t0 = time.perf_counter()
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        paths = write_suite(out, sources=SOURCES)
    lines = chatter.getvalue().splitlines()
    log(f"  written in {time.perf_counter() - t0:.0f} s ({len(lines)} lines of writer output not shown"
        + (f", e.g. {lines[0][:80]!r})" if lines else ")"))
    marker.write_text(json.dumps({k: str(Path(v).resolve().relative_to(out.resolve())) for k, v in paths.items()}))
    return {k: Path(v) for k, v in paths.items()}


def scenarios(names: Sequence[str] | None) -> list[Any]:
    from tests.scenarios.suite import SCENARIOS

    if not names:
        return list(SCENARIOS)
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"bench_diagnosis: unknown scenario(s): {', '.join(unknown)}")
    return [known[n] for n in names]


# ---------------------------------------------------------------------------------------------
# parts 1 and 2: recall and false findings


def _size(x: Any) -> int:
    return x if isinstance(x, int) else len(x)


def label_text(name: str, lab: Any) -> str:
    where = f"{lab.step:,}" + (f"..{lab.end_step:,}" if lab.end_step not in (None, lab.step) else "")
    tol = f" ±{lab.tolerance:,}" if getattr(lab, "lasting", False) else ""
    return f"{name}: {lab.kind} {lab.metric} @ {where}{tol}"


def finding_text(name: str, f: Any) -> str:
    steps = tuple(getattr(f, "steps", ()) or ())
    where = ", ".join(f"{s:,}" for s in steps) if steps else f"{f.step:,}"
    msg = str(getattr(f, "message", "") or "")
    return f"{name}: {f.kind} {f.metric} @ {where}" + (f"  ({msg[:90]})" if msg else "")


class Tally:
    """The score of one side on one source, over every scenario scored."""

    def __init__(self, side: str, source: str, short: str) -> None:
        self.side, self.source, self.short = side, source, short
        self.labels = self.found = self.extra = 0
        self.late = 0  # missed labels whose kind and metric some finding named, at another step
        self.missed: list[str] = []
        self.false: list[str] = []
        self.extras: list[str] = []
        self.by_kind: dict[str, list[int]] = {}  # kind -> [found, labels]
        self.note = ""

    def add(self, scenario: Any, card: Any) -> None:
        missed = list(card.missed)
        for lab in scenario.labels:
            k = self.by_kind.setdefault(lab.kind, [0, 0])
            k[1] += 1
            k[0] += lab not in missed
        self.labels += len(scenario.labels)
        self.found += len(scenario.labels) - len(missed)
        self.missed += [label_text(scenario.name, lab) for lab in missed]
        self.late += sum(1 for lab in missed
                         if any(f.kind in (lab.kind, *lab.also) and f.metric == lab.metric for f in card.extra))
        self.false += [finding_text(scenario.name, f) for f in card.false]
        self.extras += [finding_text(scenario.name, f) for f in card.extra]
        self.extra += _size(card.extra)

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else float("nan")

    def row(self) -> str:
        rec = f"{self.recall:.3f} ({self.found}/{self.labels})"
        return (f"  {self.side:28s} {self.source:12s} {rec:>16s} {self.late:>10d} {len(self.false):>7d} "
                f"{self.extra:>7d}" + (f"  {self.note}" if self.note else ""))

    def figures(self) -> dict[str, Any]:
        return {"recall": self.recall, "found": self.found, "labels": self.labels, "false": len(self.false),
                "wrong_step": self.late, "extra": self.extra, "missed_list": self.missed, "false_list": self.false,
                "by_kind": self.by_kind, "note": self.note}


def score_runwise(projects: dict[str, Path], sources: Sequence[str], chosen: list[Any]) -> list[Tally]:
    """The suite's own scorer (the detect_anomalies tool on each run), one scenario at a time."""
    from tests.scenarios.score import match, score_source

    out = []
    for source in sources:
        t0 = time.perf_counter()
        tally = Tally("runwise (this repository)", source, "runwise")
        errors = []
        for s in chosen:
            try:
                card = score_source(projects[source], source, names=[s.name])[s.name]
            except Exception as exc:  # a run the tool cannot analyse: its labels count as missed
                errors.append(f"{s.name}: {str(exc)[:200]}")
                card = match(s, [])
            tally.add(s, card)
        if errors:
            tally.note = f"{len(errors)} runs failed, e.g. {errors[0]}"
            tally.missed += [f"ERROR {e}" for e in errors]
        log(f"  scored {source} in {time.perf_counter() - t0:.1f} s")
        out.append(tally)
    return out


def _roles(scenario: Any) -> dict[str, str]:
    """The scenario's loss / val loss / grad norm / throughput keys, found as runwise finds them."""
    from runwise.analysis.aliases import find_metric

    keys = list(scenario.metrics)
    return {r: k for r in ("loss", "val_loss", "grad_norm", "throughput") if (k := find_metric(keys, r))}


def _jsonl_file(project: Path, name: str) -> Path | None:
    return next(iter(sorted(project.rglob(f"{name}.jsonl"))), None)


def _tb_dir(project: Path, name: str) -> Path | None:
    for d in sorted(project.rglob(name)):
        if d.is_dir() and any(d.rglob("events.out.tfevents.*")):
            return d
    return None


def score_040(base: Path, projects: dict[str, Path], sources: Sequence[str], chosen: list[Any]) -> list[Tally]:
    """runwise 0.4.0 on the same runs (its two ways of asking, bench/_runwise040.py), same matcher.

    Its answers are kept in `base` (keyed by the child script's hash): the suite and 0.4.0 are
    fixed, so a second bench run asks it only about runs it has not seen.
    """
    from tests.scenarios.score import match

    jobs: list[dict[str, Any]] = []
    missing: dict[str, list[str]] = {s: [] for s in sources}
    raw_wandb: str | None = None
    for source in sources:
        project = projects[source]
        ids: dict[str, str] = {}
        if source == "wandb":
            layout = base / "wandb040" / "wandb"
            marker = layout.parent / "converted.json"
            if not marker.exists():
                shutil.rmtree(layout, ignore_errors=True)
                log("  converting the W&B runs to 0.4.0's layout (files/wandb-history.jsonl) ...")
                marker.write_text(json.dumps(r040.wandb_layout(project, layout)))
            ids = json.loads(marker.read_text())
            # the suite's W&B dirs as written: 0.4.0 should find nothing there
            first = next((s for s in chosen if s.name in ids), None)
            written = next(iter(sorted(project.rglob("offline-run-*"))), None)
            if first is not None and written is not None:
                jobs.append({"id": "raw-wandb", "source": "wandb", "path": str(written.parent), "run": ids[first.name],
                             "keys": _roles(first)})
        for s in chosen:
            if source == "jsonl":
                p, run = _jsonl_file(project, s.name), s.name
            elif source == "tensorboard":
                p, run = _tb_dir(project, s.name), s.name
            else:
                p, run = (layout if s.name in ids else None), ids.get(s.name, "")
            if p is None:
                missing[source].append(s.name)
                continue
            jobs.append({"id": f"{source}/{s.name}", "source": source, "path": str(p), "run": run, "keys": _roles(s)})
    cache = base / f"runwise040-{hashlib.sha256(r040.CHILD.read_bytes()).hexdigest()[:12]}.json"
    kept: dict[str, Any] = json.loads(cache.read_text()) if cache.exists() else {}

    def job_key(job: dict[str, Any]) -> str:  # the metric keys it was given are part of the question
        return f"{job['id']}|{json.dumps(job['keys'], sort_keys=True)}"

    todo = [j for j in jobs if job_key(j) not in kept]
    if todo:
        t0 = time.perf_counter()
        got = r040.run_jobs(todo)
        kept.update({job_key(j): got[j["id"]] for j in todo})
        cache.write_text(json.dumps(kept))
        log(f"  runwise 0.4.0 ran {len(todo)} runs in {time.perf_counter() - t0:.1f} s")
    if len(todo) < len(jobs):
        log(f"  runwise 0.4.0's answers on {len(jobs) - len(todo)} runs reused from {cache.relative_to(ROOT)}")
    results = {j["id"]: kept[job_key(j)] for j in jobs}
    if "raw-wandb" in results:
        got = results["raw-wandb"]
        raw_wandb = got["error"] or f"{got['rows']} history rows"
    out = []
    for source in sources:
        for mode in ("api", "tool"):
            tally = Tally(f"runwise 0.4.0 ({mode})", source, f"0.4.0 {mode}")
            errors = []
            for s in chosen:
                res = results.get(f"{source}/{s.name}")
                if res is None:
                    card = match(s, [])
                else:
                    if res["error"]:
                        errors.append(f"{s.name}: {res['error']}")
                    card = match(s, r040.findings(res[mode]))
                tally.add(s, card)
            notes = []
            if source == "jsonl" and mode == "tool":
                notes.append("its analyze_local_log runs no anomaly check")
            if source == "wandb":
                notes.append("fed converted history")
            if missing[source]:
                notes.append(f"{len(missing[source])} runs not found")
            if errors:
                notes.append(f"{len(errors)} errors, e.g. {errors[0]}")
            tally.note = "; ".join(notes)
            out.append(tally)
    if raw_wandb is not None:
        log(f"  runwise 0.4.0 on the suite's W&B dirs as written (offline-run-*/run-ID.wandb): {raw_wandb}")
    return out


def print_scores(tallies: list[Tally], chosen: list[Any], verbose: bool) -> None:
    if not tallies:
        return
    labels = sum(len(s.labels) for s in chosen)
    healthy = sum(1 for s in chosen if not s.labels)
    log(f"{len(chosen)} scenarios: {labels} labels on {len(chosen) - healthy} anomalous runs, {healthy} healthy runs")
    log("recall: labels found with kind, metric and step right; wrong step: labels missed although a finding named "
        "their kind and metric at another step; false: findings on healthy runs; extra: findings on anomalous runs "
        "that match no label")
    log(f"  {'side':28s} {'source':12s} {'recall':>16s} {'wrong step':>10s} {'false':>7s} {'extra':>7s}")
    for t in tallies:
        log(t.row())
    kinds = sorted({k for t in tallies for k in t.by_kind})
    sides = list(dict.fromkeys(t.side for t in tallies))
    short = {t.side: t.short for t in tallies}
    srcs = list(dict.fromkeys(t.source for t in tallies))
    cell = {(t.side, t.source): t for t in tallies}
    width = 8 * len(srcs)
    log("")
    log(f"recall by kind (found/labels), sources in the order {', '.join(srcs)}")
    log(f"  {'kind':20s}" + "".join(f" {short[s]:>{width}s}" for s in sides))
    for k in kinds:
        row = f"  {k:20s}"
        for side in sides:
            parts = []
            for src in srcs:
                f, n = cell[(side, src)].by_kind.get(k, [0, 0]) if (side, src) in cell else (0, 0)
                parts.append(f"{f}/{n}")
            row += f" {' '.join(f'{p:>7s}' for p in parts):>{width}s}"
        log(row)
    for t in tallies:
        if not t.side.startswith("runwise (this"):
            if t.false:
                log(f"\nfalse findings of {t.side} on healthy runs, {t.source} ({len(t.false)}): "
                    + "; ".join(t.false[:5]))
            continue
        if t.missed:
            log(f"\nmissed by runwise on {t.source} ({len(t.missed)}):")
            for m in t.missed:
                log(f"  {m}")
        if t.false:
            log(f"\nfalse findings on healthy runs, {t.source} ({len(t.false)}):")
            for m in t.false:
                log(f"  {m}")
        if t.extras and verbose:
            log(f"\nextra findings on anomalous runs, {t.source} ({len(t.extras)}):")
            for m in t.extras:
                log(f"  {m}")


# ---------------------------------------------------------------------------------------------
# part 3: tokens


def _history_steps(out: Any, metric: str) -> set[int] | None:
    """The steps get_history returned for `metric` (columns or CSV), None if the metric is absent."""
    data = out.model_dump(mode="json")
    m = (data.get("metrics") or {}).get(metric)
    if isinstance(m, dict) and m.get("steps"):
        return {int(s) for s in m["steps"]}
    csv = (data.get("csv") or {}).get(metric)
    if isinstance(csv, str):
        rows = csv.splitlines()[1:]
        return {int(r.split(",", 1)[0]) for r in rows if r and r[0].isdigit()}
    return set() if isinstance(m, dict) else None


def _one_step_spikes(scenario: Any) -> list[Any]:
    return [lab for lab in scenario.labels
            if lab.kind == "spike" and not lab.lasting and lab.end_step in (None, lab.step)]


def measure_tokens(project: Path, chosen: list[Any]) -> dict[str, Any]:
    from runwise.config import RunwiseConfig
    from runwise.tools import (
        TOOLS_BY_NAME,
        CompareRunsInput,
        DetectAnomaliesInput,
        GetHistoryInput,
        SummarizeRunInput,
    )
    from tests.tokenizers import answer_text, count_claude, count_o200k

    cfg = RunwiseConfig.load(project)
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TOOLS_BY_NAME if t in TOKEN_LIMITS}
    spike_misses: list[str] = []
    errors: list[str] = []

    def count(tool: str, label: str, call: Callable[[], Any]) -> Any:
        try:
            out = call()
        except Exception as exc:  # a tool error is a figure of this bench, not its end
            errors.append(f"{tool} {label}: {type(exc).__name__}: {str(exc)[:160]}")
            return None
        text = answer_text(out)
        rows[tool].append({"run": label, "chars": len(text), "o200k": count_o200k(text),
                           "claude": count_claude(text)})
        return out

    spec = TOOLS_BY_NAME
    for s in chosen:
        count("summarize_run", s.name, lambda s=s: spec["summarize_run"].run(SummarizeRunInput(run=s.name), cfg))
        count("detect_anomalies", s.name,
              lambda s=s: spec["detect_anomalies"].run(DetectAnomaliesInput(run=s.name), cfg))
        hist = count("get_history", s.name, lambda s=s: spec["get_history"].run(GetHistoryInput(run=s.name), cfg))
        if hist is not None:
            for lab in _one_step_spikes(s):
                got = _history_steps(hist, lab.metric)
                if got is None:
                    spike_misses.append(f"{s.name}: {lab.metric} not in the default answer (spike @ {lab.step:,})")
                elif lab.step not in got:
                    spike_misses.append(f"{s.name}: spike @ {lab.step:,} not among {len(got)} points of {lab.metric}")
    names = [s.name for s in chosen]
    groups = [names[i:i + 4] for i in range(0, len(names) - len(names) % 4, 4)]
    if len(names) % 4:
        groups.append((names[-(len(names) % 4):] + names)[:4])
    for g in groups:
        if len(set(g)) < 2:
            continue
        count("compare_runs", "+".join(g),
              lambda g=g: spec["compare_runs"].run(CompareRunsInput(runs=list(dict.fromkeys(g))), cfg))
    return {"rows": rows, "spike_misses": spike_misses, "errors": errors}


def print_tokens(tok: dict[str, Any]) -> list[str]:
    """Print the token table; return the misses."""
    misses: list[str] = []
    log(f"  {'tool':14s} {'answers':>7s} {'limit':>6s} {'o200k max':>9s} {'median':>7s} "
        f"{'claude max':>10s} {'median':>7s} {'chars max':>9s}  over the limit")
    for tool, limit in TOKEN_LIMITS.items():
        rs = tok["rows"].get(tool, [])
        if not rs:
            log(f"  {tool:14s} {0:>7d} {limit:>6,d}  (no answer)")
            misses.append(f"{tool}: no answer measured")
            continue
        o = [r["o200k"] for r in rs]
        c = [r["claude"] for r in rs]
        over = [f"{r['run']} ({max(r['o200k'], r['claude']):,})" for r in rs if max(r["o200k"], r["claude"]) > limit]
        log(f"  {tool:14s} {len(rs):>7d} {limit:>6,d} {max(o):>9,d} {statistics.median(o):>7,.0f} "
            f"{max(c):>10,d} {statistics.median(c):>7,.0f} {max(r['chars'] for r in rs):>9,d}  "
            + (", ".join(over[:6]) + (f" and {len(over) - 6} more" if len(over) > 6 else "") if over else "none"))
        misses += [f"{tool} over {limit:,} tokens: {o}" for o in over]
    log("  one-step spikes kept by get_history's default: "
        + ("all" if not tok["spike_misses"] else f"{len(tok['spike_misses'])} missing"))
    for m in tok["spike_misses"]:
        log(f"    {m}")
    misses += tok["spike_misses"]
    for e in tok["errors"]:
        log(f"  error: {e}")
    misses += tok["errors"]
    return misses


# ---------------------------------------------------------------------------------------------
# part 4: speed on 1,000,000-step metrics

SPIKE_AT = 612_345


def big_run(steps: int, seed: int, *, diverge_at: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One generated run: loss, val/loss every 100 steps, grad_norm, lr, samples_per_sec."""
    rng = np.random.default_rng(seed)
    s = np.arange(steps, dtype=np.int64)
    warm = max(1, steps // 500)
    lr = 3e-4 * np.minimum(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * s / steps)))
    loss = (0.3 + 2.2 * np.exp(-s / (steps / 6))) * (1 + 0.03 * rng.standard_normal(steps))
    if diverge_at is not None:
        loss[diverge_at:] += 0.5 * (s[diverge_at:] - diverge_at) / (steps - diverge_at)
    grad = (0.5 + 2.0 * np.exp(-s / (steps / 50))) * (1 + 0.2 * rng.standard_normal(steps))
    at = steps * SPIKE_AT // 1_000_000
    loss[at] *= 6.0
    grad[at] = 9.1
    speed = 1200 + 20 * rng.standard_normal(steps)
    vs = s[::100]
    val = loss[::100] * 1.05 + 0.02 * rng.standard_normal(vs.size)
    return {"loss": (s, loss), "val/loss": (vs, val), "grad_norm": (s, grad), "lr": (s, lr),
            "samples_per_sec": (s, speed)}


def _digest(obj: Any) -> str:
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def speed_sides(steps: int) -> tuple[list[Side], dict[str, str]]:
    from runwise.analysis.anomalies import detect_anomalies
    from runwise.analysis.stability import stability

    notes: dict[str, str] = {}
    run = big_run(steps, 0)
    points = sum(len(st) for st, _ in run.values())
    config = {"lr": 3e-4, "warmup_steps": max(1, steps // 500), "lr_scheduler_type": "cosine", "max_steps": steps}

    def timed(fn: Callable[[], Any], n_points: int) -> Callable[[], dict[str, Any]]:
        def once() -> dict[str, Any]:
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "points": n_points,
                    "digest": _digest(result)}
        return once

    def detect() -> Any:
        rep = detect_anomalies(run, config=config)
        return [(a.kind, a.metric, a.step) for a in rep.anomalies]

    sides = [Side(f"stability {key}", timed(lambda st=st, v=v: stability(st, v), len(st)), "1")
             for key, (st, v) in run.items()]
    sides.append(Side("detect_anomalies", timed(detect, points), "1"))
    found = detect()
    notes["detect_anomalies"] = "finds " + (", ".join(f"{k} {m} @ {st:,}" for k, m, st in found[:4]) or "nothing")
    try:
        from runwise.analysis import compare as compare_module
        from runwise.analysis.aliases import higher_is_better
        from runwise.analysis.compare import compare_series
    except ImportError:
        notes["compare"] = "pending: runwise.analysis.compare has no compare_series yet"
        return sides, notes
    runs = [run, big_run(steps, 1), big_run(steps, 2), big_run(steps, 3, diverge_at=steps // 2)]
    configs = [{**config, "seed": i, "lr": 3e-4 if i < 3 else 1e-3} for i in range(4)]
    rank = getattr(compare_module, "rank_config_keys", None)

    def compare() -> Any:
        out = []
        for key in run:
            c = compare_series([r[key] for r in runs], higher_is_better=higher_is_better(key))
            out.append((key, getattr(getattr(c, "divergence", None), "step", None)))
        if rank is not None:  # the config keys ranked by how well they explain the final loss
            out.append(("keys", [getattr(k, "key", k) for k in rank(configs, [float(r["loss"][1][-1]) for r in runs])]))
        return out

    sides.append(Side("4-run compare (5 metrics)", timed(compare, 4 * points), "1"))
    div = dict(compare())
    notes["4-run compare (5 metrics)"] = (f"loss divergence dated {div.get('loss')} (planted at {steps // 2:,}); "
                                          f"keys ranked: {div.get('keys')}")
    return sides, notes


# ---------------------------------------------------------------------------------------------


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--parts", default="1,2,3,4", help="comma-separated parts to run (default all: 1,2,3,4)")
    ap.add_argument("--sources", default=",".join(SOURCES), help="sources for parts 1-2 (default all)")
    ap.add_argument("--names", default="", help="comma-separated scenario names (default: the whole suite)")
    ap.add_argument("--steps", type=int, default=1_000_000, help="steps per metric in part 4")
    ap.add_argument("--repeat", type=int, default=5, help="repeats of each timing in part 4")
    ap.add_argument("--verbose", action="store_true", help="also list the extra findings on anomalous runs")
    ap.add_argument("--json", help="also write the main figures to this JSON file (for bench/run_all.py)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts <= {"1", "2", "3", "4"}:
        ap.error(f"--parts takes 1, 2, 3, 4; got {args.parts!r}")
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    if not sources or not set(sources) <= set(SOURCES):
        ap.error(f"--sources takes {', '.join(SOURCES)}; got {args.sources!r}")
    if args.steps < 1000 or args.repeat < 1:
        ap.error("--steps must be at least 1,000 and --repeat at least 1")

    misses: list[str] = []
    results: dict[str, Any] = {"argv": sys.argv[1:]}
    figures: list[dict[str, Any]] = []
    chosen: list[Any] = []
    projects: dict[str, Path] = {}
    base = SCENARIO_DATA
    if parts & {"1", "2", "3"}:
        chosen = scenarios([n for n in args.names.split(",") if n])
        base = suite_dir()
        projects = written_suite(base)

    if parts & {"1", "2"}:
        heading("Parts 1-2. Labelled suite: recall (kind, metric, step right) and false findings, per source")
        tallies: list[Tally] = []
        if "1" in parts:
            tallies += score_runwise(projects, sources, chosen)
            for t in tallies:
                if t.recall < RECALL_TARGET:
                    misses.append(f"recall {t.recall:.3f} < {RECALL_TARGET} on {t.source}")
                if len(t.false) > FALSE_TARGET:
                    misses.append(f"{len(t.false)} false findings > {FALSE_TARGET} on {t.source}")
        if "2" in parts:
            try:
                tallies += score_040(base, projects, sources, chosen)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # reference only: no target
                log(f"  runwise 0.4.0 not run: {str(exc).strip().splitlines()[-1][:300]}")
        print_scores(tallies, chosen, args.verbose)
        if "2" in parts:
            log("\nrunwise 0.4.0: pip install runwise==0.4.0 tensorboard in bench/_data/venv-runwise040, run there")
            for mode, text in r040.MODES.items():
                log(f"  ({mode}) {text}")
            log("  its kinds -> ours: " + "; ".join(f"{k} -> {v}" for k, v in r040.KIND_MAP.items()))
            log("  finding metric: the key its check read (loss key for spike/plateau, val key for overfit, ...)")
        results["suite"] = [t.side + "/" + t.source for t in tallies]
        old = {(t.short, t.source): t for t in tallies if t.short.startswith("0.4.0")}
        for t in tallies:
            if t.short != "runwise":
                continue
            for mode in ("api", "tool"):
                peer = old.get((f"0.4.0 {mode}", t.source))
                figures.append(figure(f"{t.source}: recall on the labelled suite ({len(chosen)} scenarios)", t.recall,
                                      peer=peer.recall if peer else None, peer_name=f"runwise 0.4.0 ({mode})",
                                      target=f">= {RECALL_TARGET}", passed=t.recall >= RECALL_TARGET))
            peer = old.get(("0.4.0 api", t.source))
            figures.append(figure(f"{t.source}: false findings on healthy runs", len(t.false),
                                  peer=len(peer.false) if peer else None, peer_name="runwise 0.4.0 (api)",
                                  target=f"<= {FALSE_TARGET}", passed=len(t.false) <= FALSE_TARGET))
        results["scores"] = {f"{t.side}/{t.source}": t.figures() for t in tallies}

    if "3" in parts:
        heading("Part 3. Tokens of the default answers (o200k and Claude), JSONL project")
        try:
            tok = measure_tokens(projects["jsonl"], chosen)
        except BaseException as exc:  # tests.tokenizers skips (pytest's Skipped) when a tokenizer cannot be had
            if type(exc).__name__ != "Skipped":
                raise
            log(f"  not measured: {exc}")
            misses.append(f"tokens not measured: {exc}")
        else:
            misses += print_tokens(tok)
            results["tokens"] = tok
            for tool, limit in TOKEN_LIMITS.items():
                rs = tok["rows"].get(tool, [])
                most = max((max(r["o200k"], r["claude"]) for r in rs), default=None)
                figures.append(figure(f"{tool}: largest default answer, max(o200k, Claude) tokens", most,
                                      unit="tokens", target=f"<= {limit:,}", passed=most is not None and most <= limit))
            figures.append(figure("get_history keeps every labelled one-step spike", not tok["spike_misses"],
                                  target="True", passed=not tok["spike_misses"]))

    if "4" in parts:
        heading(f"Part 4. Speed on {args.steps:,}-step metrics (median and min of {args.repeat}; target < 1 s)")
        sides, notes = speed_sides(args.steps)
        repeat(sides, args.repeat, log=lambda _m: None)
        for s in sides:
            ok = s.median < SECONDS_TARGET
            cpu = statistics.median(float(r["cpu_s"]) for r in s.runs)
            log(f"  {s.name:28s} median {s.median:6.3f} s  min {s.best:6.3f} s  cpu {cpu:6.3f} s  "
                f"{'PASS' if ok else 'FAIL'}" + (f"   ({notes[s.name]})" if s.name in notes else ""))
            if not ok:
                misses.append(f"{s.name} median {s.median:.3f} s >= {SECONDS_TARGET} s")
            if len({r["digest"] for r in s.runs}) != 1:
                misses.append(f"{s.name} gave different results from run to run")
        stab = [s for s in sides if s.name.startswith("stability ")]
        log(f"  (stability of all {len(stab)} metrics together, as get_stability computes them: "
            f"{sum(s.median for s in stab):.3f} s by medians; the target is per metric)")
        if "compare" in notes:
            log(f"  4-run compare: {notes['compare']}")
            misses.append(notes["compare"])
        results["speed"] = {s.name: {"median": s.median, "min": s.best, "runs": s.seconds} for s in sides}
        for s in sides:
            figures.append(figure(f"{s.name}, {args.steps:,} steps, median s", s.median, unit="s",
                                  target=f"< {SECONDS_TARGET:g} s", passed=s.median < SECONDS_TARGET))
        results["speed_notes"] = notes

    heading("Targets")
    for m in misses:
        log(f"  MISSED: {m}")
    log("  all met" if not misses else f"  {len(misses)} missed")
    results["missed"] = misses
    out = HERE / "_results"
    out.mkdir(exist_ok=True)
    (out / "diagnosis.json").write_text(json.dumps(results, indent=2, default=str))
    write_figures(args.json, "diagnosis", figures, missed=misses)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
