"""The emulator as a person meets it: through the real kubectl (which sends built-in kinds as protobuf)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api, block_body, kubeconfig_for
from tests.processes import run_kubectl

BLOCKS, EXAMPLES = "blocklearn.dev/v1alpha1/blocks", "blocklearn.dev/v1alpha1/examples"


@pytest.fixture
def config(emulator: Emulator, tmp_path: Path) -> Path:
    return kubeconfig_for(emulator, tmp_path)


async def ok(config: Path, *args: str, stdin: str | None = None) -> str:
    code, out, err = await run_kubectl(config, *args, stdin=stdin)
    assert code == 0, err
    return out


async def refused(config: Path, *args: str, stdin: str | None = None) -> str:
    code, _, err = await run_kubectl(config, *args, stdin=stdin)
    assert code != 0
    return err.strip()


def manifest(*docs: dict) -> str:
    return yaml.safe_dump_all(list(docs))


async def test_kubectl_creates_applies_and_deletes_namespaces(config: Path, emulator: Emulator) -> None:
    assert await ok(config, "create", "namespace", "team-b") == "namespace/team-b created\n"
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-c", "labels": {"tier": "a"}},
    }
    assert await ok(config, "apply", "-f", "-", stdin=manifest(namespace)) == "namespace/team-c created\n"
    namespace["metadata"]["labels"]["tier"] = "b"  # kubectl patches it (a strategic merge patch)
    assert await ok(config, "apply", "-f", "-", stdin=manifest(namespace)) == "namespace/team-c configured\n"
    shown = json.loads(await ok(config, "get", "namespace", "team-c", "-o", "json"))
    assert shown["metadata"]["labels"] == {"tier": "b", "kubernetes.io/metadata.name": "team-c"}
    table = (await ok(config, "get", "namespaces")).splitlines()
    assert table[0].split() == ["NAME", "STATUS", "AGE"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["default", "Active"],
        ["kube-node-lease", "Active"],
        ["kube-public", "Active"],
        ["kube-system", "Active"],
        ["team-b", "Active"],
        ["team-c", "Active"],
    ]
    await ok(config, "apply", "-n", "team-b", "-f", "-", stdin=manifest(block_body("b1")))
    await ok(config, "create", "serviceaccount", "notebook", "-n", "team-b")
    # kubectl waits until the namespace is gone: Terminating, its content deleted, then it.
    assert await ok(config, "delete", "namespace", "team-b") == 'namespace "team-b" deleted\n'
    assert emulator.objects_of(BLOCKS) == [] and emulator.objects_of("/v1/serviceaccounts") == []
    assert "NotFound" in await refused(config, "get", "namespace", "team-b")
    assert await refused(config, "delete", "namespace", "default") == (
        'Error from server (Forbidden): namespaces "default" is forbidden: this namespace may not be deleted'
    )


async def test_kubectl_is_refused_what_the_api_server_refuses(config: Path) -> None:
    assert await refused(config, "create", "namespace", "Team") == (
        'The Namespace "Team" is invalid: metadata.name: Invalid value: "Team": a lowercase RFC 1123 label '
        "must consist of lower case alphanumeric characters or '-', and must start and end with an "
        "alphanumeric character (e.g. 'my-name' or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    )
    err = await refused(config, "apply", "-f", "-", stdin=manifest(block_body("UPPER")))
    assert err.startswith(
        'The Block "UPPER" is invalid: metadata.name: Invalid value: "UPPER": a lowercase RFC 1123'
    )
    err = await refused(config, "apply", "-n", "nowhere", "-f", "-", stdin=manifest(block_body("b1")))
    assert err == 'Error from server (NotFound): error when creating "STDIN": namespaces "nowhere" not found'


@pytest.mark.parametrize(
    ("cascade", "example_left"),
    [("orphan", True), ("background", False), ("foreground", False)],
)
async def test_kubectl_delete_cascades_as_asked(
    config: Path, api: Api, emulator: Emulator, cascade: str, example_left: bool
) -> None:
    await ok(config, "apply", "-f", "-", stdin=manifest(block_body("b1")))
    block = json.loads(await ok(config, "get", "blk", "b1", "-o", "json"))
    ref = {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Block",
        "name": "b1",
        "uid": block["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    example = {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Example",
        "metadata": {"name": "e1", "ownerReferences": [ref]},
        "spec": {"query": {"cells": []}, "answer": [], "blockRef": {"name": "b1"}},
    }
    await ok(config, "apply", "-f", "-", stdin=manifest(example))
    before = int(block["metadata"]["resourceVersion"])
    assert await ok(config, "delete", "blk", "b1", f"--cascade={cascade}") == (
        'block.blocklearn.dev "b1" deleted from default namespace\n'
    )
    assert emulator.objects_of(BLOCKS) == []  # kubectl waited for it to be gone
    await emulator.settled()
    examples = emulator.objects_of(EXAMPLES)
    if example_left:
        assert [e["metadata"].get("ownerReferences") for e in examples] == [None]
    else:
        assert examples == []
    # Writes since the Block: the Example's create (1), then orphan 3 (mark, unlink, delete),
    # background 2 (delete, delete), foreground 3 (mark, delete the dependent, delete).
    writes = {"orphan": 3, "background": 2, "foreground": 3}[cascade]
    assert emulator.revision - before == 1 + writes


async def test_kubectl_creates_a_quota_that_refuses_what_is_over_it(config: Path, emulator: Emulator) -> None:
    out = await ok(
        config,
        "create",
        "quota",
        "blocklearn",
        "--hard=count/blocks.blocklearn.dev=1,count/examples.blocklearn.dev=5",
    )
    assert out == "resourcequota/blocklearn created\n"
    await emulator.settled()
    await ok(config, "apply", "-f", "-", stdin=manifest(block_body("b1")))
    err = await refused(config, "apply", "-f", "-", stdin=manifest(block_body("b2")))
    assert err == (
        'Error from server (Forbidden): error when creating "STDIN": '
        'blocks.blocklearn.dev "b2" is forbidden: exceeded quota: blocklearn, '
        "requested: count/blocks.blocklearn.dev=1, used: count/blocks.blocklearn.dev=1, "
        "limited: count/blocks.blocklearn.dev=1"
    )
    header, row = (await ok(config, "get", "quota")).splitlines()
    assert header.split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert "count/blocks.blocklearn.dev: 1/1, count/examples.blocklearn.dev: 0/5" in row


async def test_kubectl_get_one_block_shows_the_printer_columns(config: Path) -> None:
    await ok(config, "apply", "-f", "-", stdin=manifest(block_body("b1")))
    one = (await ok(config, "get", "blk", "b1")).splitlines()
    listed = (await ok(config, "get", "blk")).splitlines()
    assert one[0].split() == ["NAME", "LEARNED", "REASON", "EXAMPLE", "SUGGESTION", "RETRIEVAL", "AGE"]
    assert one[0] == listed[0]
    assert one[1].split()[:4] == ["b1", "<none>", "<none>", "<none>"]
