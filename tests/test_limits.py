"""Limits like a real API server's, and CRD caps that keep every object the controller writes within them."""

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from blocklearn.devtools.emulator.api import (
    MAX_ANNOTATION_BYTES,
    MAX_REQUEST_BYTES,
    MAX_STORED_BYTES,
    Emulator,
    stored_size,
)
from blocklearn.embed.codec import encode
from blocklearn.learn.rule import Policy, decide
from blocklearn.resources.crds import all_crds
from blocklearn.resources.models import (
    BASE64_PATTERN,
    MAX_CELL_CHARS,
    MAX_CELLS,
    MAX_CONDITION_MESSAGE_CHARS,
    MAX_EMBEDDING_CHARS,
    MAX_NAME_CHARS,
    MAX_OUTPUT_CHARS,
    MAX_OUTPUTS,
    MAX_RETRIEVED,
    BlockRef,
    BlockSpec,
)
from tests.conftest import Api, block_body, kubeconfig_for
from tests.processes import kubectl_binary

# The API server writes `<` as \u003c: the costliest character a string can hold.
WORST_BYTES_PER_CHAR = 6


def _schemas() -> dict[str, dict[str, Any]]:
    return {
        crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        for crd in all_crds()
    }


def worst_bytes(node: dict[str, Any], path: str = "") -> int:
    """The most bytes a value of this schema can take as stored JSON; fails on an unbounded field."""
    kind = node.get("type")
    if kind == "string":
        if "enum" in node:
            return max(len(json.dumps(v)) for v in node["enum"])
        assert "maxLength" in node, f"{path} is a string without maxLength"
        per_char = 1 if node.get("pattern") == BASE64_PATTERN else WORST_BYTES_PER_CHAR
        return 2 + per_char * int(node["maxLength"])
    if kind == "array":
        assert "maxItems" in node, f"{path} is an array without maxItems"
        return 2 + int(node["maxItems"]) * (1 + worst_bytes(node["items"], f"{path}[]"))
    if kind == "object":
        props = node.get("properties", {})
        return 2 + sum(len(k) + 4 + worst_bytes(v, f"{path}.{k}") for k, v in props.items())
    return 24  # numbers and booleans


def test_every_field_a_block_or_example_holds_is_capped() -> None:
    """A field without a cap would let the API server admit a Block whose Example it then refuses."""
    schemas = _schemas()
    for kind in ("Block", "Example"):
        for part in ("spec", "status"):
            worst_bytes(schemas[kind][part], f"{kind}.{part}")  # asserts on every uncapped field


def test_the_largest_valid_block_and_its_example_fit_what_etcd_stores() -> None:
    schemas = _schemas()
    block = worst_bytes(schemas["Block"]["spec"]) + worst_bytes(schemas["Block"]["status"])
    example = worst_bytes(schemas["Example"]["spec"]) + worst_bytes(schemas["Example"]["status"])
    metadata = 16 * 1024  # names, labels, owner references, managedFields
    assert block + metadata <= MAX_STORED_BYTES, block
    assert example + metadata <= MAX_STORED_BYTES, example


def _largest_block_spec() -> dict[str, Any]:
    """A valid Block at every cap, written in the character that costs most bytes."""

    def cell(kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "language": "b" * 32,
            "contents": "<" * (MAX_CELL_CHARS - 1) + "x",
            "outputs": ["&" * MAX_OUTPUT_CHARS] * MAX_OUTPUTS,
        }

    return {
        "doc": {"cells": [cell("markup") for _ in range(MAX_CELLS)]},
        "generatedCell": cell("code"),
        "executedCell": {**cell("code"), "contents": ">" * MAX_CELL_CHARS},
        "exitCode": 0,
        "genTraceId": "t" * 128,
        "execTraceIds": ["e" * 128] * 8,
        "retrievedExamples": [f"{i}" * MAX_NAME_CHARS for i in range(MAX_RETRIEVED)],
    }


async def test_the_largest_valid_block_teaches_an_example_the_api_server_stores(api: Api) -> None:
    spec = _largest_block_spec()
    body = {**block_body("largest"), "spec": spec}
    code, created = await api.call("POST", api.path("blocks"), body)
    assert code == 201, created
    decision = decide(BlockSpec.model_validate(spec), BlockRef(name="largest", uid="u" * 36), Policy())
    assert decision.example is not None, decision.message
    example = {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Example",
        "metadata": {"name": "largest", "annotations": {"blocklearn.dev/source-changed-at": "x" * 20}},
        "spec": decision.example.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }
    code, obj = await api.call("POST", api.path("examples"), example)
    assert code == 201, obj
    status = {
        "embedding": "A" * MAX_EMBEDDING_CHARS,
        "embeddingDim": 65536,
        "embeddingModel": "m" * 128,
        "textHash": "h" * 128,
        "embeddedAt": "2026-01-01T00:00:00Z",
        "sourceChangedAt": "2026-01-01T00:00:00Z",
        "conditions": [
            {
                "type": "Embedded",
                "status": "True",
                "reason": "Embedded",
                "message": "<" * MAX_CONDITION_MESSAGE_CHARS,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    code, obj = await api.call(
        "PATCH", api.path("examples", name="largest", sub="status"), {"status": status}
    )
    assert code == 200, {k: v for k, v in obj.items() if k != "spec"}
    assert stored_size(obj) <= MAX_STORED_BYTES
    assert len(encode(np.zeros(65536, dtype=np.float32))) == MAX_EMBEDDING_CHARS


async def test_a_block_over_a_cap_is_refused_at_its_create_with_the_field(api: Api) -> None:
    spec = _largest_block_spec()
    spec["doc"]["cells"].append(spec["doc"]["cells"][0])
    code, err = await api.call("POST", api.path("blocks"), {**block_body("too-many"), "spec": spec})
    assert code == 422 and ".spec.doc.cells: Too many: 33: must have at most 32 items" in err["message"]
    spec = _largest_block_spec()
    spec["executedCell"]["contents"] += "x"
    code, err = await api.call("POST", api.path("blocks"), {**block_body("too-long"), "spec": spec})
    assert code == 422 and ".spec.executedCell.contents: Too long" in err["message"]


async def test_a_body_over_3_mib_gets_413_as_from_kube_apiserver(api: Api) -> None:
    body = block_body("huge")
    body["spec"]["executedCell"]["contents"] = "y" * MAX_REQUEST_BYTES
    async with api.session.post(
        api.path("blocks"), data=json.dumps(body), headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 413
        err = await resp.json()
    assert err["reason"] == "RequestEntityTooLarge"
    assert err["message"] == f"Request entity too large: limit is {MAX_REQUEST_BYTES}"


async def test_annotations_over_256_kib_are_invalid(api: Api) -> None:
    body = block_body("annotated")
    body["metadata"]["annotations"] = {"a": "x" * (MAX_ANNOTATION_BYTES - 1)}
    code, _ = await api.call("POST", api.path("blocks"), body)
    assert code == 201  # the key's byte counts too: 1 + 262143 is the limit exactly
    too_much = {"metadata": {"annotations": {"b": "y"}}}
    code, err = await api.call("PATCH", api.path("blocks", name="annotated"), too_much)
    assert code == 422
    assert err["message"] == (
        'Block.blocklearn.dev "annotated" is invalid: metadata.annotations: '
        "Too long: must have at most 262144 bytes"
    )


async def test_an_object_over_what_etcd_stores_is_refused(api: Api, emulator: Emulator) -> None:
    """Events have no schema to cap them: a 2 MB one passes the body limit and fails in etcd."""
    url = f"{api.base}/api/v1/namespaces/default/events"
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"}, "message": "z" * 2_000_000}
    code, err = await api.call("POST", url, event)
    assert code == 500 and err["message"] == "etcdserver: request is too large"
    assert not emulator.objects_of("/v1/events")


async def _kubectl(config: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(kubectl_binary()),
        "--kubeconfig",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@pytest.mark.needs_tools("kubectl")
async def test_kubectl_applies_a_list_as_get_o_yaml_writes_it(
    api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    """kubectl validates a `kind: List` against the protobuf OpenAPI v2 document: it used to fail with
    `proto: cannot parse invalid wire-format data`. With validation on, as kubectl's default."""
    config = kubeconfig_for(emulator, tmp_path)
    items = [block_body(f"listed-{i}") for i in range(3)]
    listing = tmp_path / "list.yaml"
    listing.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    code, out = await _kubectl(config, "apply", "-f", str(listing))
    assert code == 0, out
    names = {b["metadata"]["name"] for b in emulator.objects_of("blocklearn.dev/v1alpha1/blocks")}
    assert names == {"listed-0", "listed-1", "listed-2"}
    # and the document validates: a field the schema does not know is refused before anything is sent
    items[0]["spec"]["mystery"] = 1
    items[0]["metadata"]["name"] = "listed-mystery"
    listing.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    code, out = await _kubectl(config, "apply", "-f", str(listing))
    assert code != 0 and 'unknown field "mystery"' in out, out
    assert "listed-mystery" not in {
        b["metadata"]["name"] for b in emulator.objects_of("blocklearn.dev/v1alpha1/blocks")
    }
