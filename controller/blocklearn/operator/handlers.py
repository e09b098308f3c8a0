"""kopf handlers: thin layers that fetch, call the pure logic and write the result.

Both reconcilers are level-triggered (kopf's reconciliation recipe): resume, create, update and the
periodic resync all call one idempotent function that reads the object's current state and converges.
Running it twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from blocklearn import API_VERSION, BLOCKS, EXAMPLES, GROUP, VERSION, metrics
from blocklearn.conditions import now_rfc3339, set_condition
from blocklearn.embed import Embedder, EmbedderError
from blocklearn.embed.batcher import EmbedBatcher
from blocklearn.embed.codec import encode, text_hash
from blocklearn.embed.hashing import stores_vectors
from blocklearn.embed.ratelimit import TokenBucket
from blocklearn.embed.text import query_text
from blocklearn.kube.client import CustomObjects
from blocklearn.learning import Policy, Reason, decide, example_name, is_excluded
from blocklearn.models import BlockRef, BlockSpec, ExampleSpec
from blocklearn.settings import Settings

SOURCE_CHANGED = f"{GROUP}/source-changed-at"
BLOCK_LABEL = f"{GROUP}/block"


def describe_validation_error(exc: ValidationError) -> str:
    """One line a person can act on: `spec.executedCell.contents: Input should be a valid string`."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{where}: {err['msg'].removeprefix('Value error, ')}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


class Backoff:
    """Exponential retry delays with a cap: 1s, 2s, 4s, ... up to `cap`."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap

    def delay(self, retry: int) -> float:
        return float(min(self.cap, self.base * 2 ** min(retry, 30)))


class Reconcilers:
    """The Block and Example reconcilers, with their dependencies, registered on a kopf registry."""

    def __init__(self, settings: Settings, api: CustomObjects, embedder: Embedder) -> None:
        self.settings = settings
        self.api = api
        self.embedder = embedder
        self.policy = Policy(**settings.policy_kwargs())
        self.backoff = Backoff(settings.retry_base_seconds, settings.retry_max_seconds)
        self.batcher = EmbedBatcher(embedder, settings.embed_batch_size, settings.embed_batch_wait_seconds)
        self.reembed_limit = TokenBucket(settings.reembed_per_second)
        self._waiting: set[str] = set()  # Examples whose embedding is missing or stale

    # -- Block -> Example --------------------------------------------------------------------------

    async def _write_status(self, plural: str, body: kopf.Body, fields: dict[str, Any], retry: int) -> None:
        """Write status ourselves, not through kopf's patch: when kopf's own status patch fails
        (a 409 or a 5xx), kopf logs it and moves on, and the status stays lost until the next resync.
        Here a failed write fails the handler, and kopf retries it with backoff."""
        if all(body.status.get(k) == v for k, v in fields.items()):
            return  # converged: running the reconcile again writes nothing
        try:
            await self.api.patch_status(plural, body.meta["namespace"], body.meta["name"], fields)
        except ApiException as exc:
            if exc.status == 404:
                return  # deleted meanwhile: nothing left to report on
            metrics.reconcile_errors_total.labels(plural[:-1]).inc()
            metrics.reconcile_retries_total.labels(plural[:-1]).inc()
            raise kopf.TemporaryError(
                f"Kubernetes API error {exc.status} writing status", delay=self.backoff.delay(retry)
            ) from exc

    async def reconcile_block(
        self, body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], retry: int
    ) -> None:
        await _measured("block", self._reconcile_block(body, logger, retry))

    async def _reconcile_block(
        self, body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], retry: int
    ) -> str:
        meta = body.meta
        name, namespace = meta["name"], meta["namespace"]
        generation = meta.get("generation")
        conditions = list(body.status.get("conditions", []))
        try:
            spec = BlockSpec.model_validate(dict(body.spec))
        except ValidationError as exc:
            message = describe_validation_error(exc)
            await self._converge_example(namespace, name, None, body, logger, retry)
            conditions = set_condition(conditions, "Ready", "False", Reason.INVALID, message, generation)
            conditions = set_condition(conditions, "Learned", "False", Reason.INVALID, message, generation)
            fields = {"conditions": conditions, "observedGeneration": generation, "exampleRef": None}
            await self._write_status(BLOCKS, body, fields, retry)
            metrics.block_decisions_total.labels(Reason.INVALID.value).inc()
            kopf.warn(body, reason=Reason.INVALID.value, message=message)
            logger.warning(f"Rejected Block: {message}")
            raise kopf.PermanentError(message) from None  # retried only when the Block changes

        excluded = is_excluded(meta.get("annotations"))
        decision = decide(spec, BlockRef(name=name, uid=meta.get("uid", "")), self.policy, excluded)
        await self._converge_example(namespace, name, decision.example, body, logger, retry)
        learned = "True" if decision.teaches else "False"
        conditions = set_condition(conditions, "Ready", "True", "Reconciled", "Block reconciled.", generation)
        conditions = set_condition(
            conditions, "Learned", learned, decision.reason.value, decision.message, generation
        )
        ref = example_name(name) if decision.teaches else None
        fields = {"conditions": conditions, "observedGeneration": generation, "exampleRef": ref}
        await self._write_status(BLOCKS, body, fields, retry)
        metrics.block_decisions_total.labels(decision.reason.value).inc()
        for kind, count in decision.redactions.items():
            metrics.redactions_total.labels(kind).inc(count)
        return "success"

    async def _converge_example(
        self,
        namespace: str,
        block_name: str,
        example: ExampleSpec | None,
        block: kopf.Body,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        retry: int,
    ) -> None:
        """Make exactly the desired Example exist (or none), whatever exists now."""
        name = example_name(block_name)
        try:
            current = await self.api.get(EXAMPLES, namespace, name)
            if example is None:
                if current is not None and _owned_by(current, block):
                    await self.api.delete(EXAMPLES, namespace, name)
                    logger.info(f"Deleted Example: namespace={namespace} name={name} block={block_name}")
                return
            desired_spec = example.model_dump(by_alias=True, exclude_none=True, mode="json")
            if current is None and not await self._block_exists(block):
                # The body may be stale (a resync's list, an event just before a delete): creating
                # the Example now would bring back what the Block's deletion just collected.
                logger.info(f"Block is gone; not creating its Example: namespace={namespace} name={name}")
                return
            if current is None:
                desired = {
                    "apiVersion": API_VERSION,
                    "kind": "Example",
                    "metadata": {
                        "name": name,
                        # Label values stop at 63 characters; Block names may be longer.
                        "labels": {BLOCK_LABEL: block_name} if len(block_name) <= 63 else {},
                        "annotations": {SOURCE_CHANGED: _source_changed_at(block)},
                    },
                    "spec": desired_spec,
                }
                kopf.adopt(desired, owner=block)
                try:
                    await self.api.create(EXAMPLES, namespace, desired)
                    logger.info(f"Created Example: namespace={namespace} name={name} block={block_name}")
                    return
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                current = await self.api.get(EXAMPLES, namespace, name)  # lost a race: compare and patch
                if current is None:
                    raise kopf.TemporaryError("Example vanished while being created", delay=1)
            if current.get("metadata", {}).get("deletionTimestamp"):
                # Left by an earlier Block of this name and still being collected: make it anew after.
                raise kopf.TemporaryError("Example is being deleted; will create it again", delay=1)
            changes: dict[str, Any] = {}
            if current.get("spec") != desired_spec:
                changes["spec"] = desired_spec
                changes["metadata"] = {"annotations": {SOURCE_CHANGED: _source_changed_at(block)}}
            if not _owned_by(current, block):
                # Made by hand, or by an earlier Block of this name: adopt it, so deletion cascades.
                owned: dict[str, Any] = {}
                kopf.adopt(owned, owner=block)
                changes.setdefault("metadata", {})["ownerReferences"] = owned["metadata"]["ownerReferences"]
            if changes:
                await self.api.patch(EXAMPLES, namespace, name, changes)
                logger.info(f"Updated Example: namespace={namespace} name={name} block={block_name}")
        except ApiException as exc:
            metrics.reconcile_errors_total.labels("block").inc()
            metrics.reconcile_retries_total.labels("block").inc()
            if exc.status in (400, 403, 422):
                # The API refused what we wrote: retrying will not help until something changes.
                raise kopf.PermanentError(
                    f"The API refused the Example ({exc.status}): {exc.reason}"
                ) from exc
            raise kopf.TemporaryError(
                f"Kubernetes API error {exc.status} on Example {namespace}/{name}",
                delay=self.backoff.delay(retry),
            ) from exc

    async def _block_exists(self, block: kopf.Body) -> bool:
        """Whether this very Block (same uid) still exists and is not being deleted."""
        current = await self.api.get(BLOCKS, block.meta["namespace"], block.meta["name"])
        meta = (current or {}).get("metadata", {})
        return meta.get("uid") == block.meta.get("uid") and not meta.get("deletionTimestamp")

    # -- Example -> embedding ----------------------------------------------------------------------

    async def reconcile_example(
        self, body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], retry: int
    ) -> None:
        await _measured("example", self._reconcile_example(body, logger, retry))

    async def _reconcile_example(
        self, body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], retry: int
    ) -> str:
        meta, status = body.meta, body.status
        key = f"{meta['namespace']}/{meta['name']}"
        generation = meta.get("generation")
        conditions = list(status.get("conditions", []))
        try:
            spec = ExampleSpec.model_validate(dict(body.spec))
        except ValidationError as exc:
            message = describe_validation_error(exc)
            invalid = set_condition(conditions, "Embedded", "False", Reason.INVALID, message, generation)
            await self._write_status(EXAMPLES, body, {"conditions": invalid}, retry)
            kopf.warn(body, reason=Reason.INVALID.value, message=message)
            raise kopf.PermanentError(message) from None
        text, truncated = query_text(spec.query.cells)
        wanted = text_hash(text, self.embedder.model)
        vectors = stores_vectors(self.embedder)  # not with `hashing`: the index reads the text itself
        if status.get("textHash") == wanted and (status.get("embedding") or not vectors):
            self._waiting.discard(key)
            metrics.embedding_backlog.set(len(self._waiting))
            return "unchanged"
        self._waiting.add(key)
        metrics.embedding_backlog.set(len(self._waiting))
        if truncated:
            metrics.query_truncations_total.inc()
        if status.get("embeddingModel") not in (None, self.embedder.model):
            await self.reembed_limit.acquire()  # a model switch: rewrite stored Examples at a bounded rate
        try:
            vector = await self.batcher.embed(text) if vectors else None
        except EmbedderError as exc:
            metrics.embedder_errors_total.labels(exc.reason).inc()
            metrics.reconcile_retries_total.labels("example").inc()
            failing = set_condition(conditions, "Embedded", "False", "EmbedderError", str(exc), generation)
            await self._write_status(EXAMPLES, body, {"conditions": failing}, retry)
            raise kopf.TemporaryError(str(exc), delay=self.backoff.delay(retry)) from exc
        await self._write_status(
            EXAMPLES,
            body,
            {
                # None removes a stale vector (the hashing setting stores none)
                "embedding": None if vector is None else encode(vector, self.settings.embedding_dtype),
                "embeddingDim": None if vector is None else int(vector.shape[0]),
                "embeddingModel": self.embedder.model,
                "textHash": wanted,
                "embeddedAt": now_rfc3339(),
                "sourceChangedAt": meta.get("annotations", {}).get(SOURCE_CHANGED),
                "conditions": set_condition(
                    conditions,
                    "Embedded",
                    "True",
                    "Embedded",
                    f"Embedded with {self.embedder.model}.",
                    generation,
                ),
            },
            retry,
        )
        self._waiting.discard(key)
        metrics.embedding_backlog.set(len(self._waiting))
        metrics.examples_embedded_total.inc()
        logger.info(
            f"Embedded Example: namespace={meta['namespace']} name={meta['name']} truncated={truncated}"
        )
        return "success"

    @property
    def waiting(self) -> int:
        """Examples whose embedding is missing or stale, as far as this process has seen."""
        return len(self._waiting)

    def forget_example(self, namespace: str, name: str) -> None:
        self._waiting.discard(f"{namespace}/{name}")
        metrics.embedding_backlog.set(len(self._waiting))

    # -- registration ------------------------------------------------------------------------------

    async def resync_forever(self, namespaces: list[str]) -> None:
        """Re-derive every object's state periodically, healing drift (an Example deleted by hand).

        Not a kopf timer: timers put a finalizer on every object, and then no Block or Example can be
        deleted while the controller is not running (kopf #1305, #833). Like controller-runtime's
        SyncPeriod, this lists and reconciles by id, and writes only where something differs.
        """
        log = logging.getLogger("blocklearn.resync")
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            counts = {"blocks": 0, "examples": 0, "failed": 0, "current": 0}
            for plural, reconcile in ((BLOCKS, self.reconcile_block), (EXAMPLES, self.reconcile_example)):
                scopes: list[str | None] = [*namespaces] or [None]
                for namespace in scopes:
                    try:
                        # Page by page: Examples carry their embeddings, so one list of them all
                        # would hold every vector in memory at once (seen in the soak benchmark).
                        async for items in self.api.pages(plural, namespace):
                            counts["current"] += await self._resync_page(
                                plural, reconcile, items, counts, log
                            )
                    except ApiException as exc:
                        log.warning("Failed to list for resync: plural=%s status=%s", plural, exc.status)
            metrics.examples_current.set(counts["current"])
            log.info(
                "Resynced: blocks=%d examples=%d failed=%d",
                counts["blocks"],
                counts["examples"],
                counts["failed"],
            )

    async def _resync_page(
        self,
        plural: str,
        reconcile: Callable[[kopf.Body, logging.Logger, int], Awaitable[None]],
        items: list[dict[str, Any]],
        counts: dict[str, int],
        log: logging.Logger,
    ) -> int:
        """Reconcile one page; returns how many of its Examples have a current embedding."""
        for raw in items:
            try:
                await reconcile(kopf.Body(cast(kopf.RawBody, raw)), log, 0)
                counts[plural] += 1
            except (kopf.TemporaryError, kopf.PermanentError, ApiException, EmbedderError):
                counts["failed"] += 1  # the next resync or the next change retries it
            except Exception:  # one broken object must never stop the loop for all
                counts["failed"] += 1
                log.exception(
                    "Failed to resync: plural=%s name=%s", plural, raw.get("metadata", {}).get("name")
                )
        return sum(1 for raw in items if self._is_current(raw)) if plural == EXAMPLES else 0

    def _is_current(self, raw: dict[str, Any]) -> bool:
        status = raw.get("status") or {}
        stored = bool(status.get("embedding")) or not stores_vectors(self.embedder)
        return stored and status.get("embeddingModel") == self.embedder.model

    def register(self, registry: kopf.OperatorRegistry) -> None:
        @kopf.on.resume(GROUP, VERSION, BLOCKS, registry=registry)
        @kopf.on.create(GROUP, VERSION, BLOCKS, registry=registry)
        # Any change but status: a spec edit, or an annotation from `blocklearn backfill` or an analyzer.
        @kopf.on.update(GROUP, VERSION, BLOCKS, registry=registry)
        async def block(
            body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], retry: int, **_: Any
        ) -> None:
            await self.reconcile_block(body, logger, retry)

        @kopf.on.resume(GROUP, VERSION, EXAMPLES, registry=registry)
        @kopf.on.create(GROUP, VERSION, EXAMPLES, registry=registry)
        @kopf.on.update(GROUP, VERSION, EXAMPLES, field="spec", registry=registry)
        async def example(
            body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], retry: int, **_: Any
        ) -> None:
            await self.reconcile_example(body, logger, retry)

        @kopf.on.delete(GROUP, VERSION, EXAMPLES, optional=True, registry=registry)
        async def example_gone(meta: kopf.Meta, **_: Any) -> None:
            self.forget_example(meta["namespace"], meta["name"])


async def _measured(resource: str, reconcile: Coroutine[Any, Any, str]) -> None:
    """Count the reconcile by result ("error" when it raised) and time it."""
    started = time.perf_counter()
    result = "error"
    try:
        result = await reconcile
    finally:
        metrics.reconcile_total.labels(resource, result).inc()
        metrics.reconcile_duration_seconds.labels(resource).observe(time.perf_counter() - started)


def _owned_by(obj: dict[str, Any], owner: kopf.Body) -> bool:
    uid = owner.meta.get("uid")
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences", []))


def _source_changed_at(block: kopf.Body) -> str:
    """When the Block's current content appeared: its creation, or now for a later generation."""
    if block.meta.get("generation", 1) == 1 and block.meta.get("creationTimestamp"):
        return str(block.meta["creationTimestamp"])
    return now_rfc3339()
