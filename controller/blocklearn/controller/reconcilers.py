"""The reconcilers: read the cache, ask the pure functions what should be, write the difference.

Level-triggered and keyed, as controller-runtime's `Reconcile(ctx, req)`: each gets a namespace/name,
reads the current objects from the informers' cache (never from the API), and converges. Running
one twice writes nothing. Every write carries the resourceVersion it was computed from; a 409 means
the cache was stale, so the object is read once, the cache refreshed, and the key reconciled again.

A teaching Block costs six writes over its whole life: its own create, the Example's create, the
Example's status (the embedding), the Block's status, and at its expiry the removal of its owner
reference from the Example and its own delete. A Block that teaches a correction already learned
counts an occurrence instead (four in all); a Block that teaches nothing costs three. A Block that
ran the answer of an Example it was shown (a retrieval Hit) moves that Example's `lastSeenAt`, at most
once an hour an Example. Events only on a transition (a Block becoming Invalid).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from pydantic import ValidationError

from blocklearn import BLOCKS, EXAMPLES, metrics
from blocklearn.controller import events
from blocklearn.controller.cache import NAMESPACE, OWNER, RETRIEVED, TEACHES, block_store, example_store
from blocklearn.controller.desired import (
    SAME,
    SOURCE_CHANGED,
    Outcome,
    block_patch,
    block_status,
    controller_owner,
    decided_at,
    example_patch,
    is_embedded,
    last_seen,
    merge_patch,
    new_example,
    occurrence_patch,
    occurrences,
    owned_by,
    release_patch,
    seen_patch,
    source_changed_at,
    status_patch,
)
from blocklearn.controller.eviction import EVICTION_REASONS, plan_evictions
from blocklearn.controller.writes import Refused, Writer
from blocklearn.embed import Embedder, EmbedderError
from blocklearn.embed.batcher import EmbedBatcher
from blocklearn.embed.codec import encode, text_hash
from blocklearn.embed.hashing import stores_vectors
from blocklearn.embed.ratelimit import TokenBucket
from blocklearn.embed.text import query_text
from blocklearn.learn.outcome import (
    PAIRS,
    assess,
    decided_retrieval,
    is_counted,
    matched_example,
    shown_answers,
)
from blocklearn.learn.rule import Policy, Reason, decide, example_name, is_excluded
from blocklearn.resources.conditions import find, set_condition
from blocklearn.resources.models import (
    BlockRef,
    BlockSpec,
    BlockStatus,
    Condition,
    ExampleSpec,
    ExampleStatus,
)
from blocklearn.runtime.clock import SYSTEM_CLOCK, Clock
from blocklearn.runtime.keyedlocks import KeyedLocks
from blocklearn.runtime.memory import release_free_memory
from blocklearn.runtime.objects import Key, Obj, key_of, now_rfc3339
from blocklearn.runtime.rest import Rest
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
# A retrieval Hit refreshes its Example's `lastSeenAt` at most this often (seconds): one write an hour
# at most per Example in use, whatever the number of Blocks that hit it.
SEEN_REFRESH_SECONDS = 3600


class Reconcilers:
    """The Block, Example and namespace reconcilers, their cache and their work queues."""

    def __init__(
        self, settings: Settings, rest: Rest, embedder: Embedder, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.settings = settings
        self.rest = rest
        self.embedder = embedder
        self.clock = clock  # what TTLs and ages are measured by (a test moves its own)
        self.policy = Policy(**settings.policy_kwargs())
        self.blocks = block_store()
        self.examples = example_store()
        self.writer = Writer(rest, self.blocks, self.examples)
        base, cap = settings.retry_base_seconds, settings.retry_max_seconds
        self.block_queue: WorkQueue[Key] = WorkQueue("block", base, cap, clock)
        self.example_queue: WorkQueue[Key] = WorkQueue("example", base, cap, clock)
        self.namespace_queue: WorkQueue[str] = WorkQueue("namespace", base, cap, clock)
        self.batcher = EmbedBatcher(embedder, settings.embed_batch_size, settings.embed_batch_wait_seconds)
        self.stores_vectors = stores_vectors(embedder)  # not `hashing`: the index reads the text itself
        self.reembed_limit = TokenBucket(settings.reembed_per_second)
        self._waiting: set[Key] = set()  # Examples whose embedding is missing or stale
        # Examples the embedder refused (a 4xx), by generation: asked again only when the Example
        # changes, or after a restart (with a new key, say); not by every resync.
        self._refused: dict[Key, int | None] = {}
        # The resourceVersion at which each object's last reconcile ended converged (for an
        # Example, times two, plus one when its embedding is current): a resync replays only the
        # others. A reconcile is a function of what it reads, so it would write nothing for these.
        self._settled_blocks: dict[Key, int] = {}
        self._settled_examples: dict[Key, int] = {}
        # Every series from the start, at 0, so that rates and ratios over them have data.
        for pair in PAIRS:
            metrics.suggestions_total.labels(pair.suggestion, pair.retrieval)
        for resource in ("block", "example"):
            metrics.reconcile_errors_total.labels(resource)
        for reason in EVICTION_REASONS:
            metrics.examples_evicted_total.labels(reason)
        # Blocks counted in an Example whose status does not say so yet: (uid, Example name) by
        # Block. A retried status write then counts nothing twice; only a crash in between can.
        self._counted: dict[Key, tuple[str, str]] = {}
        # Blocks whose TTL is up but whose Example waits for its embedding, by Example.
        self._held: dict[Key, set[Key]] = {}
        self._example_locks = KeyedLocks[Key]()
        metrics.store_budget_bytes.set(settings.store_budget_bytes)

    def export_store_use(self) -> None:
        """Export what the caches hold, once they have synced and only by the leader: a follower
        (which lists nothing) or a leader still listing would export a 0 that BlocklearnStoreNearBudget's
        projection takes for growth when it becomes S."""
        for kind, store in (("block", self.blocks), ("example", self.examples)):
            metrics.stored_objects.labels(kind).set_function(store.__len__)
            metrics.stored_bytes.labels(kind).set_function(store.nbytes)

    @staticmethod
    def unexport_store_use() -> None:
        """No series once this controller stops: a stale value is not what the next leader holds."""
        metrics.stored_objects.clear()
        metrics.stored_bytes.clear()

    # -- what the informers report ------------------------------------------------------------------

    def on_block(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        """Enqueue a Block when it appears, goes, or changes in what it asks for: its spec
        (generation), its annotations (`blocklearn backfill`), its deletion. Not for status alone."""
        obj = new or old
        assert obj is not None
        if kind == "MODIFIED" and old is not None and new is not None and not _asks_anew(old, new):
            return
        self.block_queue.add(key_of(obj))

    def on_example(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        """An Example changed by someone else: embed it if need be, and let the Blocks that teach it
        check it (they make it again, or put its content back, while they live)."""
        obj = new or old
        assert obj is not None
        key = key_of(obj)
        if kind == "DELETED":
            self.forget_example(key)
            self._release_held(key)  # the Blocks waiting for its embedding make it again
        elif kind == "ADDED" or old is None or new is None or _asks_anew(old, new):
            self.example_queue.add(key)
        elif _status_digest(old) != _status_digest(new):
            self.example_queue.add(key)  # its embedding was changed or taken away
            return
        else:
            return
        if kind != "MODIFIED":
            self.evict_soon(key[0])
        for block in self._teaching(obj) | self._retrieving(obj):
            self.block_queue.add(block)

    def _teaching(self, example: Obj) -> set[Key]:
        """The Blocks in the cache that teach an Example: its creator, and those counted in it."""
        namespace, name = key_of(example)
        blocks = set(self.blocks.by_index(TEACHES, f"{namespace}/{name}"))
        if (owner := controller_owner(example)) is not None:
            blocks.add((namespace, str(owner.get("name"))))
        return blocks

    def _retrieving(self, example: Obj) -> set[Key]:
        """The Blocks in the cache that name the Example among those shown and whose retrieval
        outcome is not decided yet: it may be now that the Example came or changed (a resync
        replays only unsettled Blocks)."""
        namespace, name = key_of(example)
        return set(self.blocks.by_index(RETRIEVED, f"{namespace}/{name}"))

    # -- Block -> Example ---------------------------------------------------------------------------

    async def reconcile_block(self, key: Key) -> None:
        before = self.blocks.version(key)
        self._settled_blocks.pop(key, None)
        result = await _measured("block", self._reconcile_block(key))
        if result in ("unchanged", "deleting") and before is not None and self.blocks.version(key) == before:
            self._settled_blocks[key] = before

    async def _reconcile_block(self, key: Key) -> str:
        block = self.blocks.get(key)
        if block is None:
            self._counted.pop(key, None)
            await self._collect_strays(key, None)
            self.evict_soon(key[0])  # Examples no living Block teaches may be evicted now
            return "gone"
        if block["metadata"].get("deletionTimestamp"):
            return "deleting"
        if (leftovers := block_patch(block)) is not None:
            updated = await self.writer.write("PATCH", BLOCKS, key[0], key[1], leftovers)
            if updated is None:
                return "gone"
            self.blocks.put(updated)
            block = updated
        meta = block["metadata"]
        decision = outcomes = hit = None
        try:
            spec = BlockSpec.model_validate(block.get("spec") or {})
        except ValidationError as exc:
            outcome = Outcome.invalid(describe_validation_error(exc))
        else:
            answers = shown_answers(spec.retrieved_examples, lambda name: self.examples.get((key[0], name)))
            decided = decided_retrieval(block)
            outcomes = assess(spec, answers, decided)
            if decided is None and outcomes is not None and outcomes.retrieval == "Hit":
                hit = matched_example(spec, answers)  # decided now: that Example is seen again
            excluded = is_excluded(meta.get("annotations"))
            ref = BlockRef(name=meta["name"], uid=meta.get("uid", ""), learned_at=source_changed_at(block))
            if _text_chars(spec) > LARGE_BLOCK_CHARS:
                # Redaction is linear but not free: a Block near the CRD's caps built to be slow costs
                # ~0.2 s (bench/redaction_fp.py --worst), which the event loop must not wait for.
                decision = await asyncio.to_thread(decide, spec, ref, self.policy, excluded)
            else:
                decision = decide(spec, ref, self.policy, excluded)
            outcome = Outcome.of(decision)
        name = example_name(outcome.example) if outcome.example is not None else None
        status = block_status(block, outcome, name, outcomes, self.clock.time())
        # Past its TTL, a Block desires its Example without itself as owner, then its own deletion:
        # a controller stopped between the two finishes both on its next reconcile.
        expiring = status_patch(block, status) is None and self._time_left(key, block, name) == 0.0
        await self._converge_example(block, outcome.example, name, expiring)
        if expiring:
            await self._expire(block)
            return "expired"
        if hit is not None:
            await self._refresh_seen((key[0], hit), key[1])
        previous = find((block.get("status") or {}).get("conditions") or [], "Learned")
        counted = is_counted(block)
        if not await self._write_block_status(key, block, status):
            return "unchanged"
        if outcomes is not None and not counted:
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

    async def _write_block_status(self, key: Key, block: Obj, status: BlockStatus) -> bool:
        """Write the status if it changed; then the Block's TTL runs from its `decidedAt`."""
        patch = status_patch(block, status)
        meta = block["metadata"]
        if patch is None:
            if status.example_ref is not None and self._counted.get(key, ("", ""))[1] == status.example_ref:
                self._counted.pop(key, None)  # its status records that it was counted
            return False  # converged: running the reconcile again writes nothing
        updated = await self.writer.write("PATCH", BLOCKS, meta["namespace"], meta["name"], patch, "status")
        if updated is not None:
            self.blocks.put(updated)
            self._counted.pop(key, None)
            if self._time_left(key, updated, status.example_ref) == 0.0:  # else queued for its expiry
                self.block_queue.add(key)  # already due (a TTL shorter than deciding took): again
        return updated is not None

    def _time_left(self, key: Key, block: Obj, name: str | None) -> float | None:
        """Seconds until the Block's TTL is up (0.0: now), and its expiry queued; None without a TTL.

        A Block that teaches waits, past its TTL, for its Example to be embedded: a Block is a
        record of a correction until the correction is learned. `key` is the queue's, not one made
        again from `block`: every Block waits for its expiry, and a key of its own would keep a second
        copy of its name (~0.1 KB a Block)."""
        ttl = self.settings.block_ttl_seconds
        since = decided_at(block)
        if ttl <= 0 or since is None:
            return None
        left = since.timestamp() + ttl - self.clock.time()
        if left > 0:
            self.block_queue.add_at(key, since.timestamp() + ttl)
            return left
        if name is not None:
            example = self.examples.get((key[0], name))
            if example is None or not is_embedded(example):
                self._held.setdefault((key[0], name), set()).add(key)  # queued again once embedded
                return None
        return 0.0

    async def _converge_example(
        self, block: Obj, example: ExampleSpec | None, name: str | None, expiring: bool
    ) -> None:
        """Make the desired Example exist and count this Block in it; let go of those it created
        and no longer teaches. Examples are named from their content, so Blocks that teach the same
        correction race on one name: the API server's create arbitrates, and the losers count."""
        namespace, block_name = block["metadata"]["namespace"], block["metadata"]["name"]
        await self._collect_strays((namespace, block_name), block, keep=name)
        if example is None or name is None:
            return
        key = (namespace, name)
        async with self._example_locks.hold(key):  # this controller's Blocks take turns on one Example
            current = self.examples.get(key)
            if current is None:
                if expiring:
                    return  # a Block on its way out makes nothing again (an Example deleted by hand)
                created = await self.writer.write(
                    "POST", EXAMPLES, namespace, name, new_example(block, example, name)
                )
                if created is not None:
                    self.examples.put(created)  # its watch event will not be reported: tell here
                    self.example_queue.add(key)
                    self.evict_soon(namespace)
                    for waiting in self._retrieving(created):
                        self.block_queue.add(waiting)
                    log.info("Created Example: namespace=%s name=%s block=%s", namespace, name, block_name)
                return
            if current["metadata"].get("deletionTimestamp"):
                # Being collected (its creator deleted, or an eviction): make it anew after.
                raise Requeue("Example is being deleted; will create it again", delay=1.0)
            patch = example_patch(current, block, example)
            if patch is not None:
                updated = await self.writer.write("PATCH", EXAMPLES, namespace, name, patch)
                if updated is None:
                    return
                self.examples.put(current := updated)
                self.example_queue.add(key)
                log.info("Updated Example: namespace=%s name=%s block=%s", namespace, name, block_name)
            if owned_by(current, block):
                if expiring:
                    await self._release(current, block, "expired")
                return
            if self._was_counted(block, name):
                return
            updated = await self.writer.write(
                "PATCH", EXAMPLES, namespace, name, occurrence_patch(current, self.clock.time()), "status"
            )
            if updated is None:
                # Deleted meanwhile (an eviction, a person): the Block must not name it. Again at
                # once, from a cache without it: the Block creates it anew.
                self.examples.delete(key)
                raise Requeue("Example gone while counting an occurrence; will create it again", delay=0.0)
            self.examples.put(updated)
            self._counted[key_of(block)] = (block["metadata"].get("uid", ""), name)
            log.info(
                "Counted Example occurrence: namespace=%s name=%s block=%s occurrences=%d",
                namespace,
                name,
                block_name,
                occurrences(updated),
            )

    async def _refresh_seen(self, key: Key, block_name: str) -> None:
        """A Block ran the answer of an Example it was shown (a Hit): the correction is in use, so its
        `lastSeenAt` moves (not its occurrences: it taught nothing new), at most once an hour, so
        that eviction (least recently seen first) keeps it and this costs at most one write per
        Example per hour however many Blocks hit it."""
        async with self._example_locks.hold(key):
            example = self.examples.get(key)
            if example is None or example["metadata"].get("deletionTimestamp"):
                return
            now = self.clock.time()
            if now - last_seen(example, now).timestamp() < SEEN_REFRESH_SECONDS:
                return
            updated = await self.writer.write(
                "PATCH", EXAMPLES, key[0], key[1], seen_patch(example, now), "status"
            )
            if updated is not None:
                self.examples.put(updated)
                log.info("Refreshed Example: namespace=%s name=%s block=%s", key[0], key[1], block_name)

    def _was_counted(self, block: Obj, name: str) -> bool:
        """Whether this Block is already counted in the Example: its status says so, or this process
        counted it and has not written the status yet."""
        if (block.get("status") or {}).get("exampleRef") == name:
            return True
        return self._counted.get(key_of(block)) == (block["metadata"].get("uid", ""), name)

    async def _collect_strays(self, key: Key, block: Obj | None, keep: str | None = None) -> None:
        """The Examples created by the Block of this name that it no longer teaches (all of them once
        it is gone). Its own go when no other Block taught them too, else they stay without it.
        Those of an earlier Block of the same name are strays, deleted here as garbage collection
        would: made from a stale cache just as that Block was deleted, their owner is already gone."""
        for example_key in self.examples.by_index(OWNER, f"{key[0]}/{key[1]}"):
            current = self.examples.get(example_key)
            if current is None or example_key[1] == keep or current["metadata"].get("deletionTimestamp"):
                continue
            owner = controller_owner(current) or {}
            if block is not None and owned_by(current, block) and occurrences(current) > 1:
                await self._release(current, block, "untaught")
            elif block is not None and owned_by(current, block):
                if await self._delete_example(current):
                    log.info("Deleted Example: namespace=%s name=%s block=%s", key[0], example_key[1], key[1])
            elif (
                block is None or owner.get("uid") != block["metadata"].get("uid")
            ) and await self._delete_example(current):
                log.info(
                    "Deleted Example of a deleted Block: namespace=%s name=%s block=%s",
                    key[0],
                    example_key[1],
                    key[1],
                )

    async def _release(self, example: Obj, block: Obj, reason: str) -> None:
        """Let the Example stand without the Block: its owner reference goes (one write), so neither
        the Block's deletion nor garbage collection takes it."""
        meta = example["metadata"]
        updated = await self.writer.write(
            "PATCH", EXAMPLES, meta["namespace"], meta["name"], release_patch(example, block)
        )
        if updated is not None:
            self.examples.put(updated)
            log.info(
                "Released Example: namespace=%s name=%s block=%s reason=%s",
                meta["namespace"],
                meta["name"],
                block["metadata"]["name"],
                reason,
            )

    async def _expire(self, block: Obj) -> None:
        """Delete a Block whose TTL is up. The preconditions make a Block changed meanwhile (a new
        decision, a new clock) a conflict, redone from its fresh state, instead of a loss."""
        meta = block["metadata"]
        options = {
            "propagationPolicy": "Background",
            "preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]},
        }
        deleted = await self.writer.write("DELETE", BLOCKS, meta["namespace"], meta["name"], options)
        self.blocks.delete((meta["namespace"], meta["name"]))
        self._counted.pop((meta["namespace"], meta["name"]), None)
        self.evict_soon(meta["namespace"])
        if deleted is None:
            return  # deleted meanwhile, by someone else: not an expiry
        metrics.blocks_expired_total.inc()
        log.info(
            "Expired Block: namespace=%s name=%s decided_at=%s example=%s",
            meta["namespace"],
            meta["name"],
            (block.get("status") or {}).get("decidedAt"),
            (block.get("status") or {}).get("exampleRef"),
        )

    async def _delete_example(self, example: Obj) -> bool:
        """Delete the Example; whether this did (False: it was gone already)."""
        meta = example["metadata"]
        # Preconditions: delete the Example the decision was about, not one made meanwhile.
        options = {"preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}}
        deleted = await self.writer.write("DELETE", EXAMPLES, meta["namespace"], meta["name"], options)
        self.examples.delete((meta["namespace"], meta["name"]))
        self.forget_example((meta["namespace"], meta["name"]))
        return deleted is not None

    # -- namespace -> eviction ----------------------------------------------------------------------

    def evict_soon(self, namespace: str) -> None:
        """Queue the namespace's eviction pass, when there is a cap or a maximum age."""
        if self.settings.max_examples_per_namespace or self.settings.example_max_age_days:
            self.namespace_queue.add(namespace)

    async def reconcile_namespace(self, namespace: str) -> None:
        await _measured("namespace", self._reconcile_namespace(namespace))

    async def _reconcile_namespace(self, namespace: str) -> str:
        """Evict the least recently seen Examples beyond the cap, and those not seen for the maximum
        age, among those no living Block teaches (a Block that teaches one would make it again):
        the cap holds exactly once the Blocks of a burst have expired. One DELETE each."""
        cap, max_age = self.settings.max_examples_per_namespace, self.settings.example_max_age_days * 86400
        keys = self.examples.by_index(NAMESPACE, namespace)  # those not being deleted
        if not max_age and (not cap or len(keys) <= cap):
            return "unchanged"
        stored, candidates = len(keys), []
        for key in keys:
            # Read (inflated) only what may go: at each resync a pass over a namespace past its cap
            # whose Examples living Blocks teach reads none of them.
            if not self._taught(key) and (example := self.examples.get(key)) is not None:
                candidates.append((last_seen(example, self.clock.time()), key[1], example))
        plan = plan_evictions(candidates, stored, cap, max_age, self.clock.time())
        if plan.next_due is not None:  # the next Example to age out comes back to this queue on time
            self.namespace_queue.add_at(namespace, plan.next_due)
        for example, reason in plan.evictions:
            key = key_of(example)
            # A Block may be counting an occurrence in it meanwhile: it holds the Example's lock
            # until the count is in `_counted`, which `_taught` reads.
            async with self._example_locks.hold(key):
                if self._taught(key) or not await self._delete_example(example):
                    continue  # a Block counted in it meanwhile, or it was gone already
            metrics.examples_evicted_total.labels(reason).inc()
            log.info(
                "Evicted Example: namespace=%s name=%s reason=%s last_seen=%s occurrences=%d",
                namespace,
                example["metadata"]["name"],
                reason,
                now_rfc3339(last_seen(example, self.clock.time()).timestamp()),
                occurrences(example),
            )
        return "success" if plan.evictions else "unchanged"

    def _taught(self, key: Key) -> bool:
        """Whether a Block in the cache teaches the Example: its creator, one counted in it (from
        the caches' indexes, without reading the Example), or one this process counted in it whose
        status does not say so yet."""
        namespace, name = key
        teachers = self.blocks.by_index(TEACHES, f"{namespace}/{name}")
        teachers += [(namespace, v.split("/", 1)[1]) for v in self.examples.index_values(key, OWNER)]
        teachers += [
            block
            for block, (_, counted) in self._counted.items()
            if block[0] == namespace and counted == name
        ]
        return any(self.blocks.version(block) is not None for block in teachers)

    # -- Example -> embedding -----------------------------------------------------------------------

    async def reconcile_example(self, key: Key) -> None:
        before = self.examples.version(key)
        self._settled_examples.pop(key, None)
        result = await _measured("example", self._reconcile_example(key))
        settled = result in ("unchanged", "invalid", "deleting")
        if settled and before is not None and self.examples.version(key) == before:
            self._settled_examples[key] = before << 1 | (result == "unchanged")

    # -- the resync ---------------------------------------------------------------------------------

    async def resync(self) -> None:
        """One pass of the resync: reconcile again every object whose last reconcile did not end
        converged at the version cached now (it failed, was refused, was never run, or the object
        changed since), and wait for them. On a converged cluster this reads and writes nothing."""
        started, cpu = time.monotonic(), time.process_time()
        queued = 0
        for key in self.blocks.all_keys():
            if self._settled_blocks.get(key) != self.blocks.version(key):
                self.block_queue.add(key)
                queued += 1
        namespaces = set()
        for key in self.examples.all_keys():
            namespaces.add(key[0])
            settled = self._settled_examples.get(key)
            if settled is None or settled >> 1 != self.examples.version(key):
                self.example_queue.add(key)
                queued += 1
        # Every namespace's cap and maximum age, checked again whatever settled (an eviction that
        # failed, a limit lowered by a restart); the next Example to age out also has its own timer.
        for namespace in namespaces:
            self.evict_soon(namespace)
        try:  # the pass ends when its work is done, or after an interval under a steady stream
            async with asyncio.timeout(self.settings.resync_seconds):
                await self.block_queue.drained()
                await self.example_queue.drained()
                await self.namespace_queue.drained()
        except TimeoutError:
            log.info("Resync pass still has work queued after an interval; ending it")
        for settled_map, store in (
            (self._settled_blocks, self.blocks),
            (self._settled_examples, self.examples),
        ):
            for key in [k for k in settled_map if store.version(k) is None]:
                del settled_map[key]  # gone from the cache
        current = sum(
            1
            for key in self.examples.all_keys()
            if self._settled_examples.get(key) == (self.examples.version(key) or 0) << 1 | 1
        )
        metrics.examples_current.set(current)
        metrics.resync_passes_total.inc()
        metrics.resync_duration_seconds.set(time.monotonic() - started)
        metrics.resync_last_success_timestamp_seconds.set(time.time())
        release_free_memory()  # after the first pass above all: reconciling every Block is a burst
        log.info(
            "Resynced: blocks=%d examples=%d queued=%d current=%d seconds=%.2f cpu_seconds=%.2f",
            len(self.blocks),
            len(self.examples),
            queued,
            current,
            time.monotonic() - started,
            time.process_time() - cpu,
        )

    async def _reconcile_example(self, key: Key) -> str:
        example = self.examples.get(key)
        if example is None:
            self.forget_example(key)
            return "gone"
        self.evict_soon(key[0])  # a new or changed Example: the namespace's cap is checked with it
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
            self._release_held(key)
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
            embedded_at=now_rfc3339(self.clock.time()),
            source_changed_at=(meta.get("annotations") or {}).get(SOURCE_CHANGED),
            conditions=[Condition.model_validate(c) for c in conditions if c.get("type") == "Embedded"],
            # Written with the embedding (no write of its own): `kubectl get ex` shows the count.
            occurrences=occurrences(example),
            last_seen_at=status.get("lastSeenAt"),
        )
        patch = status_patch(example, desired)
        if patch is not None:
            updated = await self.writer.write(
                "PATCH", EXAMPLES, meta["namespace"], meta["name"], patch, "status"
            )
            if updated is None:
                return "gone"
            self.examples.put(updated)
        self.forget_example(key)
        self._release_held(key)
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
        updated = await self.writer.write("PATCH", EXAMPLES, meta["namespace"], meta["name"], patch, "status")
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

    def _release_held(self, key: Key) -> None:
        """The Example is embedded: the Blocks whose TTL waited for it may expire now."""
        for block in self._held.pop(key, ()):
            self.block_queue.add(block)

    def forget_example(self, key: Key) -> None:
        self._waiting.discard(key)
        self._refused.pop(key, None)
        metrics.embedding_backlog.set(len(self._waiting))


def _text_chars(spec: BlockSpec) -> int:
    """How much text the learning rule (and its redaction) reads in a Block."""
    cells = [*spec.doc.cells, spec.generated_cell, spec.executed_cell]
    return sum(len(c.contents) + sum(map(len, c.outputs)) for c in cells if c is not None)


def _asks_anew(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a change is one to act on: spec (generation), annotations, owners, deletion."""
    a, b = old.get("metadata", {}), new.get("metadata", {})
    return any(
        a.get(f) != b.get(f) for f in ("generation", "annotations", "ownerReferences", "deletionTimestamp")
    )


def _status_digest(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    status = obj.get("status") or {}
    return status.get("textHash"), bool(status.get("embedding")), status.get("embeddingModel")


async def _measured(resource: str, reconcile: Coroutine[Any, Any, str]) -> str:
    """Count the reconcile by result ("error" when it raised) and time it; the result."""
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
    return result
