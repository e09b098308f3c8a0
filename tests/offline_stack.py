"""Run inside a network namespace by tests/test_offline.py: the `blocklearn dev` stack with the default
settings (the semantic embedder) learns one correction and answers a paraphrase of it.

    python -m tests.offline_stack WORKDIR   -> prints {"model": ..., "answer": ...} and exits 0
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

from blocklearn.devtools.dev import Ports, Stack
from blocklearn.runtime.kubeclient import api_client

HOLD_SECONDS = 20
BLOCK = {
    "apiVersion": "blocklearn.dev/v1alpha1",
    "kind": "Block",
    "metadata": {"name": "tar-backup"},
    "spec": {
        "doc": {"cells": [{"kind": "markup", "contents": "Back up the config directory into a tarball"}]},
        "generatedCell": {"kind": "code", "language": "bash", "contents": "tar cf config.tar config"},
        "executedCell": {"kind": "code", "language": "bash", "contents": "tar czf config.tgz config/"},
        "exitCode": 0,
    },
}


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return dict(json.load(resp))


def main(workdir: Path) -> None:
    stack = Stack(workdir, Ports.free())
    stack.start()
    try:
        import kubernetes

        api = kubernetes.client.CustomObjectsApi(api_client(str(stack.kubeconfig)))
        api.create_namespaced_custom_object("blocklearn.dev", "v1alpha1", "default", "blocks", BLOCK)
        deadline = time.monotonic() + 120
        while True:
            with urllib.request.urlopen(f"{stack.index_url}/readyz", timeout=10) as resp:
                ready = json.load(resp)
            if ready.get("indexSize", 0) >= 1:
                break
            if time.monotonic() > deadline or stack.dead() is not None:
                raise SystemExit(f"the index never held the Example; logs in {workdir}")
            time.sleep(0.2)
        query = {"query": "make a compressed archive of my settings folder", "k": 1, "namespace": "default"}
        found = post(f"{stack.index_url}/v1/search", query)
        [hit] = found["results"]
        # Stay up a while: work that starts late shows in the trace only if the processes live long
        # enough (onnxruntime's telemetry uploader looked up its host after ~10 s, at the earliest).
        time.sleep(HOLD_SECONDS)
        print(json.dumps({"model": found["model"], "answer": hit["answer"][0]["contents"]}))
    finally:
        stack.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
