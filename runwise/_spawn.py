"""Starting runwise's child interpreters (the readers' workers, the store worker): light to import, so the
CLI can start the store worker before it imports numpy or pydantic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])  # the directory holding this copy of runwise
WRONG_RUNWISE = 17  # a child's exit code when it imported another copy of runwise


def can_spawn() -> bool:
    """Whether `sys.executable` is a Python interpreter this process may start."""
    return bool(sys.executable) and not getattr(sys, "frozen", False)


def creation_flags() -> int:
    """Popen's creationflags: on Windows, a child of a windowless process (pythonw, a GUI client)
    must not open a console window; elsewhere the flag does not exist."""
    if sys.platform == "win32":
        return subprocess.CREATE_NO_WINDOW
    return 0
