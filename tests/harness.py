"""The controller in this process: the emulator, the informers, the work queues and the reconcilers in
one event loop, with no kopf and no child process, and a clock the test may move.

What the reconcilers do is tested here, in milliseconds to a few seconds: the real informers list and
watch the emulator over HTTP, the real reconcilers write to it, and a test reads the emulator's objects
(or fetches them over HTTP as a client would). The index can run here too (`Harness.index`), the real
`blocklearn index` code serving search on a port of this process. tests/stack.py starts real processes
for what only processes show: a process killed, failover, kubectl, Prometheus, `blocklearn dev`.

    async def test_something(harness: Harness) -> None:
        clock = harness.manual_clock()          # optional: TTLs and ages pass when the test says
        await harness.start(block_ttl_seconds=60)
        await harness.api.call("POST", harness.api.path("blocks"), block_body("b1"))
        await harness.until(lambda: harness.blocks()["b1"].get("status"), "b1 decided")
        clock.advance(61)
        await harness.until(lambda: "b1" not in harness.blocks(), "b1 expired")
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import REGISTRY

from blocklearn import BLOCKS, EXAMPLES
from blocklearn.controller.reconcilers import Reconcilers
from blocklearn.controller.run import Controller
from blocklearn.devtools.emulator.api import Emulator
from blocklearn.embed import Embedder
from blocklearn.embed.factory import build_embedder
from blocklearn.embed.openai import OpenAIEmbedder
from blocklearn.index import run as index_run
from blocklearn.runtime.clock import SYSTEM_CLOCK, Clock
from blocklearn.runtime.objects import version_of
from blocklearn.runtime.rest import Rest
from blocklearn.settings import Settings
from tests.conftest import Api, kubeconfig_for
from tests.processes import eventually, free_port

T = TypeVar("T")
BLOCKS_KEY, EXAMPLES_KEY = f"blocklearn.dev/v1alpha1/{BLOCKS}", f"blocklearn.dev/v1alpha1/{EXAMPLES}"
# kubectl's Accept header for `kubectl get`: the server's Table, with the CRD's printer columns.
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
# What a test's controller runs with unless it says otherwise: no resync of its own (a test runs a
# pass with `Harness.resync`, so that "after two resyncs" is two passes, not a wait), short retries.
DEFAULTS: dict[str, Any] = {
    "embedder": "hashing",
    "hashing_dim": 64,
    "resync_seconds": 3600,
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.5,
}


@dataclass(order=True)
class _Timer:
    when: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """The wall clock of a test: it stands still until the test moves it, and the timers it passes
    fire then, in order. It starts at a whole second, as the API's times have a resolution of one."""

    def __init__(self, start: float | None = None) -> None:
        self.now = float(math.floor(time.time() if start is None else start))
        self._timers: list[_Timer] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(when, next(self._order), callback)
        if when <= self.now:
            asyncio.get_running_loop().call_soon(self._fire, timer)
        else:
            heapq.heappush(self._timers, timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move the clock on by `seconds`; the timers due by then fire now."""
        self.now += seconds
        while self._timers and self._timers[0].when <= self.now:
            self._fire(heapq.heappop(self._timers))

    def waiting(self) -> list[float]:
        """The moments timers wait for (a test can tell that an expiry is scheduled, and when)."""
        return sorted(t.when for t in self._timers if not t.cancelled)

    @staticmethod
    def _fire(timer: _Timer) -> None:
        if not timer.cancelled:
            timer.callback()


@dataclass
class Index:
    """The index sidecar's code (`blocklearn index`), run in this process on a port of its own."""

    url: str
    api: Api
    task: asyncio.Task[None]
    stop: asyncio.Event

    async def search(self, query: str, k: int = 3, namespace: str = "default") -> list[dict[str, Any]]:
        body = {"query": query, "k": k, "namespace": namespace}
        code, answer = await self.api.call("POST", f"{self.url}/v1/search", body)
        assert code == 200, answer
        return list(answer["results"])

    async def size(self) -> int | None:
        """How many Examples it holds once ready; None before."""
        code, answer = await self.api.call("GET", f"{self.url}/readyz")
        return int(answer["indexSize"]) if code == 200 else None


class Harness:
    """Controllers (informers, work queues, reconcilers, resync) and indexes against the emulator, in
    this event loop; everything it started stops with the test."""

    def __init__(
        self, emulator: Emulator, api: Api, directory: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.emulator, self.api, self.directory, self.monkeypatch = emulator, api, directory, monkeypatch
        self.kubeconfig = kubeconfig_for(emulator, directory)
        self.clock: Clock = SYSTEM_CLOCK
        self.controllers: list[Controller] = []
        self.indexes: list[Index] = []
        self._rests: list[Rest] = []
        self._embedders: list[Embedder] = []

    def manual_clock(self) -> ManualClock:
        """From now on the reconcilers and the emulator's timestamps read a clock that moves only
        when the test moves it: a TTL passes without waiting for it, and never before it."""
        clock = ManualClock()
        self.clock = clock
        self.emulator.clock = clock.time
        return clock

    def settings(self, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The harness's defaults, then `env` as a process would read it (`BLOCKLEARN_X` is the setting
        `x`; other variables, an API key, go into the environment until the test ends), then
        `overrides`."""
        from_env: dict[str, Any] = {}
        for name, value in (env or {}).items():
            if name.startswith("BLOCKLEARN_"):
                from_env[name.removeprefix("BLOCKLEARN_").lower()] = value
            else:
                self.monkeypatch.setenv(name, value)
        return Settings(**{**DEFAULTS, **from_env, **overrides})

    def rest(self) -> Rest:
        rest = Rest.from_kubeconfig(str(self.kubeconfig))
        self._rests.append(rest)
        return rest

    def reconcilers(self, embedder: Embedder | None = None, **settings: Any) -> Reconcilers:
        """Reconcilers with an empty cache and no informer, for a test that fills the cache and runs
        `reconcile_block`/`reconcile_example` itself (a stale cache, a crash between two writes)."""
        config = self.settings(**settings)
        if embedder is None:
            embedder = build_embedder(config)
            self._embedders.append(embedder)
        return Reconcilers(config, self.rest(), embedder, self.clock)

    async def listed(self, **settings: Any) -> Reconcilers:
        """Reconcilers as a restarted controller has them: the cache listed from the API."""
        reconcilers = self.reconcilers(**settings)
        for plural, store in ((BLOCKS, reconcilers.blocks), (EXAMPLES, reconcilers.examples)):
            _, listed = await self.api.call("GET", f"{self.api.base}/apis/blocklearn.dev/v1alpha1/{plural}")
            for item in listed["items"]:
                store.put(item)
        return reconcilers

    async def start(self, embedder: Embedder | None = None, **settings: Any) -> Controller:
        """A controller as `blocklearn controller` runs it once it leads: informers synced, then the
        work queues and the resync loop."""
        reconcilers = self.reconcilers(embedder, **settings)
        controller = Controller(reconcilers.settings, reconcilers.rest, reconcilers)
        await controller.start()
        self.controllers.append(controller)
        return controller

    async def stop(self, controller: Controller) -> None:
        """Stop a controller and wait until nothing of it runs (a restart starts a fresh one)."""
        controller.stop()
        await controller.join()
        await controller.reconcilers.rest.close()
        if controller in self.controllers:
            self.controllers.remove(controller)

    @property
    def reconciler(self) -> Reconcilers:
        """The reconcilers of the controller started last."""
        return self.controllers[-1].reconcilers

    async def resync(self) -> None:
        """One resync pass of the running controller, to its end."""
        await self.reconciler.resync()

    async def index(self, **settings: Any) -> Index:
        """The index sidecar's `run`, in this process; ready (it has listed) when this returns."""
        port, stop = free_port(), asyncio.Event()
        # It reads KUBECONFIG, as the process does: the fixture points it at the emulator.
        assert os.environ.get("KUBECONFIG") == str(self.kubeconfig)
        task = asyncio.create_task(index_run.run(self.settings(**settings), "127.0.0.1", port, stop))
        index = Index(f"http://127.0.0.1:{port}", self.api, task, stop)
        self.indexes.append(index)

        async def ready() -> bool:
            if task.done():
                task.result()  # it failed: say why
            try:
                return await index.size() is not None
            except OSError:
                return False  # not listening yet

        await eventually(ready, what="the index ready")
        return index

    # -- what the emulator holds ---------------------------------------------------------------------

    def blocks(self, namespace: str | None = "default") -> dict[str, dict[str, Any]]:
        return {b["metadata"]["name"]: b for b in self.emulator.objects_of(BLOCKS_KEY, namespace)}

    def examples(self, namespace: str | None = "default") -> dict[str, dict[str, Any]]:
        return {e["metadata"]["name"]: e for e in self.emulator.objects_of(EXAMPLES_KEY, namespace)}

    async def table(self, plural: str, namespace: str = "default") -> tuple[list[str], list[list[Any]]]:
        """What `kubectl get <plural>` prints, as the API server renders it for kubectl: the names of
        the columns shown without `-o wide` (priority 0), and each row's cells in them."""
        code, table = await self.api.call("GET", self.api.path(plural, namespace), headers={"Accept": TABLE})
        assert code == 200, table
        shown = [i for i, c in enumerate(table["columnDefinitions"]) if c.get("priority", 0) == 0]
        names = [table["columnDefinitions"][i]["name"] for i in shown]
        return names, [[row["cells"][i] for i in shown] for row in table["rows"]]

    # -- waiting -------------------------------------------------------------------------------------

    async def until(
        self, check: Callable[[], T | Awaitable[T | None] | None], what: str, timeout: float = 60
    ) -> T:
        """Poll `check` (plain or async) until it returns something truthy, and return that."""

        async def poll() -> T | None:
            result = check()
            return await result if inspect.isawaitable(result) else result

        return await eventually(poll, timeout=timeout, what=what)

    async def settled(self, timeout: float = 60) -> None:
        """Wait until nothing moves: every running controller's cache holds what the emulator holds,
        its queues are empty, and no write happened meanwhile. Then what is not there will not come
        by itself (short of a timer or a retry), so a test may assert an absence."""

        async def quiet() -> bool:
            before = self.emulator.revision
            await self.emulator.settled()
            for controller in self.controllers:
                r = controller.reconcilers
                for queue in (r.block_queue, r.example_queue, r.namespace_queue):
                    await queue.drained()
                if not (_cached(r, BLOCKS, self.emulator) and _cached(r, EXAMPLES, self.emulator)):
                    return False
            await asyncio.sleep(0.05)  # one more round of the loop for a write in flight
            return self.emulator.revision == before

        await eventually(quiet, timeout=timeout, what="the controllers to settle")

    async def close(self) -> None:
        for controller in list(self.controllers):
            await self.stop(controller)
        for index in self.indexes:
            index.stop.set()
        await asyncio.gather(*(i.task for i in self.indexes), return_exceptions=True)
        for rest in self._rests:
            await rest.close()
        for embedder in self._embedders:
            if isinstance(embedder, OpenAIEmbedder):
                await embedder.close()


def sample(name: str, **labels: str) -> float:
    """A metric of this process (the controller's and the index's here), as /metrics shows it."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _cached(reconcilers: Reconcilers, plural: str, emulator: Emulator) -> bool:
    """Whether the controller's cache holds every object of `plural` at the emulator's version."""
    store = reconcilers.blocks if plural == BLOCKS else reconcilers.examples
    stored = emulator.objects_of(BLOCKS_KEY if plural == BLOCKS else EXAMPLES_KEY)
    held = {(o["metadata"]["namespace"], o["metadata"]["name"]): version_of(o) for o in stored}
    return held == {key: store.version(key) for key in store.all_keys()}
