"""The no-model setting end to end: with `hashing` an Example stores no vector at all (the index reads
its text), stays far below 4 KB as stored, and is found by a paraphrase through the lexical channel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from blocklearn.emulator.api import Emulator
from tests.conftest import Api, block_body, kubeconfig_for
from tests.processes import Process, eventually, free_port
from tests.test_example_size import LIMIT, kubectl_json, search

pytestmark = pytest.mark.e2e


async def test_a_hashing_example_stores_no_vector_fits_in_4_kb_and_is_found_by_its_text(
    api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    config = kubeconfig_for(emulator, tmp_path)
    env = {"KUBECONFIG": str(config), "BLOCKLEARN_EMBEDDER": "hashing"}
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
        assert (await api.call("POST", api.path("blocks"), body))[0] == 201

        async def indexed() -> dict | None:
            code, ex = await api.call("GET", api.path("examples", name="pods-kube-system"))
            conditions = ex.get("status", {}).get("conditions", []) if code == 200 else []
            done = any(c["type"] == "Embedded" and c["status"] == "True" for c in conditions)
            return ex if done else None

        ex = await eventually(indexed, timeout=120, what="Embedded=True", logs=procs)
        status = ex["status"]
        assert status["embeddingModel"].startswith("hashing-") and status["textHash"]
        assert "embedding" not in status and "embeddingDim" not in status

        stored = await kubectl_json(config, "get", "ex", "pods-kube-system")
        print(f"hashing Example as stored: {len(stored.encode())} bytes")  # the README's figure, with -s
        assert len(stored.encode()) <= LIMIT, f"{len(stored.encode())} bytes as stored"

        async def found() -> list[dict] | None:
            try:
                return await asyncio.to_thread(search, index_port, "show me the pods of kube-system") or None
            except OSError:
                return None  # the index is not listening yet

        [hit] = await eventually(found, timeout=120, what="a search hit", logs=procs)
        assert hit["answer"][0]["contents"] == "kubectl get pods -n kube-system"
    finally:
        for proc in procs:
            await proc.astop()
