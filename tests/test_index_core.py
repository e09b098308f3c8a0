import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocklearn.index.core import MAX_K, Entry, ExampleIndex, IndexMismatchError

DIM = 8
MODEL = "m"


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def entry(i: str, ns: str = "default") -> Entry:
    return Entry(namespace=ns, name=i, payload={"id": i})


def consistent(ix: ExampleIndex) -> None:
    """The map and the rows agree: row r holds the vector and entry of ids[r]."""
    assert len(ix._rows) == len(ix._ids) == len(ix._entries) == len(ix)
    for id_, row in ix._rows.items():
        assert ix._ids[row] == id_ and ix._entries[row].name == id_


def test_upsert_search_update_delete() -> None:
    ix = ExampleIndex(DIM, MODEL, capacity=2)
    for i in range(5):
        ix.upsert(f"e{i}", unit(i), entry(f"e{i}"), MODEL)
    assert len(ix) == 5 and ix.capacity == 8  # doubled twice, never per insert
    hits = ix.search(unit(3), k=1)
    assert hits[0].entry.name == "e3" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    ix.upsert("e3", unit(100), entry("e3"), MODEL)  # update in place
    assert len(ix) == 5 and ix.search(unit(100), k=1)[0].entry.name == "e3"
    assert ix.delete("e0") and not ix.delete("e0")
    consistent(ix)
    assert ix.ids() == {"e1", "e2", "e3", "e4"}
    assert all(h.entry.name != "e0" for h in ix.search(unit(0), k=4))


def test_swap_delete_moves_the_last_row_into_the_hole() -> None:
    ix = ExampleIndex(DIM, MODEL)
    for i in range(3):
        ix.upsert(f"e{i}", unit(i), entry(f"e{i}"), MODEL)
    ix.delete("e0")
    assert ix._rows["e2"] == 0
    assert np.array_equal(ix._matrix_t[:, 0], unit(2))
    assert not ix._matrix_t[:, 2].any()  # the freed row is cleared
    consistent(ix)


def test_mismatched_vectors_are_rejected_with_a_clear_error() -> None:
    ix = ExampleIndex(DIM, MODEL)
    with pytest.raises(IndexMismatchError, match="model 'other' differs"):
        ix.upsert("a", unit(1), entry("a"), "other")
    with pytest.raises(IndexMismatchError, match=r"shape \(4,\)"):
        ix.upsert("a", unit(1, 4), entry("a"), MODEL)
    with pytest.raises(IndexMismatchError):
        ix.search(unit(1, 4))
    with pytest.raises(ValueError, match="k must be"):
        ix.search(unit(1), k=MAX_K + 1)


def test_namespace_filter_and_min_score() -> None:
    ix = ExampleIndex(DIM, MODEL)
    ix.upsert("a", unit(1), entry("a", "team-a"), MODEL)
    ix.upsert("b", unit(1), entry("b", "team-b"), MODEL)
    assert [h.entry.name for h in ix.search(unit(1), k=5, namespace="team-b")] == ["b"]
    assert ix.search(unit(1), k=5, namespace="nobody") == []
    assert ix.search(-unit(1), k=5, min_score=0.0) == []


def test_float64_queries_are_accepted_and_ranked_like_float32() -> None:
    ix = ExampleIndex(DIM, MODEL)
    for i in range(10):
        ix.upsert(str(i), unit(i), entry(str(i)), MODEL)
    q = unit(4).astype(np.float64)
    assert ix.search(q, k=3) == ix.search(q.astype(np.float32), k=3)


def test_query_idf_downweights_dimensions_every_row_has() -> None:
    common = np.zeros(DIM, dtype=np.float32)
    common[0] = 1.0
    ix = ExampleIndex(DIM, MODEL, query_idf=True)
    for i in range(20):
        v = common.copy()
        v[1 + i % 3] = 0.3
        ix.upsert(str(i), v / np.linalg.norm(v), entry(str(i)), MODEL)
    rare = np.zeros(DIM, dtype=np.float32)
    rare[0], rare[7] = 1.0, 0.3
    ix.upsert("rare", rare / np.linalg.norm(rare), entry("rare"), MODEL)
    q = np.zeros(DIM, dtype=np.float32)
    q[0], q[7] = 1.0, 0.2
    assert ix.search(q / np.linalg.norm(q), k=1)[0].entry.name == "rare"
    assert ix._df[0] == 21 and ix._df[7] == 1
    ix.delete("rare")
    assert ix._df[7] == 0 and ix._df[0] == 20


ops = st.lists(
    st.tuples(st.sampled_from(["upsert", "delete"]), st.integers(0, 12), st.integers(0, 1000)), max_size=80
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_any_sequence_of_operations_matches_a_plain_dict(sequence: list[tuple[str, int, int]]) -> None:
    ix = ExampleIndex(DIM, MODEL, query_idf=True, capacity=1)
    model: dict[str, np.ndarray] = {}
    for op, key, seed in sequence:
        if op == "upsert":
            ix.upsert(str(key), unit(seed), entry(str(key)), MODEL)
            model[str(key)] = unit(seed)
        else:
            assert ix.delete(str(key)) == (model.pop(str(key), None) is not None)
    consistent(ix)
    assert ix.ids() == set(model)
    for id_, vector in model.items():
        assert np.array_equal(ix.vector(id_), vector)
    expected_df = sum(((v != 0).astype(np.int64) for v in model.values()), np.zeros(DIM, dtype=np.int64))
    assert np.array_equal(ix._df, expected_df)


def test_concurrent_readers_never_see_a_torn_row() -> None:
    """Writers flip rows between two known vectors; every hit must be exactly one of them."""
    dim = 256
    ix = ExampleIndex(dim, MODEL, capacity=4)
    a, b = unit(1, dim), unit(2, dim)
    for i in range(50):
        ix.upsert(str(i), a, entry(str(i)), MODEL)
    stop = threading.Event()
    errors: list[str] = []

    def writer(offset: int) -> None:
        n = 0
        while not stop.is_set():
            key = str(offset + n % 100)
            ix.upsert(key, b if n % 2 else a, entry(key), MODEL)
            if n % 7 == 0:
                ix.delete(str(offset + (n * 3) % 100))
            n += 1

    def reader() -> None:
        while not stop.is_set():
            for hit in ix.search(a, k=10):
                if not (abs(hit.score - 1.0) < 1e-4 or abs(hit.score - float(a @ b)) < 1e-4):
                    errors.append(f"torn score {hit.score}")

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
