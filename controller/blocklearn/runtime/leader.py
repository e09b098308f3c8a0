"""Leader election on a coordination.k8s.io Lease, as client-go's `leaderelection` does it.

Two controller replicas are safe because only the holder of the Lease reconciles. The rules are
client-go's (lease 15 s, renew deadline 10 s, retry 2 s):

- a candidate reads the Lease every retry period; it may take it over only when the holder is
  empty (released) or the record has not changed, *by the candidate's own clock*, for the lease
  duration, so clock skew between replicas cannot make two leaders;
- every write carries the resourceVersion it read, so two candidates that race get one 409;
- the leader renews every retry period; when no renewal has succeeded for the renew deadline
  (shorter than the lease duration), it gives up leadership before anyone may take it over;
- on a clean stop the leader releases the Lease (empty holder), so a rolling update hands over at
  once instead of after the lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from blocklearn import metrics
from blocklearn.runtime.objects import Obj, now_rfc3339, parse_rfc3339, resource_path
from blocklearn.runtime.rest import ApiError, Rest
from blocklearn.settings import Settings

log = logging.getLogger("blocklearn.leader")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LEASES = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        # client-go's own checks: a leader must give up before anyone may take over.
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError("need lease duration > renew deadline > retry period > 0")


def lease_config(settings: Settings) -> LeaseConfig:
    return LeaseConfig(
        namespace=settings.leader_election_namespace or default_namespace(),
        name=settings.leader_election_name,
        identity=settings.leader_election_identity or default_identity(),
        lease_duration=settings.lease_duration_seconds,
        renew_deadline=settings.renew_deadline_seconds,
        retry_period=settings.retry_period_seconds,
    )


def default_identity() -> str:
    """controller-runtime's: the host name (the pod's name) and a random suffix."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_namespace() -> str:
    """The pod's own namespace when in a cluster, else `default`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class LeaseClient:
    """The three Lease calls, each bounded by `timeout` (JSON in, JSON out)."""

    def __init__(self, rest: Rest) -> None:
        self.rest = rest

    async def get(self, namespace: str, name: str, timeout: float) -> Obj | None:
        try:
            return await self.rest.request(
                "GET", resource_path(LEASES, "leases", namespace, name), timeout=timeout
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, namespace: str, body: Obj, timeout: float) -> Obj:
        lease = {"apiVersion": LEASES, "kind": "Lease", **body}
        return await self.rest.request(
            "POST", resource_path(LEASES, "leases", namespace), lease, timeout=timeout
        )

    async def replace(self, namespace: str, name: str, body: Obj, timeout: float) -> Obj:
        lease = {"apiVersion": LEASES, "kind": "Lease", **body}
        path = resource_path(LEASES, "leases", namespace, name)
        return await self.rest.request("PUT", path, lease, timeout=timeout)


class LeaderElector:
    """Acquires, renews and releases one Lease; `leading` says whether this process may reconcile."""

    def __init__(
        self, config: LeaseConfig, leases: LeaseClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config, self.leases, self.clock = config, leases, clock
        self.leading = False
        self._observed_spec: Obj | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0

    async def try_acquire_or_renew(self) -> bool:
        """One attempt, client-go's tryAcquireOrRenew; any API error is a failed attempt."""
        cfg = self.config
        timeout = cfg.retry_period
        now_wall = time.time()
        try:
            current = await self.leases.get(cfg.namespace, cfg.name, timeout)
            if current is None:
                spec = self._spec(now_wall, acquire=now_wall, transitions=0)
                body = {"metadata": {"name": cfg.name, "namespace": cfg.namespace}, "spec": spec}
                created = await self.leases.create(cfg.namespace, body, timeout)
                self._observe(created["spec"])
                return True
            spec = current.get("spec") or {}
            if spec != self._observed_spec:
                self._observe(spec)  # the record changed: its holder is alive (or it was released)
            holder = spec.get("holderIdentity") or ""
            expires = self._observed_at + float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
            if holder and holder != cfg.identity and self.clock() < expires:
                return False
            ours = holder == cfg.identity
            transitions = int(spec.get("leaseTransitions") or 0)
            acquired = parse_rfc3339(spec.get("acquireTime")) if ours else None
            spec = self._spec(
                now_wall,
                acquire=acquired.timestamp() if acquired else now_wall,
                transitions=transitions if ours else transitions + 1,
            )
            body = {"metadata": current["metadata"], "spec": spec}
            replaced = await self.leases.replace(cfg.namespace, cfg.name, body, timeout)
            self._observe(replaced["spec"])
            if not ours:
                log.info(
                    "Acquired Lease: namespace=%s name=%s identity=%s", cfg.namespace, cfg.name, cfg.identity
                )
            return True
        except ApiError as exc:
            # 409: another candidate wrote first; anything else: try again after the retry period.
            log.debug("Lease attempt failed: status=%s reason=%s", exc.status, exc.reason)
            return False
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:  # the API server is unreachable
            log.debug("Lease attempt failed: %s", exc)
            return False
        except Exception:  # a bug here must not pass for a network error
            log.warning("Lease attempt failed", exc_info=True)
            return False

    def _observe(self, spec: Obj) -> None:
        self._observed_spec, self._observed_at = spec, self.clock()

    def _spec(self, now_wall: float, acquire: float, transitions: int) -> Obj:
        return {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": int(self.config.lease_duration),
            "acquireTime": now_rfc3339(acquire, micro=True),
            "renewTime": now_rfc3339(now_wall, micro=True),
            "leaseTransitions": transitions,
        }

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Return True once this process holds the Lease (tries every retry period), False on stop.

        An attempt in flight is never cancelled: its write may succeed, and then the Lease must be
        released by the caller rather than left held by a process that has gone.
        """
        cfg = self.config
        log.info(
            "Waiting for the Lease: namespace=%s name=%s identity=%s", cfg.namespace, cfg.name, cfg.identity
        )
        while not await self.try_acquire_or_renew():
            try:
                await asyncio.wait_for(stop.wait(), timeout=cfg.retry_period)
                return False
            except TimeoutError:
                continue
        self._last_renew = self.clock()
        self.leading = True
        metrics.leader.set(1)
        return True

    async def hold(self) -> None:
        """Renew every retry period; return (leadership lost) when no renewal succeeded for the deadline."""
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.retry_period)
            # An attempt that outlives the deadline (a GET and a PUT, each up to the retry period)
            # would keep this process leading after it should have given up: bound it by what is left.
            left = cfg.renew_deadline - (self.clock() - self._last_renew)
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    renewed = await self.try_acquire_or_renew()
            except TimeoutError:
                renewed = False
            if renewed:
                self._last_renew = self.clock()
            elif self.clock() - self._last_renew >= cfg.renew_deadline:
                break
        self.leading = False
        metrics.leader.set(0)
        log.error("Lost the Lease: namespace=%s name=%s identity=%s", cfg.namespace, cfg.name, cfg.identity)

    async def release(self) -> None:
        """Hand the Lease back (empty holder, 1 s duration), so a successor need not wait it out."""
        if not self.leading:
            return
        self.leading = False
        metrics.leader.set(0)
        cfg = self.config
        try:
            current = await self.leases.get(cfg.namespace, cfg.name, cfg.retry_period)
            if current is None or (current.get("spec") or {}).get("holderIdentity") != cfg.identity:
                return
            now = now_rfc3339(micro=True)
            spec = {**current["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
            spec |= {"acquireTime": now, "renewTime": now}
            await self.leases.replace(
                cfg.namespace, cfg.name, {"metadata": current["metadata"], "spec": spec}, cfg.retry_period
            )
            log.info(
                "Released Lease: namespace=%s name=%s identity=%s", cfg.namespace, cfg.name, cfg.identity
            )
        except Exception as exc:  # best effort: the Lease expires by itself
            log.warning("Could not release the Lease: %s", exc)


async def while_leading(
    elector: LeaderElector,
    work: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event | None = None,
) -> bool:
    """Wait for the Lease, then run `work(stop_flag)`; set its flag the moment the Lease is lost.

    Returns True when leadership was lost (the caller exits, as controller-runtime does, and its
    replacement starts as a follower), False after a clean stop (the Lease is released).
    """
    stop = stop or asyncio.Event()
    with _stop_on_signals(stop):
        return await _while_leading(elector, work, stop)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` until kopf installs its own handlers: a follower stops cleanly,
    and a leader stopped before kopf started still releases the Lease."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (ValueError, RuntimeError, NotImplementedError):
            pass  # not the main thread: the caller handles signals
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _while_leading(
    elector: LeaderElector,
    work: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
) -> bool:
    if not await elector.acquire(stop):
        return False
    if stop.is_set():  # stopped while the winning attempt was in flight
        await elector.release()
        return False
    work_stop = asyncio.Event()
    holding = asyncio.create_task(elector.hold())
    holding.add_done_callback(lambda _: work_stop.set())
    relay = asyncio.create_task(stop.wait())
    relay.add_done_callback(lambda _: work_stop.set())
    try:
        await work(work_stop)
    finally:
        lost = holding.done() and not holding.cancelled()
        holding.cancel()
        relay.cancel()
        if not lost:
            await elector.release()
    return lost
