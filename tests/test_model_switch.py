"""Changing the embedding model over a hundred Examples, with the controller's and the index's code in
this process (tests/harness.py) and an OpenAI-compatible endpoint served by the test.

Every Example holds a vector of model A; the index and then the controller restart with model B. The
index serves only B's vectors, so at first it has none, yet every search answers (the lexical channel
reads each Example's text); /readyz and a gauge show the share re-embedded rising to all of them, and
the controller rewrites the Examples no faster than BLOCKLEARN_REEMBED_PER_SECOND.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import block_body
from tests.fake_embeddings import FakeEmbeddings
from tests.harness import Harness, sample

EXAMPLES = 100
RATE = 20  # re-embeds per second: the switch cannot take less than (EXAMPLES - RATE) / RATE = 4 seconds


async def test_a_model_switch_keeps_search_answering_and_rewrites_examples_at_a_bounded_rate(
    harness: Harness, embeddings: FakeEmbeddings
) -> None:
    api = harness.api
    env_b = {**embeddings.env("model-b"), "BLOCKLEARN_REEMBED_PER_SECOND": str(RATE)}
    old = await harness.start(env=embeddings.env("model-a"))
    for i in range(EXAMPLES):
        body = block_body(
            f"b{i:03d}", executed=f"kubectl logs pod-{i}", doc=f"show the logs of pod number {i}"
        )
        assert (await api.call("POST", api.path("blocks"), body))[0] == 201

    def all_of(model: str) -> bool:
        items = harness.examples().values()
        return len(items) == EXAMPLES and all(
            ex.get("status", {}).get("embeddingModel") == f"openai:{model}" for ex in items
        )

    await harness.until(lambda: all_of("model-a"), "all embedded by model A", timeout=180)
    await harness.stop(old)

    index = await harness.index(env=env_b)

    async def readyz() -> dict[str, Any]:
        code, body = await api.call("GET", f"{index.url}/readyz")
        assert code == 200, body
        return body

    assert (await readyz())["vectors"] == {"model": "openai:model-b", "current": 0, "missing": EXAMPLES}
    hits = await index.search("print the logs of pod number 7")
    assert hits[0]["blockRef"]["name"] == "b007"  # by text alone: no model B vector yet

    new = await harness.start(env=env_b)
    progress: list[int] = [0]
    failures: list[Any] = []
    while progress[-1] < EXAMPLES:
        assert new.alive()
        i = len(progress) % EXAMPLES
        code, answer = await api.call(
            "POST",
            f"{index.url}/v1/search",
            {"query": f"print the logs of pod number {i}", "k": 3, "namespace": "default"},
        )
        if code != 200 or not answer["results"]:
            failures.append((code, answer))
        body = await readyz()
        assert body["indexSize"] == EXAMPLES
        progress.append(body["vectors"]["current"])
        assert body["vectors"]["current"] + body["vectors"]["missing"] == EXAMPLES
        assert len(progress) < 2000, f"the switch did not complete: {progress[-5:]}"
        await asyncio.sleep(0.2)
    assert not failures, failures[:3]
    assert progress == sorted(progress), "progress went back"
    assert len(set(progress)) > 3, progress  # seen rising in steps, not all at once
    assert sample("blocklearn_index_vectors_current_ratio") == 1.0

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
