"""Text from the cluster (learned cells, names, server messages), made safe to show on a terminal."""

from __future__ import annotations

import unicodedata

# Characters a terminal acts on rather than shows: controls (Cc: ESC starts colour and cursor
# sequences, BEL rings), format characters (Cf: bidi overrides such as U+202E reorder what follows,
# zero-width ones hide text), line and paragraph separators, and lone surrogates.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def printable(text: str, keep: str = "") -> str:
    """`text` with every character a terminal would act on written as an escape (`\\x1b`,
    `\\u202e`), except those in `keep` (say "\\n" for a multi-line log)."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(c if c in keep or unicodedata.category(c) not in _UNSAFE else ascii(c)[1:-1] for c in text)
