"""Short text forms of numbers, steps, durations and times, and the comma-splitter for keys.

The bottom of the package: the standard library only (no numpy, no pydantic, no runwise
module), so the CLI, the renderers and the tool handlers can all use it, and importing it costs
nothing. Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping

TYPE_CHECKING = False  # typing is not imported at run time: the CLI's start-up would pay for it
if TYPE_CHECKING:
    from typing import Literal

    Format = Literal["text", "md", "json"]

Cell = str | int | float | bool | None
FORMATS: tuple[Format, ...] = ("text", "md", "json")


def fmt(x: float | str | None) -> str:
    """Short human form of a number: 0.4123, 1.2e-05, 12,345; a string ('nan') as it is; None as '-'."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 1e9:
        return f"{int(x):,}"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}"


def fmt_cell(v: Cell, *, raw: bool = False) -> str:
    """Text of a table cell: 1,234 / 0.4123 / 3e-05 / nan / yes; `raw` keeps values as written."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return ("true" if v else "false") if raw else ("yes" if v else "no")
    if isinstance(v, int):
        return str(v) if raw else f"{v:,}"
    if isinstance(v, float):
        return repr(v) if raw else fmt(v)
    return str(v)


def fmt_step(step: int | None) -> str:
    """A step with thousands separators: 52000 -> '52,000'; None -> '-'."""
    return "-" if step is None else f"{step:,}"


def fmt_duration(seconds: float | None) -> str:
    """12s, 3m05s, 2h14m; 0.4s under ten seconds; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def iso(ts: float | None) -> str | None:
    """A Unix time as UTC ISO 8601 to the second ('2026-11-30T14:05:09Z'); None (or no such time) -> None."""
    if ts is None or not math.isfinite(ts):
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):  # a garbage timestamp in a log: no time rather than a failure
        return None


def error_reason(err: Mapping[str, object]) -> str:
    """The reason of one pydantic validation error (an item of `ValidationError.errors()`), without
    the 'Value error, ' / 'Assertion failed, ' that pydantic puts before a validator's own message."""
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def split_keys(items: str | Iterable[str] | None) -> list[str] | None:
    """Metric keys given comma-separated, repeated, or both: ['a,b', ' c'] -> ['a', 'b', 'c']; none -> None."""
    if items is None:
        return None
    parts = [items] if isinstance(items, str) else items
    keys = [k.strip() for item in parts for k in item.split(",") if k.strip()]
    return keys or None
