import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocklearn.index.core import MAX_K, Entry, ExampleIndex, IndexMismatchError, VectorCounts
from blocklearn.index.lexical import bag

DIM = 8
MODEL = "m"


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def entry(i: str, ns: str = "default") -> Entry:
    return Entry(namespace=ns, name=i)


def consistent(ix: ExampleIndex) -> None:
    """The map and the rows agree: row r holds the vector and entry of ids[r]."""
    assert len(ix._rows) == len(ix._ids) == len(ix._entries) == len(ix) == len(ix._lexical)
    for id_, row in ix._rows.items():
        assert ix._ids[row] == id_ and ix._entries[row].name == id_


def test_upsert_search_update_delete() -> None:
    ix = ExampleIndex(DIM, MODEL, capacity=2)
    for i in range(5):
        ix.upsert(f"e{i}", entry(f"e{i}"), "", unit(i))
    assert len(ix) == 5 and ix.capacity == 8  # doubled twice, never per insert
    hits = ix.search("", k=1, vector=unit(3))
    assert hits[0].entry.name == "e3" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    ix.upsert("e3", entry("e3"), "", unit(100))  # update in place
    assert len(ix) == 5 and ix.search("", k=1, vector=unit(100))[0].entry.name == "e3"
    assert ix.delete("e0") and not ix.delete("e0")
    consistent(ix)
    assert ix.ids() == {"e1", "e2", "e3", "e4"}
    assert all(h.entry.name != "e0" for h in ix.search("", k=4, vector=unit(0)))


def test_swap_delete_moves_the_last_row_into_the_hole() -> None:
    ix = ExampleIndex(DIM, MODEL)
    for i in range(3):
        ix.upsert(f"e{i}", entry(f"e{i}"), f"word{i} shared", unit(i))
    ix.delete("e0")
    assert ix._rows["e2"] == 0
    assert np.array_equal(ix._matrix_t[:, 0], unit(2))
    assert not ix._matrix_t[:, 2].any() and not ix._has_vector[2]  # the freed row is cleared
    assert ix._lexical.postings.row_terms(0, bag("word2 shared")).keys() == {
        "wword2",
        "wshared",
        "bword2 shared",
    }
    consistent(ix)


def test_mismatched_vectors_are_rejected_with_a_clear_error() -> None:
    ix = ExampleIndex(DIM, MODEL)
    with pytest.raises(IndexMismatchError, match="model 'other' differs"):
        ix.upsert("a", entry("a"), "", unit(1), "other")
    with pytest.raises(IndexMismatchError, match=r"shape \(4,\)"):
        ix.upsert("a", entry("a"), "", unit(1, 4))
    with pytest.raises(IndexMismatchError):
        ix.search("", vector=unit(1, 4))
    with pytest.raises(IndexMismatchError):  # no dense channel: no vector is accepted
        ExampleIndex(0, MODEL).upsert("a", entry("a"), "", unit(1))
    with pytest.raises(ValueError, match="k must be"):
        ix.search("", k=MAX_K + 1, vector=unit(1))


def test_namespace_filter_and_min_score() -> None:
    ix = ExampleIndex(DIM, MODEL)
    ix.upsert("a", entry("a", "team-a"), "list pods", unit(1))
    ix.upsert("b", entry("b", "team-b"), "list pods", unit(1))
    assert [h.entry.name for h in ix.search("list pods", k=5, vector=unit(1), namespace="team-b")] == ["b"]
    assert ix.search("list pods", k=5, vector=unit(1), namespace="nobody") == []
    assert (ix.size("team-a"), ix.size("nobody"), ix.size()) == (1, 0, 2)
    assert ix.search("", k=5, vector=-unit(1), min_score=0.0) == []


def test_float64_queries_are_accepted_and_ranked_like_float32() -> None:
    ix = ExampleIndex(DIM, MODEL)
    for i in range(10):
        ix.upsert(str(i), entry(str(i)), "", unit(i))
    q = unit(4).astype(np.float64)
    assert ix.search("", k=3, vector=q) == ix.search("", k=3, vector=q.astype(np.float32))


def test_the_lexical_channel_alone_weighs_rare_words_and_skips_rows_sharing_none() -> None:
    ix = ExampleIndex(0, MODEL)  # the hashing setting: no dense channel
    for i in range(20):
        ix.upsert(str(i), entry(str(i)), f"list the files of directory {i}")
    ix.upsert("rare", entry("rare"), "list the sockets")
    ix.upsert("other", entry("other"), "compress a folder")
    hits = ix.search("which sockets are open, list them", k=5)
    assert hits[0].entry.name == "rare" and 0 < hits[0].score <= 1
    assert "other" not in {h.entry.name for h in ix.search("list sockets", k=30)}
    assert ix.vector_counts().ratio == 1.0  # text is all a row needs here
    ix.delete("rare")
    assert ix.search("sockets", k=3) == []


def test_hybrid_fuses_the_channels_and_rows_without_a_vector_take_part_by_text() -> None:
    ix = ExampleIndex(DIM, MODEL)
    ix.upsert("dense", entry("dense"), "show disk usage", unit(1))
    ix.upsert("both", entry("both"), "restart the coredns deployment", unit(2))
    ix.upsert("text-only", entry("text-only"), "tail the coredns logs")  # another model's vector: none
    assert ix.vector_counts() == VectorCounts(current=2, missing=1)
    # The same dense score for "dense" and "both": the shared words decide.
    q = unit(1) + unit(2)
    q /= np.linalg.norm(q)
    names = [h.entry.name for h in ix.search("restart coredns", k=3, vector=q)]
    assert names[0] == "both" and "text-only" in names
    # A row with neither a vector nor a shared word is left out; rows with vectors always compete.
    assert {h.entry.name for h in ix.search("disk", k=3, vector=unit(1))} == {"dense", "both"}
    ix.upsert("text-only", entry("text-only"), "tail the coredns logs", unit(3))  # re-embedded
    assert ix.vector_counts().ratio == 1.0 and np.array_equal(ix.vector("text-only"), unit(3))
    ix.upsert("both", entry("both"), "restart the coredns deployment")  # its vector went stale
    assert ix.vector("both") is None and ix.vector_counts() == VectorCounts(current=2, missing=1)


WORDS = ["list", "pods", "files", "disk", "restart", "logs", "the", "of"]
ops = st.lists(
    st.tuples(
        st.sampled_from(["upsert", "upsert", "delete"]),
        st.integers(0, 12),
        st.one_of(st.none(), st.integers(0, 1000)),  # a vector's seed, or none (text only)
        st.lists(st.sampled_from(WORDS), max_size=5).map(" ".join),
    ),
    max_size=80,
)


def by_id(ix: ExampleIndex) -> dict[str, dict[str, float]]:
    """The lexical index as term -> {example id: value}: independent of row numbers."""
    return {
        term: {ix._ids[r]: v for r, v in zip(rows.tolist(), values.tolist(), strict=True)}
        for term, rows, values in ix._lexical.postings.items()
    }


@settings(max_examples=200, deadline=None)
@given(ops)
def test_any_sequence_of_operations_equals_a_rebuild_from_scratch(
    sequence: list[tuple[str, int, int | None, str]],
) -> None:
    ix = ExampleIndex(DIM, MODEL, capacity=1)
    model: dict[str, tuple[np.ndarray | None, str]] = {}
    for op, key, seed, text in sequence:
        if op == "upsert":
            vector = None if seed is None else unit(seed)
            ix.upsert(str(key), entry(str(key), f"ns{key % 3}"), text, vector)
            model[str(key)] = (vector, text)
        else:
            assert ix.delete(str(key)) == (model.pop(str(key), None) is not None)
    consistent(ix)
    assert ix.ids() == set(model)
    for ns in ("ns0", "ns1", "ns2"):  # what a search's count footer says
        assert ix.size(ns) == sum(f"ns{int(k) % 3}" == ns for k in model)
    assert ix.size() == len(model)
    rebuilt = ExampleIndex(DIM, MODEL)
    for id_, (vector, text) in sorted(model.items()):
        rebuilt.upsert(id_, entry(id_, f"ns{int(id_) % 3}"), text, vector)
        stored = ix.vector(id_)
        assert (stored is None and vector is None) or np.array_equal(stored, vector)
    assert by_id(ix) == by_id(rebuilt)
    assert ix.vector_counts() == rebuilt.vector_counts()
    n = len(model)
    assert not ix._has_vector[n:].any() and not ix._matrix_t[:, n:].any()  # freed rows are cleared
    for query in ("list the pods", "disk logs"):
        ours = {h.entry.name: round(h.score, 5) for h in ix.search(query, k=20, vector=unit(7))}
        theirs = {h.entry.name: round(h.score, 5) for h in rebuilt.search(query, k=20, vector=unit(7))}
        assert ours == theirs


def test_concurrent_readers_never_see_a_torn_row() -> None:
    """Writers flip rows between two known vectors; every hit must be exactly one of them."""
    dim = 256
    ix = ExampleIndex(dim, MODEL, capacity=4)
    a, b = unit(1, dim), unit(2, dim)
    for i in range(50):
        ix.upsert(str(i), entry(str(i)), "list pods", a)
    stop = threading.Event()
    errors: list[str] = []

    def writer(offset: int) -> None:
        n = 0
        while not stop.is_set():
            key = str(offset + n % 100)
            ix.upsert(key, entry(key), "list pods" if n % 2 else "list files", b if n % 2 else a)
            if n % 7 == 0:
                ix.delete(str(offset + (n * 3) % 100))
            n += 1

    def reader() -> None:
        while not stop.is_set():
            for hit in ix.search("", k=10, vector=a):  # no text: the dense score alone
                if not (abs(hit.score - 1.0) < 1e-4 or abs(hit.score - float(a @ b)) < 1e-4):
                    errors.append(f"torn score {hit.score}")
            ix.search("list pods", k=10)  # the lexical channel under writes: must not raise

    threads = [threading.Thread(target=writer, args=(o,)) for o in (0, 1000)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    stop.wait(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    consistent(ix)
