"""runwise: token-efficient analysis of ML training runs (W&B, TensorBoard, JSONL).

Importing the package is cheap: `RunAnalyzer` and `RunwiseConfig` are loaded on first use, so the
MCP server (which imports `runwise.server`) pays nothing for the Python API.

    from runwise import RunAnalyzer
    print(RunAnalyzer().summarize_run("latest"))
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwise.api import RunAnalyzer
    from runwise.config import RunwiseConfig

try:
    __version__ = metadata.version("runwise")
except metadata.PackageNotFoundError:  # running from a source checkout that is not installed
    __version__ = "0+unknown"

_LAZY = {"RunAnalyzer": "runwise.api", "RunwiseConfig": "runwise.config"}

__all__ = ["RunAnalyzer", "RunwiseConfig", "__version__"]


def __getattr__(name: str) -> Any:
    """Load the public classes on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runwise' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
