"""The emulator subclass itself: the API semantics the controller and kubectl rely on."""

import asyncio
import json

import aiohttp
import kmock

from blocklearn.devtools.emulator import protobuf
from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api, block_body


async def test_create_fills_server_metadata_and_drops_status(api: Api) -> None:
    body = {**block_body("b1"), "status": {"exampleRef": "forged"}}
    code, obj = await api.call("POST", api.path("blocks"), body)
    assert code == 201
    meta = obj["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1 and meta["creationTimestamp"]
    assert meta["namespace"] == "default" and "status" not in obj
    code, again = await api.call("POST", api.path("blocks"), body)
    assert code == 409 and again["reason"] == "AlreadyExists"


async def test_generation_moves_on_spec_changes_only(api: Api) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    _, obj = await api.call("PATCH", api.path("blocks", name="b1"), {"metadata": {"labels": {"a": "b"}}})
    assert obj["metadata"]["generation"] == 1
    _, obj = await api.call("PATCH", api.path("blocks", name="b1"), {"spec": {"exitCode": 3}})
    assert obj["metadata"]["generation"] == 2 and obj["spec"]["exitCode"] == 3
    rv = obj["metadata"]["resourceVersion"]
    _, same = await api.call("PATCH", api.path("blocks", name="b1"), {"spec": {"exitCode": 3}})
    assert same["metadata"]["resourceVersion"] == rv  # no-op writes change nothing


async def test_status_subresource_separates_spec_and_status(api: Api) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    _, obj = await api.call("PATCH", api.path("blocks", name="b1"), {"status": {"exampleRef": "x"}})
    assert "status" not in obj
    _, obj = await api.call(
        "PATCH",
        api.path("blocks", name="b1", sub="status"),
        {"status": {"exampleRef": "x"}, "spec": {"exitCode": 9}},
    )
    assert obj["status"]["exampleRef"] == "x" and obj["spec"]["exitCode"] == 0
    assert obj["metadata"]["generation"] == 1


async def test_stale_resource_versions_conflict(api: Api) -> None:
    _, obj = await api.call("POST", api.path("blocks"), block_body("b1"))
    stale = obj["metadata"]["resourceVersion"]
    await api.call("PATCH", api.path("blocks", name="b1"), {"spec": {"exitCode": 1}})
    code, err = await api.call(
        "PATCH",
        api.path("blocks", name="b1"),
        {"metadata": {"resourceVersion": stale}, "spec": {"exitCode": 2}},
    )
    assert code == 409 and err["reason"] == "Conflict"
    code, _ = await api.call("PUT", api.path("blocks", name="b1"), obj)
    assert code == 409
    _, fresh = await api.call("GET", api.path("blocks", name="b1"))
    fresh["spec"]["exitCode"] = 5
    code, replaced = await api.call("PUT", api.path("blocks", name="b1"), fresh)
    assert code == 200 and replaced["spec"]["exitCode"] == 5


async def test_schema_rejects_wrong_types_and_prunes_unknown_fields(api: Api) -> None:
    bad = block_body("bad")
    bad["spec"]["exitCode"] = "zero"
    code, err = await api.call("POST", api.path("blocks"), bad)
    assert code == 422 and ".spec.exitCode: expected integer" in err["message"]
    extra = block_body("extra")
    extra["spec"]["mystery"] = 1
    code, obj = await api.call("POST", api.path("blocks"), extra)
    assert code == 201 and "mystery" not in obj["spec"]


async def test_json_patch_is_applied(api: Api) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    ops = [
        {"op": "replace", "path": "/spec/exitCode", "value": 4},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
    ]
    code, obj = await api.call(
        "PATCH", api.path("blocks", name="b1"), ops, ctype="application/json-patch+json"
    )
    assert code == 200 and obj["spec"]["exitCode"] == 4 and obj["metadata"]["labels"] == {"x": "y"}


async def test_lists_have_kinds_selectors_and_tables(api: Api) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    b2 = block_body("b2")
    b2["metadata"]["labels"] = {"team": "a"}
    await api.call("POST", api.path("blocks"), b2)
    await api.create_namespace("other")
    await api.call("POST", api.path("blocks", namespace="other"), block_body("b3"))
    _, lst = await api.call("GET", api.path("blocks"))
    assert lst["kind"] == "BlockList" and [o["metadata"]["name"] for o in lst["items"]] == ["b1", "b2"]
    _, lst = await api.call("GET", f"{api.base}/apis/blocklearn.dev/v1alpha1/blocks?labelSelector=team%3Da")
    assert [o["metadata"]["name"] for o in lst["items"]] == ["b2"]
    _, everywhere = await api.call("GET", f"{api.base}/apis/blocklearn.dev/v1alpha1/blocks")
    assert len(everywhere["items"]) == 3
    await api.call(
        "PATCH",
        api.path("blocks", name="b1", sub="status"),
        {
            "status": {
                "exampleRef": "b1",
                "suggestionOutcome": "Corrected",
                "retrievalOutcome": "Miss",
                "conditions": [
                    {"type": "Learned", "status": "True", "reason": "Learned", "lastTransitionTime": "t"}
                ],
            }
        },
    )
    _, table = await api.call(
        "GET", api.path("blocks"), headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    )
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Learned", "Reason", "Example", "Suggestion", "Retrieval", "Age"]
    assert table["rows"][0]["cells"][:6] == ["b1", "True", "Learned", "b1", "Corrected", "Miss"]
    assert table["rows"][1]["cells"][1] == "<none>"


async def test_deleting_an_owner_collects_its_dependents(api: Api, emulator: Emulator) -> None:
    _, owner = await api.call("POST", api.path("blocks"), block_body("b1"))
    ref = {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Block",
        "name": "b1",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    example = {
        "metadata": {"name": "b1", "ownerReferences": [ref]},
        "spec": {"query": {"cells": []}, "answer": [], "blockRef": {"name": "b1"}},
    }
    unrelated = {
        "metadata": {"name": "other"},
        "spec": {"query": {"cells": []}, "answer": [], "blockRef": {"name": "x"}},
    }
    assert (await api.call("POST", api.path("examples"), example))[0] == 201
    assert (await api.call("POST", api.path("examples"), unrelated))[0] == 201
    code, _ = await api.call("DELETE", api.path("blocks", name="b1"))
    assert code == 200
    await emulator.settled()  # the garbage collector deletes dependents after their owner
    assert (await api.call("GET", api.path("examples", name="b1")))[0] == 404
    assert (await api.call("GET", api.path("examples", name="other")))[0] == 200


async def test_finalizers_hold_deletion_until_removed(api: Api) -> None:
    body = block_body("b1")
    body["metadata"]["finalizers"] = ["test/hold"]
    await api.call("POST", api.path("blocks"), body)
    _, obj = await api.call("DELETE", api.path("blocks", name="b1"))
    assert obj["metadata"]["deletionTimestamp"]
    assert (await api.call("GET", api.path("blocks", name="b1")))[0] == 200
    await api.call("PATCH", api.path("blocks", name="b1"), {"metadata": {"finalizers": None}})
    assert (await api.call("GET", api.path("blocks", name="b1")))[0] == 404


async def _read_events(api: Api, url: str, count: int) -> list[dict]:
    events = []
    async with api.session.get(url) as resp:
        async for line in resp.content:
            if line.strip():
                events.append(json.loads(line))
                if len(events) == count:
                    break
    return events


async def test_watch_resumes_from_a_resource_version(api: Api) -> None:
    _, b1 = await api.call("POST", api.path("blocks"), block_body("b1"))
    since = b1["metadata"]["resourceVersion"]
    await api.call("POST", api.path("blocks"), block_body("b2"))
    await api.call("DELETE", api.path("blocks", name="b1"))
    events = await _read_events(api, api.path("blocks") + f"?watch=true&resourceVersion={since}", 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b2"),
        ("DELETED", "b1"),
    ]


async def test_watch_without_version_starts_with_the_current_objects_then_streams(api: Api) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    reader = asyncio.create_task(_read_events(api, api.path("blocks") + "?watch=true", 2))
    await asyncio.sleep(0.2)
    await api.call("POST", api.path("blocks"), block_body("b2"))
    events = await asyncio.wait_for(reader, 5)
    assert [e["object"]["metadata"]["name"] for e in events] == ["b1", "b2"]


async def test_watch_from_a_compacted_version_is_gone(api: Api, emulator: Emulator) -> None:
    _, b1 = await api.call("POST", api.path("blocks"), block_body("b1"))
    await api.call("POST", api.path("blocks"), block_body("b2"))
    emulator.compact()
    url = api.path("blocks") + f"?watch=true&resourceVersion={b1['metadata']['resourceVersion']}"
    [event] = await _read_events(api, url, 1)
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


async def test_watch_ends_after_its_timeout(api: Api) -> None:
    async with api.session.get(
        api.path("blocks") + "?watch=true&timeoutSeconds=1", timeout=aiohttp.ClientTimeout(total=10)
    ) as resp:
        assert await resp.read() == b""


async def test_injected_faults_answer_before_any_write(api: Api, emulator: Emulator) -> None:
    emulator[kmock.action.CREATE] << 500
    code, _ = await api.call("POST", api.path("blocks"), block_body("b1"))
    assert code == 500
    assert emulator.objects_of("blocklearn.dev/v1alpha1/blocks") == []


async def test_snapshot_and_restore_keep_objects_and_versions(api: Api, emulator: Emulator) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    copy = Emulator()
    copy.restore(json.loads(json.dumps(emulator.snapshot())))
    assert copy.objects_of("blocklearn.dev/v1alpha1/blocks") == emulator.objects_of(
        "blocklearn.dev/v1alpha1/blocks"
    )


async def test_dropped_watches_end_and_can_resume(api: Api, emulator: Emulator) -> None:
    _, b1 = await api.call("POST", api.path("blocks"), block_body("b1"))
    url = api.path("blocks") + f"?watch=true&resourceVersion={b1['metadata']['resourceVersion']}"
    async with api.session.get(url) as resp:
        await asyncio.sleep(0.1)
        emulator.drop_watches()
        assert await asyncio.wait_for(resp.read(), 5) == b""
    await api.call("POST", api.path("blocks"), block_body("b2"))
    [event] = await _read_events(api, url, 1)
    assert event["object"]["metadata"]["name"] == "b2"


async def test_field_selectors_filter_lists(api: Api) -> None:
    for name in ("b1", "b2"):
        await api.call("POST", api.path("blocks"), block_body(name))
    url = api.path("blocks") + "?fieldSelector=metadata.name%3Db2"
    _, lst = await api.call("GET", url)
    assert [o["metadata"]["name"] for o in lst["items"]] == ["b2"]
    _, lst = await api.call("GET", api.path("blocks") + "?fieldSelector=metadata.name!%3Db2")
    assert [o["metadata"]["name"] for o in lst["items"]] == ["b1"]


async def test_lists_come_in_chunks_with_limit_and_continue(api: Api) -> None:
    for i in range(5):
        await api.call("POST", api.path("blocks"), block_body(f"b{i}"))
    names, token, pages = [], "", 0
    while True:
        _, page = await api.call("GET", api.path("blocks") + f"?limit=2&continue={token}")
        names += [o["metadata"]["name"] for o in page["items"]]
        pages += 1
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert names == [f"b{i}" for i in range(5)] and pages == 3


async def test_service_account_tokens_are_issued_and_reviewed_like_the_api_server(api: Api) -> None:
    await api.create_namespace("team-a")
    core = f"{api.base}/api/v1/namespaces/team-a/serviceaccounts"
    code, account = await api.call("POST", core, {"metadata": {"name": "notebook"}})
    assert code == 201
    missing = await api.call("POST", f"{core}/nobody/token", {"spec": {}})
    assert missing[0] == 404

    async def token(audiences: list[str]) -> str:
        code, answer = await api.call("POST", f"{core}/notebook/token", {"spec": {"audiences": audiences}})
        assert code == 201 and answer["kind"] == "TokenRequest"
        return str(answer["status"]["token"])

    async def review(token: str, audiences: list[str] | None = None) -> dict:
        spec = {"token": token, **({"audiences": audiences} if audiences else {})}
        url = f"{api.base}/apis/authentication.k8s.io/v1/tokenreviews"
        code, answer = await api.call("POST", url, {"apiVersion": "authentication.k8s.io/v1", "spec": spec})
        assert code == 201 and answer["spec"]["token"] == token  # echoed, as the API server does
        return dict(answer["status"])

    default, scoped = await token([]), await token(["blocklearn"])
    status = await review(default)
    assert status["authenticated"] is True
    assert status["user"]["username"] == "system:serviceaccount:team-a:notebook"
    assert status["user"]["uid"] == account["metadata"]["uid"]
    assert "system:serviceaccounts:team-a" in status["user"]["groups"]
    assert (await review(scoped, ["blocklearn"]))["audiences"] == ["blocklearn"]
    assert (await review(scoped))["authenticated"] is False  # not for the API server's audience
    assert (await review(default, ["blocklearn"]))["authenticated"] is False
    assert (await review("forged"))["authenticated"] is False
    await api.call("DELETE", f"{core}/notebook")
    assert (await review(scoped, ["blocklearn"])) == {
        "authenticated": False,
        "error": "service account has been deleted",
    }


async def test_protobuf_bodies_of_unknown_kinds_are_refused_with_415(api: Api) -> None:
    async with api.session.post(
        f"{api.base}/api/v1/namespaces/default/serviceaccounts",
        data=b"k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x12\x00",
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    ) as resp:
        assert resp.status == 415
        assert "Secret in protobuf is not supported" in (await resp.json())["message"]
    for body in (b"{}", b"k8s\x00\n\xff", b"k8s\x00\x0f"):
        try:
            protobuf.decode(body)
        except protobuf.ProtobufError:
            continue
        raise AssertionError(f"decoded {body!r}")
