"""An Example as stored, end to end: the default embedder (float16 and float32) and `hashing`, each
found by a search.

The controller and the index run with no embedder setting (the default, semantic); the size is what
`kubectl get ex NAME -o json` prints, metadata included, as a person would measure it."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.embed.codec import decode
from blocklearn.embed.semantic import MODEL_NAME
from tests.conftest import Api, block_body, is_embedded, kubeconfig_for
from tests.processes import Process, eventually, free_port, kubectl_binary

pytestmark = [pytest.mark.e2e, pytest.mark.needs_tools("kubectl")]

LIMIT = 4096  # issue 11: an Example as stored, for a typical one-cell query


async def kubectl_json(config: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(kubectl_binary()),
        "--kubeconfig",
        str(config),
        *args,
        "-o",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def search(port: int, query: str) -> list[dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/search",
        data=json.dumps({"query": query, "k": 1, "namespace": "default"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return list(json.load(resp)["results"])


async def learn_one(
    api: Api, emulator: Emulator, tmp_path: Path, env: dict[str, str], query: str
) -> tuple[dict, int, dict]:
    """Run the real controller and index with `env`, learn one typical Block, and return its
    Example's status, its size as `kubectl get ex -o json` prints it, and the hit `query` finds."""
    config = kubeconfig_for(emulator, tmp_path)
    settings = env or "the defaults"
    env = {"KUBECONFIG": str(config), **env}
    index_port = free_port()
    procs = [
        Process(
            "controller",
            ["controller", "--metrics-port", "0", "--liveness", f"http://127.0.0.1:{free_port()}/healthz"],
            tmp_path,
            env,
        ).start(),
        Process("index", ["index", "--port", str(index_port)], tmp_path, env).start(),
    ]
    try:
        body = block_body(
            "pods-kube-system",
            generated="kubectl get pods",
            executed="kubectl get pods -n kube-system",
            doc="List the pods in the kube-system namespace",
        )
        code, _ = await api.call("POST", api.path("blocks"), body)
        assert code == 201

        async def embedded() -> dict | None:
            code, ex = await api.call("GET", api.path("examples", name="pods-kube-system"))
            return ex if code == 200 and is_embedded(ex) else None

        ex = await eventually(embedded, timeout=120, what="Embedded=True", logs=procs)
        stored = await kubectl_json(config, "get", "ex", "pods-kube-system")
        print(
            f"Example as stored with {settings}: {len(stored.encode())} bytes"
        )  # the README's figure, with -s

        async def found() -> list[dict] | None:
            try:
                return await asyncio.to_thread(search, index_port, query) or None
            except OSError:
                return None  # the index is not listening yet

        [hit] = await eventually(found, timeout=120, what="a search hit", logs=procs)
        assert hit["answer"][0]["contents"] == "kubectl get pods -n kube-system"
        return ex["status"], len(stored.encode()), hit
    finally:
        for proc in procs:
            await proc.astop()


# float16 is the default; float32 costs 1,024 more base64 characters and is over the limit.
@pytest.mark.parametrize(
    ("dtype", "raw_bytes", "limit"), [(None, 768, LIMIT), ("float32", 1536, LIMIT + 1024)]
)
@pytest.mark.needs_tools("weights")
async def test_a_semantic_example_fits_in_4_kb_and_is_found_by_a_paraphrase(
    api: Api, emulator: Emulator, tmp_path: Path, dtype: str | None, raw_bytes: int, limit: int
) -> None:
    env = {"BLOCKLEARN_EMBEDDING_DTYPE": dtype} if dtype else {}
    status, size, _ = await learn_one(api, emulator, tmp_path, env, "show me what runs in kube-system")
    assert status["embeddingModel"] == MODEL_NAME and status["embeddingDim"] == 384
    vector = decode(status["embedding"], 384)
    assert len(status["embedding"]) == 4 * -(-raw_bytes // 3)  # base64 of raw_bytes
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-3)
    assert size <= limit, f"{size} bytes as stored"


async def test_a_hashing_example_stores_no_vector_fits_in_4_kb_and_is_found_by_its_text(
    api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    """The hashing setting stores no vector: the index computes the lexical features from the text."""
    env = {"BLOCKLEARN_EMBEDDER": "hashing"}
    status, size, _ = await learn_one(api, emulator, tmp_path, env, "show me the pods of kube-system")
    assert status["embeddingModel"].startswith("hashing-") and status["textHash"]
    assert "embedding" not in status and "embeddingDim" not in status
    assert size <= LIMIT, f"{size} bytes as stored"
