"""`runwise report` and the report tool: a markdown document read back with a real markdown parser.

The `project` fixture (tests/conftest.py) has run_a and run_b; run_b has a train/loss spike at
SPIKE_STEP and its config differs from run_a's in lr (and warmup).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mcp import Client

from runwise import cli
from runwise.config import RunwiseConfig
from runwise.server.app import build_server
from runwise.tokens import estimate_tokens
from runwise.tools.report import REPORT_BUDGET
from tests.conftest import SPIKE_STEP, training_rows, write_jsonl

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def parse(text: str) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(text)  # GFM tables ("gfm-like" also wants linkify-it)


def tables(tokens: list[Token]) -> list[tuple[list[str], list[list[str]]]]:
    """Every table as (header cells, body rows of cells), from the parser's tokens."""
    found: list[tuple[list[str], list[list[str]]]] = []
    header: list[str] = []
    rows: list[list[str]] = []
    row: list[str] = []
    part = ""
    for i, t in enumerate(tokens):
        if t.type == "table_open":
            header, rows = [], []
        elif t.type in ("thead_open", "tbody_open"):
            part = t.type[:5]
        elif t.type == "tr_open":
            row = []
        elif t.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            row.append(t.content)
        elif t.type == "tr_close":
            if part == "thead":
                header = row
            else:
                rows.append(row)
        elif t.type == "table_close":
            found.append((header, rows))
    return found


def table_with(tokens: list[Token], first: str) -> tuple[list[str], list[list[str]]]:
    """The table whose first header cell is `first`."""
    found = [t for t in tables(tokens) if t[0] and t[0][0] == first]
    assert found, [t[0] for t in tables(tokens)]
    return found[0]


def headings(tokens: list[Token]) -> list[str]:
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


def paragraphs(tokens: list[Token]) -> list[str]:
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "paragraph_open"]


def images(tokens: list[Token]) -> list[str]:
    return [str(c.attrs["src"]) for t in tokens if t.type == "inline" for c in t.children or [] if c.type == "image"]


def report(capsys: pytest.CaptureFixture[str], root: Path, *argv: str) -> str:
    code = cli.main(["--root", str(root), "report", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_one_run_has_the_verdict_findings_with_steps_and_the_metrics_table(
    capsys: pytest.CaptureFixture[str], project: Path, tmp_path: Path
) -> None:
    target = tmp_path / "notes" / "run_b.md"
    target.parent.mkdir()
    said = report(capsys, project, "run_b", "-o", str(target), "--no-charts")
    assert said.strip() == f"wrote {target}"
    tokens = parse(target.read_text(encoding="utf-8"))
    assert headings(tokens)[:3] == ["Training report: jsonl:run_b", "Findings", "Key metrics"]
    assert paragraphs(tokens)[0].startswith("**Verdict: ")
    header, rows = table_with(tokens, "severity")
    assert header == ["severity", "kind", "metric", "step", "steps", "value", "baseline", "evidence"]
    spikes = [r for r in rows if r[1] == "spike" and r[2] == "train/loss"]
    assert spikes and spikes[0][3] == f"{SPIKE_STEP:,}", rows  # the planted spike, at its step
    assert f"step {SPIKE_STEP}" in spikes[0][7]  # its evidence says where
    header, rows = table_with(tokens, "metric")
    assert header == ["metric", "final", "min", "min step", "max", "max step", "points"]
    loss = [r for r in rows if r[0] == "train/loss"][0]
    assert loss[5] == f"{SPIKE_STEP:,}" and loss[6] == "300"  # its max is the spike; 300 steps
    assert not list(tmp_path.glob("notes/*.png"))  # --no-charts


def test_two_runs_have_the_comparison_and_the_config_diff(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    tokens = parse(report(capsys, project, "run_a", "run_b"))
    assert "Comparison" in headings(tokens) and "Config diff" in headings(tokens)
    header, rows = table_with(tokens, "run")
    assert header == ["run", "verdict", "state", "last step", "worst finding"]
    assert [r[0] for r in rows] == ["jsonl:run_a", "jsonl:run_b"]
    findings = [r for t in tables(tokens) if t[0][:1] == ["severity"] for r in t[1]]
    assert ["spike", "train/loss", f"{SPIKE_STEP:,}"] in [r[1:4] for r in findings]
    header, rows = table_with(tokens, "key")
    assert header == ["key", "run_a", "run_b"]
    assert ["lr", "0.0003", "0.001"] in rows
    header, rows = [t for t in tables(tokens) if t[0][:3] == ["metric", "run_a", "run_b"]][0]
    assert header[-1] == "Δ %" and "train/loss" in [r[0] for r in rows]
    assert headings(tokens).count("Findings") == 2  # a section per run


def test_charts_are_pngs_next_to_the_file_and_linked(capsys: pytest.CaptureFixture[str], project: Path,
                                                     tmp_path: Path) -> None:
    import matplotlib.image

    target = tmp_path / "lab notes.md"
    said = report(capsys, project, "run_a", "run_b", "-o", str(target))
    assert said.strip() == f"wrote {target} and 4 charts"
    tokens = parse(target.read_text(encoding="utf-8"))
    assert headings(tokens)[-1] == "Charts"
    links = images(tokens)
    assert links == ["lab%20notes_train_loss.png", "lab%20notes_val_loss.png", "lab%20notes_lr.png",
                     "lab%20notes_grad_norm.png"]
    for link in links:
        png = tmp_path / link.replace("%20", " ")  # relative to the report
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        pixels = matplotlib.image.imread(png)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert float(pixels[..., :3].std()) > 0.01  # lines drawn, not a blank image


def test_without_matplotlib_the_report_says_how_to_get_charts(
    capsys: pytest.CaptureFixture[str], project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    target = tmp_path / "r.md"
    said = report(capsys, project, "run_b", "-o", str(target))
    assert "no charts: pip install 'runwise[plot]'" in said
    text = target.read_text(encoding="utf-8")
    assert "pip install 'runwise[plot]'" in text and not images(parse(text))
    assert not list(tmp_path.glob("*.png"))


def test_no_report_is_written_into_a_log_directory(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code = cli.main(["--root", str(project), "report", "run_b", "-o", str(project / "logs" / "r.md")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("runwise: error: will not write") and err.count("\n") == 1
    assert sorted(p.name for p in (project / "logs").iterdir()) == ["run_a.jsonl", "run_b.jsonl"]


@pytest.mark.anyio
async def test_the_tool_returns_the_markdown_the_cli_prints(capsys: pytest.CaptureFixture[str], project: Path,
                                                            tmp_path: Path) -> None:
    server = build_server(lambda: RunwiseConfig.load(project, env={}))
    async with Client(server) as client:
        result = await client.call_tool("report", {"runs": ["run_a", "run_b"]})
    assert not result.is_error, result.content
    sc: dict[str, Any] = result.structured_content or {}
    assert sc["runs"] == ["jsonl:run_a", "jsonl:run_b"] and len(sc["verdicts"]) == 2
    printed = report(capsys, project, "run_a", "run_b")
    assert sc["markdown"] == printed[:-1]  # print adds a newline
    target = tmp_path / "r.md"
    report(capsys, project, "run_a", "run_b", "-o", str(target), "--no-charts")
    assert target.read_text(encoding="utf-8") == sc["markdown"]


def test_sixteen_runs_stay_within_the_budget_and_say_what_was_cut(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for i in range(16):
        rows = training_rows(steps=400, lr=1e-4 * (i + 1), seed=i, spike_at=100 + i, config={"lr": 1e-4 * (i + 1),
                             "seed": i, "width": 64 * (1 + i % 4)})
        for r in rows[1:]:
            for k in range(6):
                r[f"extra/metric_{k}"] = r["train/loss"] * (k + 1)
        write_jsonl(tmp_path / "logs" / f"r{i:02d}.jsonl", rows, age_s=4000 - i)
    refs = [f"r{i:02d}" for i in range(16)]
    out = json.loads(report(capsys, tmp_path, *refs, "--json"))
    assert estimate_tokens(json.dumps(out, separators=(",", ":"), ensure_ascii=False)) <= REPORT_BUDGET
    assert out["notes"][0].startswith(f"left out for the {REPORT_BUDGET:,}-token budget: ")
    tokens = parse(out["markdown"])
    header, rows = table_with(tokens, "run")
    assert len(rows) == 16  # every verdict is kept
    assert all(r[4] == f"spike on train/loss at step {100 + i}" for i, r in enumerate(rows)), rows
    assert any(p.startswith("_left out for the") for p in paragraphs(tokens))  # the document says so too
    bigger = json.loads(report(capsys, tmp_path, *refs, "--json", "--budget", "20000"))
    assert len(bigger["markdown"]) > len(out["markdown"])
