"""CustomResourceDefinitions generated from the pydantic models, so that the two cannot drift.

`blocklearn crds` prints them; `crds/` holds the committed copy, and a test fails when they differ.
The CRD schema checks structure, types and the size caps (maxLength, maxItems: the API server refuses
an oversized Block at its create); formats and finer rules stay in the models, and the controller
reports them as an `Invalid` condition with a precise message. Unknown fields are pruned.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from blocklearn import GROUP, VERSION
from blocklearn.resources.models import BlockSpec, BlockStatus, ExampleSpec, ExampleStatus

_KEEP = {
    "type",
    "description",
    "properties",
    "items",
    "required",
    "enum",
    "nullable",
    "maxLength",
    "maxItems",
    "pattern",
}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(node["anyOf"])
        inner = _structural(options[0], defs)
        inner.update({k: v for k, v in node.items() if k in _KEEP and k not in ("type", "anyOf")})
        if nullable:
            inner["nullable"] = True
        return inner
    if "const" in node:
        node = {**node, "enum": [node["const"]], "type": "string"}
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    if "properties" in out:
        out["properties"] = {k: _structural(v, defs) for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = _structural(out["items"], defs)
    if node.get("type") == "object" and "properties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    return _structural(raw, raw.get("$defs", {}))


def _crd(
    kind: str,
    plural: str,
    short: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    description: str,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["blocklearn"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version of the object."},
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {"type": "object", "description": "Standard object metadata."},
                                "spec": schema_of(spec),
                                "status": schema_of(status),
                            },
                        }
                    },
                }
            ],
        },
    }


def _condition_column(name: str, type_: str, description: str) -> dict[str, Any]:
    path = f'.status.conditions[?(@.type=="{type_}")].status'
    return {"name": name, "type": "string", "jsonPath": path, "description": description}


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def block_crd() -> dict[str, Any]:
    return _crd(
        "Block",
        "blocks",
        "blk",
        BlockSpec,
        BlockStatus,
        "A cell an assistant suggested and what a person executed instead: the unit of learning.",
        [
            _condition_column("Learned", "Learned", "Whether the Block taught an Example."),
            {
                "name": "Reason",
                "type": "string",
                "jsonPath": '.status.conditions[?(@.type=="Learned")].reason',
                "description": "Why the Block did or did not teach.",
            },
            {
                "name": "Example",
                "type": "string",
                "jsonPath": ".status.exampleRef",
                "description": "Example.",
            },
            {
                "name": "Suggestion",
                "type": "string",
                "jsonPath": ".status.suggestionOutcome",
                "description": "What the person did with the suggestion.",
            },
            {
                "name": "Retrieval",
                "type": "string",
                "jsonPath": ".status.retrievalOutcome",
                "description": "Whether what the person ran was among the examples shown.",
            },
            _age(),
        ],
    )


def example_crd() -> dict[str, Any]:
    return _crd(
        "Example",
        "examples",
        "ex",
        ExampleSpec,
        ExampleStatus,
        "A few-shot example learned from a Block: its context (query) and the executed cell (answer).",
        [
            _condition_column("Embedded", "Embedded", "Whether the embedding is present and current."),
            {
                "name": "Model",
                "type": "string",
                "jsonPath": ".status.embeddingModel",
                "description": "Embedder.",
            },
            {
                "name": "Occurrences",
                "type": "integer",
                "jsonPath": ".status.occurrences",
                "description": "How many Blocks taught this correction.",
            },
            {
                "name": "Block",
                "type": "string",
                "jsonPath": ".spec.blockRef.name",
                "priority": 1,
                "description": "The Block that first taught it.",
            },
            _age(),
        ],
    )


def all_crds() -> list[dict[str, Any]]:
    return [block_crd(), example_crd()]


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(crd: dict[str, Any]) -> str:
    header = (
        "# Generated by `blocklearn crds` from controller/blocklearn/resources/models.py;"
        " do not edit by hand.\n"
    )
    return header + yaml.dump(crd, Dumper=_NoAliases, sort_keys=False, width=110)
