"""`blocklearn controller`: the kopf operator process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import prometheus_client

from blocklearn import GROUP, metrics
from blocklearn.embed import EmbedderError
from blocklearn.embed.factory import build_embedder
from blocklearn.embed.openai import OpenAIEmbedder
from blocklearn.kube.client import CustomObjects, api_client
from blocklearn.operator.handlers import Reconcilers
from blocklearn.operator.leader import LeaderElector, LeaseClient, lease_config, while_leading
from blocklearn.settings import Settings

log = logging.getLogger("blocklearn.controller")
KOPF_PREFIX = f"kopf.{GROUP}"


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # Handler progress and the diff base live in annotations: status is pruned by the structural
    # schema, so kopf's default status storage would lose its state there (kopf #574). The prefix
    # is not ours: kopf ignores changes to every annotation under its storage prefix, and
    # `blocklearn backfill` asks for a reconcile with an annotation under blocklearn.dev/.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    # Watches that hang silently never recover on their own (kopf #585, #698, #204): the server ends
    # each watch after 5 minutes and the client gives up 30 s later, so a dead stream is replaced.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    # Events tell `kubectl describe blk` what happened; info and above is what a person reads.
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 8


async def run(settings: Settings, liveness: str | None = None, stop: asyncio.Event | None = None) -> None:
    embedder = build_embedder(settings)
    if isinstance(embedder, OpenAIEmbedder):
        try:
            await embedder.probe()
        except EmbedderError as exc:
            # Not fatal: a controller restarted during an outage must still turn Blocks into
            # Examples; the Examples wait (Embedded=False) and BlocklearnEmbedderFailing says why.
            metrics.embedder_errors_total.labels(exc.reason).inc()
            log.error("Embedder not answering at startup; Examples will wait for it: %s", exc)
    api = CustomObjects(api_client())
    registry = kopf.OperatorRegistry()
    reconcilers = Reconcilers(settings, api, embedder)
    reconcilers.register(registry)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.probe(id="examples_waiting", registry=registry)
    def waiting(**_: Any) -> int:
        return reconcilers.waiting

    metrics.set_build_info(embedder.model, "controller")
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port)
    log.info(
        "Started controller: namespaces=%s embedder=%s metrics_port=%s",
        ",".join(settings.namespaces) or "*",
        embedder.model,
        settings.metrics_port,
    )
    tasks: list[asyncio.Task[None]] = []

    # Started from kopf's startup so that it runs in kopf's context: kopf.warn() and kopf.info()
    # need the operator's event queue, and fail outside it.
    @kopf.on.startup(registry=registry)
    async def start_resync(**_: Any) -> None:
        tasks.append(asyncio.create_task(reconcilers.resync_forever(settings.namespaces)))

    # kopf takes over SIGTERM and, on stop, waits 5 s for every task in the loop it did not start:
    # stop ours as soon as kopf begins to clean up.
    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        reconcilers.batcher.close()

    async def operate(stop_flag: asyncio.Event | None) -> None:
        await kopf.operator(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=True,
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
        )

    try:
        if not settings.leader_election:
            await operate(stop)
            return
        # Only the Lease holder runs kopf (and so the handlers and the resync): a follower waits,
        # and a leader that cannot renew stops kopf at once and exits, as controller-runtime does.
        elector = LeaderElector(lease_config(settings), LeaseClient(api.client))
        if await while_leading(elector, operate, stop, liveness):
            raise SystemExit("Lost leadership; exiting so that this replica restarts as a follower")
    finally:
        for task in tasks:
            task.cancel()
