"""runwise: token-efficient analysis of ML training runs (W&B, TensorBoard, JSONL).

Importing the package is cheap: `RunAnalyzer`, `RunwiseConfig` and `__version__` are loaded on
first use, so the MCP server (which imports `runwise.server`) pays nothing for the Python API and
the CLI's start-up nothing for importlib.metadata.

    from runwise import RunAnalyzer
    print(RunAnalyzer().summarize_run("latest"))
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import TYPE_CHECKING`: importing typing costs the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from runwise.api import RunAnalyzer
    from runwise.config import RunwiseConfig

__version__: str  # set on first access by __getattr__

_LAZY = {"RunAnalyzer": "runwise.api", "RunwiseConfig": "runwise.config"}

__all__ = ["RunAnalyzer", "RunwiseConfig", "__version__"]


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("runwise")
    except metadata.PackageNotFoundError:  # running from a source checkout that is not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    """Load the public classes and the version on first access (PEP 562)."""
    if name == "__version__":
        globals()[name] = version = _version()
        return version
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runwise' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})
