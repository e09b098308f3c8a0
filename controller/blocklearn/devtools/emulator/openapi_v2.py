"""The OpenAPI v2 document in the protobuf form kubectl asks for (gnostic's openapi_v2.Document).

kubectl validates a `kind: List` file (what `kubectl get -o yaml` writes) against OpenAPI v2: a List
is in no OpenAPI v3 group document, so kubectl falls back to `/openapi/v2`, which it requests only as
`application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and parses as protobuf whatever the
answer's type. The real API server serves that; so does the emulator, encoded by hand for the few
fields a CRD's structural schema uses (field numbers from gnostic's OpenAPIv2.proto). As the API
server does when it publishes a CRD in v2, a nullable field loses its type: v2 cannot say "or null".
"""

from __future__ import annotations

import json
from typing import Any

# The type the API server answers with; kubectl asks with the older `spec.v2@v1.0`, which Go cannot parse.
MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

# Schema message fields (gnostic openapi_v2.Schema).
_DESCRIPTION, _MAX_LENGTH, _MAX_ITEMS, _REQUIRED, _ENUM = 4, 11, 14, 19, 20
_TYPE, _ITEMS, _PROPERTIES, _VENDOR_EXTENSION = 22, 23, 25, 31


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _str_field(number: int, text: str) -> bytes:
    return _bytes_field(number, text.encode())


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _any(value: Any) -> bytes:
    """gnostic's Any: the value as YAML text (JSON is YAML)."""
    return _str_field(2, json.dumps(value))


def _named(name: str, value: bytes) -> bytes:
    return _str_field(1, name) + _bytes_field(2, value)


def schema(node: dict[str, Any]) -> bytes:
    """One JSON schema node as an openapi_v2.Schema message."""
    out = bytearray()
    if "description" in node:
        out += _str_field(_DESCRIPTION, node["description"])
    if "maxLength" in node:
        out += _int_field(_MAX_LENGTH, node["maxLength"])
    if "maxItems" in node:
        out += _int_field(_MAX_ITEMS, node["maxItems"])
    for name in node.get("required", []):
        out += _str_field(_REQUIRED, name)
    for value in node.get("enum", []):
        out += _bytes_field(_ENUM, _any(value))
    if "type" in node and not node.get("nullable"):
        out += _bytes_field(_TYPE, _str_field(1, node["type"]))
    if "items" in node:
        out += _bytes_field(_ITEMS, _bytes_field(1, schema(node["items"])))
    if "properties" in node:
        props = b"".join(_bytes_field(1, _named(k, schema(v))) for k, v in node["properties"].items())
        out += _bytes_field(_PROPERTIES, props)
    for key, value in node.items():
        if key.startswith("x-"):
            out += _bytes_field(_VENDOR_EXTENSION, _named(key, _any(value)))
    return bytes(out)


def document(doc: dict[str, Any]) -> bytes:
    """A swagger 2.0 JSON document (info and definitions) as an openapi_v2.Document message."""
    info = doc.get("info", {})
    out = _str_field(1, doc.get("swagger", "2.0"))
    out += _bytes_field(2, _str_field(1, info.get("title", "")) + _str_field(2, info.get("version", "")))
    out += _bytes_field(8, b"")  # paths: none, so kubectl validates on the client and leaves it there
    definitions = b"".join(
        _bytes_field(1, _named(name, schema(node))) for name, node in doc.get("definitions", {}).items()
    )
    return out + _bytes_field(9, definitions)
