"""`blocklearn index`: the sidecar process that watches Examples and serves search."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from controller import metrics
from controller.embed.factory import build_embedder
from controller.embed.openai import OpenAIEmbedder
from controller.index.api import build_app
from controller.index.core import ExampleIndex
from controller.index.watch import ExampleWatcher
from controller.kube.client import api_client
from controller.settings import Settings

log = logging.getLogger("blocklearn.index")


def read_token(path: str | None) -> str | None:
    if path is None:
        return None
    token = Path(path).read_text().strip()
    if not token:
        raise SystemExit(f"blocklearn index: the token file {path} is empty")
    return token


async def run(settings: Settings, host: str, port: int, stop: asyncio.Event) -> None:
    embedder = build_embedder(settings)
    if isinstance(embedder, OpenAIEmbedder):
        await embedder.probe()
    index = ExampleIndex(embedder.dim, embedder.model, query_idf=embedder.query_idf)
    watcher = ExampleWatcher(index, api_client(), settings.namespaces)
    watcher.start()
    metrics.set_build_info(embedder.model, "index")
    metrics.index_ready.set(0)
    token = read_token(settings.index_token_file)
    app = build_app(
        index,
        embedder,
        ready=watcher.ready.is_set,
        alive=watcher.alive,
        cross_namespace=settings.cross_namespace_search,
        token=token,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info(
        "Serving search: url=http://%s:%d/v1/search namespaces=%s model=%s auth=%s",
        host,
        port,
        ",".join(settings.namespaces) or "*",
        embedder.model,
        "bearer-token" if token else "none",
    )
    try:
        await stop.wait()
    finally:
        watcher.stop()
        await runner.cleanup()
