"""`blocklearn controller`: informers, work queues and the resync, hosted by kopf.

kopf runs the process: startup, login and cleanup. It handles no resource itself: its per-object
machinery (a diff base copied into annotations, progress annotations, success Events, a worker task
per object) cost more writes and CPU than the work, and it cannot tell what was deleted while a
watch was down (docs/architecture.md). Our informers list in pages and watch; reconcilers work from
their cache (blocklearn.controller). One HTTP server, up from start to exit, serves /healthz (a
follower waiting for the Lease is healthy) and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from aiohttp import web

from blocklearn import API_VERSION, BLOCKS, EXAMPLES, metrics
from blocklearn.controller.reconcilers import Reconcilers
from blocklearn.embed import EmbedderError
from blocklearn.embed.factory import build_embedder
from blocklearn.embed.openai import OpenAIEmbedder
from blocklearn.runtime import kubeclient
from blocklearn.runtime.informer import Informer
from blocklearn.runtime.leader import LeaderElector, LeaseClient, lease_config, while_leading
from blocklearn.runtime.probes import probe_app, serve
from blocklearn.runtime.rest import Rest
from blocklearn.runtime.resync import Resync
from blocklearn.settings import Settings

log = logging.getLogger("blocklearn.controller")
WORKERS = 16


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # kopf watches nothing of ours; what it would post are its own messages: ours are Events we
    # write on transitions (blocklearn.controller.events).
    settings.posting.enabled = False
    settings.networking.request_timeout = 60


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's login: the credentials as `Rest` reads them. kopf's own login imports the official
    client, which costs the process 37 MB; it is left for the kubeconfigs only that client knows."""
    credentials = kubeclient.configuration()
    if not isinstance(credentials, kubeclient.Credentials):
        return kopf.login_via_client(**kwargs)
    return kopf.ConnectionInfo(
        server=credentials.host,
        ca_path=credentials.ssl_ca_cert,
        insecure=not credentials.verify_ssl,
        token=credentials.current_token(),
        certificate_path=credentials.cert_file,
        private_key_path=credentials.key_file,
    )


class Controller:
    """The parts that run while the operator does, started once its caches are filled."""

    def __init__(self, settings: Settings, rest: Rest, reconcilers: Reconcilers) -> None:
        r = reconcilers
        self.reconcilers = r
        relist = settings.relist_seconds
        self.informers = [
            Informer(
                rest, API_VERSION, BLOCKS, settings.namespaces, r.blocks, r.on_block, relist_seconds=relist
            ),
            Informer(
                rest,
                API_VERSION,
                EXAMPLES,
                settings.namespaces,
                r.examples,
                r.on_example,
                relist_seconds=relist,
            ),
        ]
        self.resync = Resync(r.resync, settings.resync_seconds)
        self.started = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.started = True
        for informer in self.informers:
            informer.start()
        # As controller-runtime: reconcile only once every cache has synced, so that a Block not
        # yet listed is never taken for a deleted one.
        for informer in self.informers:
            await informer.synced.wait()
        r = self.reconcilers
        r.export_store_use()
        self._tasks = [
            asyncio.create_task(r.block_queue.run(r.reconcile_block, WORKERS)),
            asyncio.create_task(r.example_queue.run(r.reconcile_example, WORKERS)),
            # One at a time: an eviction pass reads a whole namespace, and passes do not overlap.
            asyncio.create_task(r.namespace_queue.run(r.reconcile_namespace, 1)),
        ]
        self.resync.start()
        log.info("Synced caches: blocks=%d examples=%d", len(r.blocks), len(r.examples))

    def alive(self) -> bool:
        """Not started yet (a follower, or kopf still starting) counts as alive; once started, every
        watch, worker and the resync loop must run."""
        return not self.started or (
            all(i.alive() for i in self.informers)
            and all(not t.done() for t in self._tasks)
            and (not self._tasks or self.resync.alive())
        )

    def stop(self) -> None:
        if self.started:
            self.reconcilers.unexport_store_use()
        self.resync.stop()
        for informer in self.informers:
            informer.stop()
        for task in self._tasks:
            task.cancel()

    async def join(self) -> None:
        """Wait until nothing of it runs (after `stop`): no request is left in flight when the
        client closes, and a restart starts from nothing."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.resync.join()
        for informer in self.informers:
            await informer.join()


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    embedder = build_embedder(settings)
    if isinstance(embedder, OpenAIEmbedder):
        try:
            await embedder.probe()
        except EmbedderError as exc:
            # Not fatal: a controller restarted during an outage must still turn Blocks into
            # Examples; the Examples wait (Embedded=False) and BlocklearnEmbedderFailing says why.
            metrics.embedder_errors_total.labels(exc.reason).inc()
            log.error("Embedder not answering at startup; Examples will wait for it: %s", exc)
    rest = Rest.from_kubeconfig()
    reconcilers = Reconcilers(settings, rest, embedder)
    controller = Controller(settings, rest, reconcilers)
    elector = LeaderElector(lease_config(settings), LeaseClient(rest)) if settings.leader_election else None
    registry = kopf.OperatorRegistry()
    starting: list[asyncio.Task[None]] = []

    def alive() -> bool:
        # The kubelet restarts a controller whose start failed or whose watches, workers or resync
        # have died, instead of leaving it silently idle.
        if starting and starting[0].done() and not starting[0].cancelled() and starting[0].exception():
            log.error("The controller failed to start: %r", starting[0].exception())
            return False
        return controller.alive()

    def detail() -> dict[str, Any]:
        return {"leader": elector.leading if elector else True, "waiting": reconcilers.waiting}

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        starting.append(asyncio.create_task(controller.start()))

    kopf.on.login(registry=registry)(login)

    # kopf takes over SIGTERM and, on stop, waits 5 s for every task in the loop it did not start:
    # stop ours as soon as kopf begins to clean up. That includes kopf's own watcher of the stop
    # flag it was given (a leader's), which only ends when the flag is set: a leader stopped by a
    # signal set it here, or it handed its Lease over 5 s late.
    stop_flags: list[asyncio.Event] = []

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for flag in stop_flags:
            flag.set()
        for task in starting:
            task.cancel()
        controller.stop()
        reconcilers.batcher.close()

    async def operate(stop_flag: asyncio.Event | None) -> None:
        if stop_flag is not None:
            stop_flags.append(stop_flag)
        await kopf.operator(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=True,
            stop_flag=stop_flag,
        )

    metrics.set_build_info(embedder.model, "controller")
    probes: web.AppRunner | None = None
    if settings.metrics_port:
        probes = await serve(probe_app(alive, detail=detail), "0.0.0.0", settings.metrics_port)
    log.info(
        "Started controller: namespaces=%s embedder=%s probes_port=%s block_ttl_seconds=%g"
        " max_examples_per_namespace=%d example_max_age_days=%g store_budget_bytes=%d",
        ",".join(settings.namespaces) or "*",
        embedder.model,
        settings.metrics_port,
        settings.block_ttl_seconds,
        settings.max_examples_per_namespace,
        settings.example_max_age_days,
        settings.store_budget_bytes,
    )
    try:
        if elector is None:
            await operate(stop)
            return
        # Only the Lease holder runs kopf (and so the informers, the reconcilers and the resync): a
        # follower waits, and a leader that cannot renew stops at once and exits, as
        # controller-runtime does.
        if await while_leading(elector, operate, stop):
            raise SystemExit("Lost leadership; exiting so that this replica restarts as a follower")
    finally:
        controller.stop()
        await controller.join()
        if probes is not None:
            await probes.cleanup()
        await rest.close()
        if isinstance(embedder, OpenAIEmbedder):
            await embedder.close()
