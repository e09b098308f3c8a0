"""The OpenAI-compatible client against a real HTTP endpoint: one session, Retry-After, permanent 4xx."""

from __future__ import annotations

import pytest

from blocklearn.embed import EmbedderError
from blocklearn.embed.openai import OpenAIEmbedder, _retry_after
from tests.fake_embeddings import FakeEmbeddings


def client(
    fake: FakeEmbeddings, dimensions: int | None = None, waits: list[float] | None = None
) -> OpenAIEmbedder:
    async def sleep(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)

    base = f"http://127.0.0.1:{fake.port}/v1"
    return OpenAIEmbedder(
        base, "fake-embedding", "sk-secret-key", timeout=5, dimensions=dimensions, sleep=sleep
    )


async def test_requests_share_one_session_and_its_connection(embeddings: FakeEmbeddings) -> None:
    embedder = client(embeddings)
    try:
        for i in range(5):
            await embedder.embed([f"text {i}"])
    finally:
        await embedder.close()
    assert embeddings.requests == 5
    assert len(embeddings.peers) == 1  # a session per attempt opened a connection for each


async def test_a_503_waits_what_retry_after_asks_then_succeeds(embeddings: FakeEmbeddings) -> None:
    embeddings.failing_with, embeddings.failures_left, embeddings.retry_after = 503, 2, "7"
    waits: list[float] = []
    embedder = client(embeddings, waits=waits)
    try:
        vectors = await embedder.embed(["hello"])
    finally:
        await embedder.close()
    assert vectors.shape == (1, 64) and embeddings.requests == 3
    assert waits == [7.0, 7.0]  # backoff alone would have waited about 0.5 s, then 1 s


async def test_without_retry_after_the_backoff_doubles(embeddings: FakeEmbeddings) -> None:
    embeddings.failing_with, embeddings.failures_left = 429, 2
    waits: list[float] = []
    embedder = client(embeddings, waits=waits)
    try:
        await embedder.embed(["hello"])
    finally:
        await embedder.close()
    assert len(waits) == 2 and 0.5 <= waits[0] < 0.6 and 1.0 <= waits[1] < 1.1


async def test_a_503_is_retried_then_reported(embeddings: FakeEmbeddings) -> None:
    embeddings.failing_with = 503
    embedder = client(embeddings, waits=[])
    with pytest.raises(EmbedderError) as caught:
        await embedder.embed(["hello"])
    await embedder.close()
    assert embeddings.requests == 3 and not caught.value.permanent and caught.value.reason == "http_503"


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_other_4xx_are_permanent_and_not_retried(embeddings: FakeEmbeddings, status: int) -> None:
    embeddings.failing_with = status
    embedder = client(embeddings)
    with pytest.raises(EmbedderError) as caught:
        await embedder.embed(["hello"])
    await embedder.close()
    assert embeddings.requests == 1
    assert caught.value.permanent and caught.value.reason == f"http_{status}"
    assert f"failing with {status}" in str(caught.value) and "sk-secret-key" not in str(caught.value)


async def test_dimensions_are_asked_for_and_name_the_model(embeddings: FakeEmbeddings) -> None:
    embedder = client(embeddings, dimensions=16)
    try:
        vectors = await embedder.embed(["hello"])
    finally:
        await embedder.close()
    assert embeddings.bodies[-1]["dimensions"] == 16 and vectors.shape == (1, 16)
    assert embedder.model == "openai:fake-embedding-d16" and embedder.dim == 16
    assert client(embeddings).model == "openai:fake-embedding"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert _retry_after("3") == 3.0 and _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
