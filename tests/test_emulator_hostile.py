"""Hostile requests at the emulator: whatever arrives, a 4xx Status in the API server's shape, never a
5xx or a traceback, in the status or in a watch's events. The 5xx kube-apiserver gives for what a
client sends are etcd's refusal of a value over 1.5 MiB (`etcdserver: request is too large`,
kubernetes/kubernetes#112152) and a watch from a resourceVersion it never reached (504), and so does
the emulator."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yarl

from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api, block_body

BLOCKS = "/apis/blocklearn.dev/v1alpha1/namespaces/default/blocks"
B1 = f"{BLOCKS}/b1"
CORE = "/api/v1/namespaces/default"
JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
PROTOBUF = {"Content-Type": "application/vnd.kubernetes.protobuf"}
REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
TOKEN = f"{CORE}/serviceaccounts/sa/token"
# What kube-apiserver itself answers with a 5xx: etcd's refusal of a value over 1.5 MiB, and a watch
# from a resourceVersion it never reached (the watch cache's "Too large resource version", 504).
SERVER_ERRORS = {
    "etcd-too-large": (500, "etcdserver: request is too large"),
    "watch-version-future": (504, "Timeout: Too large resource version: 999999, current: "),
}


def block(**meta: Any) -> bytes:
    body = block_body("hostile")
    body["metadata"].update(meta)
    return json.dumps(body).encode()


def nested(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


def with_spec(value: str) -> bytes:
    body = block_body("hostile")
    body["spec"]["doc"]["cells"][0]["outputs"] = "PLACE"
    return json.dumps(body).replace('"PLACE"', value).encode()


Case = tuple[str, str, dict[str, str], bytes]  # method, path, headers, body

CORPUS: dict[str, Case] = {
    # names
    "name-nul": ("POST", BLOCKS, JSON, block(name="a\x00b")),
    "name-upper": ("POST", BLOCKS, JSON, block(name="UPPER")),
    "name-space": ("POST", BLOCKS, JSON, block(name="has space")),
    "name-dots": ("POST", BLOCKS, JSON, block(name="..")),
    "name-slash": ("POST", BLOCKS, JSON, block(name="a/b")),
    "name-254": ("POST", BLOCKS, JSON, block(name="n" * 254)),
    "name-number": ("POST", BLOCKS, JSON, block(name=5)),
    "name-emoji": ("POST", BLOCKS, JSON, block(name="\U0001f600")),
    "name-surrogate": ("POST", BLOCKS, JSON, b'{"metadata": {"name": "\\ud800"}}'),
    "generate-name-bad": ("POST", BLOCKS, JSON, block(name=None, generateName="UP-")),
    "namespace-name-bad": ("POST", "/api/v1/namespaces", JSON, b'{"metadata": {"name": "a.b"}}'),
    "namespace-missing": ("POST", "/apis/blocklearn.dev/v1alpha1/namespaces/nowhere/blocks", JSON, block()),
    "namespace-mismatch": ("POST", BLOCKS, JSON, block(namespace="other")),
    # bodies
    "utf8-in-string": ("POST", BLOCKS, JSON, block().replace(b"list every pod", b"\xff\xfe")),
    "utf8-outside": ("POST", BLOCKS, JSON, b'{"kind": \xff}'),
    "utf8-only": ("POST", BLOCKS, JSON, b"\xff\xfe\xfd"),
    "deep-1k": ("POST", BLOCKS, JSON, nested(1_000)),
    "deep-10k": ("POST", BLOCKS, JSON, nested(10_001)),
    "deep-arrays-1m": ("POST", BLOCKS, JSON, b"[" * 1_000_000),
    "deep-in-spec": ("POST", BLOCKS, JSON, with_spec("[" * 500 + "]" * 500)),
    "deep-in-labels": ("POST", BLOCKS, JSON, b'{"metadata": {"name": "x", "labels": ' + nested(200) + b"}}"),
    "over-3mib": ("POST", BLOCKS, JSON, block(annotations={"a": "x" * (3 * 1024 * 1024)})),
    # No limit on how many labels: 25,000 valid ones are under the 3 MiB request limit, over etcd's.
    "etcd-too-large": ("POST", BLOCKS, JSON, block(labels={f"k{i}": "v" * 63 for i in range(25_000)})),
    "label-too-long": ("POST", BLOCKS, JSON, block(labels={"a": "v" * 64})),
    "label-key-bad": ("POST", BLOCKS, JSON, block(labels={"a/b/c": "v"})),
    "annotation-key-bad": ("POST", BLOCKS, JSON, block(annotations={"has space": "v"})),
    "empty": ("POST", BLOCKS, JSON, b""),
    "whitespace": ("POST", BLOCKS, JSON, b"   "),
    "array": ("POST", BLOCKS, JSON, b"[]"),
    "string": ("POST", BLOCKS, JSON, b'"block"'),
    "number": ("POST", BLOCKS, JSON, b"1e999"),
    "null": ("POST", BLOCKS, JSON, b"null"),
    "nan": ("POST", BLOCKS, JSON, b'{"spec": NaN}'),
    "truncated": ("POST", BLOCKS, JSON, block()[:-7]),
    "trailing": ("POST", BLOCKS, JSON, block() + b"}"),
    "metadata-string": ("POST", BLOCKS, JSON, b'{"metadata": "x"}'),
    "labels-list": ("POST", BLOCKS, JSON, block(labels=["a"])),
    "labels-number": ("POST", BLOCKS, JSON, block(labels={"a": 1})),
    "annotations-null-value": ("POST", BLOCKS, JSON, block(annotations={"a": None})),
    "owner-refs-string": ("POST", BLOCKS, JSON, block(ownerReferences="x")),
    "owner-refs-numbers": ("POST", BLOCKS, JSON, block(ownerReferences=[5])),
    "owner-refs-empty": ("POST", BLOCKS, JSON, block(ownerReferences=[{}])),
    "owner-refs-two-controllers": (
        "POST",
        BLOCKS,
        JSON,
        block(
            ownerReferences=[
                {"apiVersion": "v1", "kind": "K", "name": n, "uid": n, "controller": True} for n in "ab"
            ]
        ),
    ),
    "finalizers-string": ("POST", BLOCKS, JSON, block(finalizers="x")),
    "generation-string": ("POST", BLOCKS, JSON, block(generation="x")),
    "kind-other": ("POST", BLOCKS, JSON, b'{"kind": "Example", "metadata": {"name": "x"}}'),
    "api-version-other": ("POST", BLOCKS, JSON, b'{"apiVersion": "v9", "metadata": {"name": "x"}}'),
    "api-version-garbage": ("POST", BLOCKS, JSON, b'{"apiVersion": "a/b/c", "metadata": {"name": "x"}}'),
    "spec-string": ("POST", BLOCKS, JSON, b'{"metadata": {"name": "x"}, "spec": "x"}'),
    "status-forged": ("POST", BLOCKS, JSON, b'{"metadata": {"name": "x"}, "status": 5}'),
    "protobuf-to-crd": ("POST", BLOCKS, PROTOBUF, b"k8s\x00\n\x02\n\x00"),
    "protobuf-garbage": ("POST", f"{CORE}/serviceaccounts", PROTOBUF, b"\x00\xff" * 50),
    "protobuf-truncated": ("POST", f"{CORE}/serviceaccounts", PROTOBUF, b"k8s\x00\n\xff\xff"),
    "protobuf-bad-utf8": ("POST", f"{CORE}/serviceaccounts", PROTOBUF, b"k8s\x00\n\x04\x12\x02\xff\xfe"),
    "protobuf-wire-type": ("POST", "/api/v1/namespaces", PROTOBUF, b"k8s\x00\x0f"),
    "quota-bad-quantity": (
        "POST",
        f"{CORE}/resourcequotas",
        JSON,
        b'{"metadata":{"name":"q"},"spec":{"hard":{"x":"lots"}}}',
    ),
    "quota-hard-list": (
        "POST",
        f"{CORE}/resourcequotas",
        JSON,
        b'{"metadata":{"name":"q"},"spec":{"hard":[1]}}',
    ),
    "token-review-junk": ("POST", REVIEWS, JSON, b'{"spec": "x"}'),
    "token-review-token-number": ("POST", REVIEWS, JSON, b'{"spec": {"token": 5}}'),
    "token-review-audiences-number": ("POST", REVIEWS, JSON, b'{"spec": {"token": "t", "audiences": 5}}'),
    "token-request-junk": ("POST", TOKEN, JSON, b'{"spec": 5}'),
    "token-request-seconds-text": ("POST", TOKEN, JSON, b'{"spec": {"expirationSeconds": "x"}}'),
    "token-request-seconds-huge": ("POST", TOKEN, JSON, b'{"spec": {"expirationSeconds": 1e300}}'),
    "token-request-seconds-fraction": ("POST", TOKEN, JSON, b'{"spec": {"expirationSeconds": 700.5}}'),
    "token-request-seconds-int64": (
        "POST",
        TOKEN,
        JSON,
        b'{"spec": {"expirationSeconds": 1000000000000000000}}',
    ),
    "token-request-seconds-short": ("POST", TOKEN, JSON, b'{"spec": {"expirationSeconds": 5}}'),
    "token-request-audiences-number": ("POST", TOKEN, JSON, b'{"spec": {"audiences": 5}}'),
    "token-request-audiences-numbers": ("POST", TOKEN, JSON, b'{"spec": {"audiences": [5]}}'),
    # media types
    "text-plain": ("POST", BLOCKS, {"Content-Type": "text/plain"}, block()),
    "yaml": ("POST", BLOCKS, {"Content-Type": "application/yaml"}, b"metadata: {name: x}"),
    "form": ("POST", BLOCKS, {"Content-Type": "application/x-www-form-urlencoded"}, b"a=b&c=d"),
    "multipart": (
        "POST",
        BLOCKS,
        {"Content-Type": "multipart/form-data; boundary=x"},
        b"--x\r\n\r\nx\r\n--x--",
    ),
    "json-charset": ("POST", BLOCKS, {"Content-Type": "application/json; charset=latin-1"}, block()),
    "gzip-garbage": ("POST", BLOCKS, {**JSON, "Content-Encoding": "gzip"}, b"not gzip at all"),
    "no-content-type": ("POST", BLOCKS, {}, block(name="plain")),
    # patches
    "patch-json-not-list": ("PATCH", B1, JSON_PATCH, b'{"op": "add"}'),
    "patch-json-numbers": ("PATCH", B1, JSON_PATCH, b"[1, 2]"),
    "patch-json-bad-op": ("PATCH", B1, JSON_PATCH, b'[{"op": "move", "from": "/a", "path": "/b"}]'),
    "patch-json-bad-path": (
        "PATCH",
        B1,
        JSON_PATCH,
        b'[{"op": "replace", "path": "/spec/doc/cells/x/y", "value": 1}]',
    ),
    "patch-json-index": ("PATCH", B1, JSON_PATCH, b'[{"op": "remove", "path": "/spec/doc/cells/99"}]'),
    "patch-json-index-negative": (
        "PATCH",
        B1,
        JSON_PATCH,
        b'[{"op": "remove", "path": "/spec/doc/cells/-9"}]',
    ),
    "patch-json-add-far": (
        "PATCH",
        B1,
        JSON_PATCH,
        b'[{"op": "add", "path": "/spec/doc/cells/-9", "value": 1}]',
    ),
    "patch-json-add-past-end": (
        "PATCH",
        B1,
        JSON_PATCH,
        b'[{"op": "add", "path": "/spec/doc/cells/9", "value": 1}]',
    ),
    "patch-json-index-superscript": (
        "PATCH",
        B1,
        JSON_PATCH,
        b'[{"op": "remove", "path": "/spec/doc/cells/\xc2\xb2"}]',
    ),
    # A path whose parents do not exist: no parent is made, so it cannot nest past the depth limit.
    "patch-json-missing-parents": (
        "PATCH",
        B1,
        JSON_PATCH,
        json.dumps([{"op": "add", "path": "/spec" + "/a" * 3000, "value": 1}]).encode(),
    ),
    "patch-json-root": ("PATCH", B1, JSON_PATCH, b'[{"op": "replace", "path": "", "value": 5}]'),
    "patch-json-metadata": ("PATCH", B1, JSON_PATCH, b'[{"op": "replace", "path": "/metadata", "value": 5}]'),
    "patch-json-test-fails": (
        "PATCH",
        B1,
        JSON_PATCH,
        b'[{"op": "test", "path": "/spec/exitCode", "value": 9}]',
    ),
    "patch-merge-list": ("PATCH", B1, MERGE, b"[]"),
    "patch-merge-null": ("PATCH", B1, MERGE, b"null"),
    "patch-merge-metadata": ("PATCH", B1, MERGE, b'{"metadata": 5}'),
    "patch-merge-labels": ("PATCH", B1, MERGE, b'{"metadata": {"labels": {"a": {"b": 1}}}}'),
    "patch-merge-rv": ("PATCH", B1, MERGE, b'{"metadata": {"resourceVersion": 5}}'),
    "patch-merge-deep": ("PATCH", B1, MERGE, nested(5_000)),
    "patch-merge-bad-json": ("PATCH", B1, MERGE, b"{"),
    "patch-strategic-crd": ("PATCH", B1, {"Content-Type": "application/strategic-merge-patch+json"}, b"{}"),
    "patch-apply": ("PATCH", B1, {"Content-Type": "application/apply-patch+yaml"}, b"a: b"),
    "patch-no-type": ("PATCH", B1, {}, b"{}"),
    "patch-missing": ("PATCH", f"{BLOCKS}/nobody", MERGE, b"{}"),
    "patch-status-junk": ("PATCH", f"{B1}/status", MERGE, b'{"status": "x"}'),
    "patch-namespace-finalizers": (
        "PATCH",
        "/api/v1/namespaces/default",
        MERGE,
        b'{"spec": {"finalizers": 5}}',
    ),
    # replace
    "put-no-version": ("PUT", B1, JSON, block(name="b1")),
    "put-other-name": ("PUT", B1, JSON, block(name="b2", resourceVersion="1")),
    "put-array": ("PUT", B1, JSON, b"[]"),
    "put-collection": ("PUT", BLOCKS, JSON, block()),
    "put-finalize-junk": (
        "PUT",
        "/api/v1/namespaces/default/finalize",
        JSON,
        b'{"spec": {"finalizers": "x"}}',
    ),
    # deletes
    "delete-bad-json": ("DELETE", B1, JSON, b"{"),
    "delete-array": ("DELETE", B1, JSON, b"[]"),
    "delete-policy-number": ("DELETE", B1, JSON, b'{"propagationPolicy": 5}'),
    "delete-policy-unknown": ("DELETE", B1, JSON, b'{"propagationPolicy": "Sideways"}'),
    "delete-both": ("DELETE", B1, JSON, b'{"propagationPolicy": "Orphan", "orphanDependents": false}'),
    "delete-orphan-string": ("DELETE", B1, JSON, b'{"orphanDependents": "yes"}'),
    "delete-preconditions-string": ("DELETE", B1, JSON, b'{"preconditions": "x"}'),
    "delete-precondition-stale": ("DELETE", B1, JSON, b'{"preconditions": {"uid": "nope"}}'),
    "delete-yaml": ("DELETE", B1, {"Content-Type": "application/yaml"}, b"a: b"),
    "delete-missing": ("DELETE", f"{BLOCKS}/nobody", {}, b""),
    "delete-collection": ("DELETE", f"{BLOCKS}?labelSelector=!!,==", {}, b""),
    "delete-immortal": ("DELETE", "/api/v1/namespaces/kube-system", {}, b""),
    # query parameters
    "limit-text": ("GET", f"{BLOCKS}?limit=abc", {}, b""),
    "limit-negative": ("GET", f"{BLOCKS}?limit=-1", {}, b""),
    "limit-huge": ("GET", f"{BLOCKS}?limit=99999999999999999999999", {}, b""),
    "continue-text": ("GET", f"{BLOCKS}?limit=1&continue=abc", {}, b""),
    "continue-far": ("GET", f"{BLOCKS}?limit=1&continue=99999", {}, b""),
    "continue-superscript": ("GET", f"{BLOCKS}?limit=1&continue=%C2%B2", {}, b""),
    "continue-4301-digits": ("GET", f"{BLOCKS}?limit=1&continue={'9' * 4301}", {}, b""),
    "limit-4301-digits": ("GET", f"{BLOCKS}?limit={'9' * 4301}", {}, b""),
    "limit-superscript": ("GET", f"{BLOCKS}?limit=%C2%B2", {}, b""),
    "selector-garbage": ("GET", f"{BLOCKS}?labelSelector=%21%21%2C%3D%3D&fieldSelector=%3D%3D%3D", {}, b""),
    "watch-maybe": ("GET", f"{BLOCKS}?watch=maybe", {}, b""),
    "watch-timeout-text": ("GET", f"{BLOCKS}?watch=true&timeoutSeconds=abc", {}, b""),
    "watch-version-text": ("GET", f"{BLOCKS}?watch=true&resourceVersion=abc&timeoutSeconds=1", {}, b""),
    "watch-version-future": ("GET", f"{BLOCKS}?watch=true&resourceVersion=999999&timeoutSeconds=1", {}, b""),
    "watch-timeout-superscript": ("GET", f"{BLOCKS}?watch=true&timeoutSeconds=%C2%B2", {}, b""),
    "watch-version-superscript": (
        "GET",
        f"{BLOCKS}?watch=true&resourceVersion=%C2%B2&timeoutSeconds=1",
        {},
        b"",
    ),
    "watch-version-4301-digits": (
        "GET",
        f"{BLOCKS}?watch=true&resourceVersion={'9' * 4301}&timeoutSeconds=1",
        {},
        b"",
    ),
    "field-validation-odd": ("POST", f"{BLOCKS}?fieldValidation=Odd", JSON, block(name="odd")),
    "dry-run": ("POST", f"{BLOCKS}?dryRun=All", JSON, block(name="dry")),
    "table-for-watch": (
        "GET",
        f"{BLOCKS}?watch=true&timeoutSeconds=1",
        {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        b"",
    ),
    # paths and verbs
    "root": ("GET", "/", {}, b""),
    "unknown-group": ("GET", "/apis/nope.dev/v1/things", {}, b""),
    "unknown-resource": ("GET", f"{CORE}/pods", {}, b""),
    "unknown-version": ("GET", "/apis/blocklearn.dev/v9/blocks", {}, b""),
    "unknown-subresource": ("GET", f"{B1}/scale", {}, b""),
    "namespace-of-cluster-kind": ("GET", f"{CORE}/namespaces", {}, b""),
    "cluster-post-of-namespaced": ("POST", "/apis/blocklearn.dev/v1alpha1/blocks", JSON, block()),
    "cluster-get-of-namespaced": ("GET", "/apis/blocklearn.dev/v1alpha1/blocks/b1", {}, b""),
    "named-post": ("POST", B1, JSON, block()),
    "patch-collection": ("PATCH", BLOCKS, MERGE, b"{}"),
    "dot-dot-name": ("GET", f"{BLOCKS}/%2E%2E", {}, b""),
    "percent-name": ("GET", f"{BLOCKS}/a%25b", {}, b""),
    "nul-in-path": ("GET", f"{BLOCKS}/a%00b", {}, b""),
    "double-slash": ("GET", "//apis//blocklearn.dev", {}, b""),
    "openapi-unknown": ("GET", "/openapi/v3/apis/nope/v1", {}, b""),
    "long-name": ("GET", f"{BLOCKS}/{'x' * 4000}", {}, b""),
    "propfind": ("PROPFIND", B1, {}, b""),
    "trace": ("TRACE", "/", {}, b""),
    "brew": ("BREW", B1, {}, b""),  # refused by aiohttp's HTTP parser (400, plain text) before us
    "head": ("HEAD", B1, {}, b""),
    "options": ("OPTIONS", BLOCKS, {}, b""),
    "cookie-garbage": ("GET", BLOCKS, {"Cookie": '=;";;a=b=c; $$$=; ="'}, b""),
    "accept-garbage": ("GET", B1, {"Accept": ";as=Table;;;,,,*/*;q=x"}, b""),
}


@pytest.mark.parametrize("case", list(CORPUS), ids=list(CORPUS))
async def test_no_hostile_request_gets_a_5xx(api: Api, emulator: Emulator, case: str) -> None:
    assert (await api.call("POST", api.path("blocks"), block_body("b1")))[0] == 201
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}
    assert (await api.call("POST", f"{api.base}{CORE}/serviceaccounts", account))[0] == 201
    method, path, headers, body = CORPUS[case]
    url = yarl.URL(api.base + path, encoded=True)
    async with api.session.request(
        method, url, data=body, headers=headers, skip_auto_headers=["Content-Type"]
    ) as resp:
        code, text = resp.status, (await resp.read()).decode(errors="replace")
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    if code >= 500 or case in SERVER_ERRORS:
        assert case in SERVER_ERRORS and code == SERVER_ERRORS[case][0], text[:500]
        assert json.loads(text)["message"].startswith(SERVER_ERRORS[case][1])
    # Nor inside a body: a watch's ERROR event, sent after its 200.
    assert not re.search(r'"code":\s*5\d\d', text) or case in SERVER_ERRORS, text[:500]
    if code >= 400 and path.startswith(("/api", "/apis")) and method not in ("HEAD", "BREW"):
        status = json.loads(text)
        assert status["kind"] == "Status" and status["code"] == code and status["message"], status
    # The server is still up and still itself.
    assert (await api.call("GET", api.path("blocks", name="b1")))[0] == 200


async def test_a_deep_patch_does_not_reach_the_store(api: Api, emulator: Emulator) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    before = emulator.revision
    async with api.session.patch(api.path("blocks", name="b1"), data=nested(5_000), headers=MERGE) as resp:
        assert resp.status == 400
    assert emulator.revision == before


@pytest.mark.parametrize(
    ("path", "op"),
    [
        ("/spec/doc/nothing/here", "add"),  # a missing parent is not made
        ("/metadata/labels/a/b", "add"),
        ("/spec/doc/cells/-9", "add"),  # before the first element
        ("/spec/doc/cells/9", "add"),  # past the end
        ("/spec/doc/cells/-9", "replace"),
        ("/spec/doc/cells/1_0", "remove"),  # not an index Go's strconv takes
    ],
)
async def test_a_json_patch_outside_the_document_is_422_and_changes_nothing(
    api: Api, emulator: Emulator, path: str, op: str
) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    before = emulator.revision
    cell = {"kind": "markup", "contents": "x"}
    patch = [{"op": op, "path": path, "value": cell}]
    code, answer = await api.call(
        "PATCH", api.path("blocks", name="b1"), patch, ctype="application/json-patch+json"
    )
    assert code == 422 and "doc is missing path" in answer["message"], answer
    assert emulator.revision == before


async def test_a_negative_json_patch_index_counts_from_the_end_as_kube_apiservers(api: Api) -> None:
    body = block_body("b1")
    body["spec"]["doc"]["cells"] = [{"kind": "markup", "contents": c} for c in ("a", "b")]
    await api.call("POST", api.path("blocks"), body)
    patch = [{"op": "replace", "path": "/spec/doc/cells/-1/contents", "value": "z"}]
    code, obj = await api.call(
        "PATCH", api.path("blocks", name="b1"), patch, ctype="application/json-patch+json"
    )
    assert code == 200, obj
    assert [c["contents"] for c in obj["spec"]["doc"]["cells"]] == ["a", "z"]


async def test_a_watch_from_a_version_never_reached_is_504_too_large(api: Api, emulator: Emulator) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    current = emulator.revision
    async with api.session.get(f"{api.path('blocks')}?watch=true&resourceVersion={current + 5}") as resp:
        assert resp.status == 504
        answer = await resp.json()
    assert answer["reason"] == "Timeout"
    assert answer["message"] == f"Timeout: Too large resource version: {current + 5}, current: {current}"
    assert answer["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    async with api.session.get(
        f"{api.path('blocks')}?watch=true&resourceVersion={current}&timeoutSeconds=1"
    ) as resp:
        assert resp.status == 200  # the current version itself is a watch like any other
