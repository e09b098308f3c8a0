"""`blocklearn eval --e2e`: the same evaluation through the real processes.

Each step creates its Blocks through the local Kubernetes API, waits until the index sidecar holds
every Example the learning rule expects, then asks each query through `POST /v1/search`. What it
measures is therefore what an assistant would get from a running system.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from blocklearn import API_VERSION, BLOCKS
from blocklearn.devtools.dev import Ports, Stack
from blocklearn.devtools.evaluation import LearnRecord, as_block
from blocklearn.runtime.kubeclient import api_client

SYNC_TIMEOUT = 600


class E2ERetriever:
    def __init__(self, hashing_dim: int, directory: Path | None = None) -> None:
        self.name = "e2e hashing (lexical channel alone)"
        workdir = directory or Path(tempfile.mkdtemp(prefix="blocklearn-eval-"))
        env = {"BLOCKLEARN_EMBEDDER": "hashing", "BLOCKLEARN_HASHING_DIM": str(hashing_dim)}
        self.stack = Stack(workdir, Ports.free(), env=env)
        self.stack.start()
        import kubernetes

        self._api: Any = kubernetes.client.CustomObjectsApi(api_client(str(self.stack.kubeconfig)))
        self.learned = 0

    def learn(self, texts: list[str], commands: list[str]) -> None:
        for text, command in zip(texts, commands, strict=True):
            # The very Block the in-process evaluation decides on, so both measure the same input.
            spec = as_block(LearnRecord(str(self.learned), text, command))
            body = {
                "apiVersion": API_VERSION,
                "kind": "Block",
                "metadata": {"name": f"eval-{self.learned:06d}"},
                "spec": spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
            }
            for attempt in range(5):
                try:
                    self._api.create_namespaced_custom_object(
                        "blocklearn.dev", "v1alpha1", "default", BLOCKS, body
                    )
                    break
                except ApiException as exc:
                    if exc.status == 409 or attempt == 4:
                        raise
                    time.sleep(0.2 * 2**attempt)
            self.learned += 1
        deadline = time.monotonic() + SYNC_TIMEOUT
        while self._get("/readyz").get("indexSize", 0) < self.learned:
            if time.monotonic() > deadline or self.stack.dead() is not None:
                raise RuntimeError(
                    f"the index did not reach {self.learned} examples; logs in {self.stack.directory}"
                )
            time.sleep(0.2)

    def search(self, text: str, k: int) -> list[str]:
        request = urllib.request.Request(
            f"{self.stack.index_url}/v1/search",
            data=json.dumps({"query": text, "k": k, "namespace": "default"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            results = json.load(resp)["results"]
        return [" ; ".join(c["contents"] for c in r["answer"]) for r in results]

    def _get(self, path: str) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.stack.index_url + path, timeout=10) as resp:
                result: dict[str, Any] = json.load(resp)
                return result
        except urllib.error.HTTPError as exc:
            result = json.load(exc)
            return result

    def close(self) -> None:
        self.stack.stop()
