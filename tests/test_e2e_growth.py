"""Bounded growth through the real processes: `blocklearn controller` and `blocklearn index` against
the emulator, with a TTL of seconds, searched over HTTP and driven with the real kubectl. Every
decided Block is gone after its TTL, every learned Example survives and is found, a person's
`kubectl delete blk` still cascades, deleting an Example whose Blocks are gone is final, identical
corrections are one Example (50 at once), the cap holds exactly, and a Block costs 6 writes over its
life when it teaches, 4 when it repeats a correction, 3 when it teaches nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api, block_body, is_embedded, kubeconfig_for
from tests.processes import Process, eventually, free_port, kubectl_binary, scrape

pytestmark = pytest.mark.e2e
BLOCKS, EXAMPLES = "blocklearn.dev/v1alpha1/blocks", "blocklearn.dev/v1alpha1/examples"


class Stack:
    """A controller and an index, real processes, with the given settings."""

    def __init__(self, emulator: Emulator, tmp: Path, **settings: str) -> None:
        self.config = kubeconfig_for(emulator, tmp)
        self.metrics_port, self.index_port = free_port(), free_port()
        env = {
            "KUBECONFIG": str(self.config),
            "BLOCKLEARN_EMBEDDER": "hashing",
            "BLOCKLEARN_RETRY_BASE_SECONDS": "0.2",
            "BLOCKLEARN_RESYNC_SECONDS": "2",
            **{f"BLOCKLEARN_{k.upper()}": v for k, v in settings.items()},
        }
        args = ["controller", "--metrics-port", str(self.metrics_port)]
        self.controller = Process("controller", args, tmp, env).start()
        self.index = Process("index", ["index", "--port", str(self.index_port)], tmp, env).start()
        self.logs = [self.controller, self.index]

    def search(self, query: str, k: int = 3) -> list[dict[str, Any]]:
        body = json.dumps({"query": query, "k": k, "namespace": "default"}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.index_port}/v1/search", body, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return list(json.load(resp)["results"])
        except OSError:
            return []  # not listening, or not ready yet

    def metric(self, sample: str) -> float:
        try:
            page = scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")
        except OSError:
            return float("nan")
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(sample + " ")
        )

    async def kubectl(self, *args: str) -> str:
        """The real kubectl, in a thread: the emulator answers it from this event loop."""
        command = [str(kubectl_binary()), "--kubeconfig", str(self.config), *args]
        out = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    async def until(self, check: Callable[[], object], what: str, timeout: float = 120) -> Any:
        async def poll() -> object:
            return await asyncio.to_thread(check)

        return await eventually(poll, timeout=timeout, what=what, logs=self.logs)

    async def stop(self) -> None:
        for proc in self.logs:
            await proc.astop()


@pytest.fixture
async def stacks(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Callable[..., Stack]]:
    started: list[Stack] = []

    def start(**settings: str) -> Stack:
        started.append(Stack(emulator, tmp_path, **settings))
        return started[-1]

    yield start
    for stack in started:
        await stack.stop()


def team(name: str, i: int) -> dict[str, Any]:
    return block_body(name, executed=f"kubectl get pods -n team-{i}", doc=f"list the pods of team {i}")


def stored(emulator: Emulator, plural: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in emulator.objects_of(plural)}


async def test_blocks_expire_their_examples_stay_and_are_found_and_each_block_costs_its_writes(
    api: Api, emulator: Emulator, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(block_ttl_seconds="3", max_examples_per_namespace="0", store_budget_bytes="536870912")
    await stack.until(
        lambda: stack.search("pods") == [] and stack.metric("blocklearn_resync_passes_total") > 0, "up"
    )
    before = emulator._rv
    for i in range(10):
        assert (await api.call("POST", api.path("blocks"), team(f"t{i}", i)))[0] == 201
    examples = lambda: stored(emulator, EXAMPLES)  # noqa: E731
    await stack.until(lambda: len(examples()) == 10 and all(map(is_embedded, examples().values())), "learned")
    for i in range(5):  # five corrections made again, by other people
        assert (await api.call("POST", api.path("blocks"), team(f"again-{i}", i)))[0] == 201
    for i in range(5):  # and five suggestions run as they were
        body = block_body(f"plain-{i}", generated="kubectl get pods -A")
        assert (await api.call("POST", api.path("blocks"), body))[0] == 201
    await stack.until(lambda: not stored(emulator, BLOCKS), "every Block expired")
    assert emulator._rv - before == 10 * 6 + 5 * 4 + 5 * 3  # each Block's whole life, its expiry included
    kept = examples()
    assert len(kept) == 10 and all(not e["metadata"].get("ownerReferences") for e in kept.values())
    for i in range(10):  # found by search once its Block is gone; support counts the Blocks
        hits = await stack.until(lambda i=i: stack.search(f"the pods of team {i}", k=1), f"team {i} found")
        assert hits[0]["answer"][0]["contents"] == f"kubectl get pods -n team-{i}"
        assert hits[0]["support"] == (2 if i < 5 else 1) and hits[0]["blockRef"]["name"] == f"t{i}"
    # The store's use, as the controller's cache holds it: the objects' JSON as the API serves them.
    size = sum(len(json.dumps(e, separators=(",", ":"))) for e in examples().values())
    await stack.until(lambda: stack.metric('blocklearn_stored_bytes{kind="example"}') == size, "bytes")
    assert stack.metric('blocklearn_stored_objects{kind="example"}') == 10
    assert stack.metric('blocklearn_stored_objects{kind="block"}') == 0
    assert stack.metric('blocklearn_stored_bytes{kind="block"}') == 0
    assert stack.metric("blocklearn_blocks_expired_total") == 20
    assert stack.metric("blocklearn_store_budget_bytes") == 536870912
    assert "block_ttl_seconds=3 max_examples_per_namespace=0" in stack.controller.log.read_text()


async def test_a_persons_delete_cascades_and_deleting_an_example_of_gone_blocks_is_final(
    api: Api, emulator: Emulator, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(block_ttl_seconds="10")
    await api.call("POST", api.path("blocks"), team("expires", 1))
    await api.call("POST", api.path("blocks"), team("deleted", 2))

    def example_of(block: str) -> str | None:
        ref = stored(emulator, BLOCKS).get(block, {}).get("status", {}).get("exampleRef")
        return ref if ref and is_embedded(stored(emulator, EXAMPLES).get(ref)) else None

    deleted = await stack.until(lambda: example_of("deleted"), "the Example of 'deleted'")
    await stack.kubectl("delete", "blk", "deleted")  # a living Block: its Example goes with it
    await stack.until(lambda: deleted not in stored(emulator, EXAMPLES), "cascaded")
    expired = await stack.until(lambda: example_of("expires"), "the Example of 'expires'")
    await stack.until(lambda: "expires" not in stored(emulator, BLOCKS), "expired", timeout=60)
    assert not stored(emulator, EXAMPLES)[expired]["metadata"].get("ownerReferences")
    # Curation once the Block is gone: deleting the Example is final, whatever the resyncs do.
    await stack.kubectl("delete", "ex", expired)
    passes = stack.metric("blocklearn_resync_passes_total")
    await stack.until(lambda: stack.metric("blocklearn_resync_passes_total") >= passes + 2, "two resyncs")
    assert expired not in stored(emulator, EXAMPLES)
    assert not stack.search("the pods of team 1")


async def test_fifty_identical_corrections_at_once_are_one_example_counting_fifty(
    api: Api, emulator: Emulator, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(block_ttl_seconds="10")  # all 50 counted before any expires, even when slow
    bodies = [block_body(f"same-{i:02d}", generated=f"kubectl get po {i}") for i in range(50)]
    codes = await asyncio.gather(*(api.call("POST", api.path("blocks"), b) for b in bodies))
    assert {code for code, _ in codes} == {201}

    def recorded() -> bool:
        blocks = stored(emulator, BLOCKS).values()
        return len(blocks) == 50 and all(b.get("status", {}).get("exampleRef") for b in blocks)

    await stack.until(recorded, "every Block counted")
    ((name, example),) = stored(emulator, EXAMPLES).items()
    assert example["status"]["occurrences"] == 50 and emulator.creations[f"examples/default/{name}"] == 1
    await stack.until(lambda: not stored(emulator, BLOCKS), "every Block expired")
    [hit] = await stack.until(lambda: stack.search("list every pod", k=1), "found")
    assert hit["name"] == name and hit["support"] == 50
    table = await stack.kubectl("get", "ex")
    assert table.split()[:5] == ["NAME", "EMBEDDED", "MODEL", "OCCURRENCES", "AGE"]
    assert table.splitlines()[1].split()[3] == "50"


async def test_the_cap_holds_exactly_once_the_blocks_have_expired(
    api: Api, emulator: Emulator, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(block_ttl_seconds="6", max_examples_per_namespace="4")
    for i in range(7):
        await api.call("POST", api.path("blocks"), team(f"t{i}", i))
    await stack.until(lambda: len(stored(emulator, EXAMPLES)) == 7, "seven Examples while their Blocks live")
    await stack.until(lambda: not stored(emulator, BLOCKS), "every Block expired")
    await stack.until(lambda: len(stored(emulator, EXAMPLES)) == 4, "the cap")
    passes = stack.metric("blocklearn_resync_passes_total")
    await stack.until(lambda: stack.metric("blocklearn_resync_passes_total") >= passes + 2, "two resyncs")
    assert len(stored(emulator, EXAMPLES)) == 4  # exactly the cap: none made again, none more evicted
    assert stack.metric('blocklearn_examples_evicted_total{reason="cap"}') == 3
    log = stack.controller.log.read_text()
    assert log.count("Evicted Example: namespace=default name=") == 3 and "reason=cap" in log
