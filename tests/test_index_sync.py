import numpy as np
from prometheus_client import REGISTRY

from blocklearn.embed.codec import encode
from blocklearn.index.core import ExampleIndex, VectorCounts
from blocklearn.index.sync import IndexSync

DIM, MODEL = 4, "m"


def example(
    name: str,
    seed: int = 0,
    ns: str = "default",
    model: str = MODEL,
    embedded: bool = True,
    changed_at: str | None = None,
    text_hash: str = "h",
) -> dict:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    status = {
        "embedding": encode(v / np.linalg.norm(v)),
        "embeddingModel": model,
        "embeddingDim": DIM,
        "textHash": text_hash,
    }
    if changed_at:
        status["sourceChangedAt"] = changed_at
    return {
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "query": {"cells": [{"kind": "markup", "contents": name}]},
            "answer": [],
            "blockRef": {"name": name},
        },
        "status": status if embedded else {},
    }


def test_apply_holds_every_valid_example_and_its_vector_only_when_of_the_index_model() -> None:
    sync = IndexSync(ExampleIndex(DIM, MODEL))
    assert sync.apply(example("a")) == "upserted"
    assert sync.apply(example("b", model="other")) == "text-only"  # mid model switch: searchable by text
    assert sync.apply(example("c", embedded=False)) == "text-only"  # not embedded yet
    assert sync.index.ids() == {"default/a", "default/b", "default/c"}
    assert sync.index.vector_counts() == VectorCounts(current=1, missing=2)
    assert sync.apply(example("a", model="other")) == "text-only"  # re-embedded with another model
    assert sync.index.vector("default/a") is None
    assert sync.apply(example("a"), deleted=True) == "deleted"
    bad = example("d")
    bad["status"]["embedding"] = encode(np.ones(DIM + 1, dtype=np.float32))
    assert sync.apply(bad) == "rejected" and sync.index.vector("default/d") is None
    invalid = example("e")
    invalid["spec"]["query"] = "not cells"
    assert sync.apply(invalid) == "ignored" and "default/e" not in sync.index.ids()
    assert sync.apply(example("c")) == "upserted"
    sync.apply(invalid | {"metadata": {"namespace": "default", "name": "c"}})  # became invalid
    assert sync.index.ids() == {"default/b", "default/d"}


def test_without_a_dense_channel_the_text_is_all_there_is() -> None:
    sync = IndexSync(ExampleIndex(0, "hashing-v1-d4096"))
    assert sync.apply(example("a", embedded=False)) == "upserted"
    assert sync.index.vector_counts().ratio == 1.0
    hits = sync.index.search("a", k=1)
    assert [h.entry.name for h in hits] == ["a"]


def test_an_entry_keeps_what_a_search_returns_and_no_more() -> None:
    sync = IndexSync(ExampleIndex(DIM, MODEL))
    obj = example("a")
    obj["spec"]["query"]["cells"] = [
        {"kind": "markup", "contents": "an older cell, not embedded"},
        {"kind": "code", "language": "bash", "contents": "ls", "outputs": ["a b"]},
        {"kind": "markup", "contents": "  list the pods  "},
    ]
    obj["spec"]["answer"] = [{"kind": "code", "language": "bash", "contents": "kubectl get pods"}]
    obj["status"]["occurrences"] = 3
    sync.apply(obj)
    entry = sync.index.entry("default/a")
    assert entry is not None
    assert entry.query == "list the pods"  # the rendered query text, as it was embedded
    assert entry.answer == obj["spec"]["answer"] and entry.block_ref == {"name": "a"}
    assert entry.occurrences == 3
    obj["status"]["occurrences"] = "many"  # not a count: one Block, as when absent
    sync.apply(obj)
    assert sync.index.entry("default/a").occurrences == 1  # type: ignore[union-attr]


def _latency_count() -> float:
    return REGISTRY.get_sample_value("blocklearn_learning_latency_seconds_count") or 0.0


def test_learning_latency_is_observed_once_per_new_text_on_live_events() -> None:
    sync = IndexSync(ExampleIndex(DIM, MODEL), clock=lambda: 1_700_000_010.0)
    changed = "2023-11-14T22:13:20Z"  # 1_700_000_000
    before = _latency_count()
    sync.apply(example("a", changed_at=changed), live=False)  # the first list is no learning event
    assert _latency_count() == before
    waiting = example("b", changed_at=changed)
    waiting["status"] = {"sourceChangedAt": changed}  # not embedded yet: searchable by its text only
    sync.apply(waiting)
    assert _latency_count() == before
    sync.apply(example("b", changed_at=changed))
    sync.apply(example("b", changed_at=changed))  # same text: not learned twice
    assert _latency_count() == before + 1
    edited = example("b", changed_at=changed)
    edited["spec"]["query"]["cells"][0]["contents"] = "b, edited"  # the Block changed: a new text
    sync.apply(edited)
    assert _latency_count() == before + 2
    assert (REGISTRY.get_sample_value("blocklearn_learning_latency_seconds_bucket", {"le": "10.0"}) or 0) >= 2
