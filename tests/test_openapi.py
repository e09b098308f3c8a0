"""The search API's OpenAPI document: generated from the models, committed, valid OpenAPI 3.1.
(That live answers of the running index validate against it is in test_client.py.)"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from blocklearn.search.openapi import document, render

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "openapi.json"


def schema_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """One component schema, with the components to resolve its references against."""
    return {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}


def test_committed_document_matches_the_models() -> None:
    assert COMMITTED.read_text() == render(), (
        "docs/openapi.json drifted: run `blocklearn openapi --out docs/openapi.json`"
    )


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = json.loads(COMMITTED.read_text())
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # openapi-spec-validator picks the 3.1 validator from the version field
    broken = copy.deepcopy(doc)
    del broken["paths"]["/v1/search"]["post"]["responses"]["200"]["description"]  # required
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_request_schema_accepts_what_the_index_accepts_and_refuses_the_rest() -> None:
    request = jsonschema.Draft202012Validator(schema_of(document(), "SearchRequest"))
    assert request.is_valid({"query": "list pods", "k": 3, "namespace": "default", "distinct": False})
    cells = {"cells": [{"kind": "markup", "contents": "list pods"}]}
    assert request.is_valid({"query": cells, "minScore": 0.2})
    assert not request.is_valid({"query": "x", "k": 0})
    assert not request.is_valid({"query": "x", "bogus": 1})
    assert not request.is_valid({"k": 3})
    assert not request.is_valid({"query": "x" * 4097})  # a text query is one cell's contents at most


def test_every_search_status_is_documented_with_a_message() -> None:
    responses = document()["paths"]["/v1/search"]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "413", "415", "417", "502", "503"}
    error = jsonschema.Draft202012Validator(schema_of(document(), "ErrorResponse"))
    assert error.is_valid({"error": "query is empty"}) and not error.is_valid({"message": "x"})
