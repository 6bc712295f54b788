"""Real token counts of runwise's answers, for tests and benches (never shipped with the package).

  count_o200k(text)    tokens under OpenAI's o200k_base encoding (the `bpe-openai` package)
  count_claude(text)   tokens under the Claude tokenizer: the `tokenizer.json` inside the
                       anthropic==0.34.0 wheel, read with the `tokenizers` package
  answer_text(out)     exactly the text the MCP server sends for an output model (what the agent pays for)

The Claude tokenizer file is looked up in RUNWISE_CLAUDE_TOKENIZER, then in CLAUDE_TOKENIZER_PATH
(.venv/claude-tokenizer/tokenizer.json, where .ci/run puts it). When it is in neither place it is
fetched once with `pip download --no-deps anthropic==0.34.0` into that path. Only if that fails
too (no network, no pip) do the callers skip, with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

REPO = Path(__file__).resolve().parent.parent
CLAUDE_TOKENIZER_PATH = REPO / ".venv" / "claude-tokenizer" / "tokenizer.json"
ANTHROPIC_WHEEL = "anthropic==0.34.0"
ENV_VAR = "RUNWISE_CLAUDE_TOKENIZER"


def answer_text(out: BaseModel) -> str:
    """The text content the MCP server sends for `out` (runwise.server.app._result): compact JSON."""
    return out.model_dump_json()


def count_o200k(text: str) -> int:
    """Tokens of `text` under o200k_base."""
    return len(_o200k().encode(text))


def count_claude(text: str) -> int:
    """Tokens of `text` under the Claude tokenizer (anthropic 0.34.0's tokenizer.json)."""
    return len(_claude().encode(text).ids)


def count_max(text: str) -> int:
    """The larger of the two real counts: what a budget must hold under either tokenizer."""
    return max(count_o200k(text), count_claude(text))


@cache
def _o200k() -> Any:
    try:
        import bpe_openai
    except ImportError:
        pytest.skip("o200k tokenizer unavailable: pip install bpe-openai (in the dev extra)")
    return bpe_openai.get_encoding("o200k_base")


@cache
def _claude() -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        pytest.skip("Claude tokenizer unavailable: pip install tokenizers (in the dev extra)")
    path = claude_tokenizer_file()
    if path is None:
        pytest.skip(f"Claude tokenizer unavailable: could not fetch {ANTHROPIC_WHEEL} with pip; set {ENV_VAR} to a "
                    "tokenizer.json taken from that wheel")
    return Tokenizer.from_file(str(path))


def claude_tokenizer_file() -> Path | None:
    """The Claude tokenizer.json: from the environment, the default place, or fetched there now (None: cannot be)."""
    given = os.environ.get(ENV_VAR)
    if given and Path(given).is_file():
        return Path(given)
    if CLAUDE_TOKENIZER_PATH.is_file():
        return CLAUDE_TOKENIZER_PATH
    return fetch_claude_tokenizer(CLAUDE_TOKENIZER_PATH)


def fetch_claude_tokenizer(dest: Path) -> Path | None:
    """Download the anthropic 0.34.0 wheel (no dependencies) and unzip its tokenizer.json to `dest`."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", ANTHROPIC_WHEEL, "-d", tmp],
                check=True, capture_output=True, timeout=300,
            )
            wheel = next(Path(tmp).glob("anthropic-*.whl"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(wheel) as z:
                part = dest.with_suffix(".part")
                part.write_bytes(z.read("anthropic/tokenizer.json"))
                part.replace(dest)  # whole or not at all: a parallel run never reads half a file
        except (OSError, subprocess.SubprocessError, StopIteration, KeyError, zipfile.BadZipFile):
            return None
    return dest


if __name__ == "__main__":  # python -m tests.tokenizers: fetch the file (as .ci/run does) and print where it is
    found = claude_tokenizer_file()
    if found is None:
        sys.exit(f"could not fetch {ANTHROPIC_WHEEL}")
    print(found)
