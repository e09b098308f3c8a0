"""A reconcile that acts on a stale cache must not leave behind what a deletion collected.

The cache may still hold a Block the API has just deleted (its DELETED event not yet read); an
Example created from it has an owner that is already gone. Found by `bench/soak.py --keep`, run
against an emulator without a garbage collector: Examples of deleted Blocks reappeared after each
resync. Now the Block's deletion, once the cache sees it, deletes such a stray Example. (A real
garbage collector collects it too, once it has looked up the owner and found it gone; the
controller does not wait for it.)
"""

from __future__ import annotations

import pytest

from blocklearn.runtime.workqueue import Requeue
from tests.conftest import block_body
from tests.harness import Harness

EXAMPLES = "blocklearn.dev/v1alpha1/examples"
BLOCKS = "blocklearn.dev/v1alpha1/blocks"


async def test_a_stale_cached_block_leaves_no_example_once_its_deletion_is_seen(harness: Harness) -> None:
    api, emulator = harness.api, harness.emulator
    # The controller's own clean-up, without the garbage collector that would race it to the stray.
    emulator.garbage_collection = False
    reconcilers = harness.reconcilers()
    _, created = await api.call("POST", api.path("blocks"), block_body("b1"))
    reconcilers.blocks.put(created)
    await api.call("DELETE", api.path("blocks", name="b1"))  # the cache has not seen it yet
    await reconcilers.reconcile_block(("default", "b1"))  # acts on the stale cached Block
    (stray,) = emulator.objects_of(EXAMPLES)  # owned by a Block that is gone
    assert stray["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]

    reconcilers.blocks.delete(("default", "b1"))  # the DELETED event arrives
    await reconcilers.reconcile_block(("default", "b1"))
    assert emulator.objects_of(EXAMPLES) == []
    assert len(reconcilers.examples) == 0


async def test_a_new_block_of_the_same_name_leaves_what_an_orphaning_delete_kept(harness: Harness) -> None:
    """Examples are named from their content, not from their Block: a new Block of an old name
    makes its own Example, and never takes one an old Block's orphaning delete left standing."""
    api, emulator = harness.api, harness.emulator
    reconcilers = harness.reconcilers()
    _, old = await api.call("POST", api.path("blocks"), block_body("b1"))
    reconcilers.blocks.put(old)
    await reconcilers.reconcile_block(("default", "b1"))
    await api.call("DELETE", api.path("blocks", name="b1"), {"propagationPolicy": "Orphan"})
    # The garbage collector takes the owner reference off the Example, then lets the Block go;
    # the informers see both writes.
    await emulator.settled()
    (orphaned,) = emulator.objects_of(EXAMPLES)
    assert "ownerReferences" not in orphaned["metadata"]
    reconcilers.examples.put(orphaned)
    _, new = await api.call("POST", api.path("blocks"), block_body("b1", executed="kubectl get po -A"))
    reconcilers.blocks.delete(("default", "b1"))
    reconcilers.blocks.put(new)
    await reconcilers.reconcile_block(("default", "b1"))
    examples = {e["spec"]["answer"][0]["contents"]: e for e in emulator.objects_of(EXAMPLES)}
    assert set(examples) == {"kubectl get pods -A", "kubectl get po -A"}
    assert not examples["kubectl get pods -A"]["metadata"].get("ownerReferences")
    owners = examples["kubectl get po -A"]["metadata"]["ownerReferences"]
    assert [r["uid"] for r in owners] == [new["metadata"]["uid"]]
    (block,) = emulator.objects_of(BLOCKS)
    assert block["status"]["exampleRef"] == examples["kubectl get po -A"]["metadata"]["name"]


async def test_a_patch_from_a_stale_cache_gets_409_and_is_redone_from_fresh_state(harness: Harness) -> None:
    """An edit made between the cache's copy and the write must win: the write carries the
    resourceVersion it was computed from, the API refuses it, and the redo starts from the edit."""
    api, emulator = harness.api, harness.emulator
    reconcilers = harness.reconcilers()
    _, created = await api.call("POST", api.path("blocks"), block_body("b1"))
    reconcilers.blocks.put(created)
    # Someone edits the Block after the cache copied it: it now teaches something else.
    edit = {"spec": {"executedCell": {"kind": "code", "language": "bash", "contents": "kubectl top"}}}
    await api.call("PATCH", api.path("blocks", name="b1"), edit)
    with pytest.raises(Requeue):
        await reconcilers.reconcile_block(("default", "b1"))
    (block,) = emulator.objects_of(BLOCKS)
    assert "status" not in block  # the status computed from the stale copy did not land
    # The conflict refreshed the Block; the redo (the work queue's) converges from the edit.
    await reconcilers.reconcile_block(("default", "b1"))
    (block,) = emulator.objects_of(BLOCKS)
    assert block["status"]["observedGeneration"] == 2
    (example,) = emulator.objects_of(EXAMPLES)
    assert example["spec"]["answer"][0]["contents"] == "kubectl top"
    # A stale cached Example is refused the same way, and the other writer's change is kept:
    # the cache saw a hand edit of the answer, not the label someone added after it.
    name = example["metadata"]["name"]
    hand_edit = {"spec": {"answer": [{"kind": "code", "contents": "kubectl top pods"}]}}
    _, edited = await api.call("PATCH", api.path("examples", name=name), hand_edit)
    reconcilers.examples.put(edited)
    await api.call("PATCH", api.path("examples", name=name), {"metadata": {"labels": {"x": "y"}}})
    with pytest.raises(Requeue):
        await reconcilers.reconcile_block(("default", "b1"))
    await reconcilers.reconcile_block(("default", "b1"))
    (example,) = emulator.objects_of(EXAMPLES)
    assert example["spec"]["answer"][0]["contents"] == "kubectl top"  # its content put back
    assert example["metadata"]["labels"]["x"] == "y"
