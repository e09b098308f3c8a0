"""The index's watcher against the emulator: namespaces watched concurrently, lists paginated."""

from __future__ import annotations

from pathlib import Path

import kmock
import numpy as np

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.embed.codec import encode
from blocklearn.index.core import ExampleIndex
from blocklearn.index.watch import ExampleWatcher
from blocklearn.runtime.kubeclient import api_client
from tests.conftest import Api, kubeconfig_for
from tests.processes import eventually

DIM, MODEL = 8, "m"


def example(name: str) -> dict:
    return {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Example",
        "metadata": {"name": name},
        "spec": {
            "query": {"cells": [{"kind": "markup", "contents": name}]},
            "answer": [{"kind": "code", "contents": "ls"}],
            "blockRef": {"name": name},
        },
    }


async def put(api: Api, namespace: str, name: str) -> None:
    assert (await api.call("POST", api.path("examples", namespace), example(name)))[0] == 201
    vector = np.random.default_rng(len(name)).standard_normal(DIM).astype(np.float32)
    status = {"embedding": encode(vector / np.linalg.norm(vector)), "embeddingModel": MODEL}
    url = api.path("examples", namespace, name, "status")
    assert (await api.call("PATCH", url, {"status": status}))[0] == 200


async def test_each_namespace_is_listed_in_pages_and_watched_at_once(
    api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    for namespace in ("one", "two"):
        await api.create_namespace(namespace)
    for i in range(5):
        await put(api, "one", f"a{i}")
    for i in range(3):
        await put(api, "two", f"b{i}")
    lists: list[dict[str, str]] = []

    async def record(request: kmock.Request) -> None:
        if request.action == kmock.action.LIST:
            lists.append(dict(request.params))
        return None

    emulator.fault = record
    index = ExampleIndex(DIM, MODEL)
    watcher = ExampleWatcher(
        index, api_client(str(kubeconfig_for(emulator, tmp_path))), ["one", "two"], page=2
    )
    watcher.start()
    try:

        async def listed() -> bool:
            return watcher.ready.is_set() and len(index) == 8

        await eventually(listed, what="both namespaces listed")
        # 5 Examples in pages of 2 is 3 requests, 3 Examples 2; each page asks for at most 2
        pages = lists
        assert len(pages) == 5 and all(p["limit"] == "2" for p in pages)
        assert sum(1 for p in pages if p.get("continue")) == 3
        # Both watches are open together: a change in either namespace arrives while the other waits.
        await put(api, "two", "b9")
        await put(api, "one", "a9")

        async def both() -> bool:
            return {"one/a9", "two/b9"} <= index.ids()

        await eventually(both, what="an update in each namespace")
        assert watcher.alive()
        assert sum(1 for t in watcher._threads if t.is_alive()) == 2
    finally:
        watcher.stop()
        emulator.drop_watches()
