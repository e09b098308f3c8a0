"""The periodic resync, as client-go's resync period: replay the cache, never read the API.

Every `interval` the loop runs `replay` (the controller queues what it must look at again from its
informers' cache); the informers themselves relist on 410 Gone, on a watch that keeps failing, and
hourly as a safety net. A pass over a converged cluster reads nothing and writes nothing.

Not a kopf timer: timers put a finalizer on every object, and then nothing can be deleted while the
controller is not running (kopf #1305, #833). The loop survives every exception with backoff; if it
stops anyway, the liveness probe fails and the kubelet restarts the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import tenacity

from blocklearn.runtime import retry

log = logging.getLogger("blocklearn.resync")


class Resync:
    def __init__(self, replay: Callable[[], Awaitable[None]], interval: float) -> None:
        self.replay, self.interval = replay, interval
        self.last_pass = time.monotonic()  # the start counts: the liveness clock runs from here
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def join(self) -> None:
        """Wait until the loop has ended (after `stop`)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def alive(self) -> bool:
        """False once the loop has ended, or when no pass has ended for three intervals (plus slack
        for a long pass): the liveness probe then fails."""
        running = self._task is not None and not self._task.done()
        return running and time.monotonic() - self.last_pass < 3 * self.interval + 600

    async def run_forever(self) -> None:
        def failed(state: retry.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            log.error("Resync failed; retrying: attempt=%d error=%r", state.attempt_number, exc)

        while True:
            # Whatever fails (a bug), the pass is tried again with backoff, never abandoned.
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception_type(Exception),
                wait=retry.exponential(1.0, self.interval),
                before_sleep=failed,
            ):
                with attempt:
                    await self.replay()
            self.last_pass = time.monotonic()
            await asyncio.sleep(self.interval)
