"""Two controller+index pairs (two pods) against one API; the leader's pod is killed with SIGKILL
while Blocks keep arriving. The emulator records who made every request to Blocks and Examples, and
who held the Lease at that moment: only the holder ever touches them, the other pod takes over once
the Lease expires, nothing is lost or duplicated, both indexes end with the same set, and searches
against the surviving pod's index never fail.

The Lease's timings are short (8 s, renew deadline 6 s, retry period 1 s, set through the settings the
chart sets from `controller.leaderElection`), so that a takeover takes seconds: the rules are the same
as with client-go's defaults (15, 10, 2), which tests/test_leader.py checks with an injected clock.
Shorter ones (6, 4, 0.5) lost the Lease now and then on this shared machine: a renewal's timeout is
the retry period, and the emulator shares the test's event loop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import kmock
import pytest

from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api, block_body
from tests.processes import eventually
from tests.stack import Child, Stack
from tests.test_faults import corpus

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.needs_tools("weights")]
LEASES = "coordination.k8s.io/v1/leases"
LEASE_SECONDS, RETRY_PERIOD = 8, 1
TIMING = {
    "BLOCKLEARN_LEASE_DURATION_SECONDS": str(LEASE_SECONDS),
    "BLOCKLEARN_RENEW_DEADLINE_SECONDS": "6",
    "BLOCKLEARN_RETRY_PERIOD_SECONDS": str(RETRY_PERIOD),
}
BLOCKS = 90
NAMESPACES = ("default", "team-b")


@dataclass
class Recorder:
    """Who touched Blocks and Examples, and who held the Lease right then (before the request ran)."""

    emulator: Emulator
    # (client, is a write, resource, the Lease's holder)
    requests: list[tuple[str, bool, str, str | None]] = field(default_factory=list)

    def holder(self) -> str | None:
        leases = self.emulator.objects_of(LEASES, "default")
        return leases[0]["spec"].get("holderIdentity") if leases else None

    async def __call__(self, request: kmock.Request) -> int | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        plural = request.resource.plural if request.resource is not None else None
        if token.startswith("pod-") and plural in ("blocks", "examples"):
            write = request.method in (
                kmock.method.POST,
                kmock.method.PATCH,
                kmock.method.PUT,
                kmock.method.DELETE,
            )
            self.requests.append((token, write, str(plural), self.holder()))
        return None


# A replica's settings: the default embedder (its Examples store vectors), leader election with the
# short timings above.
REPLICA = {
    "BLOCKLEARN_EMBEDDER": "semantic",
    "BLOCKLEARN_RETRY_MAX_SECONDS": "2",
    "BLOCKLEARN_LEADER_ELECTION": "true",
    "BLOCKLEARN_LEADER_ELECTION_NAMESPACE": "default",
    **TIMING,
}


@dataclass
class Pod:
    """A replica of the chart's pod: the controller and its index sidecar, real processes of the
    stack. Each authenticates with its own token, so that the recorder tells their requests apart."""

    name: str
    stack: Stack
    controller: Child | None = None
    index: Child | None = None

    def start(self) -> Pod:
        env = {**REPLICA, "BLOCKLEARN_LEADER_ELECTION_IDENTITY": self.name}
        if self.controller is None or self.index is None:
            kubeconfig = self.stack.kubeconfig_for(self.name)
            self.controller = self.stack.controller(f"{self.name}-controller", env, kubeconfig=kubeconfig)
            kubeconfig = self.stack.kubeconfig_for(f"index-{self.name}")
            self.index = self.stack.index(f"{self.name}-index", env, kubeconfig=kubeconfig)
        else:  # its containers restart: the same ports, tokens and settings
            self.controller = self.stack.restart(self.controller, f"{self.name}-controller-2")
            self.index = self.stack.restart(self.index, f"{self.name}-index-2")
        return self

    async def alive(self, session: aiohttp.ClientSession) -> bool:
        """The controller's liveness probe, as the kubelet sees it (a follower's too)."""
        assert self.controller is not None
        try:
            async with session.get(f"{self.controller.url}/healthz") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    def kill(self) -> None:
        for proc in (self.controller, self.index):
            assert proc is not None
            proc.kill()

    async def search(self, session: aiohttp.ClientSession, namespace: str) -> tuple[int, dict]:
        assert self.index is not None
        body = {"query": "list the files", "k": 100, "namespace": namespace}
        url = f"{self.index.url}/v1/search"
        async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            return resp.status, await resp.json(content_type=None)

    async def indexed(self, session: aiohttp.ClientSession) -> set[tuple[str, str]]:
        names: set[tuple[str, str]] = set()
        for ns in NAMESPACES:
            status, answer = await self.search(session, ns)
            assert status == 200, answer
            # The Block each Example was learned from: Examples are named from their content.
            names |= {(ns, hit["blockRef"]["name"]) for hit in answer["results"]}
        return names


async def test_the_other_replica_takes_over_when_the_leader_is_killed(
    api: Api, emulator: Emulator, stack: Stack
) -> None:
    for namespace in NAMESPACES[1:]:
        await api.create_namespace(namespace)
    recorder = Recorder(emulator)
    emulator.fault = recorder
    pods = {name: Pod(name, stack).start() for name in ("pod-a", "pod-b")}
    procs = stack.children
    blocks = corpus(BLOCKS)
    for i, block in enumerate(blocks):
        block["metadata"]["namespace"] = NAMESPACES[i % 2]
    failures: list[str] = []
    searches = 0
    try:
        async with aiohttp.ClientSession() as session:

            async def holder() -> str | None:
                return recorder.holder()

            leader_name = await eventually(holder, timeout=60, what="a leader", logs=procs)
            leader = pods[leader_name]
            [survivor] = [pod for name, pod in pods.items() if name != leader_name]

            async def ready(pod: Pod) -> bool:
                try:
                    return (await pod.search(session, "default"))[0] == 200
                except aiohttp.ClientError:
                    return False  # not listening yet

            for pod in pods.values():
                await eventually(lambda pod=pod: ready(pod), timeout=60, what=f"{pod.name} ready", logs=procs)
                # Both live: the follower answers its liveness probe while it waits.
                await eventually(
                    lambda pod=pod: pod.alive(session), timeout=60, what=f"{pod.name} live", logs=procs
                )

            async def search_survivor_forever() -> None:
                nonlocal searches
                while True:
                    try:
                        status, answer = await survivor.search(session, NAMESPACES[searches % 2])
                        if status != 200:
                            failures.append(f"{status}: {answer}")
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        failures.append(repr(exc))
                    searches += 1
                    await asyncio.sleep(0.05)

            searching = asyncio.create_task(search_survivor_forever())
            killed_at = 0.0
            for i, body in enumerate(blocks):
                namespace = body["metadata"]["namespace"]
                code, _ = await api.call("POST", api.path("blocks", namespace), body)
                assert code == 201
                if i == BLOCKS // 3:
                    # The leader's pod dies with every Block so far possibly half-done.
                    leader.kill()
                    killed_at = time.monotonic()
                await asyncio.sleep(0.15)  # Blocks keep arriving through the takeover (~13 s in all)

            async def taken_over() -> bool:
                return recorder.holder() == survivor.name

            await eventually(
                taken_over,
                timeout=4 * LEASE_SECONDS,
                what=f"{survivor.name} to take the Lease over",
                logs=procs,
            )
            takeover = time.monotonic() - killed_at
            # The killed pod's containers restart; its controller must come back as a follower.
            leader.start()

            expected = {
                (b["metadata"]["namespace"], b["metadata"]["name"])
                for b in blocks
                if b["spec"]["generatedCell"]["contents"] == "echo todo"
            }

            async def converged() -> bool:
                examples = emulator.objects_of("blocklearn.dev/v1alpha1/examples")
                embedded = {
                    (e["metadata"]["namespace"], e["spec"]["blockRef"]["name"])
                    for e in examples
                    if e.get("status", {}).get("embedding")
                }
                return (
                    embedded == expected
                    and await survivor.indexed(session) == expected
                    and await ready(leader)
                    and await leader.indexed(session) == expected
                    and await leader.alive(session)  # back, as a live follower
                )

            await eventually(converged, timeout=180, what="both indexes to hold every Example", logs=procs)
            searching.cancel()
            [lease] = emulator.objects_of(LEASES, "default")
    finally:
        emulator.fault = None
        await stack.astop()

    print(
        f"\nfailover: takeover {takeover:.1f} s after SIGKILL (lease {LEASE_SECONDS} s); {searches} searches"
    )
    assert not failures, failures[:5]
    assert searches > 50
    # Exactly one reconciles at a time: every request to Blocks and Examples came from the Lease's
    # holder at that moment; the leader did all the work before the kill, the survivor after it.
    strangers = [r for r in recorder.requests if r[0] != r[3]]
    assert not strangers, strangers[:5]
    writers = [r[0] for r in recorder.requests if r[1]]
    switch = writers.index(survivor.name)
    assert set(writers[:switch]) == {leader.name} and set(writers[switch:]) == {survivor.name}
    # Nothing lost, nothing duplicated.
    duplicated = {k: n for k, n in emulator.creations.items() if k.startswith("examples/") and n != 1}
    assert not duplicated, duplicated
    stored = {
        (b["metadata"]["namespace"], b["metadata"]["name"]): b
        for b in emulator.objects_of("blocklearn.dev/v1alpha1/blocks")
    }
    for key, block in stored.items():
        reasons = {c["type"]: c["reason"] for c in block.get("status", {}).get("conditions", [])}
        assert reasons.get("Learned") == ("Learned" if key in expected else "Unchanged"), (key, reasons)
    assert lease["spec"]["holderIdentity"] == survivor.name and lease["spec"]["leaseTransitions"] == 1
    assert recorder.holder() == "", "a clean stop (SIGTERM) releases the Lease"
    # Not taken early: the survivor waits for the lease duration without a renewal it saw, and
    # the last renewal was at most one retry period before the kill.
    assert takeover >= LEASE_SECONDS - RETRY_PERIOD


async def test_a_leader_that_cannot_renew_stops_and_exits_and_the_other_takes_over(
    api: Api, emulator: Emulator, stack: Stack
) -> None:
    """The API refuses the leader's Lease renewals (as when it is partitioned from it): it stops
    reconciling and exits non-zero before the Lease runs out; the other replica, waiting as a
    follower all along, then reconciles."""
    for namespace in NAMESPACES[1:]:
        await api.create_namespace(namespace)
    recorder = Recorder(emulator)
    emulator.fault = recorder
    pods = {name: Pod(name, stack).start() for name in ("pod-a", "pod-b")}
    procs = stack.children
    try:

        async def holder() -> str | None:
            return recorder.holder()

        leader = pods[await eventually(holder, timeout=60, what="a leader", logs=procs)]
        [other] = [pod for pod in pods.values() if pod is not leader]
        # The follower is up and watching the Lease before the partition: its count starts there.
        await eventually(lambda: other.alive(api.session), timeout=60, what="the follower live", logs=procs)
        code, _ = await api.call("POST", api.path("blocks"), block_body("before"))
        assert code == 201
        await eventually(lambda: _learned(api, "before"), timeout=60, what="the leader to learn", logs=procs)

        async def partitioned(request: kmock.Request) -> int | None:
            await recorder(request)
            token = request.headers.get("Authorization", "")
            leases = request.resource is not None and request.resource.plural == "leases"
            return 503 if leases and token == f"Bearer {leader.name}" else None

        emulator.fault = partitioned
        assert leader.controller is not None
        assert await leader.controller.exited(timeout=60) != 0
        assert "Lost the Lease" in leader.controller.log.read_text()
        exited_at = len(recorder.requests)
        emulator.fault = recorder
        code, _ = await api.call(
            "POST", api.path("blocks"), block_body("after", executed="kubectl get pods -w")
        )
        assert code == 201
        await eventually(lambda: _learned(api, "after"), timeout=60, what="the other to learn", logs=procs)
    finally:
        emulator.fault = None
        await stack.astop()
    assert {r[0] for r in recorder.requests[exited_at:]} == {other.name}
    assert all(r[0] == r[3] for r in recorder.requests), "only the Lease's holder touched Blocks and Examples"


async def _learned(api: Api, name: str) -> bool:
    code, block = await api.call("GET", api.path("blocks", name=name))
    conditions = block.get("status", {}).get("conditions", []) if code == 200 else []
    return any(c["type"] == "Learned" and c["status"] == "True" for c in conditions)
