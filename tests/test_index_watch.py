"""The index's informer against the emulator: namespaces listed in pages and watched at once, and a
relist after a gap (410 Gone) that reports what was deleted in it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import kmock
import numpy as np
import pytest

from blocklearn import API_VERSION, EXAMPLES
from blocklearn.devtools.emulator.api import Emulator
from blocklearn.embed.codec import encode
from blocklearn.index.core import ExampleIndex
from blocklearn.index.sync import IndexSync
from blocklearn.runtime.informer import Informer, Store
from blocklearn.runtime.objects import Obj
from blocklearn.runtime.rest import Rest
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


class Watched:
    """The index process's wiring, in this event loop: an informer reporting to IndexSync."""

    def __init__(self, rest: Rest, namespaces: list[str], page: int) -> None:
        self.index = ExampleIndex(DIM, MODEL)
        self.sync = IndexSync(self.index)
        self.informer = Informer(
            rest, API_VERSION, EXAMPLES, namespaces, Store(trim=lambda _: None), self.on_event, page=page
        )

    def on_event(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        self.sync.on_event(kind, old, new, live=self.informer.synced.is_set())


@pytest.fixture
async def rest(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Rest]:
    client = Rest.from_kubeconfig(str(kubeconfig_for(emulator, tmp_path)))
    yield client
    await client.close()


async def test_each_namespace_is_listed_in_pages_and_watched_at_once(
    api: Api, emulator: Emulator, rest: Rest
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
    watched = Watched(rest, ["one", "two"], page=2)
    watched.informer.start()
    try:

        async def listed() -> bool:
            return watched.informer.synced.is_set() and len(watched.index) == 8

        await eventually(listed, what="both namespaces listed")
        # 5 Examples in pages of 2 is 3 requests, 3 Examples 2; each page asks for at most 2
        assert len(lists) == 5 and all(p["limit"] == "2" for p in lists)
        assert sum(1 for p in lists if p.get("continue")) == 3
        # Both watches are open together: a change in either namespace arrives while the other waits.
        await put(api, "two", "b9")
        await put(api, "one", "a9")

        async def both() -> bool:
            return {"one/a9", "two/b9"} <= watched.index.ids()

        await eventually(both, what="an update in each namespace")
        assert watched.informer.alive()
        assert sum(1 for t in watched.informer._tasks if not t.done()) == 2
    finally:
        watched.informer.stop()
        emulator.drop_watches()


async def test_a_relist_after_a_gap_reports_what_was_deleted_in_it(
    api: Api, emulator: Emulator, rest: Rest
) -> None:
    """kopf's failure (measured: after a 410 relist its index kept entries of deleted objects): here
    a relist compares what it lists with what was known, and reports the difference as deletions."""
    for namespace in ("one", "two"):
        await api.create_namespace(namespace)
    for name in ("a", "b", "c"):
        await put(api, "one", name)
    await put(api, "two", "d")
    watched = Watched(rest, ["one", "two"], page=2)
    watched.informer.start()
    try:

        async def listed() -> bool:
            return watched.informer.synced.is_set() and len(watched.index) == 4

        await eventually(listed, what="listed")
        # Cut the watch and refuse new ones, change the world, then compact the history: resuming
        # is impossible (410) and only a relist can tell that "a" went.
        refuse = {"on": True}
        emulator[lambda r: refuse["on"] and r.params.get("watch") == "true"] << 500
        emulator.drop_watches()
        await api.call("DELETE", api.path("examples", "one", "a"))
        await put(api, "one", "e")
        emulator.compact()
        refuse["on"] = False

        async def converged() -> bool:
            return watched.index.ids() == {"one/b", "one/c", "one/e", "two/d"}

        await eventually(converged, what="the gap's deletion and creation applied", timeout=60)
        assert len(watched.informer.store) == 4
    finally:
        watched.informer.stop()
        emulator.drop_watches()
