from pathlib import Path

import yaml

from blocklearn.devtools.emulator.schema import prune_and_validate
from blocklearn.resources.crds import all_crds, render

CRDS = Path(__file__).parent.parent / "crds"


def test_committed_crds_match_the_models() -> None:
    """Fails when models.py changed and `blocklearn crds --out crds` was not run."""
    for crd in all_crds():
        path = CRDS / f"{crd['metadata']['name']}.yaml"
        assert path.exists(), f"{path} is missing: run `blocklearn crds --out crds`"
        assert path.read_text() == render(crd), (
            f"{path} drifted from the models: run `blocklearn crds --out crds`"
        )


def _walk(node: dict, path: str = "") -> list[str]:
    missing = [] if "description" in node or path.endswith("metadata") else [path]
    for key, child in node.get("properties", {}).items():
        missing += _walk(child, f"{path}.{key}")
    if "items" in node:
        missing += _walk(node["items"], f"{path}[]")
    return missing


def test_every_field_is_described_for_kubectl_explain() -> None:
    for crd in all_crds():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        # outputs[] items are plain strings: their description is on the list
        missing = [p for p in _walk(schema) if not p.endswith("outputs[]") and not p.endswith("Ids[]")]
        assert not missing, missing


def test_schemas_are_structural() -> None:
    def check(node: dict, path: str) -> None:
        assert "type" in node or path == "", f"{path} has no type"
        assert not {"$ref", "anyOf", "allOf", "oneOf"} & set(node), path
        for key, child in node.get("properties", {}).items():
            check(child, f"{path}.{key}")
        if "items" in node:
            check(node["items"], f"{path}[]")

    for crd in all_crds():
        check(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "")


def test_status_fields_survive_pruning() -> None:
    """kopf #574: a status field the schema does not declare is silently dropped by the server."""
    ex = yaml.safe_load((CRDS / "examples.blocklearn.dev.yaml").read_text())
    schema = ex["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    status = {
        "embedding": "AAAA",
        "embeddingDim": 1,
        "embeddingModel": "m",
        "textHash": "h",
        "embeddedAt": "t",
        "sourceChangedAt": "t",
        "conditions": [],
        "kopf": {"x": 1},
    }
    pruned, errors = prune_and_validate(
        schema, {"spec": {"query": {}, "answer": [], "blockRef": {"name": "b"}}, "status": status}
    )
    assert not errors
    assert "kopf" not in pruned["status"]
    assert {k: v for k, v in status.items() if k != "kopf"} == pruned["status"]


def test_wrong_types_are_rejected_with_their_path() -> None:
    blk = yaml.safe_load((CRDS / "blocks.blocklearn.dev.yaml").read_text())
    schema = blk["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    _, errors = prune_and_validate(schema, {"spec": {"exitCode": "zero", "doc": {"cells": [{"kind": "x"}]}}})
    assert ".spec.exitCode: expected integer, got str" in errors
    assert any(e.startswith(".spec.doc.cells[0].kind") for e in errors)
    assert ".spec.doc.cells[0].contents: Required value" in errors


def test_strict_field_validation_rejects_unknown_fields_instead_of_pruning() -> None:
    blk = yaml.safe_load((CRDS / "blocks.blocklearn.dev.yaml").read_text())
    schema = blk["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    body = {"spec": {"exitCod": 0, "doc": {"cells": []}}}
    assert prune_and_validate(schema, body)[1] == []
    _, errors = prune_and_validate(schema, body, strict=True)
    assert errors == [".spec.exitCod: field not declared in schema"]
