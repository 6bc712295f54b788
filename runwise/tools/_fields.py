"""Input field types shared by the tools, each with the bounds its JSON schema states.

Every string and list an agent sends has a length cap and every number a range, so no argument can
make an answer, an error message or the work behind it unbounded. The caps are in the schema
(`maxLength`, `maxItems`, `maximum`) so a client knows them before it calls. The arguments most
tools share (`run`, `keys`, `budget`) are described once, in the server's instructions, not in
every tool's schema: the model pays for each tool listing on every turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from runwise.runs import split_step

MAX_STEP = 2**53  # the largest step a JSON number (a double) holds exactly
REF_CHARS = 500
NAME_CHARS = 200  # a metric name, prefix or config key prefix
MAX_KEYS = 50  # names or prefixes in one `keys` argument


def check_ref(ref: str) -> str:
    """A run reference the resolver can take: no NUL byte, a '~user' that exists, a step in range."""
    if "\x00" in ref:
        raise ValueError("must not contain a NUL byte")
    if ref.startswith("~"):
        try:
            Path(ref).expanduser()
        except RuntimeError as exc:  # '~nobody/x': no such user
            raise ValueError(f"cannot expand {ref.split('/', 1)[0]!r}: no such user") from exc
    _, step = split_step(ref)  # raises NegativeStep (a ValueError) for a step below 0
    if step is not None and step > MAX_STEP:
        raise ValueError(f"the step after '@' must be from 0 to {MAX_STEP:,}")
    return ref


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # 'latest': the server instructions say so once, for every tool


RunRef = Annotated[
    str,
    Field(max_length=REF_CHARS, json_schema_extra=_no_default),
    AfterValidator(check_ref),
]
Prefix = Annotated[str, Field(description="Only keys starting with this", max_length=NAME_CHARS)]
MetricName = Annotated[str, Field(min_length=1, max_length=NAME_CHARS)]
Keys = Annotated[
    list[Annotated[str, Field(max_length=NAME_CHARS)]] | None,
    Field(max_length=MAX_KEYS),
]
Step = Annotated[int, Field(ge=0, le=MAX_STEP)]
