"""The informers' cache: its running size (what the store holds, embeddings and managedFields
included, although the Example cache drops them and deflates the rest) and its indexes, kept as
objects come, change and go."""

from __future__ import annotations

import json
from typing import Any

from blocklearn.controller.cache import without_embedding, without_managed_fields
from blocklearn.runtime.informer import Store


def obj(name: str, rv: int, owner: str | None = None, embedding: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "resourceVersion": str(rv)}
    meta["managedFields"] = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]
    if owner:
        meta["ownerReferences"] = [{"name": owner}]
    return {"metadata": meta, "status": {"embedding": embedding} if embedding else {}}


def size(o: dict[str, Any]) -> int:
    return len(json.dumps(o, separators=(",", ":")))


def owners(o: dict[str, Any]) -> list[str]:
    return [r["name"] for r in o["metadata"].get("ownerReferences") or []]


def test_the_store_counts_the_bytes_the_api_holds_and_finds_objects_by_index() -> None:
    store = Store(trim=lambda o: without_embedding(without_managed_fields(o)), indexers={"owner": owners})
    a, b = obj("a", 1, owner="b1", embedding="A" * 1000), obj("b", 2, owner="b1")
    store.put(a)
    store.put(b)
    assert store.nbytes() == size(a) + size(b) and store.nbytes() > 1000  # the embedding counts
    kept = json.dumps(store.get(("ns", "a")))
    assert "AAAA" not in kept and "managedFields" not in kept  # though the cache does not keep them
    assert sum(map(len, store._items.values())) < size(a) / 5  # and deflates what it keeps
    assert sorted(store.by_index("owner", "b1")) == [("ns", "a"), ("ns", "b")]
    a2 = obj("a", 3, owner="b2")
    store.put(a2)
    store.put(obj("a", 2, owner="b9"))  # older than what is cached: ignored
    assert store.by_index("owner", "b1") == [("ns", "b")] and store.by_index("owner", "b2") == [("ns", "a")]
    assert store.index_values(("ns", "a"), "owner") == ("b2",)  # and the other way round
    assert store.nbytes() == size(a2) + size(b)
    store.delete(("ns", "b"))
    assert store.by_index("owner", "b1") == [] and store.nbytes() == size(a2)
    store.delete(("ns", "a"))
    assert store.nbytes() == 0 and len(store) == 0 and store.index_values(("ns", "a"), "owner") == ()


def test_index_values_filing_one_key_or_many_keep_both_ways_under_several_indexers() -> None:
    """A value files one key as itself and a set only once there are more: both read the same."""
    first = lambda o: owners(o)[:1]  # noqa: E731
    store = Store(indexers={"owner": owners, "first": first})
    store.put(obj("a", 1, owner="b1"))
    assert store._indices["owner"]["b1"] == ("ns", "a")  # one key: no set of one
    store.put(obj("b", 2, owner="b1"))
    store.put(obj("c", 3, owner="b1"))
    assert sorted(store.by_index("owner", "b1")) == [("ns", "a"), ("ns", "b"), ("ns", "c")]
    assert sorted(store.by_index("first", "b1")) == [("ns", "a"), ("ns", "b"), ("ns", "c")]
    store.delete(("ns", "a"))
    store.delete(("ns", "c"))
    assert store.by_index("owner", "b1") == [("ns", "b")] and store._indices["owner"]["b1"] == ("ns", "b")
    doubled = obj("b", 4, owner="b2")
    doubled["metadata"]["ownerReferences"] += [{"name": "b2"}, {"name": "b3"}]  # a value named twice
    store.put(doubled)
    assert store.index_values(("ns", "b"), "owner") == ("b2", "b2", "b3")
    assert store.index_values(("ns", "b"), "first") == ("b2",)
    assert store.by_index("owner", "b2") == [("ns", "b")] and store.by_index("owner", "b1") == []
    store.put(obj("d", 5, owner="b2"))
    store.delete(("ns", "b"))
    assert store.by_index("owner", "b2") == [("ns", "d")] and store.by_index("owner", "b3") == []
    store.delete(("ns", "d"))
    assert store._indices == {"owner": {}, "first": {}} and store._indexed == {}
