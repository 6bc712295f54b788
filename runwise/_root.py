"""The project root rule, in a module of its own: the CLI's answer store finds the root before it
imports the configuration (and pydantic)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from runwise.errors import ConfigError

__all__ = ["project_root_dir"]


def project_root_dir(root: str | Path | None, env: Mapping[str, str]) -> Path:
    """The project root: `root`, else $RUNWISE_PROJECT_ROOT, else $CLAUDE_PROJECT_DIR, else the working directory.

    The one place this rule lives (the config and `runwise init` use it). ConfigError if not a directory.
    """
    if root is None or root == "":
        root = env.get("RUNWISE_PROJECT_ROOT") or env.get("CLAUDE_PROJECT_DIR") or os.getcwd()
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigError(f"project root {str(root)!r} is not a directory")
    return path
