"""Keeps the index equal to the Examples: list, reconcile, then watch; relist on 410 Gone.

Why the Kubernetes client and not kopf: kopf's watching machinery is internal, and after a broken
stream kopf relists and replays only what it finds, so an Example deleted during the gap is never
reported and would stay in the index forever. Here every (re)list reconciles the index to exactly the
listed set (upserts what is there, deletes what is not), and the watch resumes from the list's
resourceVersion, so nothing is missed and nothing stale is left behind.

Each watched namespace has a thread of its own (a watch blocks its thread, and the Kubernetes client is
synchronous), so namespaces are watched concurrently; the index is guarded by its own lock, and
searches never wait for the network. Failures are retried with backoff (blocklearn.runtime.retry); after three
in a row, or a 410 Gone, the namespace is listed again.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kubernetes
import tenacity
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from blocklearn import EXAMPLES, GROUP, VERSION, metrics
from blocklearn.embed import Matrix
from blocklearn.embed.codec import decode
from blocklearn.embed.text import query_text
from blocklearn.index.core import Entry, ExampleIndex, IndexMismatchError
from blocklearn.resources.models import ExampleSpec
from blocklearn.runtime import retry

log = logging.getLogger("blocklearn.index.watch")

# The server ends each watch after this long and the client gives up a bit later: a silently dead
# stream (kopf #585, #698) is replaced within a minute.
WATCH_SECONDS = 45
READ_TIMEOUT = WATCH_SECONDS + 15
# Examples per list page: each carries its embedding (16 KiB at 4,096 dimensions), so a page stays
# near 10 MB however many Examples there are.
PAGE = 500


def example_id(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def to_entry(obj: Mapping[str, Any]) -> Entry:
    meta, spec, status = obj["metadata"], obj.get("spec", {}), obj.get("status", {})
    return Entry(
        namespace=meta["namespace"],
        name=meta["name"],
        payload={
            "query": spec.get("query", {}),
            "answer": spec.get("answer", []),
            "blockRef": spec.get("blockRef", {}),
            "textHash": status.get("textHash"),
            "occurrences": status.get("occurrences") or 1,
        },
    )


def _parse_time(value: object) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def query_of(obj: Mapping[str, Any]) -> str | None:
    """The text the lexical channel indexes: the Example's query as the controller embeds it; None
    when the spec is not a valid Example's."""
    try:
        spec = ExampleSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None
    return query_text(spec.query.cells)[0]


class IndexSync:
    """Applies Example states to the index. Pure apart from the clock: no network here."""

    def __init__(self, index: ExampleIndex, clock: Callable[[], float] = time.time) -> None:
        self.index = index
        self.clock = clock
        self._hashes: dict[str, str | None] = {}
        # The resourceVersion each Example was applied at: a relist skips what has not changed
        # (validating and re-indexing the text costs ~0.1 ms an Example, 10 s a relist at 100k).
        self._versions: dict[str, str] = {}

    def apply(self, obj: Mapping[str, Any], deleted: bool = False, live: bool = True) -> str:
        """Upsert or remove one Example; returns what was done. `live` events measure latency.

        Every valid Example is searchable by its text; its vector joins when it is of the index's
        model (during a model switch, or before the controller embeds it, it has none)."""
        id_ = example_id(obj)
        version = obj["metadata"].get("resourceVersion")
        if not deleted and version is not None and self._versions.get(id_) == version:
            return "unchanged"
        text = None if deleted else query_of(obj)
        if text is None:
            self._hashes.pop(id_, None)
            self._versions.pop(id_, None)
            return "deleted" if self.index.delete(id_) else "ignored"
        if version is not None:
            self._versions[id_] = str(version)
        status = obj.get("status") or {}
        vector, result = self._vector(id_, status)
        self.index.upsert(id_, to_entry(obj), text, vector)
        fresh = self._hashes.get(id_) != status.get("textHash")
        self._hashes[id_] = status.get("textHash")
        changed_at = _parse_time(status.get("sourceChangedAt"))
        if live and fresh and changed_at is not None and status.get("embeddingModel") == self.index.model:
            metrics.learning_latency_seconds.observe(max(0.0, self.clock() - changed_at.timestamp()))
        return result

    def _vector(self, id_: str, status: Mapping[str, Any]) -> tuple[Matrix | None, str]:
        """The Example's vector if it is one of the index's model, and what became of it."""
        if not self.index.dim:
            return None, "upserted"  # the hashing setting: the text is all there is
        if not status.get("embedding"):
            return None, "text-only"
        if status.get("embeddingModel") != self.index.model:
            return None, "text-only"
        try:
            return self.index.check(decode(status["embedding"], self.index.dim), self.index.model), "upserted"
        except (ValueError, IndexMismatchError) as exc:
            log.warning("Skipped an unusable embedding, kept the text: id=%s error=%s", id_, exc)
            return None, "rejected"

    def reconcile(self, items: Sequence[Mapping[str, Any]], namespace: str | None = None) -> None:
        """Make the index hold exactly the valid Examples of a full list (of one namespace)."""
        listed = set()
        for obj in items:
            listed.add(example_id(obj))
            self.apply(obj, live=False)
        for stale in self.index.ids() - listed:
            if namespace is None or stale.startswith(f"{namespace}/"):
                self.index.delete(stale)
                self._hashes.pop(stale, None)
                self._versions.pop(stale, None)


def publish(index: ExampleIndex) -> None:
    """The index's size and how much of it has a current vector (progress of a model switch)."""
    counts = index.vector_counts()
    metrics.index_size.set(counts.current + counts.missing)
    metrics.index_vectors.labels("current").set(counts.current)
    metrics.index_vectors.labels("missing").set(counts.missing)
    metrics.index_vectors_current_ratio.set(counts.ratio)


class ExampleWatcher:
    """The list-then-watch loops: a daemon thread for each namespace (or one for all), so that an
    update in one namespace never waits behind the watch of another."""

    def __init__(
        self, index: ExampleIndex, api_client: Any, namespaces: list[str] | None = None, page: int = PAGE
    ) -> None:
        self.sync = IndexSync(index)
        self.index = index
        self.api: Any = kubernetes.client.CustomObjectsApi(api_client)
        self.namespaces = namespaces or []
        self.page = page
        self.ready = threading.Event()
        self._scopes: list[str | None] = [*self.namespaces] or [None]
        self._listed: set[str | None] = set()
        self._heartbeats: dict[str | None, float] = {scope: time.monotonic() for scope in self._scopes}
        # The index has its own lock; this one keeps a scope's relist (which deletes what it did not
        # see in its namespace) from interleaving with another scope's events.
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._run, args=(scope,), name=f"example-watcher-{scope or 'all'}", daemon=True
            )
            for scope in self._scopes
        ]

    @property
    def heartbeat(self) -> float:
        """The oldest scope's last sign of progress."""
        return min(self._heartbeats.values())

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def alive(self) -> bool:
        """Live while every scope's thread runs and has made progress within two watch periods."""
        fresh = time.monotonic() - self.heartbeat < 2 * READ_TIMEOUT + 30
        return fresh and all(thread.is_alive() for thread in self._threads)

    def _list(self, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        """Every Example of the scope, page by page; the version to watch from is the first page's:
        the API server serves all pages from that snapshot, and an older version only replays."""
        items: list[dict[str, Any]] = []
        version: str | None = None
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.page, "_request_timeout": READ_TIMEOUT}
            if token:
                kwargs["_continue"] = token
            if namespace:
                result = self.api.list_namespaced_custom_object(GROUP, VERSION, namespace, EXAMPLES, **kwargs)
            else:
                result = self.api.list_cluster_custom_object(GROUP, VERSION, EXAMPLES, **kwargs)
            items += result.get("items", [])
            version = version or str(result["metadata"]["resourceVersion"])
            token = result["metadata"].get("continue")
            if not token:
                return items, version

    def _relist(self, scope: str | None) -> str:
        items, version = self._list(scope)
        with self._sync_lock:
            self.sync.reconcile(items, scope)
        metrics.relists_total.inc()
        publish(self.index)
        self._listed.add(scope)
        if not self.ready.is_set() and self._listed.issuperset(self._scopes):
            log.info("Listed Examples: scopes=%d index_size=%d", len(self._scopes), len(self.index))
            self.ready.set()
            metrics.index_ready.set(1)
        return version

    def _run(self, scope: str | None) -> None:
        version: str | None = None

        def failed(state: retry.RetryCallState) -> None:
            metrics.watch_restarts_total.inc()
            exc = state.outcome.exception() if state.outcome is not None else None
            if isinstance(exc, ApiException):
                log.warning("Watch failed: scope=%s status=%s reason=%s", scope, exc.status, exc.reason)
            else:  # connection reset, read timeout, garbage on the stream
                log.warning("Watch stream broke: scope=%s error=%s", scope, exc)

        while not self._stop.is_set():
            try:
                for attempt in tenacity.Retrying(
                    wait=retry.exponential(0.2, 30.0),
                    stop=tenacity.stop_when_event_set(self._stop),
                    sleep=retry.thread_sleep(self._stop),
                    before_sleep=failed,
                    reraise=True,
                ):
                    with attempt:
                        if attempt.retry_state.attempt_number > 3:
                            version = None  # after repeated failures, trust nothing: relist
                        if version is None:
                            version = self._relist(scope)
                        try:
                            version = self._watch(scope, version)
                        except ApiException as exc:
                            if exc.status != 410:
                                raise
                            metrics.watch_restarts_total.inc()
                            log.info("Watch expired (410 Gone): scope=%s; relisting", scope)
                            version = None
            except Exception:  # tenacity gives up only when the watcher is stopping
                return

    def _watch(self, scope: str | None, version: str) -> str:
        watch = kubernetes.watch.Watch()
        kwargs: dict[str, Any] = {
            "resource_version": version,
            "timeout_seconds": WATCH_SECONDS,
            "allow_watch_bookmarks": True,
            "_request_timeout": READ_TIMEOUT,
        }
        if scope:
            stream = watch.stream(
                self.api.list_namespaced_custom_object, GROUP, VERSION, scope, EXAMPLES, **kwargs
            )
        else:
            stream = watch.stream(self.api.list_cluster_custom_object, GROUP, VERSION, EXAMPLES, **kwargs)
        for event in stream:
            self._heartbeats[scope] = time.monotonic()
            if self._stop.is_set():
                watch.stop()
                break
            kind, obj = event["type"], event["object"]
            version = str(obj.get("metadata", {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            with self._sync_lock:
                self.sync.apply(obj, deleted=kind == "DELETED")
            publish(self.index)
        self._heartbeats[scope] = time.monotonic()
        return version
