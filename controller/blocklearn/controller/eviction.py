"""Which Examples of a namespace go: past the cap, the least recently seen; past the maximum age,
any not seen since (pure: the namespace reconciler reads the cache, asks, and deletes)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from blocklearn.runtime.objects import Obj

Candidate = tuple[datetime.datetime, str, Obj]  # when last seen, name, the Example
EVICTION_REASONS = ("cap", "max_age")  # blocklearn_examples_evicted_total{reason}


@dataclass(frozen=True)
class Plan:
    evictions: list[tuple[Obj, str]]  # the Example, and why: "cap" or "max_age"
    next_due: float | None  # when the next Example kept reaches the maximum age


def plan_evictions(
    candidates: Sequence[Candidate], stored: int, cap: int, max_age: float, now: float
) -> Plan:
    """`candidates` may go (no living Block teaches them); `stored` counts every Example of the
    namespace. Beyond `cap` the least recently seen go first (the name breaks ties, so the choice
    is the same on every pass); then any not seen for `max_age` seconds (0: no age limit)."""
    ordered = sorted(candidates, key=lambda c: (c[0], c[1]))
    excess = max(stored - cap, 0) if cap else 0
    evictions = [(example, "cap") for _, _, example in ordered[:excess]]
    next_due = None
    if max_age:
        rest = ordered[len(evictions) :]
        evictions += [(example, "max_age") for seen, _, example in rest if now - seen.timestamp() >= max_age]
        kept = [seen.timestamp() for seen, _, _ in rest if now - seen.timestamp() < max_age]
        next_due = min(kept) + max_age if kept else None
    return Plan(evictions, next_due)
