"""YAML a training run leaves (`hparams.yaml`, `params.yaml`, MLflow's `meta.yaml`), read safely with PyYAML.

- Nothing is constructed beyond plain data: PyYAML's safe loader; under any other tag (Lightning
  writes `!!python/object:argparse.Namespace` and friends into hparams.yaml) a mapping or list is
  read as its plain contents and a scalar as the text `<!tag value>`; no class or function named
  by a tag is ever imported or called.
- An alias bomb cannot expand: aliases stay shared objects as PyYAML builds them, and `walk_size`
  (used by `load`) counts every value as often as it is reached; past `max_values` the document is
  refused with a clear error.
- Files over `max_bytes` are not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_VALUES = 100_000

try:
    from yaml import CSafeLoader as _Base  # libyaml's, when PyYAML was built with it
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Base  # type: ignore[assignment]


class YamlError(ValueError):
    """A YAML document runwise does not read: one line saying why."""


class _Safe(_Base):
    """The safe loader, with any other tag read as the text `<!tag>`."""


def _other_tag(loader: _Base, suffix: str, node: yaml.Node) -> Any:
    """A value under a tag the safe loader does not know: its plain contents (a mapping's keys and values, a
    sequence's items), or the text `<!tag value>` for a scalar; the tag's class or function is never looked up."""
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return f"<{tag} {node.value}>" if node.value else f"<{tag}>"


_Safe.add_multi_constructor("", _other_tag)


def walk_size(value: Any, limit: int) -> int:
    """How many values `value` holds, each counted as often as it is reached (shared ones too); stops past
    `limit`."""
    seen = 0
    stack = [value]
    while stack:
        v = stack.pop()
        seen += 1
        if seen > limit:
            return seen
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return seen


def loads(text: str | bytes, max_values: int = MAX_VALUES) -> Any:
    """The data of one YAML document; YamlError when it does not parse or expands past `max_values`."""
    try:
        data = yaml.load(text, Loader=_Safe)  # noqa: S506 (the loader is the safe one, other tags read as text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise YamlError(f"not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise YamlError("YAML nested too deeply") from None
    if walk_size(data, max_values) > max_values:
        raise YamlError(f"YAML expands to over {max_values:,} values (aliases repeated); not read")
    return data


def load(path: Path, max_bytes: int = MAX_BYTES, max_values: int = MAX_VALUES) -> Any:
    """`loads` of the file at `path`; YamlError when it is over `max_bytes` too (OSError passes through)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlError(f"{path.name} is {size:,} bytes, over the {max_bytes:,} read")
    return loads(path.read_bytes(), max_values)
