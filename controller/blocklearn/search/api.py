"""The search API of the index sidecar: POST /v1/search, /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import prometheus_client
from aiohttp import web
from pydantic import ValidationError

from blocklearn import metrics
from blocklearn.embed import Embedder, EmbedderError
from blocklearn.index.core import ExampleIndex, Hit
from blocklearn.search.auth import Authenticator, AuthUnavailableError, Caller, authenticate
from blocklearn.search.distinct import Grouped, candidates, distinct, occurrences
from blocklearn.search.openapi import render as render_openapi
from blocklearn.search.schema import SearchRequest

MAX_BODY_BYTES = 1024 * 1024
OPENAPI_JSON = render_openapi()  # built once: the models do not change while the index runs


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def build_app(
    index: ExampleIndex,
    embedder: Embedder,
    ready: Callable[[], bool],
    alive: Callable[[], bool],
    cross_namespace: bool = False,
    authenticators: list[Authenticator] | None = None,
) -> web.Application:
    """The search app. Examples learned in one namespace are answered only to searches naming it,
    unless the operator allows cross-namespace search. With authenticators, a search needs a bearer
    token one of them accepts, and may see only the namespaces its caller may search."""

    async def caller_of(request: web.Request) -> Caller | web.Response:
        if not authenticators:
            return Caller("anonymous", None)
        try:
            caller = await authenticate(authenticators, request.headers.get("Authorization", ""))
        except AuthUnavailableError as exc:
            return _error(503, f"cannot check the bearer token now: {exc}")
        if caller is None:
            return web.json_response(
                {"error": "a valid bearer token is required"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="blocklearn"'},
            )
        return caller

    async def search(request: web.Request) -> web.Response:
        started = time.perf_counter()
        result = "error"
        try:
            caller = await caller_of(request)
            if isinstance(caller, web.Response):
                result = "unauthorized" if caller.status == 401 else "auth_unavailable"
                return caller
            if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
                result = "bad_request"
                return _error(413, f"request body is over {MAX_BODY_BYTES} bytes")
            raw = await request.content.read(MAX_BODY_BYTES + 1)
            if len(raw) > MAX_BODY_BYTES:
                result = "bad_request"
                return _error(413, f"request body is over {MAX_BODY_BYTES} bytes")
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                result = "bad_request"
                return _error(400, f"request body is not valid JSON: {exc}")
            try:
                req = SearchRequest.model_validate(body)
            except ValidationError as exc:
                result = "bad_request"
                return _error(400, _describe(exc))
            if req.namespace is None and not cross_namespace:
                result = "bad_request"
                return _error(
                    400,
                    "namespace is required: cross-namespace search is disabled"
                    " (enable it with BLOCKLEARN_CROSS_NAMESPACE_SEARCH=true)",
                )
            if not caller.may_search(req.namespace):
                result = "forbidden"
                allowed = ", ".join(sorted(caller.namespaces or ())) or "none"
                return _error(
                    403,
                    f"{caller.name} may not search namespace {req.namespace or '(all)'}:"
                    f" it may search {allowed}",
                )
            text = req.text()
            if not text.strip():
                result = "bad_request"
                return _error(400, "query is empty")
            if not ready():
                result = "not_ready"
                return _error(503, "the index has not finished its first list yet")
            vector = None
            if index.dim:  # the hashing setting has no dense channel: nothing to embed
                try:
                    [vector] = await embedder.embed([text])
                except EmbedderError as exc:
                    result = "embedder_error"
                    return _error(502, f"could not embed the query: {exc}")
            fetch = candidates(req.k) if req.distinct else req.k
            hits = await asyncio.to_thread(
                index.search, text, fetch, vector=vector, min_score=req.min_score, namespace=req.namespace
            )
            groups = (
                distinct(hits, req.k) if req.distinct else [Grouped(h, occurrences(h.entry)) for h in hits]
            )
            result = "ok" if groups else "empty"
            return web.json_response(
                {
                    "results": [_result(g.hit, g.support) for g in groups],
                    "model": index.model,
                    "indexSize": len(index),
                }
            )
        finally:
            metrics.search_total.labels(result).inc()
            metrics.search_duration_seconds.observe(time.perf_counter() - started)

    app = build_probe_app(
        index.__len__, ready, alive, detail=vector_detail(index), client_max_size=MAX_BODY_BYTES
    )
    app.router.add_post("/v1/search", search)
    app.router.add_get("/openapi.json", openapi)
    return app


def vector_detail(index: ExampleIndex) -> Callable[[], dict[str, Any]]:
    """/readyz's account of the vectors: how far a model switch (or the first embedding) has come."""

    def detail() -> dict[str, Any]:
        counts = index.vector_counts()
        return {"vectors": {"model": index.model, "current": counts.current, "missing": counts.missing}}

    return detail


def _result(hit: Hit, support: int) -> dict[str, Any]:
    """One result as `schema.SearchResult` describes it; built as a dict, as the payload already has
    the Example's validated shape."""
    payload = hit.entry.payload
    return {
        "namespace": hit.entry.namespace,
        "name": hit.entry.name,
        "score": round(hit.score, 6),
        "support": support,
        "query": payload.get("query"),
        "answer": payload.get("answer"),
        "blockRef": payload.get("blockRef"),
    }


async def openapi(_: web.Request) -> web.Response:
    """The search API's OpenAPI document; no token needed: it describes the API, it holds no data."""
    return web.Response(text=OPENAPI_JSON, content_type="application/json")


def build_waiting_app() -> web.Application:
    """Served while the embedder has not answered at startup: alive, not ready, search 503."""

    async def search(_: web.Request) -> web.Response:
        metrics.search_total.labels("not_ready").inc()
        return _error(503, "the index is waiting for its embedder to answer")

    app = build_probe_app(lambda: 0, ready=lambda: False, alive=lambda: True)
    app.router.add_post("/v1/search", search)
    app.router.add_get("/openapi.json", openapi)
    return app


def build_probe_app(
    size: Callable[[], int],
    ready: Callable[[], bool],
    alive: Callable[[], bool],
    detail: Callable[[], dict[str, Any]] | None = None,
    **options: Any,
) -> web.Application:
    """/healthz, /readyz and /metrics: served with search, and alone on a port of their own where
    search listens on localhost only (the kubelet and Prometheus reach the pod's address). `detail`
    adds to /readyz's body (how many examples have a current vector, during a model switch)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": alive()}, status=200 if alive() else 503)

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        body = {"ready": ok, "indexSize": size(), **(detail() if detail else {})}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics_endpoint(_: web.Request) -> web.Response:
        data = prometheus_client.generate_latest()
        return web.Response(body=data, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    app = web.Application(**options)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    return app
