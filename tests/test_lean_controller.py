"""What the controller costs the API, measured on its informers and reconcilers in this process
(tests/harness.py) against the emulator: writes per Block from the emulator's resourceVersion counter
(one counter for every object, as etcd's revision), a resync of a converged cluster writing nothing,
the informer and the resync surviving a non-API failure, Events on transitions only, and an embedder's
refusal not asked again."""

from __future__ import annotations

import logging
from typing import Any

import kmock
import pytest

from tests.conftest import block_body
from tests.fake_embeddings import FakeEmbeddings
from tests.harness import Harness, sample

BLOCKS, EXAMPLES = "blocklearn.dev/v1alpha1/blocks", "blocklearn.dev/v1alpha1/examples"


def converged(harness: Harness, names: list[str]) -> bool:
    blocks, examples = harness.blocks(), harness.examples()
    refs = {n: blocks.get(n, {}).get("status", {}).get("exampleRef") for n in names}
    return all(ref and examples.get(ref, {}).get("status", {}).get("embedding") for ref in refs.values())


async def test_a_teaching_block_costs_four_writes_and_a_resync_none(
    harness: Harness, embeddings: FakeEmbeddings
) -> None:
    """With an embedder whose vectors the Examples store (an OpenAI-compatible endpoint)."""
    await embeddings.up()
    learned = sample("blocklearn_block_decisions_total", reason="Learned")
    await harness.start(env=embeddings.env())
    await harness.resync()  # a first pass, as the controller runs at its start
    names = [f"teach-{i}" for i in range(20)]
    before = harness.emulator.revision
    for i, name in enumerate(names):
        body = block_body(name, executed=f"kubectl get pods -n team-{i}")
        assert (await harness.api.call("POST", harness.api.path("blocks"), body))[0] == 201
    await harness.until(lambda: converged(harness, names), "every Block learned and embedded")
    await harness.settled()
    # The Block's create, the Example's create, the Example's status, the Block's status: no more
    # (until its TTL, a day by default, is up: tests/test_growth.py counts the whole life).
    settled = harness.emulator.revision
    assert settled - before == 4 * len(names), (settled - before) / len(names)
    await harness.resync()
    await harness.resync()
    await harness.settled()
    assert harness.emulator.revision == settled  # resyncs of a converged cluster write nothing
    assert harness.emulator.objects_of("/v1/events") == []  # no Event for an ordinary decision
    assert sample("blocklearn_block_decisions_total", reason="Learned") - learned == len(names)


async def test_an_informer_survives_a_failure_that_is_no_api_error(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A relist answered 200 with a body that is not JSON raises a ValueError, not an API error; the
    informer must go on once the server answers properly again, and the resync keep running."""
    caplog.set_level(logging.WARNING, logger="blocklearn")
    controller = await harness.start(resync_seconds=1)
    garbage = {"on": True}

    def block_lists(r: kmock.Request) -> bool:
        plural = r.resource.plural if r.resource else ""
        return garbage["on"] and r.action == kmock.action.LIST and plural == "blocks"

    def block_watches(r: kmock.Request) -> bool:
        plural = r.resource.plural if r.resource else ""
        return garbage["on"] and r.params.get("watch") == "true" and plural == "blocks"

    # Watches refused until the informer gives up resuming and lists again: into the garbage.
    harness.emulator[block_lists] << b"this is not JSON"
    harness.emulator[block_watches] << 500
    harness.emulator.drop_watches()

    def failed() -> bool:
        text = "\n".join(r.getMessage() for r in caplog.records)
        return "Watch failed: plural=blocks" in text and "Expecting value" in text

    await harness.until(failed, "a failed relist")
    passes = sample("blocklearn_resync_passes_total")
    garbage["on"] = False
    await harness.until(
        lambda: sample("blocklearn_resync_passes_total") > passes, "a resync after the failure"
    )
    assert controller.alive()  # every watch, worker and the resync loop still running
    # and the controller still works: a new Block learns
    await harness.api.call("POST", harness.api.path("blocks"), block_body("after"))
    await harness.until(
        lambda: harness.blocks()["after"].get("status", {}).get("exampleRef"), "a Block after"
    )


async def test_events_and_decision_counts_only_on_transitions(harness: Harness) -> None:
    invalid = sample("blocklearn_block_decisions_total", reason="Invalid")
    await harness.start()
    bad = block_body("bad")
    bad["spec"]["executedAt"] = "yesterday"
    await harness.api.call("POST", harness.api.path("blocks"), bad)

    def warnings() -> list[dict[str, Any]]:
        events = harness.emulator.objects_of("/v1/events")
        return [e for e in events if e["involvedObject"]["name"] == "bad"]

    await harness.until(lambda: len(warnings()) == 1, "a Warning")
    for _ in range(3):
        await harness.resync()
    await harness.settled()
    assert len(warnings()) == 1  # the resync confirms the state; it does not announce it again
    assert sample("blocklearn_block_decisions_total", reason="Invalid") - invalid == 1
    # A different problem is a transition: one more Warning, saying what is wrong now.
    await harness.api.call(
        "PATCH", harness.api.path("blocks", name="bad"), {"spec": {"executedAt": "tomorrow"}}
    )
    await harness.until(lambda: len(warnings()) == 2, "a second Warning")
    assert "tomorrow" in max(warnings(), key=lambda e: int(e["metadata"]["resourceVersion"]))["message"]


async def test_an_embedder_refusal_is_on_the_example_and_not_retried(
    harness: Harness, embeddings: FakeEmbeddings
) -> None:
    """A 4xx other than 429 (here a 401: a wrong key) will not pass by retrying: the Example says
    why, one Warning says it once, and the endpoint is not asked again for that Example."""
    embeddings.failing_with = 401
    await harness.start(env=embeddings.env())
    await harness.api.call("POST", harness.api.path("blocks"), block_body("b1"))

    def refused() -> dict[str, Any] | None:
        ex = next((e for e in harness.examples().values() if e["spec"]["blockRef"]["name"] == "b1"), None)
        conditions = (ex or {}).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["reason"] == "EmbedderRefused"), None)

    condition = await harness.until(refused, "EmbedderRefused")
    assert condition["status"] == "False" and "(401)" in condition["message"]
    assert "not-a-real-key" not in condition["message"]
    await harness.settled()
    asked = embeddings.requests
    await harness.resync()
    await harness.settled()
    warnings = [e for e in harness.emulator.objects_of("/v1/events") if e["reason"] == "EmbedderRefused"]
    assert len(warnings) == 1
    # The one refused request; the resync does not ask again, because the refusal is permanent until
    # the Example changes... or the controller restarts with a new key.
    assert asked == 1 and embeddings.requests == asked
