"""Keeps the index equal to the Examples: list, reconcile, then watch; relist on 410 Gone.

Why the Kubernetes client and not kopf: kopf's watching machinery is internal, and after a broken
stream kopf relists and replays only what it finds, so an Example deleted during the gap is never
reported and would stay in the index forever. Here every (re)list reconciles the index to exactly the
listed set (upserts what is there, deletes what is not), and the watch resumes from the list's
resourceVersion, so nothing is missed and nothing stale is left behind.

It runs in a thread of its own: the index is guarded by its own lock, and searches never wait for the
network.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from blocklearn import EXAMPLES, GROUP, VERSION, metrics
from blocklearn.embed import Matrix
from blocklearn.embed.codec import decode
from blocklearn.embed.text import query_text
from blocklearn.index.core import Entry, ExampleIndex, IndexMismatchError
from blocklearn.models import ExampleSpec

log = logging.getLogger("blocklearn.index.watch")

# The server ends each watch after this long and the client gives up a bit later: a silently dead
# stream (kopf #585, #698) is replaced within a minute.
WATCH_SECONDS = 45
READ_TIMEOUT = WATCH_SECONDS + 15


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

    def reconcile(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Make the index hold exactly the valid Examples of a full list."""
        listed = set()
        for obj in items:
            listed.add(example_id(obj))
            self.apply(obj, live=False)
        for stale in self.index.ids() - listed:
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
    """The list-then-watch loop, in a daemon thread."""

    def __init__(self, index: ExampleIndex, api_client: Any, namespaces: list[str] | None = None) -> None:
        self.sync = IndexSync(index)
        self.index = index
        self.api: Any = kubernetes.client.CustomObjectsApi(api_client)
        self.namespaces = namespaces or []
        self.ready = threading.Event()
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="example-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def alive(self) -> bool:
        """Live while the thread runs and has made progress within two watch periods."""
        return self._thread.is_alive() and time.monotonic() - self.heartbeat < 2 * READ_TIMEOUT + 30

    def _list(self, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        if namespace:
            result = self.api.list_namespaced_custom_object(GROUP, VERSION, namespace, EXAMPLES)
        else:
            result = self.api.list_cluster_custom_object(GROUP, VERSION, EXAMPLES)
        return list(result.get("items", [])), str(result["metadata"]["resourceVersion"])

    def _run(self) -> None:
        scopes: list[str | None] = [*self.namespaces] or [None]
        versions: dict[str | None, str] = {}
        failures = 0
        while not self._stop.is_set():
            try:
                if not versions:
                    items: list[dict[str, Any]] = []
                    for scope in scopes:
                        listed, versions[scope] = self._list(scope)
                        items += listed
                    self.sync.reconcile(items)
                    metrics.relists_total.inc()
                    publish(self.index)
                    if not self.ready.is_set():
                        log.info("Listed Examples: count=%d index_size=%d", len(items), len(self.index))
                    self.ready.set()
                    metrics.index_ready.set(1)
                # One namespace at a time, in turn: a watch per scope would need a thread per scope.
                for scope in scopes:
                    versions[scope] = self._watch(scope, versions[scope])
                failures = 0
            except ApiException as exc:
                metrics.watch_restarts_total.inc()
                if exc.status == 410:
                    log.info("Watch expired (410 Gone): relisting")
                    versions.clear()
                    continue
                failures += 1
                log.warning("Watch failed: status=%s reason=%s", exc.status, exc.reason)
            except Exception as exc:  # connection reset, read timeout, garbage on the stream
                metrics.watch_restarts_total.inc()
                failures += 1
                log.warning("Watch stream broke: error=%s", exc)
            if failures:
                self._stop.wait(min(30.0, 0.2 * 2 ** min(failures, 8)))
                if failures >= 3:
                    versions.clear()  # after repeated failures, trust nothing: relist

    def _watch(self, scope: str | None, version: str) -> str:
        watch = kubernetes.watch.Watch()
        kwargs: dict[str, Any] = {
            "resource_version": version,
            "timeout_seconds": WATCH_SECONDS if len(self.namespaces) <= 1 else 5,
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
            self.heartbeat = time.monotonic()
            if self._stop.is_set():
                watch.stop()
                break
            kind, obj = event["type"], event["object"]
            version = str(obj.get("metadata", {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            self.sync.apply(obj, deleted=kind == "DELETED")
            publish(self.index)
        self.heartbeat = time.monotonic()
        return version
