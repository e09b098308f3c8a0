"""What the controller costs the API, measured on the real process: writes per Block from the
emulator's resourceVersion counter (one counter for every object, as etcd's revision), a resync of a
converged cluster writing nothing, the resync surviving a non-API failure, Events on transitions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import pytest

from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api, block_body, kubeconfig_for
from tests.fake_embeddings import FakeEmbeddings
from tests.processes import Process, eventually, free_port, scrape

pytestmark = pytest.mark.e2e
BLOCKS, EXAMPLES = "blocklearn.dev/v1alpha1/blocks", "blocklearn.dev/v1alpha1/examples"


class Controller:
    def __init__(self, proc: Process, metrics_url: str) -> None:
        self.proc, self.metrics_url = proc, metrics_url

    async def sample(self, name: str) -> float:
        text = await asyncio.to_thread(scrape, self.metrics_url)
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def resyncs(self, more_than: float) -> bool:
        try:
            return await self.sample("blocklearn_resync_passes_total") > more_than
        except OSError:
            return False


@pytest.fixture
async def controller(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Controller]:
    port = free_port()
    proc = Process(
        "controller",
        ["controller", "--metrics-port", str(port)],
        tmp_path,
        {
            "KUBECONFIG": str(kubeconfig_for(emulator, tmp_path)),
            "BLOCKLEARN_HASHING_DIM": "64",
            "BLOCKLEARN_RESYNC_SECONDS": "1",
            "BLOCKLEARN_RETRY_BASE_SECONDS": "0.2",
        },
    ).start()
    yield Controller(proc, f"http://127.0.0.1:{port}/metrics")
    await proc.astop()


def revision(emulator: Emulator) -> int:
    """The emulator's resourceVersion counter: it moves once for every write to any object."""
    return emulator._rv


def converged(emulator: Emulator, names: list[str]) -> bool:
    blocks = {b["metadata"]["name"]: b for b in emulator.objects_of(BLOCKS)}
    examples = {e["metadata"]["name"]: e for e in emulator.objects_of(EXAMPLES)}
    refs = {n: blocks.get(n, {}).get("status", {}).get("exampleRef") for n in names}
    return all(ref and examples.get(ref, {}).get("status", {}).get("embedding") for ref in refs.values())


@pytest.mark.needs_tools("weights")  # the controller fixture runs the default embedder
async def test_a_teaching_block_costs_four_writes_and_a_resync_none(
    api: Api, emulator: Emulator, controller: Controller
) -> None:
    await eventually(lambda: controller.resyncs(0), what="the first resync", logs=[controller.proc])
    names = [f"teach-{i}" for i in range(20)]
    before = revision(emulator)
    for i, name in enumerate(names):
        body = block_body(name, executed=f"kubectl get pods -n team-{i}")
        assert (await api.call("POST", api.path("blocks"), body))[0] == 201

    async def done() -> bool:
        return converged(emulator, names)

    await eventually(done, what="every Block learned and embedded", logs=[controller.proc])
    # The Block's create, the Example's create, the Example's status, the Block's status: no more
    # (until its TTL, a day by default, is up: tests/test_growth.py counts the whole life).
    settled = revision(emulator)
    assert settled - before == 4 * len(names), (settled - before) / len(names)
    passes = await controller.sample("blocklearn_resync_passes_total")
    await eventually(lambda: controller.resyncs(passes + 2), what="two more resyncs", logs=[controller.proc])
    assert revision(emulator) == settled  # resyncs of a converged cluster write nothing
    assert emulator.objects_of("/v1/events") == []  # no Event for an ordinary decision
    assert await controller.sample('blocklearn_block_decisions_total{reason="Learned"}') == len(names)


@pytest.mark.needs_tools("weights")  # the controller fixture runs the default embedder
async def test_an_informer_survives_a_failure_that_is_no_api_error(
    api: Api, emulator: Emulator, controller: Controller
) -> None:
    """A relist answered 200 with a body that is not JSON raises a ValueError, not an API error; the
    informer must go on once the server answers properly again, and the resync keep running."""
    await eventually(lambda: controller.resyncs(0), what="the first resync", logs=[controller.proc])
    garbage = {"on": True}

    def block_lists(r: kmock.Request) -> bool:
        plural = r.resource.plural if r.resource else ""
        return garbage["on"] and r.action == kmock.action.LIST and plural == "blocks"

    def block_watches(r: kmock.Request) -> bool:
        plural = r.resource.plural if r.resource else ""
        return garbage["on"] and r.params.get("watch") == "true" and plural == "blocks"

    # Watches refused until the informer gives up resuming and lists again: into the garbage.
    emulator[block_lists] << b"this is not JSON"
    emulator[block_watches] << 500
    emulator.drop_watches()

    async def failed() -> bool:
        log = controller.proc.log.read_text()
        return "Watch failed: plural=blocks" in log and "Expecting value" in log

    await eventually(failed, what="a failed relist", logs=[controller.proc])
    passes = await controller.sample("blocklearn_resync_passes_total")
    garbage["on"] = False
    await eventually(
        lambda: controller.resyncs(passes), what="a resync after the failure", logs=[controller.proc]
    )
    assert controller.proc.alive()
    # and the controller still works: a new Block learns
    await api.call("POST", api.path("blocks"), block_body("after"))
    await eventually(
        lambda: _async(converged(emulator, ["after"])), what="a Block after", logs=[controller.proc]
    )


async def _async(value: Any) -> Any:
    return value


@pytest.mark.needs_tools("weights")  # the controller fixture runs the default embedder
async def test_events_and_decision_counts_only_on_transitions(
    api: Api, emulator: Emulator, controller: Controller
) -> None:
    bad = block_body("bad")
    bad["spec"]["executedAt"] = "yesterday"
    await api.call("POST", api.path("blocks"), bad)

    def warnings() -> list[dict[str, Any]]:
        return [e for e in emulator.objects_of("/v1/events") if e["involvedObject"]["name"] == "bad"]

    await eventually(lambda: _async(len(warnings()) == 1), what="a Warning", logs=[controller.proc])
    passes = await controller.sample("blocklearn_resync_passes_total")
    await eventually(lambda: controller.resyncs(passes + 3), what="three resyncs", logs=[controller.proc])
    assert len(warnings()) == 1  # the resync confirms the state; it does not announce it again
    assert await controller.sample('blocklearn_block_decisions_total{reason="Invalid"}') == 1
    # A different problem is a transition: one more Warning, saying what is wrong now.
    await api.call("PATCH", api.path("blocks", name="bad"), {"spec": {"executedAt": "tomorrow"}})
    await eventually(lambda: _async(len(warnings()) == 2), what="a second Warning", logs=[controller.proc])
    assert "tomorrow" in max(warnings(), key=lambda e: int(e["metadata"]["resourceVersion"]))["message"]


async def test_an_embedder_refusal_is_on_the_example_and_not_retried(
    api: Api, emulator: Emulator, embeddings: FakeEmbeddings, tmp_path: Path
) -> None:
    """A 4xx other than 429 (here a 401: a wrong key) will not pass by retrying: the Example says
    why, one Warning says it once, and the endpoint is not asked again for that Example."""
    embeddings.failing_with = 401
    proc = Process(
        "controller-openai",
        ["controller", "--metrics-port", "0"],
        tmp_path,
        {
            "KUBECONFIG": str(kubeconfig_for(emulator, tmp_path)),
            "BLOCKLEARN_RETRY_BASE_SECONDS": "0.2",
            "BLOCKLEARN_RESYNC_SECONDS": "1",
            **embeddings.env(),
        },
    ).start()
    try:
        await api.call("POST", api.path("blocks"), block_body("b1"))

        async def refused() -> dict[str, Any] | None:
            ex = next(
                (e for e in emulator.objects_of(EXAMPLES) if e["spec"]["blockRef"]["name"] == "b1"), None
            )
            conditions = (ex or {}).get("status", {}).get("conditions", [])
            return next((c for c in conditions if c["reason"] == "EmbedderRefused"), None)

        condition = await eventually(refused, what="EmbedderRefused", logs=[proc])
        assert condition["status"] == "False" and "(401)" in condition["message"]
        assert "not-a-real-key" not in condition["message"]
        asked = embeddings.requests
        await eventually(lambda: _async("Resynced" in proc.log.read_text()), what="a resync", logs=[proc])
        warnings = [e for e in emulator.objects_of("/v1/events") if e["reason"] == "EmbedderRefused"]
        assert len(warnings) == 1
        # Only the startup probe and the one refused request; the resync does not ask again, because
        # the refusal is permanent until the Example changes... or the controller restarts with a new key.
        assert embeddings.requests == asked
    finally:
        await proc.astop()
