"""Informers: an in-memory copy of a resource, kept by one paginated list and then a watch.

Like client-go's: the reconcilers read the cache, never the API, and learn what changed from a
callback. The cache keeps each object as compact JSON (an Example without its embedding: the
controller needs only to know there is one), so 100k objects fit in a few hundred MB.

An event is passed on only when it brings a newer resourceVersion than the cache holds. The
reconcilers put the answers of their own writes into the cache, so the watch events those writes
cause are recognised as known and cost nothing: no second reconcile per write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import tenacity

from blocklearn import metrics
from blocklearn.runtime import retry
from blocklearn.runtime.rest import ApiError, Rest, custom_path

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
Handler = Callable[[str, Obj | None, Obj | None], None]  # (event type, old, new)
# client-go's Indexers: named functions from an object to the values it is found under.
Indexer = Callable[[Obj], Iterable[str]]

log = logging.getLogger("blocklearn.informer")

# The server ends each watch after this long and the client gives up a bit later, so a silently
# dead stream (kopf #585, #698) is replaced within a few minutes.
WATCH_SECONDS = 300
EMBEDDING_OMITTED = "(in the API; not cached)"


def key_of(obj: Obj) -> Key:
    meta = obj["metadata"]
    return str(meta.get("namespace", "")), str(meta["name"])


def version_of(obj: Obj | None) -> int:
    rv = str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "0")
    return int(rv) if rv.isdigit() else 0


def without_embedding(obj: Obj) -> Obj:
    """An Example as the controller caches it: the vector is the index's business, not ours."""
    status = obj.get("status")
    if isinstance(status, dict) and status.get("embedding"):
        return {**obj, "status": {**status, "embedding": EMBEDDING_OMITTED}}
    return obj


class Store:
    """Objects by key, as compact JSON; reads return a fresh dict the caller may change.

    Like client-go's Indexer, it can also find keys by an index (`by_index`), kept as objects come
    and go, and it keeps the total size of its objects as the API holds them (before `trim`)."""

    def __init__(
        self, trim: Callable[[Obj], Obj] = lambda o: o, indexers: Mapping[str, Indexer] | None = None
    ) -> None:
        self._trim = trim
        self._items: dict[Key, tuple[int, bytes]] = {}
        self._sizes: dict[Key, int] = {}
        self._bytes = 0
        self._indexers = dict(indexers or {})
        self._indices: dict[str, dict[str, set[Key]]] = {name: {} for name in self._indexers}
        self._indexed: dict[Key, dict[str, tuple[str, ...]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def nbytes(self) -> int:
        """Compact JSON bytes of the objects as the API serves them (before `trim`)."""
        return self._bytes

    def by_index(self, name: str, value: str) -> list[Key]:
        """Keys of the objects the indexer `name` files under `value`."""
        return list(self._indices[name].get(value, ()))

    def all_keys(self) -> list[Key]:
        return list(self._items)

    def version(self, key: Key) -> int | None:
        item = self._items.get(key)
        return item[0] if item else None

    def get(self, key: Key) -> Obj | None:
        item = self._items.get(key)
        return json.loads(item[1]) if item else None

    def put(self, obj: Obj) -> bool:
        """Keep `obj` if it is newer than what is cached; whether it was."""
        key, rv = key_of(obj), version_of(obj)
        known = self._items.get(key)
        if known is not None and known[0] >= rv:
            return False
        trimmed = self._trim(obj)
        data = json.dumps(trimmed, separators=(",", ":")).encode()
        self._items[key] = (rv, data)
        size = len(data) if trimmed is obj else len(json.dumps(obj, separators=(",", ":")))
        self._bytes += size - self._sizes.get(key, 0)
        self._sizes[key] = size
        if self._indexers:
            self._unindex(key)
            values = {name: tuple(fn(obj)) for name, fn in self._indexers.items()}
            self._indexed[key] = values
            for name, found in values.items():
                for value in found:
                    self._indices[name].setdefault(value, set()).add(key)
        return True

    def delete(self, key: Key, version: int | None = None) -> bool:
        """Forget `key` (only if cached at or before `version`, when given); whether it was there."""
        known = self._items.get(key)
        if known is None or (version is not None and known[0] > version):
            return False
        del self._items[key]
        self._bytes -= self._sizes.pop(key, 0)
        self._unindex(key)
        return True

    def _unindex(self, key: Key) -> None:
        for name, values in self._indexed.pop(key, {}).items():
            index = self._indices[name]
            for value in values:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def items(self) -> Iterator[tuple[Key, Obj]]:
        for key in list(self._items):
            obj = self.get(key)
            if obj is not None:
                yield key, obj


class Informer:
    """List then watch one resource in each scope (a namespace, or all), concurrently."""

    def __init__(
        self,
        rest: Rest,
        plural: str,
        namespaces: list[str],
        store: Store,
        handler: Handler,
        page: int = 500,
    ) -> None:
        self.rest, self.plural, self.store, self.handler, self.page = rest, plural, store, handler, page
        self.scopes: list[str | None] = [*namespaces] or [None]
        self.synced = asyncio.Event()
        self._listed: set[str | None] = set()
        self._heartbeats = {scope: time.monotonic() for scope in self.scopes}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(scope)) for scope in self.scopes]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def alive(self, within: float = 2 * WATCH_SECONDS + 60) -> bool:
        running = bool(self._tasks) and not any(t.done() for t in self._tasks)
        return running and time.monotonic() - min(self._heartbeats.values()) < within

    async def relist(self, scope: str | None) -> str:
        """Make the cache equal a fresh list of the scope; pass on what changed. Returns the version
        to watch from: the first page's, from which a watch replays at worst what was seen."""
        seen: set[Key] = set()
        first = ""
        async for items, version in self.rest.pages(custom_path(self.plural, scope), self.page):
            first = first or version
            for obj in items:
                seen.add(key_of(obj))
                self._apply("MODIFIED", obj)
        listed_at = int(first) if first.isdigit() else None
        for key in self.store.all_keys():
            if (scope is None or key[0] == scope) and key not in seen:
                old = self.store.get(key)
                # Only what the list should have shown: newer objects came by the watch after it.
                if self.store.delete(key, listed_at):
                    self.handler("DELETED", old, None)
        self._listed.add(scope)
        if self._listed.issuperset(self.scopes):
            self.synced.set()
        return first

    def _apply(self, kind: str, obj: Obj) -> None:
        key = key_of(obj)
        if kind == "DELETED":
            old = self.store.get(key)
            if self.store.delete(key):
                self.handler("DELETED", old, None)
            return
        old = self.store.get(key) if self.store.version(key) is not None else None
        if self.store.put(obj):
            self.handler("ADDED" if old is None else "MODIFIED", old, obj)

    async def _run(self, scope: str | None) -> None:
        version = ""

        def failed(state: retry.RetryCallState) -> None:
            metrics.watch_restarts_total.inc()
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning("Watch failed: plural=%s scope=%s error=%s", self.plural, scope, exc)

        while True:
            async for attempt in tenacity.AsyncRetrying(
                wait=retry.exponential(0.2, 30.0), before_sleep=failed, reraise=True
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 3:
                        version = ""  # after repeated failures, trust nothing: relist
                    if not version:
                        version = await self.relist(scope)
                    try:
                        version = await self._watch(scope, version)
                    except ApiError as exc:
                        if exc.status != 410:
                            raise
                        log.info(
                            "Watch expired (410 Gone): plural=%s scope=%s; relisting", self.plural, scope
                        )
                        version = ""

    async def _watch(self, scope: str | None, version: str) -> str:
        self._heartbeats[scope] = time.monotonic()
        async for event in self.rest.watch(custom_path(self.plural, scope), version, WATCH_SECONDS):
            self._heartbeats[scope] = time.monotonic()
            obj = event["object"]
            version = str(obj.get("metadata", {}).get("resourceVersion") or version)
            if event["type"] != "BOOKMARK":
                self._apply(event["type"], obj)
        self._heartbeats[scope] = time.monotonic()
        return version
