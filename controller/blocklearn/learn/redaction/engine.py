"""How rules are applied: every rule finds spans in the original text, earlier rules win overlaps.

A rule is a regular expression whose named group `secret` is the part to replace, an optional check
on the match (for what a regular expression says badly: entropy, the shape of a value), and optional
needles: lower-case strings one of which must occur in the text for the rule to run at all, which keeps
the cost per Block low when the text holds no trace of a secret.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PLACEHOLDER = "<REDACTED:{kind}>"
PLACED = re.compile(r"<REDACTED:[a-z0-9-]+>")


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    check: Callable[[re.Match[str]], bool] | None = None
    needles: tuple[str, ...] = ()


def rule(
    kind: str,
    pattern: str,
    check: Callable[[re.Match[str]], bool] | None = None,
    needles: Sequence[str] = (),
    flags: int = 0,
) -> Rule:
    compiled = re.compile(pattern, flags)
    if "secret" not in compiled.groupindex:
        raise ValueError(f"rule {kind} has no group named 'secret'")
    return Rule(kind, compiled, check, tuple(n.lower() for n in needles))


def _overlaps(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    i = bisect.bisect_left(taken, (start, end))
    return (i > 0 and taken[i - 1][1] > start) or (i < len(taken) and taken[i][0] < end)


def apply(rules: Sequence[Rule], text: str) -> tuple[str, Counter[str]]:
    """Replace every span a rule finds by its typed placeholder; count the kinds."""
    lowered = text.lower()
    # Placeholders already in the text (a second pass) are never a value to redact again. Spans taken
    # stay sorted and disjoint, so an overlap is found by bisection: a cell with thousands of
    # secrets must not cost a scan of all spans per match.
    taken: list[tuple[int, int]] = [m.span() for m in PLACED.finditer(text)]
    spans: list[tuple[int, int, str]] = []
    for r in rules:
        if r.needles and not any(n in lowered for n in r.needles):
            continue
        for match in r.pattern.finditer(text):
            start, end = match.span("secret")
            if start == end or _overlaps(taken, start, end):
                continue
            if r.check is not None and not r.check(match):
                continue
            spans.append((start, end, r.kind))
            bisect.insort(taken, (start, end))
    if not spans:
        return text, Counter()
    spans.sort()
    parts: list[str] = []
    position = 0
    for start, end, kind in spans:
        parts += [text[position:start], PLACEHOLDER.format(kind=kind)]
        position = end
    parts.append(text[position:])
    return "".join(parts), Counter(kind for _, _, kind in spans)
