"""What the controller caches of each object, and how it finds them without scanning a cache.

client-go's informers have transforms (what is kept of an object) and Indexers (named functions from
an object to the values it is filed under); these are the controller's.
"""

from __future__ import annotations

from collections.abc import Iterable

from blocklearn.controller.desired import controller_owner
from blocklearn.learn.outcome import decided_retrieval
from blocklearn.runtime.informer import Store
from blocklearn.runtime.objects import Obj

EMBEDDING_OMITTED = "(in the API; not cached)"

# The caches' indexes (client-go's Indexers): Blocks by the Example their status names and by the
# Examples they were shown while their retrieval outcome is undecided, Examples by the Block that
# controls them and by namespace (those not being deleted), so no reconcile scans a whole cache.
TEACHES, RETRIEVED, OWNER, NAMESPACE = "teaches", "retrieved", "owner", "namespace"


def _teaches(block: Obj) -> Iterable[str]:
    ref = (block.get("status") or {}).get("exampleRef")
    return [f"{block['metadata']['namespace']}/{ref}"] if ref else []


def _retrieved(block: Obj) -> Iterable[str]:
    spec = block.get("spec") or {}
    names = spec.get("retrievedExamples")
    if not isinstance(names, list) or not spec.get("executedCell") or decided_retrieval(block) is not None:
        # A Hit or a Miss stays whatever becomes of the Examples; nothing run stays Unknown.
        return []
    namespace = block["metadata"]["namespace"]
    return [f"{namespace}/{name}" for name in names if isinstance(name, str)]


def _owner(example: Obj) -> Iterable[str]:
    owner = controller_owner(example)
    return [f"{example['metadata']['namespace']}/{owner.get('name')}"] if owner is not None else []


def _namespace(example: Obj) -> Iterable[str]:
    if example["metadata"].get("deletionTimestamp"):
        return []  # going anyway: neither counted against the cap nor evicted
    return [str(example["metadata"]["namespace"])]


def without_managed_fields(obj: Obj) -> Obj:
    """What the controller caches of an object: not the API server's field ownership records
    (client-go's informers drop them too: a few hundred bytes an object, never read)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def without_embedding(obj: Obj) -> Obj:
    """An Example as the controller caches it: the vector is the index's business, not ours."""
    status = obj.get("status")
    if isinstance(status, dict) and status.get("embedding"):
        return {**obj, "status": {**status, "embedding": EMBEDDING_OMITTED}}
    return obj


def block_store() -> Store:
    """Blocks without managedFields, by the Example they teach and the Examples they were shown."""
    return Store(trim=without_managed_fields, indexers={TEACHES: _teaches, RETRIEVED: _retrieved})


def example_store() -> Store:
    """Examples without managedFields or their vector, by the Block that controls them and by
    namespace."""
    return Store(
        trim=lambda o: without_embedding(without_managed_fields(o)),
        indexers={OWNER: _owner, NAMESPACE: _namespace},
    )
