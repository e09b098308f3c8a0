from hypothesis import given, settings
from hypothesis import strategies as st

from blocklearn.index.postings import Postings


def as_dict(p: Postings) -> dict[str, dict[int, float]]:
    """The inverted index as term -> {row: value}, the way a rebuild would hold it."""
    return {term: dict(zip(rows.tolist(), values.tolist(), strict=True)) for term, rows, values in p.items()}


def rebuilt(rows: list[dict[str, float]]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for row, bag in enumerate(rows):
        for term, value in bag.items():
            out.setdefault(term, {})[row] = value
    return out


def test_append_replace_and_pop_keep_rows_and_terms_in_step() -> None:
    p = Postings()
    rows = [{"a": 1.0, "b": 2.0}, {"b": 3.0}, {"c": 4.0, "a": 5.0}]
    for bag in rows:
        p.append(bag)
    assert as_dict(p) == {"a": {0: 1.0, 2: 5.0}, "b": {0: 2.0, 1: 3.0}, "c": {2: 4.0}}
    p.pop_into(0, rows[0], rows[2])  # row 2 moves into row 0
    assert as_dict(p) == {"a": {0: 5.0}, "b": {1: 3.0}, "c": {0: 4.0}}
    p.replace(1, rows[1], {"d": 1.5})
    assert as_dict(p) == {"a": {0: 5.0}, "c": {0: 4.0}, "d": {1: 1.5}}
    assert p.vocabulary == 3 and p.row_terms(0, rows[2]) == {"a": 5.0, "c": 4.0}
    p.pop_into(1, {"d": 1.5}, {"d": 1.5})
    p.pop_into(0, rows[2], rows[2])
    assert len(p) == 0 and p.vocabulary == 0 and p.get("a") is None


bags = st.dictionaries(st.sampled_from("abcdefg"), st.integers(1, 9).map(float), max_size=5)
actions = st.sampled_from(["append", "replace", "pop"])
ops = st.lists(st.tuples(actions, st.integers(0, 20), bags), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_any_sequence_of_operations_equals_a_rebuild_from_scratch(
    sequence: list[tuple[str, int, dict[str, float]]],
) -> None:
    p = Postings()
    model: list[dict[str, float]] = []
    for op, at, bag in sequence:
        if op == "append":
            assert p.append(bag) == len(model)
            model.append(bag)
        elif model and op == "replace":
            p.replace(at % len(model), model[at % len(model)], bag)
            model[at % len(model)] = bag
        elif model:  # pop: the last row fills the hole, as in the example index
            row = at % len(model)
            p.pop_into(row, model[row], model[-1])
            model[row] = model[-1]
            model.pop()
    assert len(p) == len(model)
    assert as_dict(p) == rebuilt(model)
    assert [p.row_terms(r, model[r]) for r in range(len(model))] == model
    assert p.vocabulary == len({t for bag in model for t in bag})
