"""`blocklearn index`: the sidecar process that watches Examples and serves search.

An informer lists the Examples (each namespace concurrently, in pages) and watches them; the index
applies what it reports (`index/sync.py`). It is ready once every namespace has been listed, and its
/healthz fails when a watch loop has died. Searches read the index in memory and never wait for the
API.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from pathlib import Path
from typing import Any

import tenacity
from aiohttp import web

from blocklearn import API_VERSION, EXAMPLES, metrics
from blocklearn.embed import EmbedderError
from blocklearn.embed.factory import build_embedder
from blocklearn.embed.hashing import dense_dim
from blocklearn.embed.openai import OpenAIEmbedder
from blocklearn.index.core import ExampleIndex
from blocklearn.index.sync import IndexSync, publish
from blocklearn.runtime import retry
from blocklearn.runtime.informer import Informer, Store
from blocklearn.runtime.objects import Obj, resource_path
from blocklearn.runtime.probes import serve
from blocklearn.runtime.rest import Rest
from blocklearn.search.api import build_app, build_probe_app, build_waiting_app, vector_detail
from blocklearn.search.auth import Authenticator, AuthUnavailableError, SharedToken, TokenReviewer
from blocklearn.settings import Settings

log = logging.getLogger("blocklearn.index")
# The server ends each watch after this long: a silently dead stream (kopf #585, #698) is replaced,
# and /healthz sees a stuck loop, within a few minutes.
WATCH_SECONDS = 45
# Examples per list page: each carries its embedding, so a page stays near 2 MB however many there are.
PAGE = 500
TOKEN_REVIEW_SECONDS = 10.0


def read_token(path: str | None) -> str | None:
    if path is None:
        return None
    token = Path(path).read_text().strip()
    if not token:
        raise SystemExit(f"blocklearn index: the token file {path} is empty")
    return token


AUTH_NAMES = {SharedToken: "shared-token", TokenReviewer: "token-review"}


def build_authenticators(settings: Settings, rest: Rest) -> list[Authenticator]:
    """What a search's bearer token is checked against; none: the search API is open."""
    authenticators: list[Authenticator] = []
    token = read_token(settings.index_token_file)
    if token is not None:
        authenticators.append(SharedToken(token))
    if settings.index_token_review:
        path = resource_path("authentication.k8s.io/v1", "tokenreviews")

        async def checked(spec: dict[str, Any]) -> dict[str, Any]:
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
            try:
                answer = await rest.request("POST", path, body, timeout=TOKEN_REVIEW_SECONDS)
                status: dict[str, Any] = answer.get("status") or {}
                return status
            except Exception as exc:  # any failure: the caller may retry; never a 500
                # The type and status only: an exception's text may quote the token.
                log.warning("TokenReview failed: %s %s", type(exc).__name__, getattr(exc, "status", ""))
                raise AuthUnavailableError("the Kubernetes API did not review the token") from exc

        authenticators.append(
            TokenReviewer(checked, settings.index_token_audiences, settings.index_trusted_subjects)
        )
    return authenticators


async def _serve(
    app: web.Application, host: str, port: int, probe_port: int | None, probes: web.Application
) -> list[web.AppRunner]:
    """Serve `app` on host:port, and `probes` on every address of probe_port if there is one."""
    runners = [await serve(app, host, port)]
    if probe_port is not None:
        runners.append(await serve(probes, "0.0.0.0", probe_port))
    return runners


async def _wait_for_embedder(embedder: OpenAIEmbedder, stop: asyncio.Event) -> bool:
    """Probe until the embedder answers (True) or the process is asked to stop (False)."""

    def failed(state: retry.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, EmbedderError):
            metrics.embedder_errors_total.labels(exc.reason).inc()
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.error("Embedder not answering; search waits for it (next try in %.0f s): %s", delay, exc)

    try:
        async for attempt in tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(EmbedderError),
            wait=retry.exponential(1.0, 30.0),
            stop=tenacity.stop_when_event_set(stop),  # type: ignore[arg-type]  # asyncio's Event has is_set too
            sleep=retry.interruptible_sleep(stop),
            before_sleep=failed,
            reraise=True,
        ):
            with attempt:
                await embedder.probe()
    except EmbedderError:
        return False  # asked to stop while the embedder was still down
    return not stop.is_set()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def run(
    settings: Settings,
    host: str,
    port: int,
    stop: asyncio.Event,
    probe_port: int | None = None,
    allow_unauthenticated: bool = False,
) -> None:
    rest = Rest.from_kubeconfig()
    authenticators = build_authenticators(settings, rest)
    if not authenticators and not is_loopback(host) and not allow_unauthenticated:
        raise SystemExit(
            f"blocklearn index: refusing to serve search on {host} without authentication. Set"
            " BLOCKLEARN_INDEX_TOKEN_FILE or BLOCKLEARN_INDEX_TOKEN_REVIEW=true, listen on"
            " 127.0.0.1 (with --probe-port for the kubelet), or pass --allow-unauthenticated."
        )
    embedder = build_embedder(settings)
    if isinstance(embedder, OpenAIEmbedder):
        # The matrix needs the embedder's dimension. Until it answers, stay alive and unready
        # rather than exit: a restart loop would not bring the endpoint back any sooner.
        waiting = await _serve(build_waiting_app(), host, port, probe_port, build_waiting_app())
        try:
            if not await _wait_for_embedder(embedder, stop):
                await rest.close()
                return
        finally:
            for runner in waiting:
                await runner.cleanup()
    index = ExampleIndex(dense_dim(embedder), embedder.model)
    sync = IndexSync(index)

    def on_event(kind: str, old: Obj | None, new: Obj | None) -> None:
        sync.on_event(kind, old, new, live=informer.synced.is_set())

    # The index keeps its own copy of what it serves: the informer's cache keeps versions only.
    informer = Informer(
        rest,
        API_VERSION,
        EXAMPLES,
        settings.namespaces,
        Store(trim=lambda _: None),
        on_event,
        page=PAGE,
        watch_seconds=WATCH_SECONDS,
        relist_seconds=settings.relist_seconds,
    )
    informer.start()
    metrics.set_build_info(embedder.model, "index")
    metrics.index_ready.set(0)
    became_ready = asyncio.create_task(_ready_after_first_list(informer, index))
    app = build_app(
        index,
        embedder,
        ready=informer.synced.is_set,
        alive=informer.alive,
        cross_namespace=settings.cross_namespace_search,
        authenticators=authenticators,
    )
    runners = await _serve(
        app,
        host,
        port,
        probe_port,
        build_probe_app(index.__len__, informer.synced.is_set, informer.alive, detail=vector_detail(index)),
    )
    log.info(
        "Serving search: url=http://%s:%d/v1/search probes_port=%s namespaces=%s model=%s auth=%s",
        host,
        port,
        probe_port,
        ",".join(settings.namespaces) or "*",
        embedder.model,
        ",".join(AUTH_NAMES[type(a)] for a in authenticators) or "none",
    )
    try:
        await stop.wait()
    finally:
        became_ready.cancel()
        informer.stop()
        await informer.join()
        for runner in runners:
            await runner.cleanup()
        await rest.close()
        if isinstance(embedder, OpenAIEmbedder):
            await embedder.close()


async def _ready_after_first_list(informer: Informer, index: ExampleIndex) -> None:
    started, cpu = time.monotonic(), time.process_time()
    await informer.synced.wait()
    publish(index)
    metrics.index_ready.set(1)
    log.info(
        "Listed Examples: scopes=%d index_size=%d seconds=%.1f cpu_seconds=%.1f",
        len(informer.scopes),
        len(index),
        time.monotonic() - started,
        time.process_time() - cpu,
    )
