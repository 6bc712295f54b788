"""Layout blocks and their two emitters: aligned plain text for a terminal, and markdown.

A `Block` is one section of an answer: a paragraph, "key: value" pairs, a table, a bullet list,
a code block (CSV) or a hint about what was left out. `runwise.render` builds them from a tool's
output model; nothing here knows about tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from runwise.formatting import Cell, fmt_cell

Kind = Literal["para", "pairs", "table", "bullets", "code", "hint"]
_NONFINITE = ("nan", "inf", "-inf")


@dataclass(slots=True)
class Block:
    """One section of a rendered answer."""

    kind: Kind
    title: str
    lines: list[str] = field(default_factory=list)  # para, bullets, code, hint
    pairs: list[tuple[str, str]] = field(default_factory=list)  # pairs
    columns: list[str] = field(default_factory=list)  # table
    rows: list[list[Cell]] = field(default_factory=list)  # table
    main: bool = False  # the answer's main table: untitled in text
    literal: bool = False  # the title is data (a metric or group name): never re-cased
    raw: bool = False  # show cells as written (config values), not as compact numbers


# ---------------------------------------------------------------- columns


def _numeric(rows: Sequence[Sequence[Cell]], col: int) -> bool:
    """Whether a column holds only numbers (and nan/inf markers): those are right-aligned."""
    seen = False
    for row in rows:
        v = row[col] if col < len(row) else None
        if v is None or (isinstance(v, str) and v in _NONFINITE):
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        seen = True
    return seen


def _cells(b: Block) -> list[list[str]]:
    width = len(b.columns)
    return [[fmt_cell(v, raw=b.raw) for v in (list(r) + [None] * (width - len(r)))[:width]] for r in b.rows]


# ---------------------------------------------------------------- text


def text_table(b: Block) -> list[str]:
    """Aligned columns: header, a rule, rows; numbers right-aligned; no trailing spaces."""
    cells = _cells(b)
    numeric = [_numeric(b.rows, i) for i in range(len(b.columns))]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(b.columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return [line(b.columns), line(["-" * w for w in widths])] + [line(r) for r in cells]


def _text_pairs(pairs: Sequence[tuple[str, str]], indent: str) -> list[str]:
    width = max(len(k) for k, _ in pairs) + 1
    return [f"{indent}{(k + ':').ljust(width)} {v}".rstrip() for k, v in pairs]


def emit_text(blocks: Sequence[Block]) -> str:
    """Blocks as plain text, separated by blank lines."""
    out: list[list[str]] = []
    for b in blocks:
        head = [f"{b.title}:"] if b.title else []
        if b.kind == "para":
            out.append(b.lines if b.title == "summary" else head + ["  " + x for x in b.lines])
        elif b.kind == "pairs" and b.pairs:
            out.append(head + _text_pairs(b.pairs, "  " if b.title else ""))
        elif b.kind == "table" and b.columns:
            out.append(([] if b.main or not b.title else head) + text_table(b))
        elif b.kind == "bullets":
            out.append(head + [f"  - {x}" for x in b.lines])
        elif b.kind == "code":
            out.append(head + b.lines)
        elif b.kind == "hint":
            out.append([f"({x})" for x in b.lines])
    return "\n\n".join("\n".join(lines) for lines in out if lines)


# ---------------------------------------------------------------- markdown


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(b: Block) -> list[str]:
    """A markdown table with a header separator; numeric columns right-aligned."""
    cells = _cells(b)
    numeric = [_numeric(b.rows, i) for i in range(len(b.columns))]
    lines = ["| " + " | ".join(_md_escape(c) for c in b.columns) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in cells]
    return lines


def _heading(b: Block) -> str:
    title = b.title if b.literal else b.title[:1].upper() + b.title[1:]
    return f"### {title}"


def emit_md(blocks: Sequence[Block], *, title: str | None = None) -> str:
    """Blocks as markdown: a `##` title, the summary paragraph, a `###` heading per section."""
    out: list[list[str]] = [[f"## {title}"]] if title else []
    for b in blocks:
        head = [_heading(b), ""] if b.title and b.title != "summary" else []
        if b.kind == "para":
            out.append(head + ["  \n".join(b.lines)] if b.lines else head[:1])
        elif b.kind == "pairs" and b.pairs:
            out.append(head + [f"- **{k}**: {v}" for k, v in b.pairs])
        elif b.kind == "table" and b.columns:
            out.append(head + md_table(b))
        elif b.kind == "bullets":
            out.append(head + [f"- {x}" for x in b.lines])
        elif b.kind == "code":
            out.append(head + ["```csv", *b.lines, "```"])
        elif b.kind == "hint":
            out.append([f"_{x}_" for x in b.lines])
    return "\n\n".join("\n".join(lines) for lines in out if lines)
