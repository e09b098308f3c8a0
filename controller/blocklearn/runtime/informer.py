"""Informers: an in-memory copy of a resource, kept by one paginated list and then a watch.

Like client-go's: the reader of the cache learns what changed from a callback, `handler(type, old,
new)`. An event is passed on only when it brings a newer resourceVersion than the cache holds, so a
relist passes on only what changed, and a writer that puts the answers of its own writes into the
cache (as the controller's reconcilers do) is not told again of the watch events they cause.

A relist (at start, on 410 Gone, after repeated watch failures, and every `relist_seconds` as a
safety net) makes the cache equal to what it listed and reports every object that went in the gap
as DELETED: nothing compares a relist with what was known in kopf, which is why this exists.

Each scope (a namespace, or all of them) is listed and watched in a task of its own, so a change in
one never waits for another's list or watch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import tenacity

from blocklearn import metrics
from blocklearn.runtime import retry
from blocklearn.runtime.memory import release_free_memory
from blocklearn.runtime.objects import Key, Obj, key_of, resource_path, version_of
from blocklearn.runtime.rest import ApiError, Rest

Handler = Callable[[str, Obj | None, Obj | None], None]  # (event type, old, new)
# client-go's Indexers: named functions from an object to the values it is found under.
Indexer = Callable[[Obj], Iterable[str]]

log = logging.getLogger("blocklearn.informer")

# The server ends each watch after this long and the client gives up a bit later, so a silently
# dead stream (kopf #585, #698) is replaced within a few minutes.
WATCH_SECONDS = 300
# client-go relists only when it must; this relist is the safety net for whatever a watch may have
# missed without saying so.
RELIST_SECONDS = 3600.0
_HEADER = struct.Struct("<QI")  # resourceVersion, size in the API


class Store:
    """Objects by key, as compact JSON; reads return a fresh dict the caller may change.

    `trim` chooses what is kept of each object (client-go's transform); when it returns None only
    the key and the version are kept, and `get` returns the object's bare metadata: enough for a
    reader that keeps its own copy of what it needs (the index) to learn of changes and deletions.

    Each object's JSON is deflated with the first object kept as the dictionary: objects of one kind
    share their keys and many values, so a 1-1.5 KB Block or Example keeps 200-300 bytes (a fifth),
    for about the cost of its JSON encoding again on a write and a tenth of its decoding on a read.

    Like client-go's Indexer, it can also find keys by an index (`by_index`), kept as objects come
    and go, and it keeps the total size of its objects as the API holds them (before `trim`; none
    when `trim` keeps nothing).
    """

    def __init__(
        self, trim: Callable[[Obj], Obj | None] = lambda o: o, indexers: Mapping[str, Indexer] | None = None
    ) -> None:
        self._trim = trim
        # The resourceVersion and the object's size in the API (the header), then the deflated JSON
        # (nothing if trimmed away): the size is there for `delete`, at no cost of its own.
        self._items: dict[Key, bytes] = {}
        self._deflate: Any = None  # a compressor primed with the dictionary, copied for each object
        self._inflate: Any = None
        self._bytes = 0
        self._indexers = dict(indexers or {})
        # An index value most often files one object (the Example a Block teaches, the Block that
        # controls an Example): it holds that key itself, and a set only once there are more. Each
        # object's values are kept flat, (indexer, value, indexer, value, ...): a set, a dict and a
        # tuple per object cost ~0.5 KB, more than its deflated JSON.
        self._indices: dict[str, dict[str, Key | set[Key]]] = {name: {} for name in self._indexers}
        self._indexed: dict[Key, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def nbytes(self) -> int:
        """Compact JSON bytes of the objects as the API serves them (before `trim`)."""
        return self._bytes

    def by_index(self, name: str, value: str) -> list[Key]:
        """Keys of the objects the indexer `name` files under `value`."""
        filed = self._indices[name].get(value)
        return [] if filed is None else list(filed) if isinstance(filed, set) else [filed]

    def index_values(self, key: Key, name: str) -> tuple[str, ...]:
        """The values the indexer `name` filed the object of `key` under (none when it is gone)."""
        pairs = self._indexed.get(key, ())
        return tuple(pairs[i + 1] for i in range(0, len(pairs), 2) if pairs[i] == name)

    def all_keys(self) -> list[Key]:
        return list(self._items)

    def version(self, key: Key) -> int | None:
        item = self._items.get(key)
        return int(_HEADER.unpack_from(item)[0]) if item else None

    def get(self, key: Key) -> Obj | None:
        item = self._items.get(key)
        if item is None:
            return None
        if len(item) == _HEADER.size:
            rv = str(_HEADER.unpack_from(item)[0])
            return {"metadata": {"namespace": key[0], "name": key[1], "resourceVersion": rv}}
        inflate = self._inflate.copy()
        obj: Obj = json.loads(inflate.decompress(item[_HEADER.size :]))
        return obj

    def put(self, obj: Obj) -> bool:
        """Keep `obj` if it is newer than what is cached; whether it was."""
        key, rv = key_of(obj), version_of(obj)
        item = self._items.get(key)
        if item is not None and _HEADER.unpack_from(item)[0] >= rv:
            return False
        kept = self._trim(obj)
        data = b"" if kept is None else json.dumps(kept, separators=(",", ":")).encode()
        # Measured before deflating: what the API holds, the parts `trim` drops included; a store
        # of versions only measures nothing (its reader keeps its own copy, and encoding every
        # object again would cost the index a tenth of its start).
        if kept is None:
            size = 0
        else:
            size = len(data) if kept is obj else len(json.dumps(obj, separators=(",", ":")).encode())
        self._bytes += size - (_HEADER.unpack_from(item)[1] if item is not None else 0)
        self._items[key] = _HEADER.pack(rv, size) + (self._pack(data) if data else b"")
        if self._indexers:
            self._unindex(key)
            pairs = tuple(
                part for name, fn in self._indexers.items() for value in fn(obj) for part in (name, value)
            )
            if pairs:  # many objects are under no index value: nothing kept for them
                self._indexed[key] = pairs
            for i in range(0, len(pairs), 2):
                index, value = self._indices[pairs[i]], pairs[i + 1]
                filed = index.get(value)
                if filed is None:
                    index[value] = key
                elif isinstance(filed, set):
                    filed.add(key)
                elif filed != key:
                    index[value] = {filed, key}
        return True

    def _pack(self, data: bytes) -> bytes:
        if self._deflate is None:
            dictionary = data[-32768:]  # deflate's window
            self._deflate = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
            self._inflate = zlib.decompressobj(-15, dictionary)
        deflate = self._deflate.copy()
        return deflate.compress(data) + deflate.flush()  # type: ignore[no-any-return]

    def delete(self, key: Key, version: int | None = None) -> bool:
        """Forget `key` (only if cached at or before `version`, when given); whether it was there."""
        item = self._items.get(key)
        if item is None:
            return False
        known, size = _HEADER.unpack_from(item)
        if version is not None and known > version:
            return False
        del self._items[key]
        self._bytes -= size
        self._unindex(key)
        return True

    def _unindex(self, key: Key) -> None:
        pairs = self._indexed.pop(key, ())
        for i in range(0, len(pairs), 2):
            index, value = self._indices[pairs[i]], pairs[i + 1]
            filed = index.get(value)
            if isinstance(filed, set):
                filed.discard(key)
                if len(filed) == 1:
                    index[value] = filed.pop()
            elif filed == key:
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
        api_version: str,
        plural: str,
        namespaces: list[str],
        store: Store,
        handler: Handler,
        page: int = 500,
        watch_seconds: int = WATCH_SECONDS,
        relist_seconds: float = RELIST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rest, self.store, self.handler, self.page = rest, store, handler, page
        self.api_version, self.plural = api_version, plural
        self.watch_seconds, self.relist_seconds, self.clock = watch_seconds, relist_seconds, clock
        self.scopes: list[str | None] = [*namespaces] or [None]
        self.synced = asyncio.Event()
        self._listed_at: dict[str | None, float] = {}
        self._heartbeats = {scope: clock() for scope in self.scopes}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(scope)) for scope in self.scopes]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def join(self) -> None:
        """Wait until every scope's loop has ended (after `stop`), so its connections can be closed."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def alive(self, within: float | None = None) -> bool:
        """Every scope's loop runs and has shown progress (a page, an event, a watch's end) lately."""
        within = 2 * self.watch_seconds + 60 if within is None else within
        running = bool(self._tasks) and not any(t.done() for t in self._tasks)
        return running and self.clock() - min(self._heartbeats.values()) < within

    async def relist(self, scope: str | None) -> str:
        """Make the cache equal a fresh list of the scope; pass on what changed, deletions included.
        Returns the version to watch from: the first page's, from which a watch replays at worst
        what was seen."""
        seen: set[Key] = set()
        first = ""
        path = resource_path(self.api_version, self.plural, scope)
        async for items, version in self.rest.pages(path, self.page):
            self._heartbeats[scope] = self.clock()
            first = first or version
            for obj in items:
                seen.add(key_of(obj))
                self._apply("MODIFIED", obj)
        listed_at = int(first) if first.isdigit() else None
        for key in self.store.all_keys():
            if (scope is None or key[0] == scope) and key not in seen:
                old = self.store.get(key)
                # Only what the list should have shown: a newer object came from a write since.
                if self.store.delete(key, listed_at):
                    self._handle("DELETED", old, None)
        metrics.relists_total.inc()
        release_free_memory()  # the list's pages of JSON are applied: their memory need not stay
        self._listed_at[scope] = self.clock()
        if set(self._listed_at).issuperset(self.scopes):
            self.synced.set()
        return first

    def _apply(self, kind: str, obj: Obj) -> None:
        key, version = key_of(obj), version_of(obj)
        known = self.store.version(key)
        if kind == "DELETED":
            # Bounded by the deletion's version: names come back (an Example is named from its
            # content), and a late DELETED of the old object must not take the new one with it.
            if known is not None and (known <= version or not version):
                old = self.store.get(key)
                self.store.delete(key, version or None)
                self._handle("DELETED", old, None)
            return
        if known is not None and known >= version:
            return  # a relist's or our own write's echo: nothing to inflate and compare
        old = self.store.get(key) if known is not None else None
        if self.store.put(obj):
            self._handle("ADDED" if old is None else "MODIFIED", old, obj)

    def _handle(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        try:
            self.handler(kind, old, new)
        except Exception:  # one object the reader cannot take must not stop the watch of all others
            log.exception("Failed to handle an event: plural=%s type=%s", self.plural, kind)

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
                    if version and self.clock() - self._listed_at[scope] >= self.relist_seconds:
                        log.info(
                            "Relisting as a safety net: plural=%s scope=%s every_seconds=%.0f",
                            self.plural,
                            scope,
                            self.relist_seconds,
                        )
                        version = ""
                    if not version:
                        version = await self.relist(scope)
                    try:
                        version = await self._watch(scope, version)
                    except ApiError as exc:
                        if not _must_relist(exc):
                            raise
                        metrics.watch_restarts_total.inc()
                        log.info(
                            "Watch cannot resume (%s %s): plural=%s scope=%s; relisting",
                            exc.status,
                            exc.reason,
                            self.plural,
                            scope,
                        )
                        version = ""

    async def _watch(self, scope: str | None, version: str) -> str:
        self._heartbeats[scope] = self.clock()
        path = resource_path(self.api_version, self.plural, scope)
        async for event in self.rest.watch(path, version, self.watch_seconds):
            self._heartbeats[scope] = self.clock()
            obj = event["object"]
            version = str(obj.get("metadata", {}).get("resourceVersion") or version)
            if event["type"] != "BOOKMARK":
                self._apply(event["type"], obj)
        self._heartbeats[scope] = self.clock()
        return version


def _must_relist(exc: ApiError) -> bool:
    """410 Gone: the version was compacted. A version the server has not reached (it was restored
    from a backup, or restarted empty) is 504 with "Too large resource version": client-go relists
    at once for both, rather than retrying a watch that can never resume."""
    return exc.status == 410 or (exc.status == 504 and "Too large resource version" in exc.message)
