"""A token bucket for asyncio: bounds how fast Examples are re-embedded after a model switch.

Every stored Example is stale when the configured model changes; re-embedding them all at once would
send a write per Example to the API server (and etcd) as fast as the embedder goes. The bucket lets a
burst of `rate` through and then `rate` per second; waiters are served in turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = asyncio.Lock()  # one waiter refills and sleeps at a time: first come, first served

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1
