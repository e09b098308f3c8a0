"""Retrying, one way everywhere: tenacity, with capped exponential backoff and the server's own hint.

The OpenAI client, the backfill, the index's watcher and its wait for the embedder, and the
controller's resync all retry through these pieces; each call site says what is worth retrying and
for how long, tenacity does the counting and the sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import tenacity
from tenacity import RetryCallState
from tenacity.wait import wait_base

__all__ = [
    "RetryCallState",
    "after_hint",
    "exponential",
    "interruptible_sleep",
    "root_cause",
]


def root_cause(exc: BaseException) -> str:
    """The root of a connection failure ("Connection refused"), not urllib3's chain of wrappers."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = inner or seen.__context__
    return str(exc)


def exponential(base: float, cap: float) -> wait_base:
    """base, 2·base, 4·base ... up to cap, plus up to 10% of base at random, so that many clients
    failing together do not all retry in the same instant."""
    return tenacity.wait_exponential(multiplier=base, max=cap) + tenacity.wait_random(0, base / 10)


class after_hint(wait_base):  # lower case, like tenacity's own wait strategies
    """Wait what the server asked (the failure's `retry_after`, from a Retry-After header), within
    `cap`; otherwise fall back to another strategy."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback, self.cap = fallback, cap

    def __call__(self, retry_state: RetryCallState) -> float:
        failure = retry_state.outcome.exception() if retry_state.outcome is not None else None
        hint = getattr(failure, "retry_after", None)
        if isinstance(hint, int | float) and hint >= 0:
            return float(min(self.cap, hint))
        return float(self.fallback(retry_state))


def interruptible_sleep(stop: asyncio.Event) -> Callable[[float], Awaitable[None]]:
    """An asyncio sleep that ends early when `stop` is set (tenacity then stops at its next check)."""

    async def sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    return sleep
