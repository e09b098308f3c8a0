"""Just enough of Kubernetes' protobuf encoding to read what kubectl's typed clients send.

kubectl sends built-in kinds (`kubectl create serviceaccount`, `kubectl create token`) as protobuf,
whatever the server says, and does not fall back to JSON. The envelope is the magic `k8s\\0` and a
runtime.Unknown message: typeMeta (1: apiVersion 1, kind 2) and raw (2), the object's own message.
This reads the wire format without a schema and maps the few fields the emulator needs, by their
numbers in k8s.io/api's generated.proto: enough for what kubectl creates here, a Namespace
(`kubectl create ns`), a ServiceAccount and its TokenRequest, and a ResourceQuota (`kubectl create
quota`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAGIC = b"k8s\x00"
Fields = dict[int, list[Any]]  # field number -> values (ints, or bytes for length-delimited fields)


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> Fields:
    """One message's fields, undecoded below the top level."""
    out: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ProtobufError("truncated field")
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _text(f: Fields, number: int) -> str | None:
    if number not in f:
        return None
    value = f[number][-1]
    if not isinstance(value, bytes):
        raise ProtobufError(f"field {number} is not a string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ProtobufError(f"field {number} is not UTF-8") from None


def _texts(f: Fields, number: int) -> list[str]:
    return [_text({number: [v]}, number) or "" for v in f.get(number, [])]


def _message(f: Fields, number: int) -> Fields:
    value = f[number][-1] if number in f else b""
    if not isinstance(value, bytes):
        raise ProtobufError(f"field {number} is not a message")
    return fields(value)


def _metadata(f: Fields) -> dict[str, Any]:
    # ObjectMeta: name 1, generateName 2, namespace 3, labels 11, annotations 12 (map entries: 1, 2)
    meta: dict[str, Any] = {}
    for key, number in (("name", 1), ("generateName", 2), ("namespace", 3)):
        if (value := _text(f, number)) is not None:
            meta[key] = value
    for key, number in (("labels", 11), ("annotations", 12)):
        entries = [_message({1: [e]}, 1) for e in f.get(number, [])]
        if entries:
            meta[key] = {_text(e, 1) or "": _text(e, 2) or "" for e in entries}
    return meta


def _token_request_spec(f: Fields) -> dict[str, Any]:
    # TokenRequestSpec: audiences 1, boundObjectRef 3, expirationSeconds 4
    spec: dict[str, Any] = {"audiences": _texts(f, 1)}
    if 4 in f:
        spec["expirationSeconds"] = f[4][-1]
    return spec


def _namespace_spec(f: Fields) -> dict[str, Any]:
    # NamespaceSpec: finalizers 1
    finalizers = _texts(f, 1)
    return {"finalizers": finalizers} if finalizers else {}


def _resource_quota_spec(f: Fields) -> dict[str, Any]:
    # ResourceQuotaSpec: hard 1 (map entries: key 1, Quantity 2 whose string is 1), scopes 2
    hard = {}
    for entry in f.get(1, []):
        e = _message({1: [entry]}, 1)
        hard[_text(e, 1) or ""] = _text(_message(e, 2), 1) or "0"
    spec: dict[str, Any] = {"hard": hard}
    if scopes := _texts(f, 2):
        spec["scopes"] = scopes
    return spec


# The spec (field 2 of the object) of each kind read here; the others are refused.
_SPECS: dict[str, Callable[[Fields], dict[str, Any]] | None] = {
    "Namespace": _namespace_spec,
    "ResourceQuota": _resource_quota_spec,
    "ServiceAccount": None,
    "TokenRequest": _token_request_spec,
}


def decode(body: bytes) -> dict[str, Any]:
    """The object in a `application/vnd.kubernetes.protobuf` body, as JSON would have carried it."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (no k8s\\0 magic)")
    unknown = fields(body[len(MAGIC) :])
    type_meta = _message(unknown, 1)
    api_version, kind = _text(type_meta, 1) or "", _text(type_meta, 2) or ""
    if kind not in _SPECS:
        raise ProtobufError(f"{kind or 'this kind'} in protobuf is not supported; send JSON")
    raw = _message(unknown, 2)
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    if 1 in raw:
        obj["metadata"] = _metadata(_message(raw, 1))
    spec = _SPECS[kind]
    if spec is not None and 2 in raw:
        obj["spec"] = spec(_message(raw, 2))
    return obj
