"""The project root rule, in a module of its own: the CLI's answer store finds the root before it
imports the configuration (and pydantic), and the CLI and the server begin mirroring a root on object
storage (`prefetch`) before they import anything heavy."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from runwise.errors import ConfigError

__all__ = ["cache_dir_of", "prefetch", "project_root_dir", "root_url"]


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


def root_url(root: str | Path | None, env: Mapping[str, str]) -> str | None:
    """The project root when it is a URL (object storage): `root` if given, else $RUNWISE_PROJECT_ROOT."""
    url = root if isinstance(root, str) and root else (None if root else env.get("RUNWISE_PROJECT_ROOT"))
    return url if url and "://" in url else None


def cache_dir_of(env: Mapping[str, str]) -> Path:
    """The disk cache's directory: $RUNWISE_CACHE_DIR, else ~/.cache/runwise."""
    return Path(env.get("RUNWISE_CACHE_DIR") or Path.home() / ".cache" / "runwise")


def prefetch(root: str | None, *, once: bool = False) -> None:
    """If the project root (`root`, else $RUNWISE_PROJECT_ROOT) is on object storage, begin mirroring it now in
    the store worker (runwise.remote_worker): the listing and the downloads then run while this process
    imports what it needs. `once`: the worker exits after this sync (a command that reads once). A URL that
    is not valid is left to RunwiseConfig.load to report."""
    url = root_url(root, os.environ)
    if url is None:
        return
    from runwise import remote

    try:
        remote.begin(url, cache_dir_of(os.environ), last=once)
    except ConfigError:
        return
