"""The one flattener of nested mappings ("a.b" keys), used by the parsers and the analysis alike.

Standard library only, at the bottom of the package, so that parsers and analysis import it
without pointing upward. The sources differ only in what they keep whole (`whole`) and in
whether a W&B config wrapper is unwrapped (`unwrap`):

- W&B config and summary: "." joins; a media object (a mapping with `_type`) and an empty
  mapping are values.
- JSONL rows: "/" joins (`{"train": {"loss": 1}}` -> `train/loss`); an empty mapping gives nothing.
- Run configs (JSONL `config` rows, config diffs): "." joins; `{"value": x}` and
  `{"desc": ..., "value": x}` (W&B's config.yaml form) stand for x; an empty mapping is a value.

Lists and scalars are always values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Whole = Callable[[Mapping[Any, Any]], bool]  # whether a nested mapping is kept as one value


def empty(m: Mapping[Any, Any]) -> bool:
    """Keep an empty mapping as a value (so a key set to {} is not lost)."""
    return not m


def media_or_empty(m: Mapping[Any, Any]) -> bool:
    """W&B: a media object ({"_type": "image-file", ...}) is one value, as is an empty mapping."""
    return not m or "_type" in m


def never(m: Mapping[Any, Any]) -> bool:
    """Walk every mapping: an empty one gives no key at all."""
    return False


def unwrap_wandb(value: Any) -> Any:
    """The x of a W&B config wrapper {"value": x} or {"desc": ..., "value": x}; else the value itself."""
    while isinstance(value, Mapping) and "value" in value and set(value) <= {"value", "desc"}:
        value = value["value"]
    return value


def flatten(
    mapping: Mapping[Any, Any],
    *,
    sep: str = ".",
    whole: Whole = empty,
    unwrap: bool = False,
    out: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The items of `mapping` with nested mappings flattened: `{"a": {"b": 1}}` -> `{"a.b": 1}`.

    Keys are joined with `sep`; a nested mapping for which `whole` is true stays one value;
    with `unwrap`, W&B config wrappers are replaced by their value first (at every level).
    Items go into `out` (returned) when given, later keys overwriting earlier ones.
    Raises ValueError if `sep` is empty.
    """
    if not sep:
        raise ValueError("sep must not be empty")
    flat: dict[str, Any] = {} if out is None else out
    _walk(mapping, "", sep, whole, unwrap, flat)
    return flat


def _walk(m: Mapping[Any, Any], prefix: str, sep: str, whole: Whole, unwrap: bool, out: dict[str, Any]) -> None:
    for raw_key, raw in m.items():
        key = f"{prefix}{raw_key}"
        value = unwrap_wandb(raw) if unwrap else raw
        if isinstance(value, Mapping) and not whole(value):
            _walk(value, key + sep, sep, whole, unwrap, out)
        else:
            out[key] = value
