import json

from hypothesis import given
from hypothesis import strategies as st

from blocklearn.index.core import MAX_K, Entry, Hit
from blocklearn.search.distinct import answer_key, candidates, distinct


def hit(name: str, answer: str, score: float, occurrences: int = 1) -> Hit:
    cells = json.dumps([{"kind": "code", "contents": answer}])
    return Hit(Entry("default", name, answer_json=cells, occurrences=occurrences), score)


def test_each_answer_once_with_its_best_hit_and_support() -> None:
    hits = [
        hit("a1", "kubectl get pods", 0.9),
        hit("b", "kubectl get pods -A", 0.8),
        hit("a2", "  kubectl   get pods\n", 0.7),
        hit("c", "kubectl get nodes", 0.6),
        hit("a3", "kubectl get pods", 0.5),
    ]
    groups = distinct(hits, 2)
    assert [(g.hit.entry.name, g.support) for g in groups] == [("a1", 3), ("b", 1)]
    assert [(g.hit.entry.name, g.support) for g in distinct(hits, 5)] == [("a1", 3), ("b", 1), ("c", 1)]


def test_support_counts_the_corrections_each_example_stands_for() -> None:
    hits = [hit("a1", "ls", 0.9, occurrences=4), hit("b", "pwd", 0.8), hit("a2", "ls ", 0.7, occurrences=2)]
    assert [(g.hit.entry.name, g.support) for g in distinct(hits, 3)] == [("a1", 6), ("b", 1)]


def test_no_hits_and_odd_payloads() -> None:
    assert distinct([], 3) == []
    odd = [Hit(Entry("default", "x"), 0.5), Hit(Entry("default", "y", answer_json='["str"]'), 0.4)]
    assert [g.support for g in distinct(odd, 3)] == [2]  # both have an empty answer
    two = json.dumps([{"contents": "a"}, {"contents": " b "}])
    assert answer_key(Entry("d", "n", answer_json=two)) == "a b"


def test_candidates_overfetch_within_the_index_limit() -> None:
    assert candidates(3) == 30 and candidates(1) == 10
    assert candidates(MAX_K) == MAX_K and candidates(50) == MAX_K


@given(st.lists(st.tuples(st.sampled_from(["a", "b", " a", "c", "d  e", "d e"]), st.floats(-1, 1))))
def test_distinct_keeps_rank_order_and_the_counts_add_up(pairs: list[tuple[str, float]]) -> None:
    hits = [hit(f"n{i}", a, s) for i, (a, s) in enumerate(sorted(pairs, key=lambda p: -p[1]))]
    groups = distinct(hits, len(hits) + 1)
    keys = [answer_key(g.hit.entry) for g in groups]
    assert len(keys) == len(set(keys))
    assert sum(g.support for g in groups) == len(hits)
    positions = [hits.index(g.hit) for g in groups]
    assert positions == sorted(positions)
    # the best hit of every answer is its first in the ranking
    for g in groups:
        assert hits.index(g.hit) == min(
            i for i, h in enumerate(hits) if answer_key(h.entry) == answer_key(g.hit.entry)
        )
