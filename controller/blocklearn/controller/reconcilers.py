"""The reconcilers: read the cache, ask the pure functions what should be, write the difference.

Level-triggered and keyed, as controller-runtime's `Reconcile(ctx, req)`: each gets a namespace/name,
reads the current objects from the informers' cache (never from the API), and converges. Running
one twice writes nothing. Every write carries the resourceVersion it was computed from; a 409 means
the cache was stale, so the object is read once, the cache refreshed, and the key reconciled again.

A teaching Block costs four writes in all: its own create, the Example's create, the Example's
status (the embedding), the Block's status. Events only on a transition (a Block becoming Invalid).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any

import aiohttp
from pydantic import ValidationError

from blocklearn import BLOCKS, EXAMPLES, metrics
from blocklearn.controller import events
from blocklearn.controller.desired import (
    SAME,
    SOURCE_CHANGED,
    Outcome,
    block_patch,
    block_status,
    example_patch,
    merge_patch,
    new_example,
    owned_by,
    status_patch,
)
from blocklearn.embed import Embedder, EmbedderError
from blocklearn.embed.batcher import EmbedBatcher
from blocklearn.embed.codec import encode, text_hash
from blocklearn.embed.hashing import stores_vectors
from blocklearn.embed.ratelimit import TokenBucket
from blocklearn.embed.text import query_text
from blocklearn.learn.outcome import PAIRS, Outcomes, assess, decided_retrieval, recorded, shown_answers
from blocklearn.learn.rule import Policy, Reason, decide, example_name, is_excluded
from blocklearn.resources.conditions import find, now_rfc3339, set_condition
from blocklearn.resources.models import BlockRef, BlockSpec, Condition, ExampleSpec, ExampleStatus
from blocklearn.runtime.informer import Key, Obj, Store, without_embedding
from blocklearn.runtime.rest import MERGE_PATCH, ApiError, Rest, custom_path
from blocklearn.runtime.workqueue import Requeue, WorkQueue
from blocklearn.settings import Settings

log = logging.getLogger("blocklearn.controller")


def describe_validation_error(exc: ValidationError) -> str:
    """One line a person can act on: `spec.executedCell.contents: Input should be a valid string`."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{where}: {err['msg'].removeprefix('Value error, ')}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


# Above this much text a Block's learning rule runs in a thread (a typical Block holds a few hundred).
LARGE_BLOCK_CHARS = 16_384


class Refused(Exception):
    """The API refused a write for good (400, 403, 422): retrying waits for the object to change."""


class Reconcilers:
    """The Block and Example reconcilers, their cache and their work queues."""

    def __init__(self, settings: Settings, rest: Rest, embedder: Embedder) -> None:
        self.settings = settings
        self.rest = rest
        self.embedder = embedder
        self.policy = Policy(**settings.policy_kwargs())
        self.blocks = Store()
        self.examples = Store(trim=without_embedding)
        base, cap = settings.retry_base_seconds, settings.retry_max_seconds
        self.block_queue: WorkQueue[Key] = WorkQueue("block", base, cap)
        self.example_queue: WorkQueue[Key] = WorkQueue("example", base, cap)
        self.batcher = EmbedBatcher(embedder, settings.embed_batch_size, settings.embed_batch_wait_seconds)
        self.stores_vectors = stores_vectors(embedder)  # not `hashing`: the index reads the text itself
        self.reembed_limit = TokenBucket(settings.reembed_per_second)
        self._waiting: set[Key] = set()  # Examples whose embedding is missing or stale
        # Examples the embedder refused (a 4xx), by generation: asked again only when the Example
        # changes, or after a restart (with a new key, say); not by every resync.
        self._refused: dict[Key, int | None] = {}
        # Every series from the start, at 0, so that rates and ratios over them have data.
        for pair in PAIRS:
            metrics.suggestions_total.labels(pair.suggestion, pair.retrieval)
        for resource in ("block", "example"):
            metrics.reconcile_errors_total.labels(resource)

    # -- what the informers report ------------------------------------------------------------------

    def on_block(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        """Enqueue a Block when it appears, goes, or changes in what it asks for: its spec
        (generation), its annotations (`blocklearn backfill`), its deletion. Not for status alone."""
        obj = new or old
        assert obj is not None
        if kind == "MODIFIED" and old is not None and new is not None and not _asks_anew(old, new):
            return
        self.block_queue.add(_key(obj))

    def on_example(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        """An Example changed by someone else: embed it if need be, and let its Block check it."""
        obj = new or old
        assert obj is not None
        key = _key(obj)
        if kind == "DELETED":
            self.forget_example(key)
        elif kind == "ADDED" or old is None or new is None or _asks_anew(old, new):
            self.example_queue.add(key)
        elif _status_digest(old) != _status_digest(new):
            self.example_queue.add(key)  # its embedding was changed or taken away
            return
        else:
            return
        self.block_queue.add((key[0], _owner_name(obj)))

    # -- Block -> Example ---------------------------------------------------------------------------

    async def reconcile_block(self, key: Key) -> None:
        await _measured("block", self._reconcile_block(key))

    async def _reconcile_block(self, key: Key) -> str:
        block = self.blocks.get(key)
        if block is None:
            await self._collect_stray(key)
            return "gone"
        if block["metadata"].get("deletionTimestamp"):
            return "deleting"
        if (leftovers := block_patch(block)) is not None:
            updated = await self._write("PATCH", BLOCKS, key[0], key[1], leftovers)
            if updated is None:
                return "gone"
            self.blocks.put(updated)
            block = updated
        meta = block["metadata"]
        decision = outcomes = None
        try:
            spec = BlockSpec.model_validate(block.get("spec") or {})
        except ValidationError as exc:
            outcome = Outcome.invalid(describe_validation_error(exc))
        else:
            answers = shown_answers(spec.retrieved_examples, lambda name: self.examples.get((key[0], name)))
            outcomes = assess(spec, answers, decided_retrieval(block))
            excluded = is_excluded(meta.get("annotations"))
            ref = BlockRef(name=meta["name"], uid=meta.get("uid", ""))
            if _text_chars(spec) > LARGE_BLOCK_CHARS:
                # Redaction is linear but not free: a Block near the CRD's caps built to be slow costs
                # ~0.2 s (bench/redaction_fp.py --worst), which the event loop must not wait for.
                decision = await asyncio.to_thread(decide, spec, ref, self.policy, excluded)
            else:
                decision = decide(spec, ref, self.policy, excluded)
            outcome = Outcome.of(decision)
        await self._converge_example(block, outcome.example)
        previous = find((block.get("status") or {}).get("conditions") or [], "Learned")
        counted = recorded(block)
        if not await self._write_block_status(block, outcome, outcomes):
            return "unchanged"
        if outcomes is not None and outcomes != counted:
            metrics.suggestions_total.labels(outcomes.suggestion, outcomes.retrieval).inc()
        if previous is None or previous.get("reason") != outcome.learned[1]:
            # Counted when the decision changes, not each time a resync confirms it.
            metrics.block_decisions_total.labels(outcome.learned[1]).inc()
            for kind, count in (decision.redactions if decision else {}).items():
                metrics.redactions_total.labels(kind).inc(count)
        if outcome.ready[1] == Reason.INVALID and (
            previous is None or (previous.get("reason"), previous.get("message")) != outcome.learned[1:]
        ):
            log.warning("Rejected Block: namespace=%s name=%s %s", key[0], key[1], outcome.ready[2])
            await events.post(self.rest, block, "Warning", Reason.INVALID.value, outcome.ready[2])
        return "success"

    async def _write_block_status(self, block: Obj, outcome: Outcome, outcomes: Outcomes | None) -> bool:
        patch = status_patch(block, block_status(block, outcome, outcomes))
        if patch is None:
            return False  # converged: running the reconcile again writes nothing
        meta = block["metadata"]
        updated = await self._write("PATCH", BLOCKS, meta["namespace"], meta["name"], patch, "status")
        if updated is not None:
            self.blocks.put(updated)
        return updated is not None

    async def _converge_example(self, block: Obj, example: ExampleSpec | None) -> None:
        """Make exactly the desired Example exist (or none), whatever exists now."""
        namespace, block_name = block["metadata"]["namespace"], block["metadata"]["name"]
        key = (namespace, example_name(block_name))
        current = self.examples.get(key)
        if example is None:
            if current is not None and owned_by(current, block):
                await self._delete_example(current)
                log.info("Deleted Example: namespace=%s name=%s block=%s", namespace, key[1], block_name)
            return
        if current is None:
            created = await self._write("POST", EXAMPLES, namespace, key[1], new_example(block, example))
            if created is not None:
                self.examples.put(created)
                self.example_queue.add(key)
                log.info("Created Example: namespace=%s name=%s block=%s", namespace, key[1], block_name)
            return
        if current["metadata"].get("deletionTimestamp"):
            # Left by an earlier Block of this name and still being collected: make it anew after.
            raise Requeue("Example is being deleted; will create it again", delay=1.0)
        patch = example_patch(current, block, example)
        if patch is not None:
            updated = await self._write("PATCH", EXAMPLES, namespace, key[1], patch)
            if updated is not None:
                self.examples.put(updated)
                self.example_queue.add(key)
                log.info("Updated Example: namespace=%s name=%s block=%s", namespace, key[1], block_name)

    async def _collect_stray(self, key: Key) -> None:
        """The Block is gone. Its Example goes by garbage collection, except one created from a stale
        cache just as the Block was deleted, whose owner is already gone: delete that one here."""
        example = self.examples.get((key[0], example_name(key[1])))
        if example is None or example["metadata"].get("deletionTimestamp"):
            return
        refs = example["metadata"].get("ownerReferences") or []
        if any(r.get("kind") == "Block" and r.get("controller") and r.get("name") == key[1] for r in refs):
            await self._delete_example(example)
            log.info("Deleted Example of a deleted Block: namespace=%s name=%s", key[0], key[1])

    async def _delete_example(self, example: Obj) -> None:
        meta = example["metadata"]
        # Preconditions: delete the Example the decision was about, not one made meanwhile.
        options = {"preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}}
        await self._write("DELETE", EXAMPLES, meta["namespace"], meta["name"], options)
        self.examples.delete((meta["namespace"], meta["name"]))
        self.forget_example((meta["namespace"], meta["name"]))

    # -- Example -> embedding -----------------------------------------------------------------------

    async def reconcile_example(self, key: Key) -> None:
        await _measured("example", self._reconcile_example(key))

    async def _reconcile_example(self, key: Key) -> str:
        example = self.examples.get(key)
        if example is None:
            self.forget_example(key)
            return "gone"
        meta, status = example["metadata"], example.get("status") or {}
        if meta.get("deletionTimestamp"):
            return "deleting"
        generation = meta.get("generation")
        if key in self._refused and self._refused[key] == generation:
            return "refused"
        try:
            spec = ExampleSpec.model_validate(example.get("spec") or {})
        except ValidationError as exc:
            message = describe_validation_error(exc)
            await self._write_embedded_condition(example, "False", Reason.INVALID, message, warn=True)
            return "invalid"
        text, truncated = query_text(spec.query.cells)
        wanted = text_hash(text, self.embedder.model)
        if (
            status.get("textHash") == wanted
            and (status.get("embedding") or not self.stores_vectors)
            and status.get("embeddingModel") == self.embedder.model
        ):
            self.forget_example(key)
            return "unchanged"
        self._waiting.add(key)
        metrics.embedding_backlog.set(len(self._waiting))
        if status.get("embeddingModel") not in (None, self.embedder.model):
            await self.reembed_limit.acquire()  # a model switch: rewrite stored Examples at a bounded rate
        try:
            vector = await self.batcher.embed(text) if self.stores_vectors else None
        except EmbedderError as exc:
            metrics.embedder_errors_total.labels(exc.reason).inc()
            if exc.permanent:
                # A refusal (a 4xx other than 429) waits for a change: a new key needs a restart,
                # which reconciles every Example again.
                self._refused[key] = generation
                await self._write_embedded_condition(example, "False", "EmbedderRefused", str(exc), warn=True)
                return "refused"
            await self._write_embedded_condition(example, "False", "EmbedderError", str(exc))
            raise Requeue(str(exc)) from exc
        if truncated:
            metrics.query_truncations_total.inc()
        conditions = set_condition(
            status.get("conditions") or [],
            "Embedded",
            "True",
            "Embedded",
            f"Embedded with {self.embedder.model}.",
            generation,
        )
        desired = ExampleStatus(
            # None removes a stale vector: the hashing setting stores none
            embedding=None if vector is None else encode(vector, self.settings.embedding_dtype),
            embedding_dim=None if vector is None else int(vector.shape[0]),
            embedding_model=self.embedder.model,
            text_hash=wanted,
            embedded_at=now_rfc3339(),
            source_changed_at=(meta.get("annotations") or {}).get(SOURCE_CHANGED),
            conditions=[Condition.model_validate(c) for c in conditions if c.get("type") == "Embedded"],
        )
        patch = status_patch(example, desired)
        if patch is not None:
            updated = await self._write("PATCH", EXAMPLES, meta["namespace"], meta["name"], patch, "status")
            if updated is None:
                return "gone"
            self.examples.put(updated)
        self.forget_example(key)
        metrics.examples_embedded_total.inc()
        log.info(
            "Embedded Example: namespace=%s name=%s truncated=%s", meta["namespace"], meta["name"], truncated
        )
        return "success"

    async def _write_embedded_condition(
        self, example: Obj, status: str, reason: str, message: str, warn: bool = False
    ) -> None:
        """Set the Embedded condition alone (the embedding stays as it is); a Warning on a transition."""
        meta = example["metadata"]
        current = (example.get("status") or {}).get("conditions") or []
        previous = find(current, "Embedded")
        conditions = set_condition(current, "Embedded", status, reason, message, meta.get("generation"))
        if merge_patch(current, conditions) is SAME:
            return
        patch = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "status": {"conditions": conditions},
        }
        updated = await self._write("PATCH", EXAMPLES, meta["namespace"], meta["name"], patch, "status")
        if updated is not None:
            self.examples.put(updated)
        if warn and (
            previous is None or (previous.get("reason"), previous.get("message")) != (reason, message)
        ):
            await events.post(self.rest, example, "Warning", reason, message)

    @property
    def waiting(self) -> int:
        """Examples whose embedding is missing or stale, as far as this process has seen."""
        return len(self._waiting)

    def forget_example(self, key: Key) -> None:
        self._waiting.discard(key)
        self._refused.pop(key, None)
        metrics.embedding_backlog.set(len(self._waiting))

    # -- writing --------------------------------------------------------------------------------

    async def _write(
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
                await self._refresh(plural, namespace, name)
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

    async def _refresh(self, plural: str, namespace: str, name: str) -> None:
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


def _text_chars(spec: BlockSpec) -> int:
    """How much text the learning rule (and its redaction) reads in a Block."""
    cells = [*spec.doc.cells, spec.generated_cell, spec.executed_cell]
    return sum(len(c.contents) + sum(map(len, c.outputs)) for c in cells if c is not None)


def _key(obj: Mapping[str, Any]) -> Key:
    return str(obj["metadata"]["namespace"]), str(obj["metadata"]["name"])


def _owner_name(example: Mapping[str, Any]) -> str:
    """The Block an Example belongs to: its controller owner, else the Block of the same name."""
    for ref in example["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Block" and ref.get("controller"):
            return str(ref["name"])
    return str(example["metadata"]["name"])


def _asks_anew(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a change is one to act on: spec (generation), annotations, owners, deletion."""
    a, b = old.get("metadata", {}), new.get("metadata", {})
    return any(
        a.get(f) != b.get(f) for f in ("generation", "annotations", "ownerReferences", "deletionTimestamp")
    )


def _status_digest(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    status = obj.get("status") or {}
    return status.get("textHash"), bool(status.get("embedding")), status.get("embeddingModel")


async def _measured(resource: str, reconcile: Coroutine[Any, Any, str]) -> None:
    """Count the reconcile by result ("error" when it raised) and time it."""
    started = time.perf_counter()
    result = "error"
    try:
        result = await reconcile
    except Refused:
        result = "refused"  # logged where it happened; retried when the object changes
    except Requeue:
        result = "requeued"
        raise
    finally:
        metrics.reconcile_total.labels(resource, result).inc()
        metrics.reconcile_duration_seconds.labels(resource).observe(time.perf_counter() - started)
