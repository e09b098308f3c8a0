"""Secrets never become examples: credentials in cells are replaced by typed placeholders.

Executed commands and the notes around them carry credentials (`mysql -pS3cret`, `sshpass -p ...`,
`export GITHUB_TOKEN=...`, "the token for staging is ..."). Before an Example is written every secret
found is replaced by `<REDACTED:kind>`, so it is in no Example, embedding, index, search answer, log,
event or metric (only counts per kind are). Four detectors, most certain first, since an earlier one
wins where two overlap: typed formats (`typed`), passwords in the arguments of known tools (`tools`),
a secret word next to a value in code or prose (`keywords`), and generated-looking tokens
(`entropy`). Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter

from blocklearn.learn.redaction.engine import PLACEHOLDER, Rule, apply
from blocklearn.learn.redaction.entropy import ENTROPY
from blocklearn.learn.redaction.keywords import KEYWORDS, PROSE
from blocklearn.learn.redaction.tools import TOOLS
from blocklearn.learn.redaction.typed import TYPED

RULES: list[Rule] = [*TYPED, *TOOLS, *KEYWORDS, *PROSE, *ENTROPY]

__all__ = ["PLACEHOLDER", "RULES", "redact"]


def redact(text: str) -> tuple[str, Counter[str]]:
    """Return the text with every secret replaced, and how many of each kind were found."""
    return apply(RULES, text)
