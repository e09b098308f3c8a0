"""The work queue: each key once, never by two workers at once, failures back after a backoff."""

from __future__ import annotations

import asyncio

from blocklearn.runtime.workqueue import Requeue, WorkQueue
from tests.harness import ManualClock


async def test_a_key_is_queued_once_and_processed_again_if_it_changed_meanwhile() -> None:
    queue: WorkQueue[str] = WorkQueue("test", base=0.01, cap=0.05)
    seen: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def worker(key: str) -> None:
        seen.append(key)
        if len(seen) == 1:
            started.set()
            await release.wait()

    queue.add("a")
    queue.add("a")  # already queued: once
    runner = asyncio.create_task(queue.run(worker, 4))
    await started.wait()
    queue.add("a")  # while it is processed: again after, never concurrently
    assert seen == ["a"]
    release.set()
    await queue.drained()
    assert seen == ["a", "a"]
    runner.cancel()


async def test_failures_come_back_with_a_growing_backoff_that_success_resets() -> None:
    queue: WorkQueue[str] = WorkQueue("test", base=0.01, cap=0.04)
    attempts = 0
    succeeded = asyncio.Event()

    async def worker(key: str) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise Requeue("not yet")
        succeeded.set()

    queue.add("k")
    runner = asyncio.create_task(queue.run(worker, 1))
    await succeeded.wait()
    assert queue.backoff("k") == 0.01  # reset by the success
    assert [queue.backoff("x") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    runner.cancel()


async def test_an_unexpected_exception_never_stops_a_worker() -> None:
    queue: WorkQueue[str] = WorkQueue("test", base=0.01, cap=0.01)
    done: list[str] = []
    both = asyncio.Event()

    async def worker(key: str) -> None:
        if key == "bad" and "bad" not in done:
            done.append("bad")
            raise KeyError("a bug")
        done.append(key)
        if done.count("bad") == 2 and "good" in done:
            both.set()

    runner = asyncio.create_task(queue.run(worker, 1))
    queue.add("bad")
    queue.add("good")
    await both.wait()  # the failing key came back, and the worker went on with the other
    runner.cancel()


async def test_the_resync_is_not_alive_once_its_loop_has_ended() -> None:
    """The liveness probe asks this: a resync loop that ended (whatever ended it) fails it."""
    from blocklearn.runtime.resync import Resync

    passes: list[int] = []

    async def replay() -> None:
        passes.append(1)

    resync = Resync(replay, interval=3600)
    assert not resync.alive()  # not started
    resync.start()
    await asyncio.sleep(0.05)  # its first pass ran at once; now it sleeps an interval
    assert resync.alive() and passes == [1]
    resync.stop()
    await asyncio.sleep(0)
    assert not resync.alive()


async def test_the_resync_survives_a_failing_pass() -> None:
    """Whatever a pass raises (a bug, garbage from the server), the loop tries again with backoff."""
    from blocklearn.runtime.resync import Resync

    attempts: list[int] = []
    done = asyncio.Event()

    async def replay() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("not JSON")
        done.set()

    resync = Resync(replay, interval=0.05)
    resync.start()
    await asyncio.wait_for(done.wait(), timeout=30)
    assert resync.alive() and len(attempts) == 2
    resync.stop()


async def test_a_key_waits_out_a_delay_once_at_the_earliest_time_asked() -> None:
    """A backoff asked for while another waits: one timer per key, the earliest kept."""
    queue: WorkQueue[str] = WorkQueue("test")
    queue.add_after("k", 3600)
    queue.add_after("k", 3600)  # the same moment again: nothing more waits
    queue.add_after("k", 7200)  # later than what waits: it comes back sooner anyway
    assert len(queue._later) == 1 and len(queue) == 0
    queue.add_after("k", 0.01)  # sooner: replaces the hour
    await asyncio.sleep(0.05)
    assert len(queue) == 1 and not queue._later


async def test_a_key_waits_for_a_moment_of_its_clock_once_at_the_earliest_moment_asked() -> None:
    """A Block's expiry is a moment of the wall clock, asked for again at every resync: one timer
    per key, the earliest kept, fired when the clock (here a test's) reaches it."""
    clock = ManualClock()
    queue: WorkQueue[str] = WorkQueue("test", clock=clock)
    queue.add_at("k", clock.time() + 3600)
    queue.add_at("k", clock.time() + 3600)  # the same moment again: nothing more waits
    queue.add_at("k", clock.time() + 7200)  # later than what waits: it comes back sooner anyway
    assert clock.waiting() == [clock.time() + 3600] and len(queue) == 0
    queue.add_at("k", clock.time() + 60)  # sooner: replaces the hour
    assert clock.waiting() == [clock.time() + 60]
    clock.advance(59.9)
    assert len(queue) == 0
    clock.advance(0.1)
    assert len(queue) == 1 and not queue._at and not clock.waiting()
    queue.add_at("j", clock.time() - 1)  # already past: at once
    await asyncio.sleep(0)
    assert len(queue) == 2


async def test_moments_wait_in_one_heap_under_one_timer_for_the_earliest() -> None:
    """Every decided Block waits for its expiry: many keys share one timer, an earlier moment
    replaces a later one, and a key queued at its moment can wait again."""
    clock = ManualClock()
    queue: WorkQueue[str] = WorkQueue("test", clock=clock)
    start = clock.time()
    for i in range(100):
        queue.add_at(f"k{i}", start + 100 + i)
    assert clock.waiting() == [start + 100]  # one timer, for the earliest
    queue.add_at("k50", start + 10)  # earlier: replaces its later moment, and the timer
    assert clock.waiting() == [start + 10]
    queue.add_at("k0", start + 500)  # later than what it waits for: nothing changes
    clock.advance(10)
    assert len(queue) == 1 and "k50" not in queue._at
    assert clock.waiting() == [start + 100]
    clock.advance(140)  # its replaced moment (start + 150) queues nothing more
    assert len(queue) == 1 + 50 and len(queue._at) == 49
    assert clock.waiting() == [start + 151]
    queue.add_at("k0", start + 160)  # queued at its moment, it may wait again
    clock.advance(10)
    assert len(queue) == 51 + 10  # k51..k60 came; k0 is still queued once
    assert "k0" not in queue._at and clock.waiting() == [start + 161]
    clock.advance(100)
    assert not queue._at and not queue._moments and not clock.waiting()


async def test_a_key_waits_again_after_its_moment_was_processed() -> None:
    clock = ManualClock()
    queue: WorkQueue[str] = WorkQueue("test", clock=clock)
    seen: list[str] = []

    async def worker(key: str) -> None:
        seen.append(key)

    runner = asyncio.create_task(queue.run(worker, 1))
    queue.add_at("k", clock.time() + 60)
    clock.advance(60)
    await queue.drained()
    assert seen == ["k"]
    queue.add_at("k", clock.time() + 60)  # asked again, after it ran: waits again
    assert clock.waiting() == [clock.time() + 60]
    clock.advance(59)
    await asyncio.sleep(0)
    assert seen == ["k"]
    clock.advance(1)
    await queue.drained()
    assert seen == ["k", "k"]
    runner.cancel()
