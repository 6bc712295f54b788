"""The one line an agent gets for any failure: at most ERROR_CHARS characters, no traceback.

  bad arguments             "invalid argument max_points: must be an integer from 4 to 5,000 (got 2)"
  anticipated (RunwiseError, OSError)   the error's own text, echoed inputs cut
  anything else             "internal error 7f3a2c: <type>; please report it" (the traceback, with
                            the same id, goes to the server log on stderr)
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from runwise.errors import RunwiseError
from runwise.formatting import error_reason
from runwise.server.schema import allowed

log = logging.getLogger("runwise.server")

ERROR_CHARS = 300  # the whole text a client shows, the SDK's "Error executing tool <name>: " included
ECHO_CHARS = 60  # an input quoted back in a message is cut to this

_QUOTED = re.compile(rf"'[^']{{{ECHO_CHARS + 1},}}'|\"[^\"]{{{ECHO_CHARS + 1},}}\"")


def one_line(text: str, limit: int = ERROR_CHARS) -> str:
    """`text` on one line: long quoted inputs cut, whitespace runs joined, at most `limit` characters."""
    text = _QUOTED.sub(lambda m: m[0][: ECHO_CHARS - 1] + "…" + m[0][-1], text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show(value: Any) -> str:
    """An argument value as the message quotes it: short, on one line."""
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 1] + "…"


def argument_error(exc: ValidationError, schema: Mapping[str, Any], limit: int = ERROR_CHARS) -> str:
    """One line for arguments a tool's input model refused, naming the argument and what it accepts."""
    errors = exc.errors()
    err = errors[0]
    props: Mapping[str, Any] = schema.get("properties", {})
    loc = err["loc"]
    name = str(loc[0]) if loc else ""
    where = name + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc[1:])
    kind = err["type"]
    if kind == "extra_forbidden":
        text = f"unknown argument {show(name)}; arguments: {', '.join(props)}"
    elif not loc:  # a check across arguments (an inverted step range)
        text = "invalid arguments: " + error_reason(err)
    elif kind == "missing":
        text = f"missing argument {name}: {allowed(props.get(name, {}))}"
    elif kind in ("value_error", "assertion_error"):
        text = f"invalid argument {where}: {error_reason(err)} (got {show(err.get('input'))})"
    else:
        prop = props.get(name, {})
        wanted = allowed(prop) if len(loc) == 1 else _item_rule(prop, err)
        text = f"invalid argument {where}: must be {wanted} (got {show(err.get('input'))})"
    if len(errors) > 1:
        text += f"; {len(errors) - 1} more invalid"
    return one_line(text, limit)


def _item_rule(prop: Mapping[str, Any], err: Any) -> str:
    """What an item of a list argument must be (`keys[3]`)."""
    items = prop.get("items")
    return allowed(items) if isinstance(items, dict) else error_reason(err)


def error_message(exc: BaseException, limit: int = ERROR_CHARS) -> str:
    """The one line for a failure inside a tool. Unexpected ones are logged with an id the line carries."""
    if isinstance(exc, RunwiseError):
        return one_line(str(exc), limit)
    if isinstance(exc, OSError):
        what = show(str(exc.filename)) if exc.filename else "a file"
        return one_line(f"cannot read {what}: {exc.strerror or type(exc).__name__}", limit)
    incident = secrets.token_hex(3)
    log.error("internal error %s", incident, exc_info=exc)
    return one_line(
        f"internal error {incident}: {type(exc).__name__} in runwise; please report it (the server log has details)",
        limit,
    )
