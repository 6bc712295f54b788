"""Rendering output models generically: text, markdown, JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from runwise import formatting
from runwise.formatting import fmt, fmt_cell, fmt_duration, fmt_step, iso, split_keys
from runwise.render import history_csv, render, rows_as_dicts, table_csv


class Table(BaseModel):
    columns: list[str]
    rows: list[list[str | int | float | bool | None]]


class Header(BaseModel):
    id: str
    name: str
    source: str
    state: str
    path: str
    started: str | None = None


class History(BaseModel):
    steps: list[int]
    values: list[float | str | None]
    source_points: int
    method: str
    nan: int = 0


class Answer(BaseModel):
    summary: str
    run: Header
    metrics: Table
    more_metrics: int = 0
    anomalies: list[str] = []
    checks_run: list[str] = []
    ending: str | None = None
    notes: list[str] = []


class Series(BaseModel):
    run: str
    note: str
    metrics: dict[str, History]


def answer(**kw: object) -> Answer:
    base: dict[str, object] = {
        "summary": "jsonl:a: finished, 1,000 steps",
        "run": Header(id="a", name="a", source="jsonl", state="finished", path="logs/a.jsonl"),
        "metrics": Table(
            columns=["metric", "final", "step", "spark"],
            rows=[["train/loss", 0.41234, 1000, "█▅▂"], ["val/loss", "nan", None, "▁"]],
        ),
    }
    base.update(kw)
    return Answer.model_validate(base)


def test_text_puts_the_summary_first_and_aligns_tables() -> None:
    out = render(answer())
    lines = out.splitlines()
    assert lines[0] == "jsonl:a: finished, 1,000 steps"
    assert "path: logs/a.jsonl" in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("metric"))
    table = lines[header : header + 4]
    assert table[1].replace(" ", "").strip("-") == ""  # the rule under the header
    assert table[2].split() == ["train/loss", "0.4123", "1,000", "█▅▂"]
    # numbers right-aligned: the final column ends at the same place on every line
    ends = {line.index(cell) + len(cell) for line, cell in zip(table[2:], ["0.4123", "nan"], strict=True)}
    assert len(ends) == 1
    assert all(line == line.rstrip() for line in lines)


def test_empty_fields_are_omitted_and_leftovers_hinted() -> None:
    out = render(answer())
    assert "anomalies" not in out and "notes" not in out and "ending" not in out and "more" not in out
    out = render(answer(more_metrics=3, anomalies=["loss spike at step 500"], ending="crashed at step 1,000"))
    assert "anomalies:\n  - loss spike at step 500" in out
    assert "ending: crashed at step 1,000" in out
    assert out.endswith("(+3 more metrics (pick them with -k))")


def test_short_lists_are_one_line() -> None:
    out = render(answer(checks_run=["spikes", "nan_inf"]))
    assert "checks run: spikes, nan_inf" in out


def test_markdown_has_headings_and_real_tables() -> None:
    out = render(answer(anomalies=["a | b"]), "md", title="Summarize a run")
    assert out.startswith("## Summarize a run\n\njsonl:a: finished")
    assert "### Metrics\n\n| metric | final | step | spark |\n|---|---:|---:|---|" in out
    assert "| train/loss | 0.4123 | 1,000 | █▅▂ |" in out
    assert "### Anomalies\n\n- a | b" in out


def test_markdown_escapes_pipes_in_cells() -> None:
    out = render(answer(metrics=Table(columns=["metric", "note"], rows=[["x", "a|b"]])), "md")
    assert "| x | a\\|b |" in out


def test_json_is_the_model() -> None:
    model = answer()
    assert json.loads(render(model, "json")) == json.loads(model.model_dump_json())


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(answer(), "html")  # type: ignore[arg-type]


def test_histories_render_per_metric_and_keep_metric_names() -> None:
    series = Series(
        run="jsonl:a",
        note="2 metrics",
        metrics={
            "val/loss": History(steps=[0, 10], values=[2.0, 1.5], source_points=2, method="all"),
            "train/loss": History(
                steps=[0, 500, 999], values=[2.5, 9.0, 0.4], source_points=1000, method="minmax", nan=2
            ),
        },
    )
    text = render(series)
    assert text.splitlines()[:2] == ["jsonl:a", "2 metrics"]
    assert "train/loss: 3 of 1,000 points (minmax); 2 nan:" in text
    md = render(series, "md")
    assert "### val/loss: 2 points" in md and "### train/loss" in md
    rows = list(csv.reader(io.StringIO(history_csv(series.metrics))))
    assert (
        rows[0] == ["metric", "step", "value"] and rows[4] == ["train/loss", "500", "9.0"] and len(rows) == 6
    )


def test_csv_quotes_and_keeps_numbers() -> None:
    t = Table(
        columns=["metric", "message", "value"], rows=[["a,b", 'say "hi"', 0.123456789], ["c", None, True]]
    )
    rows = list(csv.reader(io.StringIO(table_csv(t))))
    assert rows == [["metric", "message", "value"], ["a,b", 'say "hi"', "0.123456789"], ["c", "", "true"]]
    assert rows_as_dicts(t)[1] == {"metric": "c", "message": None, "value": True}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (True, "yes"),
        (12345, "12,345"),
        (2.0, "2"),
        (0.41234, "0.4123"),
        (3e-05, "3e-05"),
        (123456.7, "1.23e+05"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
        ("run_a", "run_a"),
    ],
)
def test_cells_are_compact(value: object, text: str) -> None:
    assert fmt_cell(value) == text  # type: ignore[arg-type]


def test_raw_cells_keep_config_values() -> None:
    assert fmt_cell(12345, raw=True) == "12345" and fmt_cell(0.0003, raw=True) == "0.0003"


@pytest.mark.parametrize(("seconds", "text"), [(4.25, "4.2s"), (59, "59s"), (65, "1m05s"), (7322, "2h02m")])
def test_durations(seconds: float, text: str) -> None:
    assert fmt_duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), ("nan", "nan"), (12345.0, "12,345"), (0.41234, "0.4123"), (1.2e-05, "1.2e-05"),
     (2.5e9, "2.5e+09"), (float("inf"), "inf"), (float("nan"), "nan")],
)
def test_short_numbers(value: float | str | None, text: str) -> None:
    assert fmt(value) == text


def test_steps_and_times() -> None:
    assert fmt_step(52000) == "52,000" and fmt_step(None) == "-"
    assert iso(0) == "1970-01-01T00:00:00Z" and iso(1764597909.9) == "2025-12-01T14:05:09Z"
    assert iso(None) is None and iso(1e30) is None and iso(float("nan")) is None  # a garbage time is no time


def test_formatting_is_the_bottom_module() -> None:
    # imports nothing of runwise and nothing heavy: everything above may use it
    source = (Path(formatting.__file__)).read_text(encoding="utf-8")
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports and all(line.split()[1].split(".")[0] in ("__future__", "math", "time", "collections", "typing")
                           for line in imports), imports


def test_keys_split_on_commas_and_repeats() -> None:
    assert split_keys(["train/loss,val/", " lr ", "a,,b,"]) == ["train/loss", "val/", "lr", "a", "b"]
    assert split_keys("loss, val_loss") == ["loss", "val_loss"]
    assert split_keys(None) is None and split_keys([" , "]) is None and split_keys([]) is None
