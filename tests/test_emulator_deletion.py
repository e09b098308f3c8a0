"""Deletion as kube-apiserver and its garbage collector do it, each step a write of its own.

The writes are read back from watches: their types and resourceVersions show the order a client of
a real cluster would see. Write counts measured through the emulator (bench/growth.py, the lean
controller test) rest on these being honest.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api, block_body

EXAMPLES = "blocklearn.dev/v1alpha1/examples"


def example_body(
    name: str, *owners: dict[str, Any], block: bool = True, finalizers: list[str] | None = None
) -> dict:
    refs = [
        {
            "apiVersion": "blocklearn.dev/v1alpha1",
            "kind": "Block",
            "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"],
            "controller": i == 0,
            "blockOwnerDeletion": block,
        }
        for i, o in enumerate(owners)
    ]
    meta: dict[str, Any] = {"name": name, "ownerReferences": refs}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"metadata": meta, "spec": {"query": {"cells": []}, "answer": [], "blockRef": {"name": "x"}}}


async def owner_and_dependent(api: Api, **kwargs: Any) -> tuple[dict, dict]:
    _, owner = await api.call("POST", api.path("blocks"), block_body("b1"))
    code, dependent = await api.call("POST", api.path("examples"), example_body("e1", owner, **kwargs))
    assert code == 201, dependent
    return owner, dependent


async def writes_since(api: Api, since: str, count: int) -> list[tuple[str, str, str, dict]]:
    """The next `count` watch events on Blocks and Examples after `since`, in resourceVersion
    order: (type, kind, name, metadata)."""
    events: list[tuple[int, str, str, str, dict]] = []

    async def watch(plural: str) -> None:
        url = api.path(plural) + f"?watch=true&resourceVersion={since}&timeoutSeconds=5"
        async with api.session.get(url) as resp:
            async for line in resp.content:
                if line.strip():
                    event = json.loads(line)
                    meta = event["object"]["metadata"]
                    kind = event["object"]["kind"]
                    events.append((int(meta["resourceVersion"]), event["type"], kind, meta["name"], meta))
                    if len(events) >= count:
                        return

    tasks = [asyncio.create_task(watch(p)) for p in ("blocks", "examples")]
    _, pending = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.sleep(0.2)  # a late event of the other kind would make the count wrong
    for task in pending:
        task.cancel()
    events.sort()
    assert len(events) == count, events
    return [(t, k, n, m) for _, t, k, n, m in events]


def steps(writes: list[tuple[str, str, str, dict]]) -> list[tuple[str, str]]:
    return [(t, f"{k}/{n}") for t, k, n, _ in writes]


async def test_orphan_marks_the_owner_unlinks_each_dependent_then_lets_the_owner_go(
    api: Api, emulator: Emulator
) -> None:
    owner, _ = await owner_and_dependent(api)
    since = owner["metadata"]["resourceVersion"]
    code, marked = await api.call("DELETE", api.path("blocks", name="b1"), {"propagationPolicy": "Orphan"})
    # The answer is the owner as the first step left it: the collector's `orphan` finalizer on.
    assert code == 200 and marked["metadata"]["finalizers"] == ["orphan"]
    assert marked["metadata"]["deletionTimestamp"]
    writes = await writes_since(api, since, 4)
    assert steps(writes) == [
        ("ADDED", "Example/e1"),
        ("MODIFIED", "Block/b1"),
        ("MODIFIED", "Example/e1"),
        ("DELETED", "Block/b1"),
    ]
    assert "ownerReferences" not in writes[2][3]  # the dependent's own write drops the reference
    (kept,) = emulator.objects_of(EXAMPLES)
    assert "ownerReferences" not in kept["metadata"] and kept["metadata"]["generation"] == 1


async def test_background_deletes_the_owner_now_and_its_dependents_after(api: Api) -> None:
    _, dependent = await owner_and_dependent(api)
    code, gone = await api.call("DELETE", api.path("blocks", name="b1"))
    assert code == 200 and "finalizers" not in gone["metadata"]
    writes = await writes_since(api, dependent["metadata"]["resourceVersion"], 2)
    assert steps(writes) == [("DELETED", "Block/b1"), ("DELETED", "Example/e1")]


async def test_foreground_deletes_blocking_dependents_first_and_waits_for_them(
    api: Api, emulator: Emulator
) -> None:
    # The dependent has a finalizer of its own: the owner must wait until it is really gone.
    _, dependent = await owner_and_dependent(api, finalizers=["test/hold"])
    code, marked = await api.call(
        "DELETE", api.path("blocks", name="b1"), {"propagationPolicy": "Foreground"}
    )
    assert code == 200 and marked["metadata"]["finalizers"] == ["foregroundDeletion"]
    await emulator.settled()
    held = (await api.call("GET", api.path("examples", name="e1")))[1]
    assert held["metadata"]["deletionTimestamp"]
    assert (await api.call("GET", api.path("blocks", name="b1")))[0] == 200  # still waiting
    await api.call("PATCH", api.path("examples", name="e1"), {"metadata": {"finalizers": None}})
    writes = await writes_since(api, dependent["metadata"]["resourceVersion"], 4)
    assert steps(writes) == [
        ("MODIFIED", "Block/b1"),  # foregroundDeletion and a deletionTimestamp
        ("MODIFIED", "Example/e1"),  # the collector's delete: it has a finalizer, so it is marked
        ("DELETED", "Example/e1"),  # its finalizer removed
        ("DELETED", "Block/b1"),  # then the owner's
    ]


async def test_foreground_without_blocking_still_deletes_the_dependent(api: Api, emulator: Emulator) -> None:
    await owner_and_dependent(api, block=False)
    await api.call("DELETE", api.path("blocks", name="b1"), {"propagationPolicy": "Foreground"})
    await emulator.settled()
    assert emulator.objects_of(EXAMPLES) == []
    assert emulator.objects_of("blocklearn.dev/v1alpha1/blocks") == []


async def test_the_legacy_orphan_dependents_option_orphans_or_cascades(api: Api, emulator: Emulator) -> None:
    await owner_and_dependent(api)
    code, _ = await api.call("DELETE", api.path("blocks", name="b1"), {"orphanDependents": True})
    assert code == 200
    await emulator.settled()
    (kept,) = emulator.objects_of(EXAMPLES)
    assert "ownerReferences" not in kept["metadata"]
    await api.call("DELETE", api.path("examples", name="e1"))
    await owner_and_dependent(api)
    assert (await api.call("DELETE", api.path("blocks", name="b1") + "?orphanDependents=false"))[0] == 200
    await emulator.settled()
    assert emulator.objects_of(EXAMPLES) == []


async def test_a_dependent_with_another_owner_only_loses_the_reference(api: Api, emulator: Emulator) -> None:
    _, first = await api.call("POST", api.path("blocks"), block_body("b1"))
    _, second = await api.call("POST", api.path("blocks"), block_body("b2"))
    await api.call("POST", api.path("examples"), example_body("e1", first, second))
    await api.call("DELETE", api.path("blocks", name="b1"))
    await emulator.settled()
    (kept,) = emulator.objects_of(EXAMPLES)
    assert [r["name"] for r in kept["metadata"]["ownerReferences"]] == ["b2"]


async def test_a_dependent_of_an_owner_that_does_not_exist_is_collected(api: Api, emulator: Emulator) -> None:
    """As the real collector does once it has looked the owner up (a wrong uid deletes the object)."""
    _, owner = await api.call("POST", api.path("blocks"), block_body("b1"))
    ghost = {**owner, "metadata": {**owner["metadata"], "uid": "00000000-0000-0000-0000-000000000000"}}
    assert (await api.call("POST", api.path("examples"), example_body("e1", ghost)))[0] == 201
    await emulator.settled()
    assert emulator.objects_of(EXAMPLES) == []


async def test_without_the_garbage_collector_deletion_ignores_propagation(
    api: Api, emulator: Emulator
) -> None:
    emulator.garbage_collection = False  # kube-controller-manager --enable-garbage-collector=false
    await owner_and_dependent(api)
    code, gone = await api.call("DELETE", api.path("blocks", name="b1"), {"propagationPolicy": "Orphan"})
    assert code == 200 and "finalizers" not in gone["metadata"]
    await emulator.settled()
    (kept,) = emulator.objects_of(EXAMPLES)
    assert kept["metadata"]["ownerReferences"][0]["name"] == "b1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"propagationPolicy": "Orphan", "orphanDependents": True},
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Orphan": '
            "orphanDependents and deletionPropagation cannot be both set",
        ),
        (
            {"propagationPolicy": "Sideways"},
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": '
            'supported values: "Foreground", "Background", "Orphan", "nil"',
        ),
    ],
)
async def test_delete_options_the_api_server_refuses(api: Api, options: dict, message: str) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    code, err = await api.call("DELETE", api.path("blocks", name="b1"), options)
    assert (code, err["reason"], err["message"]) == (422, "Invalid", message)
    assert (await api.call("GET", api.path("blocks", name="b1")))[0] == 200


async def test_deleting_a_namespace_deletes_what_is_in_it(api: Api, emulator: Emulator) -> None:
    await api.create_namespace("team-b")
    body = block_body("held")
    body["metadata"]["finalizers"] = ["test/hold"]
    assert (await api.call("POST", api.path("blocks", "team-b"), body))[0] == 201
    assert (await api.call("POST", api.path("blocks", "team-b"), block_body("b2")))[0] == 201
    accounts = f"{api.base}/api/v1/namespaces/team-b/serviceaccounts"
    assert (await api.call("POST", accounts, {"metadata": {"name": "notebook"}}))[0] == 201
    namespace = f"{api.base}/api/v1/namespaces/team-b"
    code, terminating = await api.call("DELETE", namespace)
    assert code == 200 and terminating["status"]["phase"] == "Terminating"
    assert terminating["metadata"]["deletionTimestamp"] and terminating["spec"]["finalizers"] == [
        "kubernetes"
    ]
    await emulator.settled()
    # Everything without a finalizer is gone; the held Block keeps the namespace Terminating.
    assert [
        b["metadata"]["name"] for b in emulator.objects_of("blocklearn.dev/v1alpha1/blocks", "team-b")
    ] == ["held"]
    assert emulator.objects_of("/v1/serviceaccounts", "team-b") == []
    code, err = await api.call("POST", api.path("blocks", "team-b"), block_body("late"))
    assert (code, err["reason"]) == (403, "Forbidden")
    assert err["message"] == (
        'blocks.blocklearn.dev "late" is forbidden: '
        "unable to create new content in namespace team-b because it is being terminated"
    )
    assert err["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    code, err = await api.call("DELETE", namespace)
    assert (code, err["reason"]) == (409, "Conflict")
    assert err["message"] == (
        'Operation cannot be fulfilled on namespaces "team-b": The system is ensuring all content is removed '
        "from this namespace.  Upon completion, this namespace will automatically be purged by the system."
    )
    await api.call("PATCH", api.path("blocks", "team-b", "held"), {"metadata": {"finalizers": None}})
    await emulator.settled()
    assert (await api.call("GET", namespace))[0] == 404
    assert emulator.objects_of("blocklearn.dev/v1alpha1/blocks", "team-b") == []
    # The namespace's own last writes: its finalizer removed, then gone.
    since = terminating["metadata"]["resourceVersion"]
    url = f"{api.base}/api/v1/namespaces?watch=true&resourceVersion={since}&timeoutSeconds=1"
    async with api.session.get(url) as resp:
        events = [json.loads(line) for line in (await resp.read()).splitlines() if line.strip()]
    assert [(e["type"], e["object"]["spec"].get("finalizers")) for e in events] == [
        ("MODIFIED", []),
        ("DELETED", []),
    ]


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
async def test_the_api_servers_own_namespaces_may_not_be_deleted(api: Api, name: str) -> None:
    code, err = await api.call("DELETE", f"{api.base}/api/v1/namespaces/{name}")
    assert (code, err["message"]) == (
        403,
        f'namespaces "{name}" is forbidden: this namespace may not be deleted',
    )
