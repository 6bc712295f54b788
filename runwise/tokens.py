"""How many tokens a text costs an agent, estimated without a tokenizer (standard library only).

The estimate counts the pieces tokenizers of current models split text into, then adds 5%:

- a word of up to 6 letters, with its leading space ('grad_norm' is 3: 'grad', '_', 'norm');
- a group of up to 3 digits, with its leading space (612345 is 2);
- a run of up to 3 JSON punctuation marks ('":{"' is 2, '","' is 1), a pair of other marks;
- an escape ('\\n' in JSON text), a run of white space;
- 2 for every non-ASCII character (block characters, arrows, accents, CJK).

It is calibrated on runwise's own answers (every tool, numbers of every size and format, unicode
and 150-character names): at or above both o200k and the Claude tokenizer (anthropic 0.34.0's
tokenizer.json) and about 10% above the larger on average; tests/test_budget.py and
bench/bench_tokens.py measure it against both. Budgets are met on the estimate, so the real
count stays inside them.
"""

from __future__ import annotations

import re

_PIECES = re.compile(
    r"\\[\"\\/bfnrtu]"  # a JSON escape
    r"| ?[A-Za-z]{1,6}"
    r"| ?\d{1,3}"
    r"|\s+"
    r"|[\"\[\]{}:,]{1,3}"  # JSON punctuation: both tokenizers merge short runs ('","', '":[')
    r"|[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]{1,2}"
    r"|[^\x00-\x7f]"
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def estimate_tokens(text: str) -> int:
    """Tokens `text` is expected to cost (an upper estimate for o200k and the Claude tokenizer)."""
    n = len(_PIECES.findall(text))
    if not text.isascii():
        n += len(_NON_ASCII.findall(text))  # each non-ASCII character is a piece of its own: 2 in all
    return -(-n * 21 // 20)  # 5% above the count, rounded up
