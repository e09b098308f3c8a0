"""The wall clock the reconcilers read and wait on: the system's in production, one a test moves.

A Block's expiry and an Example's maximum age are moments of the wall clock (times the API writes,
RFC 3339), so what reads them and what waits for them take the same clock. A test gives its own
(tests/harness.py `ManualClock`) and a day's TTL passes without waiting a second. Retries after a
failure wait real time: they are about the load on the API, not about the objects' times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Call `callback` in the running event loop once `time()` has reached `when`."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback)


SYSTEM_CLOCK: Clock = SystemClock()
