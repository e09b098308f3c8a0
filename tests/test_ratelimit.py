import asyncio
import time

import pytest

from blocklearn.embed.ratelimit import TokenBucket


async def test_a_burst_of_rate_passes_then_rate_per_second() -> None:
    bucket = TokenBucket(100)
    started = time.monotonic()
    await asyncio.gather(*(bucket.acquire() for _ in range(150)))
    # 100 at once, the next 50 at 100/s: never sooner than 0.5 s (a bound load cannot break).
    assert time.monotonic() - started >= 0.45


def test_the_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
