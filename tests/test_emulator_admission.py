"""What the emulator refuses before it stores anything, with kube-apiserver's codes and messages:
names, namespaces that do not exist, object-count quotas, bodies it cannot decode."""

from __future__ import annotations

import json

import pytest

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.resources.crds import all_crds
from tests.conftest import Api, block_body

SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name' or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


@pytest.mark.parametrize(
    ("name", "shown", "problems"),
    [
        ("a\x00b", '"a\\x00b"', [SUBDOMAIN]),
        ("UPPER", '"UPPER"', [SUBDOMAIN]),
        ("has space", '"has space"', [SUBDOMAIN]),
        ("..", '".."', [SUBDOMAIN]),
        ("a/b", '"a/b"', [SUBDOMAIN]),
        ("n" * 254, '"' + "n" * 254 + '"', ["must be no more than 253 characters"]),
        ("-" * 254, '"' + "-" * 254 + '"', ["must be no more than 253 characters", SUBDOMAIN]),
    ],
)
async def test_names_the_api_server_refuses_for_a_custom_resource(
    api: Api, emulator: Emulator, name: str, shown: str, problems: list[str]
) -> None:
    code, err = await api.call("POST", api.path("blocks"), block_body(name))
    causes = [f"metadata.name: Invalid value: {shown}: {p}" for p in problems]
    aggregate = causes[0] if len(causes) == 1 else "[" + ", ".join(causes) + "]"
    assert (code, err["reason"]) == (422, "Invalid")
    assert err["message"] == f"Block.blocklearn.dev {shown} is invalid: {aggregate}"
    assert [c["field"] for c in err["details"]["causes"]] == ["metadata.name"] * len(problems)
    assert emulator.objects_of("blocklearn.dev/v1alpha1/blocks") == []


async def test_the_longest_and_generated_names_are_accepted(api: Api) -> None:
    assert (await api.call("POST", api.path("blocks"), block_body("n" * 253)))[0] == 201
    body = block_body("")
    body["metadata"] = {"generateName": "b" * 80 + "-"}
    code, made = await api.call("POST", api.path("blocks"), body)
    assert (
        code == 201 and len(made["metadata"]["name"]) == 63 and made["metadata"]["name"].startswith("b" * 58)
    )
    body["metadata"] = {}
    code, err = await api.call("POST", api.path("blocks"), body)
    assert (code, err["message"]) == (
        422,
        'Block.blocklearn.dev "" is invalid: metadata.name: Required value: name or generateName is required',
    )


async def test_namespace_names_are_dns_labels(api: Api) -> None:
    url = f"{api.base}/api/v1/namespaces"
    for name, problem in (("team.b", "must not contain dots"), ("Team", LABEL)):
        code, err = await api.call("POST", url, {"metadata": {"name": name}})
        assert (code, err["message"]) == (
            422,
            f'Namespace "{name}" is invalid: metadata.name: Invalid value: "{name}": {problem}',
        )
    code, err = await api.call("POST", url, {"metadata": {"name": "n" * 64}})
    assert code == 422 and "must be no more than 63 characters" in err["message"]


async def test_objects_go_only_into_namespaces_that_exist(api: Api) -> None:
    code, err = await api.call("POST", api.path("blocks", "team-x"), block_body("b1"))
    assert (code, err["reason"], err["message"]) == (404, "NotFound", 'namespaces "team-x" not found')
    assert err["details"] == {"name": "team-x", "group": "", "kind": "namespaces"}
    await api.create_namespace("team-x")
    assert (await api.call("POST", api.path("blocks", "team-x"), block_body("b1")))[0] == 201
    _, made = await api.call("GET", f"{api.base}/api/v1/namespaces/team-x")
    assert made["status"] == {"phase": "Active"} and made["spec"] == {"finalizers": ["kubernetes"]}
    assert made["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-x"}


async def test_the_api_servers_namespaces_exist_from_the_start_and_after_a_restore(
    emulator: Emulator,
) -> None:
    system = ["default", "kube-node-lease", "kube-public", "kube-system"]
    assert [n["metadata"]["name"] for n in emulator.objects_of("/v1/namespaces")] == system
    old = emulator.snapshot()
    old["objects"] = [o for o in old["objects"] if o[0][0] != "/v1/namespaces"]  # from an older emulator
    copy = Emulator()
    copy.restore(json.loads(json.dumps(old)))
    assert [n["metadata"]["name"] for n in copy.objects_of("/v1/namespaces")] == system


async def test_an_object_count_quota_refuses_creates_beyond_it(api: Api, emulator: Emulator) -> None:
    quotas = f"{api.base}/api/v1/namespaces/default/resourcequotas"
    hard = {"count/blocks.blocklearn.dev": "2", "count/examples.blocklearn.dev": "1k"}
    assert (await api.call("POST", quotas, {"metadata": {"name": "blocklearn"}, "spec": {"hard": hard}}))[
        0
    ] == 201
    await emulator.settled()  # the quota controller fills in its status: until then it is not enforced
    _, synced = await api.call("GET", f"{quotas}/blocklearn")
    assert synced["status"] == {
        "hard": hard,
        "used": {"count/blocks.blocklearn.dev": "0", "count/examples.blocklearn.dev": "0"},
    }
    for name in ("b1", "b2"):
        assert (await api.call("POST", api.path("blocks"), block_body(name)))[0] == 201
    code, err = await api.call("POST", api.path("blocks"), block_body("b3"))
    assert (code, err["reason"]) == (403, "Forbidden")
    assert err["message"] == (
        'blocks.blocklearn.dev "b3" is forbidden: exceeded quota: blocklearn, '
        "requested: count/blocks.blocklearn.dev=1, used: count/blocks.blocklearn.dev=2, "
        "limited: count/blocks.blocklearn.dev=2"
    )
    _, used = await api.call("GET", f"{quotas}/blocklearn")
    assert used["status"]["used"]["count/blocks.blocklearn.dev"] == "2"
    await api.call("DELETE", api.path("blocks", name="b1"))
    await emulator.settled()  # the controller gives the count back
    _, used = await api.call("GET", f"{quotas}/blocklearn")
    assert used["status"]["used"]["count/blocks.blocklearn.dev"] == "1"
    assert (await api.call("POST", api.path("blocks"), block_body("b3")))[0] == 201
    code, err = await api.call(
        "POST", quotas, {"metadata": {"name": "bad"}, "spec": {"hard": {"count/x": "-1"}}}
    )
    assert code == 422 and "spec.hard[count/x]" in err["message"]


async def test_a_single_object_is_a_table_with_the_printer_columns(api: Api) -> None:
    await api.call("POST", api.path("blocks"), block_body("b1"))
    _, table = await api.call(
        "GET",
        api.path("blocks", name="b1"),
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    assert table["kind"] == "Table"
    (blocks,) = [c for c in all_crds() if c["spec"]["names"]["kind"] == "Block"]
    columns = [c["name"] for c in blocks["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert "Reason" in columns
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", *columns]
    assert table["rows"][0]["cells"][:4] == ["b1", "<none>", "<none>", "<none>"]


async def _post_raw(api: Api, body: bytes, ctype: str = "application/json") -> tuple[int, dict]:
    async with api.session.post(api.path("blocks"), data=body, headers={"Content-Type": ctype}) as resp:
        return resp.status, json.loads(await resp.read())


async def test_invalid_utf8_is_read_as_go_reads_it(api: Api, emulator: Emulator) -> None:
    """Go's encoding/json (documented): invalid UTF-8 in a string becomes U+FFFD, and the API server
    stores that; anywhere else it is a syntax error, 400. Never a 500 with a traceback."""
    body = (
        json.dumps(block_body("utf8"))
        .replace("kubectl get pods -A", "ls \udcff")
        .encode(errors="surrogateescape")
    )
    code, stored = await _post_raw(api, body)
    assert code == 201 and stored["spec"]["executedCell"]["contents"] == "ls \ufffd"
    code, err = await _post_raw(api, b'{"kind": \xff}')
    assert (code, err["reason"]) == (400, "BadRequest")
    assert err["message"].startswith(
        "the object provided is unrecognized (must be of type Block): couldn't get version/kind; "
        "json parse error: invalid character"
    )
    assert "traceback" not in json.dumps(err).lower()


async def test_nesting_beyond_the_limits_is_400(api: Api) -> None:
    for depth, why in (
        (10_001, "invalid character '{' exceeded max depth"),
        (1_000, "exceeds the local emulator's limit"),
    ):
        body = block_body("deep")
        body["spec"]["deep"] = "NEST"
        text = json.dumps(body).replace('"NEST"', '{"a":' * depth + "1" + "}" * depth)
        code, err = await _post_raw(api, text.encode())
        assert (code, err["reason"]) == (400, "BadRequest") and why in err["message"], err["message"][:300]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "json parse error: unexpected end of JSON input"),
        (b"[]", "json parse error: json: cannot unmarshal array into Go value of type struct"),
        (b'{"apiVersion": "v1"}', "the API version in the data (v1) does not match the expected API version"),
        (b'{"metadata": {"labels": {"a": 1}}}', 'Block in version "v1alpha1" cannot be handled as a Block'),
        (b'{"metadata": {"name": "x", "namespace": "other"}}', "does not match the namespace on the request"),
    ],
)
async def test_bodies_the_api_server_cannot_take_are_400(api: Api, body: bytes, message: str) -> None:
    code, err = await _post_raw(api, body)
    assert (code, err["reason"]) == (400, "BadRequest") and message in err["message"], err


async def test_a_media_type_the_api_does_not_read_is_415(api: Api) -> None:
    code, err = await _post_raw(api, b"{}", "text/plain")
    assert (code, err["reason"]) == (415, "UnsupportedMediaType")
    assert (
        err["message"]
        == "the body of the request was in an unknown format - accepted media types include: application/json"
    )
    async with api.session.patch(
        api.path("blocks", name="b1"),
        data=b"{}",
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    ) as resp:
        assert resp.status == 415  # custom resources take no strategic merge patch
