"""JSON schemas as the model reads them: compacted, and described in a few words for error messages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema, compacted (see `compact_schema`): for output models."""
    schema: dict[str, Any] = compact_schema(model.model_json_schema())
    return schema


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A tool input model's JSON schema, compacted, its optional arguments plain, its base classes' fields last.

    An optional argument whose default is null (`anyOf: [{type: T}, {type: null}]`) is published
    as `type: T`: leaving it out asks for the default, so offering null as a value only costs
    characters on every tool listing (the server still takes an explicit null). Every tool input
    inherits `budget`: the tool's own arguments come first, where the model reads.
    """
    schema: dict[str, Any] = compact_schema(model.model_json_schema(), null_defaults=False)
    props = schema.get("properties")
    if isinstance(props, dict):
        inherited = {k for base in model.__mro__[1:] if issubclass(base, BaseModel) for k in base.model_fields}
        schema["properties"] = {k: v for k, v in props.items() if k not in inherited} | {
            k: v for k, v in props.items() if k in inherited}
    return schema


def compact_schema(schema: Any, *, null_defaults: bool = True) -> Any:
    """Shorten a JSON schema without changing what it accepts: the model pays for every character.

    Drops pydantic's generated `title`s and `"default": null`, writes `anyOf: [{type: T}, {type:
    null}]` as `type: [T, "null"]`, and drops `additionalProperties: false`: the server refuses
    unknown arguments itself, in one line naming the known ones. With `null_defaults=False`, a
    property whose default is null is written `type: T` (see `input_schema`).
    """
    if isinstance(schema, list):
        return [compact_schema(x, null_defaults=null_defaults) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    plain = not null_defaults and "default" in schema and schema["default"] is None
    for k, v in schema.items():
        if k == "title" and isinstance(v, str):
            continue
        if k == "default" and v is None:
            continue
        if k == "additionalProperties" and v is False:
            continue
        if k in ("properties", "$defs") and isinstance(v, dict):
            out[k] = {name: compact_schema(p, null_defaults=null_defaults) for name, p in v.items()}
        else:
            out[k] = compact_schema(v, null_defaults=null_defaults)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = options[0] if options[1] == {"type": "null"} else options[1]
        if isinstance(other, dict) and isinstance(other.get("type"), str):
            del out["anyOf"]
            out = {**other, **out, "type": other["type"] if plain else [other["type"], "null"]}
    return out


def allowed(prop: dict[str, Any]) -> str:
    """What a schema property accepts, in words: 'an integer from 4 to 5000, or null'."""
    types = prop.get("type")
    kinds = [types] if isinstance(types, str) else list(types or [])
    nullable = "null" in kinds
    kinds = [k for k in kinds if k != "null"]
    if "enum" in prop:
        text = "one of " + ", ".join(repr(v) for v in prop["enum"])
    elif "const" in prop:
        text = repr(prop["const"])
    elif kinds == ["integer"] or kinds == ["number"]:
        text = ("an integer" if kinds == ["integer"] else "a number") + _range(prop, "minimum", "maximum")
    elif kinds == ["string"]:
        text = "a string" + _length(prop, "minLength", "maxLength", "characters")
    elif kinds == ["array"]:
        items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
        inner = allowed(items) if items else "values"
        text = "a list" + _length(prop, "minItems", "maxItems", "items") + f" of {_plural(inner)}"
    elif kinds == ["boolean"]:
        text = "true or false"
    elif kinds == ["object"]:
        text = "an object"
    else:
        text = "a value of the documented type"
    return text + (", or null" if nullable else "")


def _range(prop: dict[str, Any], lo_key: str, hi_key: str) -> str:
    lo, hi = _number(prop.get(lo_key)), _number(prop.get(hi_key))
    if lo and hi:
        return f" from {lo} to {hi}"
    if lo:
        return f" >= {lo}"
    if hi:
        return f" <= {hi}"
    return ""


def _number(x: Any) -> str:
    """A schema bound as text: 5,000; 1,000,000 (not 1000000.0); 0.5; '' when absent."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return ""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _length(prop: dict[str, Any], lo_key: str, hi_key: str, unit: str) -> str:
    lo, hi = prop.get(lo_key), prop.get(hi_key)
    if lo and hi:
        return f" of {lo:,} to {hi:,} {unit}"
    if hi is not None:
        return f" of at most {hi:,} {unit}"
    if lo:
        return f" of at least {lo:,} {unit}"
    return ""


def _plural(text: str) -> str:
    """'a string of at most 200 characters' -> 'strings of at most 200 characters'."""
    for article, noun in (("a string", "strings"), ("an integer", "integers"), ("a number", "numbers")):
        if text.startswith(article):
            return noun + text[len(article):]
    return text
