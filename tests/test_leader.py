"""Leader election on a Lease, against the emulator's real Lease endpoint (no mocks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest
from prometheus_client import REGISTRY

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.runtime.leader import LeaderElector, LeaseClient, LeaseConfig, while_leading
from blocklearn.runtime.rest import Rest
from tests.conftest import Api, kubeconfig_for

LEASES = "coordination.k8s.io/v1/leases"


class Clock:
    """A monotonic clock the test moves: the lease duration passes without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def leases(emulator: Emulator, tmp_path: Path) -> AsyncIterator[LeaseClient]:
    rest = Rest.from_kubeconfig(str(kubeconfig_for(emulator, tmp_path)))
    yield LeaseClient(rest)
    await rest.close()


def elector(
    leases: LeaseClient, identity: str, clock: Callable[[], float] | None = None, **timing: float
) -> LeaderElector:
    config = LeaseConfig(namespace="default", name="blocklearn-controller", identity=identity, **timing)
    return LeaderElector(config, leases, clock or time.monotonic)


def holder(emulator: Emulator) -> Any:
    [lease] = emulator.objects_of(LEASES, "default")
    return lease["spec"]["holderIdentity"]


async def test_the_first_candidate_creates_the_lease_and_the_second_waits(
    emulator: Emulator, leases: LeaseClient
) -> None:
    a, b = elector(leases, "a"), elector(leases, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    [first] = emulator.objects_of(LEASES, "default")
    assert await a.try_acquire_or_renew()  # a renewal
    assert holder(emulator) == "a"
    [lease] = emulator.objects_of(LEASES, "default")
    assert lease["spec"]["leaseDurationSeconds"] == 15 and lease["spec"]["leaseTransitions"] == 0
    # A renewal moves the renew time on and keeps the acquire time.
    assert lease["spec"]["acquireTime"] == first["spec"]["acquireTime"]
    assert lease["spec"]["renewTime"] > first["spec"]["renewTime"]


async def test_concurrent_candidates_elect_exactly_one(emulator: Emulator, leases: LeaseClient) -> None:
    candidates = [elector(leases, f"c{i}") for i in range(6)]
    won = await asyncio.gather(*(c.try_acquire_or_renew() for c in candidates))
    assert sum(won) == 1
    assert holder(emulator) == f"c{won.index(True)}"


async def test_a_lease_not_renewed_for_its_duration_is_taken_over(
    emulator: Emulator, leases: LeaseClient
) -> None:
    clock = Clock()
    a, b = elector(leases, "a"), elector(leases, "b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # b starts counting from when it first saw the record
    clock.now += 14.9
    assert not await b.try_acquire_or_renew()
    clock.now += 0.2
    assert await b.try_acquire_or_renew()
    assert holder(emulator) == "b"
    [lease] = emulator.objects_of(LEASES, "default")
    assert lease["spec"]["leaseTransitions"] == 1


async def test_a_renewal_resets_the_followers_count(emulator: Emulator, leases: LeaseClient) -> None:
    clock = Clock()
    a, b = elector(leases, "a"), elector(leases, "b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock.now += 10
    assert await a.try_acquire_or_renew()  # the record changes: the holder is alive
    assert not await b.try_acquire_or_renew()
    clock.now += 10  # 20 s since b first saw it, 10 s since it last changed
    assert not await b.try_acquire_or_renew()
    assert holder(emulator) == "a"


async def test_a_released_lease_is_taken_at_once(emulator: Emulator, leases: LeaseClient) -> None:
    a, b = elector(leases, "a"), elector(leases, "b")
    assert await a.acquire(asyncio.Event())
    assert REGISTRY.get_sample_value("blocklearn_leader_election_status") == 1
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert holder(emulator) == ""
    assert REGISTRY.get_sample_value("blocklearn_leader_election_status") == 0
    assert await b.try_acquire_or_renew()
    assert holder(emulator) == "b"


async def test_a_stale_write_is_refused(emulator: Emulator, api: Api, leases: LeaseClient) -> None:
    a = elector(leases, "a")
    assert await a.try_acquire_or_renew()
    [lease] = emulator.objects_of(LEASES, "default")
    url = f"{api.base}/apis/coordination.k8s.io/v1/namespaces/default/leases/blocklearn-controller"
    assert await a.try_acquire_or_renew()  # moves the resourceVersion on
    status, body = await api.call("PUT", url, lease)
    assert status == 409 and body["reason"] == "Conflict"


async def refuse_leases(request: kmock.Request) -> int | None:
    """An API server that answers 500 to every Lease request, as one that lost etcd would."""
    return 500 if request.resource is not None and request.resource.plural == "leases" else None


async def test_the_leader_stops_its_work_when_it_cannot_renew(
    emulator: Emulator, leases: LeaseClient
) -> None:
    a = elector(leases, "a", lease_duration=3, renew_deadline=1.5, retry_period=0.3)
    seen: list[str] = []

    async def work(stop: asyncio.Event) -> None:
        seen.append("started")
        emulator.fault = refuse_leases
        await stop.wait()
        seen.append("stopped")

    lost = await asyncio.wait_for(while_leading(a, work), timeout=60)
    assert lost and seen == ["started", "stopped"] and not a.leading


async def test_a_clean_stop_releases_the_lease(emulator: Emulator, leases: LeaseClient) -> None:
    a = elector(leases, "a", lease_duration=3, renew_deadline=1.5, retry_period=0.3)
    stop = asyncio.Event()

    async def work(flag: asyncio.Event) -> None:
        assert holder(emulator) == "a"
        stop.set()
        await flag.wait()

    assert not await asyncio.wait_for(while_leading(a, work, stop), timeout=60)
    assert holder(emulator) == ""


async def test_a_follower_stopped_while_waiting_never_leads(emulator: Emulator, leases: LeaseClient) -> None:
    clock = Clock()  # b's: the lease never seems to expire, whatever the machine's load
    a, b = (
        elector(leases, "a"),
        elector(leases, "b", clock, retry_period=0.2, renew_deadline=1, lease_duration=2),
    )
    assert await a.acquire(asyncio.Event())
    stop = asyncio.Event()

    async def work(_: asyncio.Event) -> None:
        raise AssertionError("a follower ran the leader's work")

    following = asyncio.create_task(while_leading(b, work, stop))
    await asyncio.sleep(0.5)  # b polls a few times
    stop.set()
    assert not await asyncio.wait_for(following, timeout=30)
    assert holder(emulator) == "a"
