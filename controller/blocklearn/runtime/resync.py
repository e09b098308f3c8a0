"""The periodic resync, as controller-runtime's SyncPeriod: heal drift no event reported.

Each pass lists Blocks and Examples once, in pages, into the informers' cache (what the list shows
replaces what the cache held, as a relist does), then queues every Block and Example. The first pass,
at start, takes the informers' own first lists. The
reconcilers compare desired and current state in memory and write only differences: a pass over a
converged cluster reads two lists and writes nothing, with no request per object.

Not a kopf timer: timers put a finalizer on every object, and then no Block or Example can be
deleted while the controller is not running (kopf #1305, #833). The loop survives every exception
with backoff; if it stops anyway, the liveness probe fails and the kubelet restarts the process.
"""

from __future__ import annotations

import asyncio
import logging
import time

import tenacity

from blocklearn import metrics
from blocklearn.controller.reconcilers import Reconcilers
from blocklearn.runtime import retry
from blocklearn.runtime.informer import Informer

log = logging.getLogger("blocklearn.resync")


class Resync:
    def __init__(self, reconcilers: Reconcilers, informers: list[Informer], interval: float) -> None:
        self.reconcilers, self.informers, self.interval = reconcilers, informers, interval
        self.last_pass = time.monotonic()  # the start counts: the liveness clock runs from here
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def alive(self) -> bool:
        """False once the loop has ended, or when no pass has ended for three intervals (plus slack
        for a long pass): the liveness probe then fails."""
        running = self._task is not None and not self._task.done()
        return running and time.monotonic() - self.last_pass < 3 * self.interval + 600

    async def run_forever(self) -> None:
        def failed(state: retry.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            log.error("Resync failed; retrying: attempt=%d error=%r", state.attempt_number, exc)

        relist = False  # the first pass reconciles what the informers have just listed
        while True:
            # Whatever fails (a list, a bug), the pass is tried again with backoff, never abandoned.
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception_type(Exception),
                wait=retry.exponential(1.0, self.interval),
                before_sleep=failed,
            ):
                with attempt:
                    await self.run_once(relist=relist)
            relist = True
            await asyncio.sleep(self.interval)

    async def run_once(self, relist: bool = True) -> None:
        """One pass: relist everything into the cache, then queue every object for a reconcile."""
        started, cpu = time.monotonic(), time.process_time()
        for informer in self.informers if relist else []:
            for scope in informer.scopes:
                await informer.relist(scope)
        r = self.reconcilers
        for key in r.blocks.all_keys():
            r.block_queue.add(key)
        for key in r.examples.all_keys():
            r.example_queue.add(key)
        try:  # the pass ends when its work is done, or after an interval under a steady stream
            async with asyncio.timeout(self.interval):
                await r.block_queue.drained()
                await r.example_queue.drained()
        except TimeoutError:
            log.info("Resync pass still has work queued after an interval; ending it")
        model, vectors = r.embedder.model, r.stores_vectors
        current = sum(1 for _, ex in r.examples.items() if _is_current(ex, model, vectors))
        metrics.examples_current.set(current)
        metrics.resync_passes_total.inc()
        metrics.resync_duration_seconds.set(time.monotonic() - started)
        metrics.resync_last_success_timestamp_seconds.set(time.time())
        self.last_pass = time.monotonic()
        log.info(
            "Resynced: relisted=%s blocks=%d examples=%d current=%d seconds=%.1f cpu_seconds=%.1f",
            relist,
            len(r.blocks),
            len(r.examples),
            current,
            time.monotonic() - started,
            time.process_time() - cpu,
        )


def _is_current(example: dict[str, object], model: str, stores_vectors: bool) -> bool:
    """Embedded by this model: with its vector, or, for `hashing`, which stores none, with its name."""
    status = example.get("status")
    if not isinstance(status, dict) or status.get("embeddingModel") != model:
        return False
    return bool(status.get("embedding")) or not stores_vectors
