"""The embedder endpoint down (16 s by default) while Blocks keep arriving.

First half of the outage the endpoint answers 503, second half it refuses connections, and in the
middle the controller is killed and restarted (it must start without its embedder). Throughout,
Blocks still become Examples and the backlog gauge only grows; once the endpoint returns, every
Example is embedded exactly once and the index holds them all. The retries' backoff is capped at 2 s,
so every waiting Example is retried several times at the cap in each half: a longer outage repeats
the same states. BLOCKLEARN_OUTAGE_SECONDS=60 runs the full minute.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time

import pytest

from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api
from tests.fake_embeddings import FakeEmbeddings
from tests.processes import free_port
from tests.stack import Child, Stack, get_json
from tests.test_faults import corpus

pytestmark = pytest.mark.e2e
OUTAGE = float(os.environ.get("BLOCKLEARN_OUTAGE_SECONDS", "16"))
RATE = 3.0  # Blocks a second, before and during the outage
BEFORE = 30  # Blocks learned and embedded while the endpoint is up


def examples(emulator: Emulator) -> dict[str, dict]:
    """Examples by the Block they were learned from (they are named from their content)."""
    stored = emulator.objects_of("blocklearn.dev/v1alpha1/examples")
    return {e["spec"]["blockRef"]["name"]: e for e in stored}


def teaches(body: dict) -> bool:
    return bool(body["spec"]["generatedCell"]["contents"] == "echo todo")


@pytest.mark.slow
async def test_blocks_keep_learning_through_an_embedder_outage_and_all_embed_after(
    api: Api, emulator: Emulator, embeddings: FakeEmbeddings, stack: Stack
) -> None:
    env = {
        **embeddings.env(),
        "BLOCKLEARN_RETRY_BASE_SECONDS": "0.5",
        "BLOCKLEARN_RETRY_MAX_SECONDS": "2",
        "BLOCKLEARN_EMBED_TIMEOUT_SECONDS": "2",
    }

    async def backlog(controller: Child) -> float | None:
        value = await asyncio.to_thread(controller.metric, "blocklearn_embedding_backlog")
        return None if math.isnan(value) else value  # NaN: not listening yet

    controller = stack.controller("controller-1", env)
    index = stack.index(env=env)
    total = BEFORE + int(OUTAGE * RATE)
    blocks = corpus(total)
    before, during = blocks[:BEFORE], blocks[BEFORE:]
    try:
        for body in before:
            assert (await api.call("POST", api.path("blocks"), body))[0] == 201
        want_before = {b["metadata"]["name"] for b in before if teaches(b)}

        async def embedded_before() -> bool:
            current = examples(emulator)
            return all(current.get(n, {}).get("status", {}).get("embedding") for n in want_before)

        await stack.until(embedded_before, "the first Blocks embedded", timeout=60)

        # The outage: 503 for the first half, then connections refused, the controller restarted
        # between the two. Blocks keep arriving at RATE a second; the backlog is sampled as they do.
        embeddings.failing_with = 503
        samples: dict[str, list[float]] = {"controller-1": [], "controller-2": []}
        phase = "controller-1"
        started = time.monotonic()
        for i, body in enumerate(during):
            assert (await api.call("POST", api.path("blocks"), body))[0] == 201
            if i == len(during) // 2:
                await embeddings.down()
                await controller.astop(signal.SIGKILL)
                controller = stack.controller("controller-2", env)
                phase = "controller-2"
            if i % int(RATE) == 0 and (value := await backlog(controller)) is not None:
                samples[phase].append(value)
            await asyncio.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
        want_during = {b["metadata"]["name"] for b in during if teaches(b)}

        async def all_waiting() -> bool:
            value = await backlog(controller)
            samples["controller-2"].append(value if value is not None else 0)
            return value == len(want_during)

        # Still down: every Example of the outage exists, none has an embedding, all are waiting.
        await stack.until(all_waiting, "the whole outage backlog counted", timeout=60)
        outage_seconds = time.monotonic() - started
        current = examples(emulator)
        assert want_during <= set(current), "Blocks stopped becoming Examples during the outage"
        assert not [n for n in want_during if current[n].get("status", {}).get("embedding")]
        reasons = {
            c["reason"] for n in want_during for c in current[n].get("status", {}).get("conditions", [])
        }
        assert reasons == {"EmbedderError"}, reasons
        for phase, values in samples.items():
            assert len(values) >= 3 and values == sorted(values), (
                f"{phase} backlog did not only grow: {values}"
            )
            assert values[-1] > values[0], f"{phase} backlog did not grow: {values}"

        await embeddings.up()  # recovery
        want = want_before | want_during

        async def recovered() -> bool:
            current = examples(emulator)
            done = {n for n, e in current.items() if e.get("status", {}).get("embedding")}
            size = index.get("/readyz")[1].get("indexSize")
            return done == want and size == len(want) and await backlog(controller) == 0

        await stack.until(recovered, "every Example embedded and indexed", timeout=120)
    finally:
        await stack.astop()

    assert outage_seconds >= OUTAGE
    assert set(examples(emulator)) == want  # nothing lost, nothing extra
    duplicated = {k: n for k, n in emulator.creations.items() if k.startswith("examples/") and n != 1}
    assert not duplicated, f"Examples created more than once: {duplicated}"
    assert embeddings.embedded >= len(want)


async def test_an_index_started_without_its_embedder_waits_alive_and_unready(
    embeddings: FakeEmbeddings, stack: Stack
) -> None:
    """The index needs the embedder's dimension to build its matrix: it waits for it, answering
    /healthz (no restart loop) but not /readyz, and becomes ready once the endpoint answers."""
    await embeddings.down()
    probe_port = free_port()
    index = stack.index(env=embeddings.env(), args=["--probe-port", str(probe_port)])
    probes = f"http://127.0.0.1:{probe_port}"

    async def waiting() -> bool:
        return get_json(probes + "/healthz")[1].get("ok") is True

    await stack.until(waiting, "alive while the embedder is down")
    for url in (index.url, probes):
        assert get_json(url + "/readyz")[1] == {"ready": False, "indexSize": 0}

    async def failed_twice() -> bool:
        return index.log.read_text().count("Embedder not answering") >= 2

    await stack.until(failed_twice, "two failed probes logged", timeout=60)
    assert index.alive() and index.get("/readyz")[1]["ready"] is False

    await embeddings.up()

    async def ready() -> bool:
        return get_json(probes + "/readyz")[1].get("ready") is True

    await stack.until(ready, "ready once the embedder answers", timeout=60)
