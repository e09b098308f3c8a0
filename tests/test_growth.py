"""Bounded growth, on the controller's own parts (informers, work queues, reconcilers) and the index's,
run in this process against the emulator with a clock the test moves (tests/harness.py): Blocks expire
with their TTL, never before, and cost at most 6 writes (3 when they teach nothing), identical
corrections are one Example that counts them and is found with that support, Examples stand alone
after their Blocks and are capped per namespace, a person's delete still cascades, and a controller
stopped between two steps finishes them. tests/test_faults.py kills real controllers while Blocks
expire."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import kmock
import pytest
from prometheus_client import REGISTRY

from blocklearn import metrics
from blocklearn.runtime.objects import now_rfc3339, parse_rfc3339
from blocklearn.runtime.workqueue import Requeue
from tests.conftest import block_body, is_embedded
from tests.harness import Harness, sample


def teaching(name: str, i: int) -> dict[str, Any]:
    return block_body(name, executed=f"kubectl get pods -n team-{i}", doc=f"list the pods of team {i}")


async def post(harness: Harness, body: dict[str, Any], plural: str = "blocks") -> dict[str, Any]:
    code, created = await harness.api.call("POST", harness.api.path(plural), body)
    assert code == 201, created
    return created


def decided(harness: Harness, count: int) -> bool:
    """`count` Blocks, each with its decision recorded (its TTL runs from then)."""
    stored = harness.blocks().values()
    return len(stored) == count and all(b.get("status", {}).get("decidedAt") for b in stored)


async def test_blocks_expire_at_their_ttl_and_no_sooner_their_examples_stay_found_and_each_costs_its_writes(
    harness: Harness,
) -> None:
    """Each Block's writes, counted over its whole life (its expiry included) with the emulator's
    revision counter (one for every write to any object, as etcd's): 6 when it teaches, 4 when it
    repeats a correction, 3 when it teaches nothing. Once the Blocks are gone their Examples are
    found by search, with the support of every Block that taught them."""
    clock = harness.manual_clock()
    expired = sample("blocklearn_blocks_expired_total")
    await harness.start(block_ttl_seconds=60, hashing_dim=512, store_budget_bytes=536870912)
    index = await harness.index(hashing_dim=512)
    before = harness.emulator.revision
    for i in range(10):
        await post(harness, teaching(f"t{i}", i))
    await harness.until(
        lambda: len(ex := harness.examples()) == 10 and all(map(is_embedded, ex.values())), "ten embedded"
    )
    for i in range(5):  # five corrections made again, by other people
        await post(harness, teaching(f"again-{i}", i))
    for i in range(5):  # and five suggestions run as they were
        await post(harness, block_body(f"plain-{i}", generated="kubectl get pods -A"))
    await harness.until(lambda: decided(harness, 20), "every Block decided")
    clock.advance(59)
    await harness.settled()
    assert len(harness.blocks()) == 20  # a second before their TTL: all there
    clock.advance(1)
    await harness.until(lambda: not harness.blocks(), "every Block expired")
    assert harness.emulator.revision - before == 10 * 6 + 5 * 4 + 5 * 3
    kept = harness.examples()
    assert len(kept) == 10 and all(not e["metadata"].get("ownerReferences") for e in kept.values())
    assert sorted(e["status"].get("occurrences", 1) for e in kept.values()) == [1] * 5 + [2] * 5
    for i in range(10):  # found once its Blocks are gone; support counts the Blocks
        hits = await harness.until(lambda i=i: index.search(f"the pods of team {i}", k=1), f"team {i} found")
        assert hits[0]["answer"][0]["contents"] == f"kubectl get pods -n team-{i}"
        assert hits[0]["support"] == (2 if i < 5 else 1) and hits[0]["blockRef"]["name"] == f"t{i}"
    # The store's use, as the controller's cache holds it: the objects' JSON as the API serves them.
    size = sum(len(json.dumps(e, separators=(",", ":"))) for e in harness.examples().values())
    await harness.until(lambda: sample("blocklearn_stored_bytes", kind="example") == size, "bytes")
    assert sample("blocklearn_stored_objects", kind="example") == 10
    assert sample("blocklearn_stored_objects", kind="block") == 0
    assert sample("blocklearn_stored_bytes", kind="block") == 0
    assert sample("blocklearn_blocks_expired_total") - expired == 20
    assert sample("blocklearn_store_budget_bytes") == 536870912


async def test_only_a_controller_whose_caches_synced_exports_the_store_use(harness: Harness) -> None:
    """A follower has reconcilers but lists nothing: exporting its empty caches as 0 would make the
    0 -> S of a failover look like a day's growth to BlocklearnStoreNearBudget's projection. The
    store's use is exported once the caches have synced, and no longer once the controller stops."""

    def exported(kind: str) -> float | None:
        return REGISTRY.get_sample_value("blocklearn_stored_objects", {"kind": kind})

    await post(harness, teaching("t0", 0))
    harness.reconcilers(store_budget_bytes=536870912)  # a follower's
    assert exported("block") is None and exported("example") is None
    assert sample("blocklearn_store_budget_bytes") == 536870912  # the budget, from every replica
    controller = await harness.start()
    assert exported("block") == 1
    await harness.stop(controller)
    assert exported("block") is None


async def test_fifty_blocks_of_one_correction_at_once_are_one_example_that_counts_fifty(
    harness: Harness,
) -> None:
    """Through conflicts: a third of the controller's Block status writes (the record that a Block
    was counted) answered 409, so a Block counted in the Example is reconciled again before its
    status says so: it must not count twice."""
    rng = random.Random(3)
    refused = 0

    async def conflicts(request: kmock.Request) -> int | None:
        nonlocal refused
        if (
            request.headers.get("User-Agent", "").startswith("blocklearn/")
            and request.subresource == "status"
        ):
            res = request.resource
            if res is not None and res.plural == "blocks" and rng.random() < 0.33:
                refused += 1
                return 409
        return None

    harness.emulator.fault = conflicts
    clock = harness.manual_clock()  # none expires before all 50 are counted, however slow the machine
    await harness.start(block_ttl_seconds=60, hashing_dim=512)
    index = await harness.index(hashing_dim=512)
    bodies = [block_body(f"same-{i:02d}", generated=f"kubectl get po {i}") for i in range(50)]
    codes = await asyncio.gather(*(harness.api.call("POST", harness.api.path("blocks"), b) for b in bodies))
    assert {code for code, _ in codes} == {201}

    def recorded() -> bool:  # a Block's status names its Example once it was counted in it
        stored = harness.blocks().values()
        return len(stored) == 50 and all(b.get("status", {}).get("exampleRef") for b in stored)

    await harness.until(recorded, "every Block counted")
    harness.emulator.fault = None
    assert refused > 5
    ((name, example),) = harness.examples().items()
    assert example["status"]["occurrences"] == 50
    assert {b["status"]["exampleRef"] for b in harness.blocks().values()} == {name}
    assert harness.emulator.creations[f"examples/default/{name}"] == 1
    clock.advance(60)
    await harness.until(lambda: not harness.blocks(), "every Block expired")
    (example,) = harness.examples().values()
    assert example["status"]["occurrences"] == 50 and not example["metadata"].get("ownerReferences")
    assert example["spec"]["blockRef"]["name"].startswith("same-")  # the provenance of the first
    [hit] = await harness.until(lambda: index.search("list every pod", k=1), "found")
    assert hit["name"] == name and hit["support"] == 50
    columns, rows = await harness.table("examples")  # `kubectl get ex`
    assert columns == ["Name", "Embedded", "Model", "Occurrences", "Age"]
    assert rows[0][:4] == [name, "True", "hashing-v1-d512", 50]


async def test_the_ttl_runs_from_the_last_change_and_a_decided_block_goes_at_its_end(
    harness: Harness,
) -> None:
    clock = harness.manual_clock()
    await harness.start(block_ttl_seconds=60)
    await post(harness, block_body("b1"))
    await harness.until(lambda: decided(harness, 1), "b1 decided")
    first = harness.blocks()["b1"]["status"]["decidedAt"]
    clock.advance(30)
    # The person runs something else: a new decision, a new clock (and the old Example goes).
    edit = {
        "spec": {"executedCell": {"kind": "code", "language": "bash", "contents": "kubectl get po -A -w"}}
    }
    await harness.api.call("PATCH", harness.api.path("blocks", name="b1"), edit)

    def redecided() -> str | None:
        status = harness.blocks().get("b1", {}).get("status", {})
        return status.get("decidedAt") if status.get("observedGeneration") == 2 else None

    second = await harness.until(redecided, "b1 decided again")
    assert second > first
    at = parse_rfc3339(second)
    assert at is not None and at.timestamp() == clock.time()
    clock.advance(59)  # past the first decision's TTL, a second before the second's
    await harness.settled()
    assert "b1" in harness.blocks()
    clock.advance(1)
    await harness.until(lambda: "b1" not in harness.blocks(), "b1 expired")
    (example,) = harness.examples().values()
    assert example["spec"]["answer"][0]["contents"] == "kubectl get po -A -w"


async def test_a_block_that_teaches_something_else_deletes_its_own_old_example_or_lets_it_stand(
    harness: Harness,
) -> None:
    """Level-triggered: whatever a Block's status says, the Examples it created and no longer
    teaches go, unless other Blocks taught the same correction: then they stay, without it."""
    await harness.start(block_ttl_seconds=0)
    await post(harness, block_body("alone"))
    await post(harness, block_body("first", executed="kubectl top pods"))
    await harness.until(lambda: len(harness.examples()) == 2, "two Examples")
    await post(harness, block_body("second", executed="kubectl top pods"))
    await harness.until(
        lambda: any(e.get("status", {}).get("occurrences") == 2 for e in harness.examples().values()),
        "counted twice",
    )
    for name in ("alone", "first"):
        edit = {"spec": {"executedCell": {"kind": "code", "contents": f"echo {name}"}}}
        await harness.api.call("PATCH", harness.api.path("blocks", name=name), edit)

    def answers() -> dict[str, dict[str, Any]]:
        return {e["spec"]["answer"][0]["contents"]: e for e in harness.examples().values()}

    await harness.until(
        lambda: set(answers()) == {"echo alone", "echo first", "kubectl top pods"},
        "the old ones gone or kept",
    )
    shared = answers()["kubectl top pods"]
    assert not shared["metadata"].get("ownerReferences") and shared["status"]["occurrences"] == 2


async def test_the_cap_holds_exactly_once_the_blocks_are_gone_and_evicts_the_least_recently_seen(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="blocklearn.controller")
    evicted = sample("blocklearn_examples_evicted_total", reason="cap")
    clock = harness.manual_clock()
    await harness.start(block_ttl_seconds=60, max_examples_per_namespace=4)
    steps = [teaching(f"t{i}", i) for i in range(4)] + [teaching("again-0", 0)]
    steps += [teaching(f"t{i}", i) for i in range(4, 6)]
    for n, body in enumerate(steps):  # one a second: each seen at a moment of its own
        await post(harness, body)
        await harness.until(lambda n=n: decided(harness, n + 1), "decided")
        clock.advance(1)
    await harness.settled()
    assert len(harness.examples()) == 6  # over the cap while their Blocks live: a Block would make it again
    assert 2 in [e["status"].get("occurrences") for e in harness.examples().values()]  # team 0, seen again
    clock.advance(60)
    await harness.until(lambda: not harness.blocks(), "every Block expired")
    await harness.until(lambda: len(harness.examples()) == 4, "the cap")
    await harness.resync()
    await harness.resync()
    await harness.settled()
    kept = sorted(e["spec"]["answer"][0]["contents"] for e in harness.examples().values())
    # Exactly the cap, none made again; team 0 was seen last after team 3: kept over teams 1 and 2.
    assert kept == [f"kubectl get pods -n team-{i}" for i in (0, 3, 4, 5)]
    assert sample("blocklearn_examples_evicted_total", reason="cap") - evicted == 2
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Evicted Example:")]
    assert len(lines) == 2 and all("namespace=default" in m and "reason=cap" in m for m in lines)


def handmade(name: str) -> dict[str, Any]:
    """An Example no Block teaches (made by hand, or left by a Block that expired)."""
    return {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Example",
        "metadata": {"name": name},
        "spec": {
            "query": {"cells": [{"kind": "markup", "contents": f"made by hand: {name}"}]},
            "answer": [{"kind": "code", "contents": f"echo {name}"}],
            "blockRef": {"name": "gone"},
        },
    }


@pytest.mark.parametrize(("cap", "max_age_days", "reason"), [(3, 0.0, "cap"), (0, 1.0, "max_age")])
async def test_an_example_a_living_block_teaches_is_never_evicted(
    harness: Harness, cap: int, max_age_days: float, reason: str
) -> None:
    counter = metrics.examples_evicted_total.labels(reason)
    evicted = counter._value.get()
    clock = harness.manual_clock()
    await harness.start(
        block_ttl_seconds=0, max_examples_per_namespace=cap, example_max_age_days=max_age_days
    )
    for i in range(3):
        await post(harness, teaching(f"t{i}", i))
    await harness.until(lambda: len(harness.examples()) == 3, "three Examples")
    await post(harness, handmade("by-hand"), "examples")
    clock.advance(max_age_days * 86400)  # a day on, for the maximum age: every Example is that old
    await harness.until(lambda: "by-hand" not in harness.examples(), "the hand-made Example evicted")
    await harness.settled()
    assert len(harness.examples()) == 3  # each has a living Block: evicting it would make it again
    assert counter._value.get() == evicted + 1


async def test_a_retrieval_hit_keeps_its_example_seen_with_at_most_one_write_an_hour(
    harness: Harness,
) -> None:
    """Eviction takes the least recently seen first, so a correction the assistant now suggests
    right must count as seen: a Block that ran the answer of an Example it was shown (a Hit) moves
    that Example's `lastSeenAt`, not its occurrences, and at most once an hour however many do."""
    clock = harness.manual_clock()
    await harness.start()
    await post(harness, teaching("t0", 0))
    name = await harness.until(lambda: harness.blocks()["t0"].get("status", {}).get("exampleRef"), "taught")
    await harness.until(lambda: is_embedded(harness.examples()[name]), "embedded")

    async def hit(block: str) -> dict[str, Any]:
        answer = "kubectl get pods -n team-0"
        body = block_body(block, generated=answer, executed=answer, doc="the pods of the first team")
        body["spec"]["retrievedExamples"] = [name]
        await post(harness, body)
        await harness.until(
            lambda: (harness.blocks()[block].get("status") or {}).get("retrievalOutcome") == "Hit", block
        )
        await harness.settled()
        status = harness.examples()[name]["status"]
        assert status.get("occurrences", 1) == 1  # it taught nothing new
        return dict(status)

    clock.advance(2 * 3600)
    assert (await hit("h1"))["lastSeenAt"] == now_rfc3339(clock.time())
    clock.advance(1800)
    before = harness.emulator.revision
    assert (await hit("h2"))["lastSeenAt"] == now_rfc3339(clock.time() - 1800)  # within the hour
    assert harness.emulator.revision - before == 2  # h2's create and status: no write to the Example
    clock.advance(1800)
    assert (await hit("h3"))["lastSeenAt"] == now_rfc3339(clock.time())


async def test_an_example_goes_at_its_maximum_age_and_no_sooner(harness: Harness) -> None:
    """An Example no Block teaches waits on a timer for the moment it ages out, not for a resync."""
    clock = harness.manual_clock()
    await harness.start(example_max_age_days=1)
    await post(harness, handmade("by-hand"), "examples")
    await harness.until(lambda: clock.waiting(), "its eviction scheduled")
    clock.advance(86400 - 1)
    await harness.resync()  # a pass a second before: it keeps it
    await harness.settled()
    assert "by-hand" in harness.examples()
    clock.advance(1)
    await harness.until(lambda: "by-hand" not in harness.examples(), "evicted at its age")


async def test_a_persons_delete_cascades_and_deleting_an_example_of_gone_blocks_is_final(
    harness: Harness,
) -> None:
    clock = harness.manual_clock()
    await harness.start(block_ttl_seconds=60)
    index = await harness.index()
    await post(harness, teaching("expires", 1))
    await post(harness, teaching("deleted", 2))

    def example_of(block: str) -> str | None:
        ref = harness.blocks().get(block, {}).get("status", {}).get("exampleRef")
        return ref if ref and is_embedded(harness.examples().get(ref)) else None

    deleted = await harness.until(lambda: example_of("deleted"), "the Example of 'deleted'")
    # `kubectl delete blk deleted`, as kubectl sends it: a living Block's Example goes with it.
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    await harness.api.call("DELETE", harness.api.path("blocks", name="deleted"), options)
    await harness.until(lambda: deleted not in harness.examples(), "cascaded")
    expired = await harness.until(lambda: example_of("expires"), "the Example of 'expires'")
    clock.advance(60)
    await harness.until(lambda: "expires" not in harness.blocks(), "expired")
    assert not harness.examples()[expired]["metadata"].get("ownerReferences")
    # Curation once the Block is gone: deleting the Example is final, whatever the resyncs do.
    await harness.api.call("DELETE", harness.api.path("examples", name=expired), options)
    await harness.until(lambda: expired not in harness.examples(), "deleted")
    await harness.resync()
    await harness.resync()
    await harness.settled()
    assert expired not in harness.examples()

    async def forgotten() -> bool:
        return not await index.search("the pods of team 1")

    await harness.until(forgotten, "the index forgets it")


def failing(
    plural: str, method: str, sub: str | None = None
) -> Callable[[kmock.Request], Awaitable[int | None]]:
    """Every controller request of this kind fails with a 500, as if the controller died before it."""

    async def fault(request: kmock.Request) -> int | None:
        res = request.resource
        ours = request.headers.get("User-Agent", "").startswith("blocklearn/")
        if ours and res is not None and res.plural == plural and str(request.method).upper().endswith(method):
            return 500 if request.subresource == sub else None
        return None

    return fault


async def test_a_controller_stopped_between_creating_an_example_and_recording_it_duplicates_nothing(
    harness: Harness,
) -> None:
    await post(harness, block_body("b1"))
    first = await harness.listed()
    harness.emulator.fault = failing("blocks", "PATCH", "status")  # the Example is made, the status is not
    with pytest.raises(Requeue):
        await first.reconcile_block(("default", "b1"))
    (name,) = harness.examples()
    assert "status" not in harness.blocks()["b1"]
    harness.emulator.fault = None
    second = await harness.listed()
    await second.reconcile_block(("default", "b1"))
    assert list(harness.examples()) == [name] and harness.emulator.creations[f"examples/default/{name}"] == 1
    assert harness.examples()[name].get("status", {}).get("occurrences", 1) == 1  # its creator: counted once
    assert harness.blocks()["b1"]["status"]["exampleRef"] == name


async def test_a_controller_stopped_between_counting_and_recording_counts_that_block_twice(
    harness: Harness,
) -> None:
    """The one crash window of the count, as docs/architecture.md says: the occurrence is written
    before the Block's status records it, so a controller that dies in between counts again on
    restart (at least once; never lost). Retries within one process do not (the fifty test above)."""
    await post(harness, block_body("b1"))
    await post(harness, block_body("b2", generated="kubectl get po"))
    first = await harness.listed()
    await first.reconcile_block(("default", "b1"))
    first.examples.put(next(iter(harness.examples().values())))
    harness.emulator.fault = failing("blocks", "PATCH", "status")
    with pytest.raises(Requeue):
        await first.reconcile_block(("default", "b2"))
    (example,) = harness.examples().values()
    assert example["status"]["occurrences"] == 2
    harness.emulator.fault = None
    second = await harness.listed()
    await second.reconcile_block(("default", "b2"))
    await second.reconcile_block(("default", "b2"))  # recorded now: no more
    (example,) = harness.examples().values()
    assert example["status"]["occurrences"] == 3


async def test_an_example_deleted_while_a_block_counts_in_it_is_made_again_not_named_missing(
    harness: Harness,
) -> None:
    """An eviction (or a person) deletes the Example between a Block's read of it and the
    occurrence it writes: the write gets 404, and the Block, at once again, makes the Example anew
    rather than recording an `exampleRef` that names nothing until the next resync. And while a
    Block is counted in an Example but its status does not say so yet, eviction leaves it."""
    await post(harness, block_body("b1"))
    await post(harness, block_body("b2", generated="kubectl get po"))
    r = await harness.listed()
    await r.reconcile_block(("default", "b1"))
    (name,) = harness.examples()
    r.examples.put(harness.examples()[name])  # no informer: the cache as the reconcile left it
    code, answer = await harness.api.call("DELETE", harness.api.path("examples", name=name))
    assert code == 200, answer
    with pytest.raises(Requeue):
        await r.reconcile_block(("default", "b2"))
    assert "exampleRef" not in (harness.blocks()["b2"].get("status") or {})
    await r.reconcile_block(("default", "b2"))
    assert harness.blocks()["b2"]["status"]["exampleRef"] == name and name in harness.examples()

    b3 = await post(harness, block_body("b3", generated="kubectl get p"))
    fresh = harness.reconcilers()  # a cache of the Example and of b3, counted in it a moment ago
    fresh.examples.put(harness.examples()[name])
    fresh.blocks.put(b3)
    assert not fresh._taught(("default", name))
    fresh._counted[("default", "b3")] = (b3["metadata"]["uid"], name)
    assert fresh._taught(("default", name))


async def test_evictions_are_counted_from_zero_and_only_when_the_delete_deleted(harness: Harness) -> None:
    """Both reasons' series exist at 0 from the start (so a rate over them has data), and an
    Example already gone when its eviction's DELETE lands (404) is neither counted nor logged."""
    metrics.examples_evicted_total.clear()
    await post(harness, teaching("t0", 0))
    await post(harness, teaching("t1", 1))
    r = await harness.listed(max_examples_per_namespace=1)
    for reason in ("cap", "max_age"):
        assert REGISTRY.get_sample_value("blocklearn_examples_evicted_total", {"reason": reason}) == 0
    for name in ("t0", "t1"):
        await r.reconcile_block(("default", name))
    assert len(harness.examples()) == 2
    fresh = harness.reconcilers(max_examples_per_namespace=1)  # no Block cached: both may go
    for name, example in harness.examples().items():
        fresh.examples.put(example)
        code, answer = await harness.api.call("DELETE", harness.api.path("examples", name=name))
        assert code == 200, answer
    await fresh.reconcile_namespace("default")
    assert sample("blocklearn_examples_evicted_total", reason="cap") == 0


async def test_a_controller_stopped_between_releasing_an_example_and_deleting_its_block_finishes(
    harness: Harness,
) -> None:
    """Past its TTL a Block desires its Example without an owner, then its own deletion: a
    controller that dies between the two deletes it on restart, and neither adopts nor deletes
    the Example it let go."""
    clock = harness.manual_clock()
    await post(harness, block_body("b1"))
    first = await harness.listed(block_ttl_seconds=60)
    await first.reconcile_block(("default", "b1"))
    (name,) = harness.examples()
    await first.reconcile_example(("default", name))  # embedded: the Block is decided
    first.blocks.put(harness.blocks()["b1"])
    clock.advance(60)  # the TTL is up
    harness.emulator.fault = failing("blocks", "DELETE")
    with pytest.raises(Requeue):
        await first.reconcile_block(("default", "b1"))
    assert "b1" in harness.blocks() and not harness.examples()[name]["metadata"].get("ownerReferences")
    harness.emulator.fault = None
    before = harness.emulator.revision
    second = await harness.listed(block_ttl_seconds=60)
    await second.reconcile_block(("default", "b1"))
    await second.reconcile_block(("default", "b1"))  # its deletion seen: a stray is looked for
    assert "b1" not in harness.blocks() and harness.emulator.revision == before + 1  # the delete only
    assert not harness.examples()[name]["metadata"].get("ownerReferences")
