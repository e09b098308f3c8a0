"""The controller's informers, work queues and reconcilers against the emulator, in this process
(tests/harness.py): what a Block becomes, edits, deletion, invalid input, API errors, and backfill
(the `blocklearn backfill` command, a real process)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import kmock
import pytest

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.learn.rule import decide, example_name
from blocklearn.resources.models import BlockRef, BlockSpec
from tests.conftest import Api, block_body, is_embedded
from tests.harness import Harness
from tests.processes import Process, eventually

EXAMPLES = "blocklearn.dev/v1alpha1/examples"


async def get(api: Api, plural: str, name: str) -> dict | None:
    code, obj = await api.call("GET", api.path(plural, name=name))
    return obj if code == 200 else None


def condition(obj: dict | None, type_: str) -> dict | None:
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return cond
    return None


async def embedded_example(api: Api, block: str) -> dict | None:
    """The Example a Block names in its status (Examples are named from their content), embedded."""
    blk = await get(api, "blocks", block)
    ref = (blk or {}).get("status", {}).get("exampleRef")
    ex = await get(api, "examples", ref) if ref else None
    return ex if is_embedded(ex) else None


def name_for(body: dict) -> str:
    """The name the controller gives the Example of a Block: from what it teaches."""
    decision = decide(BlockSpec.model_validate(body["spec"]), BlockRef(name=body["metadata"]["name"]))
    assert decision.example is not None
    return example_name(decision.example)


async def test_a_correction_becomes_an_embedded_example_owned_by_its_block(harness: Harness) -> None:
    api = harness.api
    await harness.start(hashing_dim=256)
    _, block = await api.call("POST", api.path("blocks"), block_body("b1"))
    ex = await eventually(lambda: embedded_example(api, "b1"), what="embedded Example")
    assert ex["metadata"]["name"] == name_for(block_body("b1"))
    assert ex["spec"]["answer"][0]["contents"] == "kubectl get pods -A"
    assert ex["spec"]["query"]["cells"][0]["contents"] == "list every pod"
    assert ex["spec"]["blockRef"] == {
        "name": "b1",
        "uid": block["metadata"]["uid"],
        "learnedAt": block["metadata"]["creationTimestamp"],  # no executedAt: when the Block was made
    }
    [owner] = ex["metadata"]["ownerReferences"]
    assert owner["uid"] == block["metadata"]["uid"] and owner["controller"] is True
    status = ex["status"]
    # hashing stores no vector: the index computes its features from the text (test_model_switch.py
    # and test_example_size.py cover stored vectors and their wire formats).
    assert "embedding" not in status and "embeddingDim" not in status
    assert status["embeddingModel"] == "hashing-v1-d256" and status["textHash"]
    assert condition(ex, "Embedded")["status"] == "True"

    blk = await eventually(lambda: _learned(api, "b1"), what="Learned condition")
    assert blk["status"]["exampleRef"] == ex["metadata"]["name"]
    assert blk["status"]["observedGeneration"] == 1 and blk["status"]["decidedAt"]
    assert condition(blk, "Ready")["status"] == "True"


async def _learned(api: Api, name: str, status: str = "True") -> dict | None:
    blk = await get(api, "blocks", name)
    cond = condition(blk, "Learned")
    return blk if cond and cond["status"] == status else None


async def _only(emulator: Emulator, name: str) -> bool:
    return [e["metadata"]["name"] for e in emulator.objects_of(EXAMPLES)] == [name]


async def test_edits_replace_or_remove_the_example_and_deletion_cascades(harness: Harness) -> None:
    api, emulator = harness.api, harness.emulator
    await harness.start()
    await api.call("POST", api.path("blocks"), block_body("b1"))
    first = await eventually(lambda: embedded_example(api, "b1"), what="Example")

    # A new context: the Example follows and is embedded again.
    await api.call(
        "PATCH",
        api.path("blocks", name="b1"),
        {"spec": {"doc": {"cells": [{"kind": "markup", "contents": "show pods on every node"}]}}},
    )

    async def re_embedded() -> dict | None:
        ex = await embedded_example(api, "b1")
        return ex if ex and ex["status"]["textHash"] != first["status"]["textHash"] else None

    ex = await eventually(re_embedded, what="re-embedded Example")
    assert ex["spec"]["query"]["cells"][0]["contents"] == "show pods on every node"
    # Another correction, so another Example (named from its content); the old one, which this
    # Block alone taught, is gone: never two for one Block.
    await eventually(lambda: _only(emulator, ex["metadata"]["name"]), what="the old Example gone")

    # Executed == generated: nothing to learn any more, the Example goes.
    await api.call(
        "PATCH",
        api.path("blocks", name="b1"),
        {"spec": {"executedCell": {"kind": "code", "language": "bash", "contents": "kubectl get pods"}}},
    )
    blk = await eventually(lambda: _learned(api, "b1", "False"), what="Unchanged")
    assert condition(blk, "Learned")["reason"] == "Unchanged"
    assert "exampleRef" not in blk["status"]
    assert emulator.objects_of(EXAMPLES) == []

    # Teaching again, then deleting the Block: the Example is collected with it.
    await api.call(
        "PATCH",
        api.path("blocks", name="b1"),
        {"spec": {"executedCell": {"kind": "code", "language": "bash", "contents": "kubectl get po -A"}}},
    )
    await eventually(lambda: embedded_example(api, "b1"), what="Example again")
    await api.call("DELETE", api.path("blocks", name="b1"))

    async def gone() -> bool:
        return await get(api, "blocks", "b1") is None and not emulator.objects_of(EXAMPLES)

    await eventually(gone, what="Block and Example gone")


async def test_an_invalid_block_is_reported_and_does_not_stop_the_others(harness: Harness) -> None:
    api, emulator = harness.api, harness.emulator
    await harness.start()
    bad = block_body("bad")
    bad["spec"]["executedAt"] = "yesterday"  # a string, so the CRD schema lets it through
    bad["spec"]["executedCell"]["contents"] = "x\x00y"
    assert (await api.call("POST", api.path("blocks"), bad))[0] == 201
    for i in range(5):
        await api.call(
            "POST", api.path("blocks"), block_body(f"good-{i}", executed=f"kubectl get pods -n ns{i}")
        )

    async def invalid() -> dict | None:
        blk = await get(api, "blocks", "bad")
        cond = condition(blk, "Ready")
        return blk if cond and cond["reason"] == "Invalid" else None

    blk = await eventually(invalid, what="Invalid condition")
    message = condition(blk, "Ready")["message"]
    assert "spec.executedAt" in message and "not an RFC 3339 time" in message
    assert "spec.executedCell.contents" in message and "NUL" in message
    for i in range(5):
        await eventually(lambda i=i: embedded_example(api, f"good-{i}"), what=f"good-{i}")
    assert len(emulator.objects_of(EXAMPLES)) == 5 and "exampleRef" not in blk["status"]
    events = emulator.objects_of("/v1/events", "default")
    assert any(e.get("reason") == "Invalid" and e["involvedObject"]["name"] == "bad" for e in events)

    # Fixing the Block is the change that makes it reconcile again.
    await api.call(
        "PATCH",
        api.path("blocks", name="bad"),
        {
            "spec": {
                "executedAt": "2024-06-01T00:00:00Z",
                "executedCell": {"kind": "code", "language": "bash", "contents": "kubectl top pods"},
            }
        },
    )
    await eventually(lambda: embedded_example(api, "bad"), what="fixed Block learns")


async def test_an_example_deleted_by_hand_comes_back_while_its_block_teaches_it(harness: Harness) -> None:
    """From its deletion's watch event, not from a resync (the harness runs none by itself)."""
    api = harness.api
    await harness.start()
    await api.call("POST", api.path("blocks"), block_body("b1"))
    first = await eventually(lambda: embedded_example(api, "b1"), what="Example")
    await api.call("DELETE", api.path("examples", name=first["metadata"]["name"]))

    async def recreated() -> dict | None:
        ex = await embedded_example(api, "b1")
        return ex if ex and ex["metadata"]["uid"] != first["metadata"]["uid"] else None

    again = await eventually(recreated, timeout=30, what="Example back")
    assert again["spec"] == first["spec"]


class FailFirst:
    """A kmock filter that matches the first `n` requests it is asked about, then no more."""

    def __init__(self, n: int, match: Callable[[kmock.Request], object]) -> None:
        self.n, self.match, self.seen = n, match, 0

    def __call__(self, request: kmock.Request) -> bool:
        if self.seen < self.n and self.match(request):
            self.seen += 1
            return True
        return False


async def test_api_errors_and_conflicts_are_retried_without_duplicates(harness: Harness) -> None:
    api, emulator = harness.api, harness.emulator
    creates = FailFirst(3, lambda r: r.method == "POST" and r.resource and r.resource.plural == "examples")
    conflicts = FailFirst(3, lambda r: r.method == "PATCH" and r.subresource == "status")
    emulator[creates] << 500
    await harness.start()
    # The 500s alone first: nothing else brings the Block back (its status is written either way),
    # so its Example exists only if the failed create was retried.
    await api.call("POST", api.path("blocks"), block_body("b0", executed="kubectl get pods -n n0"))
    await eventually(lambda: embedded_example(api, "b0"), what="b0")
    assert creates.seen == 3
    emulator[conflicts] << kmock.KubernetesError(status=409, reason="Conflict", message="injected conflict")
    for i in (1, 2):
        await api.call("POST", api.path("blocks"), block_body(f"b{i}", executed=f"kubectl get pods -n n{i}"))
    for i in range(3):
        await eventually(lambda i=i: embedded_example(api, f"b{i}"), what=f"b{i}")
        await eventually(lambda i=i: _learned(api, f"b{i}"), what=f"b{i} learned")
    assert creates.seen == 3 and conflicts.seen == 3
    names = sorted(o["metadata"]["name"] for o in emulator.objects_of(EXAMPLES))
    want = sorted(name_for(block_body(f"b{i}", executed=f"kubectl get pods -n n{i}")) for i in range(3))
    assert names == want and all(emulator.creations[f"examples/default/{n}"] == 1 for n in names)


@pytest.mark.e2e  # runs `blocklearn backfill`, a process
async def test_backfill_re_reconciles_blocks_changed_since_a_time(harness: Harness, tmp_path: Path) -> None:
    api, emulator = harness.api, harness.emulator
    controller = await harness.start()
    for i in range(4):
        await api.call("POST", api.path("blocks"), block_body(f"b{i}", executed=f"kubectl logs pod-{i}"))
    for i in range(4):
        await eventually(lambda i=i: embedded_example(api, f"b{i}"), what=f"b{i}")
    # Simulate drift the controller has not noticed (it was stopped): Examples lost.
    await harness.stop(controller)
    for example in emulator.objects_of(EXAMPLES):
        await api.call("DELETE", api.path("examples", name=example["metadata"]["name"]))
    await eventually(lambda: _none_left(emulator), what="Examples gone")
    await harness.start()
    # on restart the controller's first pass reconciles every Block: the Examples come back...
    for i in range(4):
        await eventually(lambda i=i: embedded_example(api, f"b{i}"), what=f"b{i} resumed")
    # ...and while it runs, an Example deleted by hand comes back at once (its deletion is an
    # event). Drift that is no event to act on: the Blocks' status wiped. Only a change to the
    # Block brings it back before the resync (5 minutes away): the backfill's annotation.
    wipe = {"status": {"conditions": None, "exampleRef": None, "observedGeneration": None}}
    for i in range(4):
        code, wiped = await api.call("PATCH", api.path("blocks", name=f"b{i}", sub="status"), wipe)
        assert code == 200 and "conditions" not in wiped.get("status", {})
    kubeconfig = {"KUBECONFIG": str(harness.kubeconfig)}
    args = ["backfill", "--since", "2000-01-01T00:00:00Z", "-o", "json"]
    proc = Process("backfill", args, tmp_path, kubeconfig).start()
    assert await proc.exited() == 0, proc.tail()
    assert '"selected": 4, "requested": 4' in proc.log.read_text()
    for i in range(4):
        await eventually(lambda i=i: _learned(api, f"b{i}"), what=f"b{i} backfilled")
    future = Process("backfill-none", ["backfill", "--since", "2999-01-01T00:00:00Z"], tmp_path, kubeconfig)
    assert await future.start().exited() == 0, future.tail()
    assert "listed 4 Blocks, 0 changed since" in future.log.read_text()


async def _none_left(emulator: Emulator) -> bool:
    return not emulator.objects_of(EXAMPLES)


async def test_an_example_of_the_same_correction_made_by_someone_else_is_counted_not_adopted(
    harness: Harness,
) -> None:
    """Only the Block that creates an Example owns it: a person's delete of another Block that
    taught the same correction must not take an Example others taught too."""
    api = harness.api
    await harness.start()
    body = block_body("b1")
    name = name_for(body)
    by_hand = {
        "metadata": {"name": name},
        "spec": {
            "query": {"cells": [{"kind": "markup", "contents": "list every pod"}]},
            "answer": [{"kind": "code", "language": "bash", "contents": "kubectl  get pods -A"}],
            "blockRef": {"name": "someone"},
        },
    }
    assert (await api.call("POST", api.path("examples"), by_hand))[0] == 201
    await api.call("POST", api.path("blocks"), body)

    async def counted() -> dict | None:
        ex = await embedded_example(api, "b1")
        return ex if ex and ex["status"].get("occurrences") == 2 else None

    ex = await eventually(counted, what="the Block counted in the Example")
    assert not ex["metadata"].get("ownerReferences") and ex["spec"]["blockRef"] == {"name": "someone"}
    await api.call("DELETE", api.path("blocks", name="b1"))
    await eventually(lambda: _gone(api, "blocks", "b1"), what="the Block deleted")
    assert await get(api, "examples", name) is not None


async def _gone(api: Api, plural: str, name: str) -> bool:
    return await get(api, plural, name) is None
