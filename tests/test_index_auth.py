"""Bearer tokens for the search API: a shared secret, or ServiceAccount tokens checked by TokenReview."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from blocklearn.embed.hashing import HashingEmbedder, dense_dim
from blocklearn.index.core import Entry, ExampleIndex
from blocklearn.search.api import build_app
from blocklearn.search.auth import AuthUnavailableError, SharedToken, TokenReviewer, authenticate

EMBEDDER = HashingEmbedder(64)


def account(namespace: str, name: str) -> dict[str, Any]:
    return {
        "authenticated": True,
        "user": {
            "username": f"system:serviceaccount:{namespace}:{name}",
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
        },
    }


class FakeApiServer:
    """Answers TokenReviews from a table of tokens; counts them; can be made unreachable."""

    def __init__(self, tokens: dict[str, dict[str, Any]]) -> None:
        self.tokens, self.reviews, self.down = tokens, [], False

    async def review(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.reviews.append(spec)
        await asyncio.sleep(0.01)
        if self.down:
            raise AuthUnavailableError("the API server did not answer")
        return self.tokens.get(spec["token"], {"authenticated": False, "error": "invalid bearer token"})


async def test_a_service_account_may_search_its_own_namespace_and_trusted_ones_any() -> None:
    server = FakeApiServer(
        {
            "t-a": account("team-a", "notebook"),
            "t-ops": account("ops", "agent"),
            "t-person": {"authenticated": True, "user": {"username": "alice", "groups": ["devs"]}},
        }
    )
    reviewer = TokenReviewer(server.review, trusted=["system:serviceaccounts:ops"])
    a = await reviewer.authenticate("t-a")
    assert a is not None and a.may_search("team-a") and not a.may_search("team-b") and not a.may_search(None)
    ops = await reviewer.authenticate("t-ops")
    assert ops is not None and ops.may_search("team-b") and ops.may_search(None)
    person = await reviewer.authenticate("t-person")
    assert person is not None and not person.may_search("team-a")  # people must be trusted by name
    assert await reviewer.authenticate("forged") is None
    assert await TokenReviewer(server.review, trusted=["alice"]).authenticate("t-person") is not None


async def test_reviews_are_cached_shared_and_carry_the_audiences() -> None:
    now = [0.0]
    server = FakeApiServer({"t-a": account("team-a", "notebook")})
    reviewer = TokenReviewer(
        server.review, audiences=["blocklearn"], ttl=60, failure_ttl=5, clock=lambda: now[0]
    )
    callers = await asyncio.gather(*(reviewer.authenticate("t-a") for _ in range(20)))
    assert len(set(callers)) == 1 and len(server.reviews) == 1  # twenty searches at once: one review
    assert server.reviews[0] == {"token": "t-a", "audiences": ["blocklearn"]}
    await reviewer.authenticate("bad")
    await reviewer.authenticate("bad")
    assert len(server.reviews) == 2  # a refused token is remembered too, for a shorter time
    now[0] = 10
    await reviewer.authenticate("t-a")
    await reviewer.authenticate("bad")
    assert len(server.reviews) == 3
    now[0] = 61
    await reviewer.authenticate("t-a")
    assert len(server.reviews) == 4


async def test_an_unreachable_api_server_is_not_remembered_as_a_refusal() -> None:
    server = FakeApiServer({"t-a": account("team-a", "notebook")})
    reviewer = TokenReviewer(server.review)
    server.down = True
    with pytest.raises(AuthUnavailableError):
        await reviewer.authenticate("t-a")
    server.down = False
    assert await reviewer.authenticate("t-a") is not None


async def test_the_cache_is_bounded() -> None:
    server = FakeApiServer({})
    reviewer = TokenReviewer(server.review, max_entries=3)
    for i in range(10):
        await reviewer.authenticate(f"guess-{i}")
    assert len(reviewer._cache) == 3


@pytest.mark.parametrize(
    "header",
    # The last ones as aiohttp hands over header bytes that are not ASCII: surrogate-escaped.
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic dC1h",
        "t-a",
        "bearer  wrong",
        "Bearer t-\x00a",
        "Bearer \udcff",
        "Bearer é",
    ],
)
async def test_only_a_bearer_token_an_authenticator_knows_is_a_caller(header: str) -> None:
    reviewer = TokenReviewer(FakeApiServer({"t-a": account("team-a", "notebook")}).review)
    assert await authenticate([SharedToken("s3cret"), reviewer], header) is None


async def test_search_answers_401_403_503_or_only_the_callers_namespace() -> None:
    index = ExampleIndex(dense_dim(EMBEDDER), EMBEDDER.model)
    for ns in ("team-a", "team-b"):
        entry = Entry(ns, "x", answer_json=json.dumps([{"kind": "code", "contents": f"in {ns}"}]))
        index.upsert(f"{ns}/x", entry, "list the pods")
    server = FakeApiServer({"t-a": account("team-a", "notebook"), "t-ops": account("ops", "agent")})
    reviewer = TokenReviewer(server.review, trusted=["system:serviceaccount:ops:agent"])
    app = build_app(
        index,
        EMBEDDER,
        ready=lambda: True,
        alive=lambda: True,
        cross_namespace=True,
        authenticators=[SharedToken("s3cret"), reviewer],
    )

    async def search(token: str, namespace: str | None) -> tuple[int, dict[str, Any]]:
        body = {"query": "list the pods", **({"namespace": namespace} if namespace else {})}
        resp = await c.post("/v1/search", json=body, headers={"Authorization": f"Bearer {token}"})
        return resp.status, await resp.json()

    async with TestClient(TestServer(app)) as c:
        code, answer = await search("t-a", "team-a")
        assert code == 200 and [r["namespace"] for r in answer["results"]] == ["team-a"]
        for namespace in ("team-b", None):
            code, answer = await search("t-a", namespace)
            assert code == 403, answer
            assert answer["error"].startswith("system:serviceaccount:team-a:notebook may not search")
            assert "it may search team-a" in answer["error"]
        code, answer = await search("t-ops", None)
        assert code == 200 and {r["namespace"] for r in answer["results"]} == {"team-a", "team-b"}
        assert (await search("s3cret", "team-b"))[0] == 200
        assert (await search("wrong", "team-a"))[0] == 401
        server.down = True
        code, answer = await search("t-new", "team-a")
        assert code == 503 and "cannot check the bearer token" in answer["error"]
        assert (await search("t-a", "team-a"))[0] == 200  # reviewed before the outage: still cached
