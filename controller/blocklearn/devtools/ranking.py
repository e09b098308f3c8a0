"""Retrieval quality measures: hit@k and mean reciprocal rank over ranked answers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from blocklearn.embed.text import normalise_command


def first_hit_rank(ranked: Sequence[str], answers: Iterable[str]) -> int | None:
    """1-based rank of the first ranked command equal to an answer, or None."""
    wanted = {normalise_command(a) for a in answers}
    for rank, command in enumerate(ranked, start=1):
        if normalise_command(command) in wanted:
            return rank
    return None


def summarise(ranks: Sequence[int | None], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """hit@k for each k and MRR over queries whose first-hit ranks are given (None = miss)."""
    if not ranks:
        raise ValueError("no queries to summarise")
    out = {f"hit@{k}": sum(1 for r in ranks if r is not None and r <= k) / len(ranks) for k in ks}
    out["mrr"] = sum(1.0 / r for r in ranks if r is not None) / len(ranks)
    return out
