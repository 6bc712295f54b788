"""How many tokens a text costs an agent, estimated without a tokenizer (standard library only).

The estimate counts the pieces tokenizers of current models split text into: words of up to 7
letters (with their leading space), groups of up to 3 digits, pairs of punctuation marks, runs of
white space, and 2 per non-ASCII character (block characters, arrows). It is calibrated to stay
at or above both o200k and the Claude tokenizer on runwise's own answers (bench/bench_tokens.py
measures both); budgets are met on the estimate, so the real count stays inside them.
"""

from __future__ import annotations

import re

_PIECES = re.compile(r" ?[A-Za-z]{1,7}| ?\d{1,3}|\n+|\s+|[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]{1,2}|[^\x00-\x7f]")


def estimate_tokens(text: str) -> int:
    """Tokens `text` is expected to cost (an upper estimate for o200k and the Claude tokenizer)."""
    n = 0
    for m in _PIECES.finditer(text):
        n += 2 if ord(m.group()[-1]) > 0x7F else 1
    return n
