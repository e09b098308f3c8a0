"""The OpenAPI 3.1 document of the search API, generated from its pydantic models (`schema.py`).

`blocklearn openapi` prints it, the index serves it at /openapi.json, and `docs/openapi.json` holds
the committed copy (a test fails when they drift apart, as for the CRDs). OpenAPI 3.1 schemas are
JSON Schema 2020-12, which is what pydantic generates, so the models' schemas go in unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from blocklearn import __version__
from blocklearn.search.schema import ErrorResponse, SearchRequest, SearchResponse

_REF = "#/components/schemas/{model}"


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def document() -> dict[str, Any]:
    """The whole document, deterministic (the same models give the same bytes)."""
    refs, defs = models_json_schema(
        [(SearchRequest, "validation"), (SearchResponse, "serialization"), (ErrorResponse, "serialization")],
        ref_template=_REF,
    )
    request = refs[(SearchRequest, "validation")]["$ref"]
    response = refs[(SearchResponse, "serialization")]["$ref"]
    error = refs[(ErrorResponse, "serialization")]["$ref"]
    errors = {
        "400": "The request is malformed; the message names the field.",
        "401": "Authentication is on and the bearer token is missing or not accepted.",
        "403": "The caller may not search this namespace.",
        "413": "The request body is over 2 MiB (every valid request fits).",
        "415": "The request body is not declared as application/json.",
        "417": "An Expect header other than 100-continue.",
        "502": "The embedder did not embed the query.",
        "503": "The index is not ready (first list not done, embedder not answering) or the API"
        " server did not answer a TokenReview; retry later.",
    }
    probe = {"type": "object", "additionalProperties": True}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Blocklearn search API",
            "version": __version__,
            "description": "Nearest past corrections (few-shot examples) for an assistant's request."
            " Served by the index sidecar (`blocklearn index`).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": {
            "/v1/search": {
                "post": {
                    "operationId": "search",
                    "summary": "Find the past corrections nearest to a request.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": request}}},
                    },
                    "responses": {
                        "200": _json(response, "The nearest examples, best first."),
                        **{code: _json(error, text) for code, text in errors.items()},
                    },
                    # Anonymous unless the index is configured with a token or TokenReview.
                    "security": [{}, {"bearer": []}],
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the watch loop is running.",
                    "responses": {"200": _probe("Alive.", probe), "503": _probe("Not alive.", probe)},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: the first full list of Examples is in the index.",
                    "responses": {"200": _probe("Ready.", probe), "503": _probe("Not ready yet.", probe)},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {"200": _probe("The OpenAPI document.", probe)},
                }
            },
        },
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The index's shared token, or a ServiceAccount token it reviews.",
                }
            },
        },
    }


def _probe(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"
