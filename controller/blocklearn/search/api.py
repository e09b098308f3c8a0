"""The search API of the index sidecar: POST /v1/search, /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import HttpVersion11, web
from pydantic import ValidationError

from blocklearn import metrics
from blocklearn.embed import Embedder, EmbedderError
from blocklearn.index.core import ExampleIndex, Hit
from blocklearn.runtime.probes import probe_app
from blocklearn.search.auth import Authenticator, AuthUnavailableError, Caller, authenticate
from blocklearn.search.distinct import Grouped, candidates, distinct
from blocklearn.search.openapi import render as render_openapi
from blocklearn.search.schema import SearchRequest, describe

# The largest valid request written with every character escaped (32 cells of 4,096 astral
# characters as \ud83d\ude00 pairs, their outputs and languages too) is 1.98 MB: any request the
# schema admits fits (tests/test_index_api.py builds it).
MAX_BODY_BYTES = 2 * 1024 * 1024
JSON_TYPES = ("application/json",)
OPENAPI_JSON = render_openapi()  # built once: the models do not change while the index runs


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _read_request(request: web.Request) -> SearchRequest | web.Response:
    """The whole body, read to its end (however slowly it arrives) but never past the limit, then
    parsed strictly; anything wrong is a 4xx that says what."""
    if request.content_type not in JSON_TYPES:
        given = request.headers.get("Content-Type")
        return _error(415, f"Content-Type must be application/json, not {given or 'none'}")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, f"request body is over {MAX_BODY_BYTES} bytes")
    try:
        raw = await request.read()  # aiohttp stops at the app's client_max_size
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"request body is over {MAX_BODY_BYTES} bytes")
    except (web.RequestPayloadError, ConnectionError) as exc:
        # Not in its Content-Encoding, cut short, or the client went away: the stream is broken,
        # so close the connection rather than read on after the answer.
        response = _error(400, f"request body could not be read: {exc}")
        response.force_close()
        return response
    try:
        # pydantic's own JSON parser: invalid UTF-8, lone surrogates and deep nesting are errors
        # (it stops at 200 levels), not a RecursionError.
        return SearchRequest.model_validate_json(raw)
    except ValidationError as exc:
        invalid = next((e["msg"] for e in exc.errors() if e["type"] == "json_invalid"), None)
        if invalid is not None:
            return _error(400, f"request body is not valid JSON: {invalid.removeprefix('Invalid JSON: ')}")
        return _error(400, describe(exc))


async def _expect(request: web.Request) -> web.Response | None:
    """`Expect: 100-continue` as aiohttp answers it; anything else a 417. aiohttp's own answer to an
    unknown Expect fails on a non-ASCII value, with a 500."""
    if request.headers.get("Expect", "").lower() == "100-continue":
        if request.version == HttpVersion11:
            try:
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            except ConnectionError:
                return None  # the client went away; reading its body will say so
            request.writer.output_size = 0  # still nothing of the response itself
        return None
    return _error(417, "Expect must be 100-continue or absent")


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
            req = await _read_request(request)
            if isinstance(req, web.Response):
                result = "bad_request"
                return req
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
                distinct(hits, req.k) if req.distinct else [Grouped(h, h.entry.occurrences) for h in hits]
            )
            result = "ok" if groups else "empty"
            return web.json_response(
                {
                    "results": [_result(g.hit, g.support) for g in groups],
                    "model": index.model,
                    "indexSize": index.size(req.namespace),
                }
            )
        finally:
            metrics.search_total.labels(result).inc()
            metrics.search_duration_seconds.observe(time.perf_counter() - started)

    app = build_probe_app(
        index.__len__, ready, alive, detail=vector_detail(index), client_max_size=MAX_BODY_BYTES
    )
    app.router.add_post("/v1/search", search, expect_handler=_expect)
    app.router.add_get("/openapi.json", openapi)
    return app


def vector_detail(index: ExampleIndex) -> Callable[[], dict[str, Any]]:
    """/readyz's account of the vectors: how far a model switch (or the first embedding) has come."""

    def detail() -> dict[str, Any]:
        counts = index.vector_counts()
        return {"vectors": {"model": index.model, "current": counts.current, "missing": counts.missing}}

    return detail


def _result(hit: Hit, support: int) -> dict[str, Any]:
    """One result as `schema.SearchResult` describes it; built as a dict, as the entry already has
    the Example's validated shape."""
    entry = hit.entry
    return {
        "namespace": entry.namespace,
        "name": entry.name,
        "score": round(hit.score, 6),
        "support": support,
        "query": entry.query,
        "answer": entry.answer,
        "blockRef": entry.block_ref,
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

    def readyz_detail() -> dict[str, Any]:
        return {"indexSize": size(), **(detail() if detail else {})}

    return probe_app(alive, ready, readyz_detail, **options)
