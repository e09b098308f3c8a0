"""Changing the embedding model over a hundred Examples, with the real controller and index.

Every Example holds a vector of model A; the index and then the controller restart with model B. The
index serves only B's vectors, so at first it has none, yet every search answers (the lexical channel
reads each Example's text); /readyz and a gauge show the share re-embedded rising to all of them, and
the controller rewrites the Examples no faster than BLOCKLEARN_REEMBED_PER_SECOND.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.conftest import Api, block_body
from tests.fake_embeddings import FakeEmbeddings
from tests.processes import free_port, metric, scrape
from tests.stack import Stack

pytestmark = pytest.mark.e2e

EXAMPLES = 100
RATE = 20  # re-embeds per second: the switch cannot take less than (EXAMPLES - RATE) / RATE = 4 seconds


def get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return dict(json.load(resp))
    except urllib.error.HTTPError as exc:
        return dict(json.load(exc))


def search(port: int, query: str) -> tuple[int, list[dict[str, Any]]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/search",
        data=json.dumps({"query": query, "k": 3, "namespace": "default"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, list(json.load(resp)["results"])
    except urllib.error.HTTPError as exc:
        return exc.code, []


async def test_a_model_switch_keeps_search_answering_and_rewrites_examples_at_a_bounded_rate(
    api: Api, embeddings: FakeEmbeddings, stack: Stack
) -> None:
    env_a = embeddings.env("model-a")
    env_b = {**embeddings.env("model-b"), "BLOCKLEARN_REEMBED_PER_SECOND": str(RATE)}
    old = stack.controller("controller-a", env_a)
    for i in range(EXAMPLES):
        body = block_body(
            f"b{i:03d}", executed=f"kubectl logs pod-{i}", doc=f"show the logs of pod number {i}"
        )
        assert (await api.call("POST", api.path("blocks"), body))[0] == 201

    async def all_of(model: str) -> bool:
        code, listed = await api.call("GET", api.path("examples"))
        items = listed.get("items", []) if code == 200 else []
        return len(items) == EXAMPLES and all(
            ex.get("status", {}).get("embeddingModel") == f"openai:{model}" for ex in items
        )

    await stack.until(lambda: all_of("model-a"), "all embedded by model A", timeout=180)
    await old.astop()

    probes = free_port()
    index = stack.index(env=env_b, args=["--probe-port", str(probes)])
    port = index.port

    async def ready() -> dict[str, Any] | None:
        try:
            body = await asyncio.to_thread(get, f"http://127.0.0.1:{probes}/readyz")
        except OSError:
            return None
        return body if body.get("ready") else None

    first = await stack.until(ready, "index ready", timeout=60)
    assert first["vectors"] == {"model": "openai:model-b", "current": 0, "missing": EXAMPLES}
    code, hits = await asyncio.to_thread(search, port, "print the logs of pod number 7")
    assert code == 200 and hits[0]["blockRef"]["name"] == "b007"  # by text alone: no model B vector yet

    new = stack.controller("controller-b", env_b)
    progress, failures = [0], []
    while progress[-1] < EXAMPLES:
        assert new.alive(), new.tail()
        i = len(progress) % EXAMPLES
        code, hits = await asyncio.to_thread(search, port, f"print the logs of pod number {i}")
        if code != 200 or not hits:
            failures.append((code, hits))
        body = await asyncio.to_thread(get, f"http://127.0.0.1:{probes}/readyz")
        assert body["indexSize"] == EXAMPLES
        progress.append(body["vectors"]["current"])
        assert body["vectors"]["current"] + body["vectors"]["missing"] == EXAMPLES
        assert len(progress) < 2000, f"the switch did not complete: {progress[-5:]}"
        await asyncio.sleep(0.2)
    assert not failures, failures[:3]
    assert progress == sorted(progress), "progress went back"
    assert len(set(progress)) > 3, progress  # seen rising in steps, not all at once
    assert (
        metric(scrape(f"http://127.0.0.1:{probes}/metrics"), "blocklearn_index_vectors_current_ratio") == 1.0
    )

    # The bound on writes: one status write per re-embedded Example, through a RATE/s token bucket.
    # (The index embeds its queries with model B too: count the Examples' texts only.)
    rewrites = [
        (t, text)
        for t, model, texts in embeddings.log
        for text in texts
        if model == "model-b" and text.startswith("show the logs")
    ]
    assert len(rewrites) == EXAMPLES
    times = [t for t, _ in rewrites]
    assert times[-1] - times[0] >= (EXAMPLES - RATE) / RATE * 0.95
