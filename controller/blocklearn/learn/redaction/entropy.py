"""High-entropy tokens: a long run of letters and digits that no word, path, hash or encoding explains.

The idea is detect-secrets' HighEntropyString plugins and gitleaks' `entropy` field: Shannon entropy
in bits per character. Alone it flags git SHAs, digests, UUIDs and base64-encoded configuration, so
those are set aside by shape first (hex, UUID, base64 that decodes to text), and the token must mix
lower case, upper case and digits the way generated strings do. Thresholds were measured on the
false-positive corpus and NL2Bash (bench/redaction_fp.py) against generated tokens; see the README.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import re
from collections import Counter

from blocklearn.learn.redaction.engine import Rule, rule

MIN_LENGTH = 20
# Bits per character, for a token of MIN_LENGTH; longer tokens must reach more (see `threshold`).
MIN_ENTROPY = 3.7
# Changes of character class (lower/upper/digit/other) per character: words and identifiers change
# rarely (`MyServiceName2`), generated tokens about every other character.
MIN_SWITCH_RATE = 0.3

_HEX = re.compile(r"^[0-9a-fA-F-]+$")
_CLASS = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "a" * 26 + "A" * 26 + "0" * 10,
)


def shannon(token: str) -> float:
    counts = Counter(token)
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def threshold(length: int) -> float:
    """Entropy a random base62 token of this length nearly always reaches, capped below log2(62)."""
    return min(MIN_ENTROPY + 0.5 * math.log2(length / MIN_LENGTH), 4.5)


def switch_rate(token: str) -> float:
    classes = token.translate(_CLASS)
    return sum(a != b for a, b in itertools.pairwise(classes)) / max(len(token) - 1, 1)


def _decodes_to_text(token: str) -> bool:
    """Base64 of text (configuration, a kubeconfig's CA is not it) rather than of random bytes."""
    if len(token) % 4 == 1:
        return False
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(raw) and sum(32 <= b < 127 or b in (9, 10, 13) for b in raw) / len(raw) > 0.95


# Parts of paths and identifiers: words, short all-caps or lower-case pieces (`usr`, `X11R6`, `lab4a`).
_WORDLIKE = re.compile(r"^(?:[A-Z]?[a-z]+|[A-Z]+|[a-z]+\d*|\w{1,5})$")


def _mostly_words(token: str) -> bool:
    """`HOME/Labs/lab4a/folder`, `arch/x86/usr/X11R6/bin`, `CUSTOM_LINE_MARKER`: a path or a name."""
    parts = [p for p in re.split(r"[/_-]+", token) if p]
    return len(parts) > 1 and sum(len(p) for p in parts if _WORDLIKE.match(p)) * 2 >= len(token)


def looks_generated(token: str) -> bool:
    token = token.rstrip("=")
    if len(token) < MIN_LENGTH or _HEX.match(token) or token.startswith("/") or "//" in token:
        return False
    if not (
        any(c.islower() for c in token)
        and any(c.isupper() for c in token)
        and any(c.isdigit() for c in token)
    ):
        return False
    if shannon(token) < threshold(len(token)) or switch_rate(token) < MIN_SWITCH_RATE or _mostly_words(token):
        return False
    return not _decodes_to_text(token)


ENTROPY: list[Rule] = [
    rule(
        "high-entropy",
        r"(?<![A-Za-z0-9+/_.-])(?P<secret>[A-Za-z0-9+/_-]{20,}={0,2})(?![A-Za-z0-9+/=_.-])",
        lambda m: looks_generated(m.group("secret")),
    ),
]
