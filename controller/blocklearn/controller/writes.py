"""The controller's writes: one request each, with what its answer means for the reconcile.

A write carries the resourceVersion it was computed from; a 409 means the cache was stale, so that
one object is read again into the cache and the key redone (an edit made meanwhile is never rolled
back); a 404 means the object went meanwhile; 400, 403 and 422 are refusals that only a change of the
object can end; anything else is retried with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from blocklearn import BLOCKS, metrics
from blocklearn.resources import custom_path
from blocklearn.runtime.informer import Store
from blocklearn.runtime.objects import Obj
from blocklearn.runtime.rest import MERGE_PATCH, ApiError, Rest
from blocklearn.runtime.workqueue import Requeue

log = logging.getLogger("blocklearn.controller")


class Refused(Exception):
    """The API refused a write for good (400, 403, 422): retrying waits for the object to change."""


class Writer:
    """Writes through `rest`, keeping the Block and Example caches up to date on conflicts."""

    def __init__(self, rest: Rest, blocks: Store, examples: Store) -> None:
        self.rest, self.blocks, self.examples = rest, blocks, examples

    async def write(
        self, verb: str, plural: str, namespace: str, name: str, body: Mapping[str, Any], sub: str = ""
    ) -> Obj | None:
        """One write; returns the object the API answered, None if it is gone (404). A conflict
        refreshes the cached object and requeues the key; other failures requeue with backoff."""
        path = custom_path(plural, namespace, "" if verb == "POST" else name, sub)
        resource = plural + (f"/{sub}" if sub else "")
        try:
            result = await self.rest.request(
                verb, path, body, content_type=MERGE_PATCH if verb == "PATCH" else "application/json"
            )
        except ApiError as exc:
            metrics.reconcile_errors_total.labels(plural[:-1]).inc()
            if exc.status == 404:
                return None  # deleted meanwhile: nothing left to write to
            if exc.status == 409:
                # Stale cache (or a create that lost a race): read this one object, then redo.
                await self.refresh(plural, namespace, name)
                raise Requeue(f"conflict writing {resource} {namespace}/{name}", delay=0.0) from exc
            if exc.status in (400, 403, 422):
                log.error(
                    "The API refused a write: resource=%s name=%s/%s error=%s", resource, namespace, name, exc
                )
                raise Refused(str(exc)) from exc
            raise Requeue(f"API error {exc.status} writing {resource}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            metrics.reconcile_errors_total.labels(plural[:-1]).inc()
            raise Requeue(f"API unreachable writing {resource}: {exc}") from exc
        metrics.api_writes_total.labels(resource, verb.lower()).inc()
        return result

    async def refresh(self, plural: str, namespace: str, name: str) -> None:
        store = self.blocks if plural == BLOCKS else self.examples
        try:
            fresh = await self.rest.request("GET", custom_path(plural, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                store.delete((namespace, name))
            return
        except (aiohttp.ClientError, TimeoutError):
            return
        store.put(fresh)
