"""The one HTTP server of a process for the kubelet and Prometheus: /healthz, /readyz and /metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import prometheus_client
from aiohttp import web


def probe_app(
    alive: Callable[[], bool],
    ready: Callable[[], bool] = lambda: True,
    detail: Callable[[], dict[str, Any]] | None = None,
    **options: Any,
) -> web.Application:
    """/healthz (liveness: 503 once a loop the process needs has died), /readyz (200 once it can
    serve; `detail` adds to its body) and /metrics. More routes may be added to the app."""

    async def healthz(_: web.Request) -> web.Response:
        ok = alive()
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok, **(detail() if detail else {})}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        data = prometheus_client.generate_latest()
        return web.Response(body=data, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    app = web.Application(**options)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving `app`; the caller stops it with `await runner.cleanup()`."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
