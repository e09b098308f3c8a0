import json
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from blocklearn.embed.hashing import HashingEmbedder, dense_dim
from blocklearn.index.core import MAX_K, Entry, ExampleIndex
from blocklearn.resources.models import (
    MAX_CELL_CHARS,
    MAX_CELLS,
    MAX_LANGUAGE_CHARS,
    MAX_OUTPUT_CHARS,
    MAX_OUTPUTS,
)
from blocklearn.search.api import MAX_BODY_BYTES, build_app
from blocklearn.search.auth import SharedToken
from blocklearn.search.schema import SearchRequest

EMBEDDER = HashingEmbedder(256)


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    index = ExampleIndex(dense_dim(EMBEDDER), EMBEDDER.model)  # hashing: the lexical channel alone
    docs = {
        "a": ("list pods in kube-system", "kubectl get pods -n kube-system", "team-a"),
        "b": ("compress a directory", "tar czf dir.tgz dir", "team-a"),
        "c": ("list pods in kube-system", "kubectl -n kube-system get po", "team-b"),
    }
    for name, (doc, cmd, ns) in docs.items():
        index.upsert(
            f"{ns}/{name}",
            Entry(
                ns,
                name,
                query=doc,
                answer_json=json.dumps([{"kind": "code", "contents": cmd}]),
                block_ref_json=json.dumps({"name": name}),
            ),
            doc,
        )
    app = build_app(index, EMBEDDER, ready=lambda: True, alive=lambda: True, cross_namespace=True)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_search_returns_the_nearest_examples_with_their_answers(client: TestClient) -> None:
    resp = await client.post(
        "/v1/search", json={"query": "show the pods of kube-system", "namespace": "team-a"}
    )
    assert resp.status == 200
    body = await resp.json()
    # The footer counts what the caller searched: team-a's 2 examples, not the index's 3.
    assert body["indexSize"] == 2 and body["model"] == EMBEDDER.model
    first = body["results"][0]
    assert (first["namespace"], first["name"]) == ("team-a", "a")
    assert first["answer"][0]["contents"] == "kubectl get pods -n kube-system"
    assert set(first) == {"namespace", "name", "score", "support", "query", "answer", "blockRef"}
    # k defaults to 3 and team-a has 2, but "b" shares no word with the query: the lexical channel
    # alone (the hashing setting) returns no example it has no evidence for.
    assert [r["name"] for r in body["results"]] == ["a"]


async def test_cells_queries_and_k(client: TestClient) -> None:
    cells = [{"kind": "markup", "contents": "compress a folder"}]
    body = await (await client.post("/v1/search", json={"query": {"cells": cells}, "k": 1})).json()
    assert [r["name"] for r in body["results"]] == ["b"]


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"query": ""}', 400, "query is empty"),
        (b'{"query": "   "}', 400, "query is empty"),
        (b'{"query": "x", "k": 0}', 400, "k"),
        (b'{"query": "x", "k": 1000000}', 400, "k"),
        (b'{"query": 5}', 400, "query"),
        (b'{"k": 3}', 400, "query"),
        (b'{"query": "x", "bogus": 1}', 400, "bogus"),
        (b'{"query": {"cells": []}}', 400, "cells"),
        (
            json.dumps(
                {"query": {"cells": [{"kind": "markup", "contents": "x"}] * (MAX_CELLS + 1)}}
            ).encode(),
            400,
            f"query.cells.cells: List should have at most {MAX_CELLS} items",
        ),
        (b"[1, 2]", 400, "Input should be"),
        (b'{"query": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413, "over"),
        # Strict types: no string or boolean taken for a number.
        (b'{"query": "x", "k": "3"}', 400, "k: Input should be a valid integer"),
        (b'{"query": "x", "k": true}', 400, "k: Input should be a valid integer"),
        (b'{"query": "x", "distinct": "yes"}', 400, "distinct"),
        (b'{"query": "x", "minScore": NaN}', 400, "minScore"),
        # What the embedder cannot take is refused up front, not a 500 later on.
        (b'{"query": "list\\u0000pods"}', 400, "NUL"),
        (b'{"query": "list \\ud800 pods"}', 400, "not valid JSON"),
        (b'{"query": "' + b"x" * 4097 + b'"}', 400, "at most 4096 characters"),
        (b'{"query": {"cells": [{"kind": "markup", "contents": "a\\u0000"}]}}', 400, "NUL"),
        (b'{"query": "\xff\xfe"}', 400, "not valid JSON"),
        (b'{"query": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "recursion limit"),
        (b'{"query": "x", "namespace": ' + b"{" * 1000 + b"}", 400, "not valid JSON"),
    ],
)
async def test_bad_requests_get_a_message_that_says_what_is_wrong(
    client: TestClient, payload: bytes, status: int, fragment: str
) -> None:
    resp = await client.post("/v1/search", data=payload, headers={"Content-Type": "application/json"})
    # (the fixture allows cross-namespace search, so a missing namespace is not the error here)
    assert resp.status == status
    assert fragment in (await resp.json())["error"]


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "json"])
async def test_a_body_that_is_not_declared_json_gets_415(client: TestClient, ctype: str | None) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    resp = await client.post("/v1/search", data=b'{"query": "list pods"}', headers=headers)
    assert resp.status == 415
    assert "Content-Type must be application/json" in (await resp.json())["error"]
    charset = {"Content-Type": "application/json; charset=utf-8"}
    assert (await client.post("/v1/search", data=b'{"query": "list pods"}', headers=charset)).status == 200


def largest_valid_request() -> bytes:
    """The largest body the schema admits, written with every character escaped: astral characters
    as surrogate pairs (12 bytes each), in every field at its maximum length."""
    wide = "\U0001f600"
    cell = {
        "kind": "markup",
        "language": wide * MAX_LANGUAGE_CHARS,
        "contents": wide * MAX_CELL_CHARS,
        "outputs": [wide * MAX_OUTPUT_CHARS] * MAX_OUTPUTS,
    }
    body = {"query": {"cells": [cell] * MAX_CELLS}, "k": MAX_K, "namespace": "n" * 253, "minScore": -1.0}
    SearchRequest.model_validate(body)  # valid, as claimed
    return json.dumps(body, ensure_ascii=True).encode()


async def test_every_valid_request_fits_under_the_body_limit(client: TestClient) -> None:
    raw = largest_valid_request()
    assert len(raw) <= MAX_BODY_BYTES
    resp = await client.post("/v1/search", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()


async def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["indexSize"] == 3
    await client.post("/v1/search", json={"query": "pods"})
    text = await (await client.get("/metrics")).text()
    assert 'blocklearn_search_total{result="ok"}' in text
    assert "blocklearn_search_duration_seconds_bucket" in text


async def test_searches_stay_in_their_namespace_unless_cross_namespace_is_enabled() -> None:
    index = ExampleIndex(dense_dim(EMBEDDER), EMBEDDER.model)
    for ns in ("team-a", "team-b"):
        index.upsert(f"{ns}/x", Entry(ns, "x"), "list pods")
    app = build_app(index, EMBEDDER, ready=lambda: True, alive=lambda: True)
    async with TestClient(TestServer(app)) as c:
        resp = await c.post("/v1/search", json={"query": "list pods"})
        assert resp.status == 400 and "namespace is required" in (await resp.json())["error"]
        body = await (await c.post("/v1/search", json={"query": "list pods", "namespace": "team-b"})).json()
        assert [r["namespace"] for r in body["results"]] == ["team-b"]


async def test_not_ready_until_the_first_list() -> None:
    index = ExampleIndex(dense_dim(EMBEDDER), EMBEDDER.model)
    app = build_app(index, EMBEDDER, ready=lambda: False, alive=lambda: True)
    async with TestClient(TestServer(app)) as c:
        assert (await c.get("/readyz")).status == 503
        assert (await c.post("/v1/search", json={"query": "pods", "namespace": "default"})).status == 503


async def test_a_configured_token_is_required_for_search_but_not_for_probes() -> None:
    index = ExampleIndex(dense_dim(EMBEDDER), EMBEDDER.model)
    app = build_app(
        index, EMBEDDER, ready=lambda: True, alive=lambda: True, authenticators=[SharedToken("s3cret-token")]
    )
    body = {"query": "pods", "namespace": "default"}
    async with TestClient(TestServer(app)) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
            resp = await c.post("/v1/search", json=body, headers=headers)
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
        ok = await c.post("/v1/search", json=body, headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status == 200
        assert (await c.get("/readyz")).status == 200 and (await c.get("/metrics")).status == 200


async def test_search_returns_distinct_answers_with_their_support_unless_asked_for_raw_results() -> None:
    index = ExampleIndex(dense_dim(EMBEDDER), EMBEDDER.model)  # hashing: the lexical channel alone
    docs = [
        ("p1", "list the pods in kube-system", "kubectl get pods -n kube-system", 1),
        ("p2", "list the pods of kube-system please", "kubectl  get pods -n kube-system\n", 1),
        ("p3", "show pods in kube-system", "kubectl get pods -n kube-system", 2),  # taught twice
        ("w", "list the pods in kube-system, wide", "kubectl get pods -n kube-system -o wide", 1),
        ("t", "compress a directory", "tar czf dir.tgz dir", 1),
    ]
    for name, doc, cmd, occurrences in docs:
        answer = json.dumps([{"kind": "code", "contents": cmd}])
        entry = Entry("default", name, doc, answer, json.dumps({"name": name}), occurrences)
        index.upsert(f"default/{name}", entry, doc)
    app = build_app(index, EMBEDDER, ready=lambda: True, alive=lambda: True)
    query = {"query": "list the pods in kube-system", "namespace": "default", "k": 2}
    async with TestClient(TestServer(app)) as c:
        body = await (await c.post("/v1/search", json=query)).json()
        answers = [" ".join(r["answer"][0]["contents"].split()) for r in body["results"]]
        assert answers == ["kubectl get pods -n kube-system", "kubectl get pods -n kube-system -o wide"]
        assert [r["support"] for r in body["results"]] == [4, 1]  # the occurrences of p1, p2, p3
        raw = await (await c.post("/v1/search", json={**query, "k": 4, "distinct": False})).json()
        raw_answers = [" ".join(r["answer"][0]["contents"].split()) for r in raw["results"]]
        assert len(raw_answers) == 4 and len(set(raw_answers)) < 4  # the same answer repeats
        supports = {r["name"]: r["support"] for r in raw["results"]}
        assert supports == {"p1": 1, "p2": 1, "p3": 2, "w": 1}  # each example's own occurrences
