"""Distinct answers: when several people made the same correction, return it once, with its support.

Search over-fetches, then keeps the best-scoring example of each answer (executed cells compared
after whitespace normalisation: `blocklearn.embed.text.normalise_command`) until it has k, so k
few-shot examples teach k different things instead of repeating one. Support counts the Blocks that
taught the answer: an Example stands for every identical correction (its `occurrences`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from blocklearn.embed.text import normalise_command
from blocklearn.index.core import MAX_K, Entry, Hit

# Candidates fetched per wanted result. The search is one matrix product either way; a larger pool
# finds k distinct answers even when one answer repeats many times near the query.
OVERFETCH = 10


@dataclass(frozen=True)
class Grouped:
    """The best hit of one answer, and how many corrections among the candidate hits gave it."""

    hit: Hit
    support: int


def candidates(k: int) -> int:
    """How many ranked hits to fetch to return k distinct answers."""
    return min(MAX_K, max(k, k * OVERFETCH))


def answer_key(entry: Entry) -> str:
    """The executed cells, whitespace-normalised: two examples with equal keys teach the same."""
    return normalise_command("\n".join(str(c.get("contents", "")) for c in entry.answer))


def distinct(hits: Sequence[Hit], k: int) -> list[Grouped]:
    """The first k distinct answers of hits ranked best first, each with its best hit and its support
    among all the hits given (also those beyond the k-th answer), counted in occurrences."""
    best: dict[str, Hit] = {}
    support: dict[str, int] = {}
    for hit in hits:
        key = answer_key(hit.entry)
        best.setdefault(key, hit)
        support[key] = support.get(key, 0) + hit.entry.occurrences
    # dicts keep insertion order: the first hit of each answer is its best, in rank order.
    return [Grouped(hit, support[key]) for key, hit in list(best.items())[:k]]
