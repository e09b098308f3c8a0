"""`blocklearn backfill`: re-reconcile every Block changed after a given time (Foyle's Backfill).

It does not reconcile by itself: it asks the controller, the only writer of Examples, by stamping an
annotation on each Block. The controller reconciles on any metadata change, as it does for a Block
an analyzer has just touched, so a backfill works the same against a remote cluster.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import aiohttp
import tenacity

from blocklearn import BLOCKS, GROUP
from blocklearn.resources import custom_path
from blocklearn.runtime.objects import now_rfc3339, parse_rfc3339
from blocklearn.runtime.rest import MERGE_PATCH, ApiError, Rest
from blocklearn.runtime.retry import exponential

REQUESTED = f"{GROUP}/reconcile-requested-at"
log = logging.getLogger("blocklearn.controller.backfill")


def parse_time(value: str) -> datetime.datetime:
    parsed = parse_rfc3339(value)
    if parsed is None:
        example = "write it as RFC 3339, e.g. 2024-06-01T00:00:00Z"
        try:
            datetime.datetime.fromisoformat(value)  # which of the two: say what to fix
        except ValueError:
            raise ValueError(f"{value!r} is not a time; {example}") from None
        raise ValueError(f"{value!r} has no time zone; {example}")
    return parsed


def last_changed(obj: Mapping[str, Any]) -> datetime.datetime | None:
    """The latest time the Block is known to have changed: created, written (managedFields), executed."""
    meta = obj.get("metadata", {})
    stamps = [meta.get("creationTimestamp"), obj.get("spec", {}).get("executedAt")]
    stamps += [f.get("time") for f in meta.get("managedFields") or []]
    # An invalid executedAt is the controller's to report, not ours: it is skipped here.
    return max((t for t in map(parse_rfc3339, stamps) if t is not None), default=None)


def select(blocks: Iterable[Mapping[str, Any]], since: datetime.datetime) -> list[Mapping[str, Any]]:
    return [b for b in blocks if (changed := last_changed(b)) is not None and changed >= since]


@dataclass
class Report:
    listed: int = 0
    selected: int = 0
    requested: int = 0
    gone: int = 0
    failed: int = 0


class Progress:
    """A progress bar on a terminal, a log line every 10% elsewhere."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.tty = stream.isatty()
        self._next_log = 0.1

    def step(self) -> None:
        self.done += 1
        fraction = self.done / self.total if self.total else 1.0
        if self.tty:
            bar = "#" * int(fraction * 30)
            self.stream.write(f"\rbackfill [{bar:<30}] {self.done}/{self.total}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif fraction >= self._next_log or self.done == self.total:
            log.info("Requested reconciles: done=%d total=%d", self.done, self.total)
            self._next_log = fraction + 0.1


def _worth_retrying(exc: BaseException) -> bool:
    """A conflict, a throttle, a server error or no answer may pass; a 404 or another 4xx will not."""
    if isinstance(exc, ApiError):
        return exc.status >= 500 or exc.status in (409, 429)
    return isinstance(exc, aiohttp.ClientError | TimeoutError)


async def backfill(
    rest: Rest, since: datetime.datetime, namespace: str | None, concurrency: int = 8
) -> Report:
    report = Report()
    chosen: list[Mapping[str, Any]] = []
    # In pages: a large cluster is not one response.
    async for page, _ in rest.pages(custom_path(BLOCKS, namespace), 200):
        report.listed += len(page)
        chosen += select(page, since)
    report.selected = len(chosen)
    progress = Progress(len(chosen))
    stamp = now_rfc3339()
    gate = asyncio.Semaphore(concurrency)

    async def request(block: Mapping[str, Any]) -> None:
        meta = block["metadata"]
        async with gate:
            try:
                async for attempt in tenacity.AsyncRetrying(
                    retry=tenacity.retry_if_exception(_worth_retrying),
                    stop=tenacity.stop_after_attempt(5),
                    wait=exponential(0.2, 5.0),
                    reraise=True,
                ):
                    with attempt:
                        await rest.request(
                            "PATCH",
                            custom_path(BLOCKS, meta["namespace"], meta["name"]),
                            {"metadata": {"annotations": {REQUESTED: stamp}}},
                            content_type=MERGE_PATCH,
                        )
                report.requested += 1
            except ApiError as exc:
                if exc.status == 404:
                    report.gone += 1
                else:
                    report.failed += 1
                    log.error(
                        "Failed to request a reconcile: namespace=%s name=%s status=%s",
                        meta["namespace"],
                        meta["name"],
                        exc.status,
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.failed += 1
                log.error(
                    "Failed to request a reconcile: namespace=%s name=%s error=%s",
                    meta["namespace"],
                    meta["name"],
                    exc,
                )
        progress.step()

    await asyncio.gather(*(request(b) for b in chosen))
    return report
