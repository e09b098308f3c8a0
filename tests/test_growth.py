"""Bounded growth, on the controller's own parts (informers, work queues, reconcilers) run in this
process against the emulator: Blocks expire with their TTL and cost at most 6 writes (3 when they
teach nothing), identical corrections are one Example that counts them, Examples stand alone after
their Blocks and are capped per namespace, and a controller stopped between two steps finishes them.
The real processes and kubectl do the same in tests/test_e2e_growth.py."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest

from blocklearn import metrics
from blocklearn.controller.reconcilers import Reconcilers
from blocklearn.controller.run import Controller
from blocklearn.devtools.emulator.api import Emulator
from blocklearn.embed.hashing import HashingEmbedder
from blocklearn.runtime.objects import parse_rfc3339
from blocklearn.runtime.rest import Rest
from blocklearn.runtime.workqueue import Requeue
from blocklearn.settings import Settings
from tests.conftest import Api, block_body, is_embedded, kubeconfig_for
from tests.processes import eventually

BLOCKS, EXAMPLES = "blocklearn.dev/v1alpha1/blocks", "blocklearn.dev/v1alpha1/examples"
Start = Callable[..., Awaitable[Controller]]


@pytest.fixture
async def start(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Start]:
    """Start the controller's informers, queues and resync in this process, with these settings."""
    running: list[tuple[Controller, Rest]] = []

    async def started(**settings: Any) -> Controller:
        rest = Rest.from_kubeconfig(str(kubeconfig_for(emulator, tmp_path)))
        config = Settings(resync_seconds=3600, retry_base_seconds=0.05, retry_max_seconds=0.5, **settings)
        controller = Controller(config, rest, Reconcilers(config, rest, HashingEmbedder(64)))
        await controller.start()
        running.append((controller, rest))
        return controller

    yield started
    for controller, rest in running:
        controller.stop()
        await rest.close()


def blocks(emulator: Emulator) -> dict[str, dict[str, Any]]:
    return {b["metadata"]["name"]: b for b in emulator.objects_of(BLOCKS)}


def examples(emulator: Emulator) -> dict[str, dict[str, Any]]:
    return {e["metadata"]["name"]: e for e in emulator.objects_of(EXAMPLES)}


async def until(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    async def poll() -> object:
        return check()

    await eventually(poll, timeout=timeout, what=what)


def teaching(name: str, i: int) -> dict[str, Any]:
    return block_body(name, executed=f"kubectl get pods -n team-{i}", doc=f"list the pods of team {i}")


async def test_a_block_costs_six_writes_when_it_teaches_four_when_it_repeats_and_three_otherwise(
    api: Api, emulator: Emulator, start: Start
) -> None:
    """Counted over each Block's whole life, its expiry included, with the emulator's revision
    counter (one for every write to any object, as etcd's)."""
    await start(block_ttl_seconds=1)
    before = emulator._rv
    bodies = [teaching(f"teach-{i}", i) for i in range(10)]
    bodies += [teaching(f"again-{i}", i) for i in range(5)]  # the same corrections once more
    bodies += [block_body(f"plain-{i}", generated="kubectl get pods -A") for i in range(5)]  # unchanged
    for body in bodies[:10]:
        assert (await api.call("POST", api.path("blocks"), body))[0] == 201
    await until(
        lambda: len(examples(emulator)) == 10 and all(map(is_embedded, examples(emulator).values())),
        "ten Examples embedded",
    )
    for body in bodies[10:]:
        assert (await api.call("POST", api.path("blocks"), body))[0] == 201
    await until(lambda: not blocks(emulator), "every Block expired")
    stored = examples(emulator)
    assert len(stored) == 10 and all(not e["metadata"].get("ownerReferences") for e in stored.values())
    assert sorted(e["status"].get("occurrences", 1) for e in stored.values()) == [1] * 5 + [2] * 5
    assert emulator._rv - before == 10 * 6 + 5 * 4 + 5 * 3


async def test_fifty_blocks_of_one_correction_at_once_are_one_example_that_counts_fifty(
    api: Api, emulator: Emulator, start: Start
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

    emulator.fault = conflicts
    await start(block_ttl_seconds=8)  # long enough that all 50 are counted before any expires
    bodies = [block_body(f"same-{i:02d}", generated=f"kubectl get po {i}") for i in range(50)]
    codes = await asyncio.gather(*(api.call("POST", api.path("blocks"), b) for b in bodies))
    assert {code for code, _ in codes} == {201}

    def recorded() -> bool:  # a Block's status names its Example once it was counted in it
        stored = blocks(emulator).values()
        return len(stored) == 50 and all(b.get("status", {}).get("exampleRef") for b in stored)

    await until(recorded, "every Block counted")
    emulator.fault = None
    assert refused > 5
    (name,) = examples(emulator)
    assert examples(emulator)[name]["status"]["occurrences"] == 50
    assert {b["status"]["exampleRef"] for b in blocks(emulator).values() if "status" in b} <= {name}
    assert emulator.creations[f"examples/default/{name}"] == 1
    await until(lambda: not blocks(emulator), "every Block expired")
    (example,) = examples(emulator).values()
    assert example["status"]["occurrences"] == 50 and not example["metadata"].get("ownerReferences")
    assert example["spec"]["blockRef"]["name"].startswith("same-")  # the provenance of the first


async def test_the_ttl_runs_from_the_last_change_and_a_decided_block_goes_at_its_end(
    api: Api, emulator: Emulator, start: Start
) -> None:
    await start(block_ttl_seconds=5)
    await api.call("POST", api.path("blocks"), block_body("b1"))
    await until(lambda: blocks(emulator)["b1"].get("status", {}).get("decidedAt"), "b1 decided")
    first = blocks(emulator)["b1"]["status"]["decidedAt"]
    await asyncio.sleep(1.1)
    # The person runs something else: a new decision, a new clock (and the old Example goes).
    edit = {
        "spec": {"executedCell": {"kind": "code", "language": "bash", "contents": "kubectl get po -A -w"}}
    }
    await api.call("PATCH", api.path("blocks", name="b1"), edit)

    def redecided() -> str | None:
        block = blocks(emulator).get("b1") or {}
        status = block.get("status", {})
        return status.get("decidedAt") if status.get("observedGeneration") == 2 else None

    await until(redecided, "b1 decided again")
    second = blocks(emulator)["b1"]["status"]["decidedAt"]
    assert second > first
    await until(lambda: "b1" not in blocks(emulator), "b1 expired")
    gone_at = time.time()
    decided = parse_rfc3339(second)
    assert decided is not None and gone_at >= decided.timestamp() + 5  # never before its TTL
    (example,) = examples(emulator).values()
    assert example["spec"]["answer"][0]["contents"] == "kubectl get po -A -w"


async def test_a_block_that_teaches_something_else_deletes_its_own_old_example_or_lets_it_stand(
    api: Api, emulator: Emulator, start: Start
) -> None:
    """Level-triggered: whatever a Block's status says, the Examples it created and no longer
    teaches go, unless other Blocks taught the same correction: then they stay, without it."""
    await start(block_ttl_seconds=0)
    await api.call("POST", api.path("blocks"), block_body("alone"))
    await api.call("POST", api.path("blocks"), block_body("first", executed="kubectl top pods"))
    await until(lambda: len(examples(emulator)) == 2, "two Examples")
    await api.call("POST", api.path("blocks"), block_body("second", executed="kubectl top pods"))
    await until(
        lambda: any(e.get("status", {}).get("occurrences") == 2 for e in examples(emulator).values()),
        "counted twice",
    )
    for name in ("alone", "first"):
        edit = {"spec": {"executedCell": {"kind": "code", "contents": f"echo {name}"}}}
        await api.call("PATCH", api.path("blocks", name=name), edit)

    def answers() -> dict[str, dict[str, Any]]:
        return {e["spec"]["answer"][0]["contents"]: e for e in examples(emulator).values()}

    await until(
        lambda: set(answers()) == {"echo alone", "echo first", "kubectl top pods"},
        "the old ones gone or kept",
    )
    shared = answers()["kubectl top pods"]
    assert not shared["metadata"].get("ownerReferences") and shared["status"]["occurrences"] == 2


async def test_the_cap_holds_exactly_once_the_blocks_are_gone_and_evicts_the_least_recently_seen(
    api: Api, emulator: Emulator, start: Start
) -> None:
    await start(block_ttl_seconds=1, max_examples_per_namespace=4)
    steps = [teaching(f"t{i}", i) for i in range(4)] + [teaching("again-0", 0)]
    steps += [teaching(f"t{i}", i) for i in range(4, 6)]
    for n, body in enumerate(steps):
        await api.call("POST", api.path("blocks"), body)
        if n == 4:  # team 0 taught again: seen last, so kept over teams 1 and 2
            await until(
                lambda: 2 in [e.get("status", {}).get("occurrences") for e in examples(emulator).values()],
                "team 0 seen again",
            )
        else:
            await until(
                lambda n=n: (
                    len({e["spec"]["answer"][0]["contents"] for e in examples(emulator).values()})
                    >= min(n + 1, 4)
                ),
                "learned",
            )
        await asyncio.sleep(1.05)  # times in the API have a resolution of one second
    await until(lambda: not blocks(emulator), "every Block expired")
    await until(lambda: len(examples(emulator)) == 4, "the cap")
    await asyncio.sleep(0.5)
    kept = sorted(e["spec"]["answer"][0]["contents"] for e in examples(emulator).values())
    assert kept == [f"kubectl get pods -n team-{i}" for i in (0, 3, 4, 5)]  # exactly the cap


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


@pytest.mark.parametrize(("cap", "max_age_days", "reason"), [(3, 0.0, "cap"), (0, 1e-9, "max_age")])
async def test_an_example_a_living_block_teaches_is_never_evicted(
    api: Api, emulator: Emulator, start: Start, cap: int, max_age_days: float, reason: str
) -> None:
    counter = metrics.examples_evicted_total.labels(reason)
    evicted = counter._value.get()
    await start(block_ttl_seconds=0, max_examples_per_namespace=cap, example_max_age_days=max_age_days)
    for i in range(3):
        await api.call("POST", api.path("blocks"), teaching(f"t{i}", i))
    await until(lambda: len(examples(emulator)) == 3, "three Examples")
    await api.call("POST", api.path("examples"), handmade("by-hand"))
    await until(lambda: "by-hand" not in examples(emulator), "the hand-made Example evicted")
    await asyncio.sleep(0.5)
    assert len(examples(emulator)) == 3  # each has a living Block: evicting it would make it again
    assert counter._value.get() == evicted + 1


async def restarted(
    api: Api, emulator: Emulator, tmp_path: Path, **settings: Any
) -> tuple[Reconcilers, Rest]:
    """A controller's reconcilers as they are after a restart: a fresh cache, listed from the API."""
    rest = Rest.from_kubeconfig(str(kubeconfig_for(emulator, tmp_path)))
    reconcilers = Reconcilers(Settings(**settings), rest, HashingEmbedder(64))
    for plural, store in (("blocks", reconcilers.blocks), ("examples", reconcilers.examples)):
        _, listed = await api.call("GET", api.path(plural))
        for item in listed["items"]:
            store.put(item)
    return reconcilers, rest


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
    api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    first, rest = await restarted(api, emulator, tmp_path)
    emulator.fault = failing("blocks", "PATCH", "status")  # the Example is made, the status is not
    with pytest.raises(Requeue):
        await first.reconcile_block(("default", "b1"))
    await rest.close()
    (name,) = examples(emulator)
    assert "status" not in blocks(emulator)["b1"]
    emulator.fault = None
    second, rest = await restarted(api, emulator, tmp_path)
    await second.reconcile_block(("default", "b1"))
    await rest.close()
    assert list(examples(emulator)) == [name] and emulator.creations[f"examples/default/{name}"] == 1
    assert examples(emulator)[name].get("status", {}).get("occurrences", 1) == 1  # its creator: counted once
    assert blocks(emulator)["b1"]["status"]["exampleRef"] == name


async def test_a_controller_stopped_between_counting_and_recording_counts_that_block_twice(
    api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    """The one crash window of the count, as docs/architecture.md says: the occurrence is written
    before the Block's status records it, so a controller that dies in between counts again on
    restart (at least once; never lost). Retries within one process do not (the fifty test above)."""
    await api.call("POST", api.path("blocks"), block_body("b1"))
    await api.call("POST", api.path("blocks"), block_body("b2", generated="kubectl get po"))
    first, rest = await restarted(api, emulator, tmp_path)
    await first.reconcile_block(("default", "b1"))
    first.examples.put(next(iter(examples(emulator).values())))
    emulator.fault = failing("blocks", "PATCH", "status")
    with pytest.raises(Requeue):
        await first.reconcile_block(("default", "b2"))
    await rest.close()
    (example,) = examples(emulator).values()
    assert example["status"]["occurrences"] == 2
    emulator.fault = None
    second, rest = await restarted(api, emulator, tmp_path)
    await second.reconcile_block(("default", "b2"))
    await second.reconcile_block(("default", "b2"))  # recorded now: no more
    await rest.close()
    (example,) = examples(emulator).values()
    assert example["status"]["occurrences"] == 3


async def test_a_controller_stopped_between_releasing_an_example_and_deleting_its_block_finishes(
    api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    """Past its TTL a Block desires its Example without an owner, then its own deletion: a
    controller that dies between the two deletes it on restart, and neither adopts nor deletes
    the Example it let go."""
    await api.call("POST", api.path("blocks"), block_body("b1"))
    first, rest = await restarted(api, emulator, tmp_path, block_ttl_seconds=1)
    await first.reconcile_block(("default", "b1"))
    (name,) = examples(emulator)
    await first.reconcile_example(("default", name))  # embedded: the Block is decided
    first.blocks.put(blocks(emulator)["b1"])
    await asyncio.sleep(2.1)  # the TTL is up (decidedAt has a resolution of one second)
    emulator.fault = failing("blocks", "DELETE")
    with pytest.raises(Requeue):
        await first.reconcile_block(("default", "b1"))
    await rest.close()
    assert "b1" in blocks(emulator) and not examples(emulator)[name]["metadata"].get("ownerReferences")
    emulator.fault = None
    before = emulator._rv
    second, rest = await restarted(api, emulator, tmp_path, block_ttl_seconds=1)
    await second.reconcile_block(("default", "b1"))
    await second.reconcile_block(("default", "b1"))  # its deletion seen: a stray is looked for
    await rest.close()
    assert "b1" not in blocks(emulator) and emulator._rv == before + 1  # the delete, nothing else
    assert not examples(emulator)[name]["metadata"].get("ownerReferences")
