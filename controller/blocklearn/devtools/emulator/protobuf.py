"""Just enough of Kubernetes' protobuf encoding to read what kubectl's typed clients send.

kubectl sends built-in kinds (`kubectl create serviceaccount`, `kubectl create token`) as protobuf,
whatever the server says, and does not fall back to JSON. The envelope is the magic `k8s\\0` and a
runtime.Unknown message: typeMeta (1: apiVersion 1, kind 2) and raw (2), the object's own message.
This reads the wire format without a schema and maps the few fields the emulator needs, by their
numbers in k8s.io/api's generated.proto: enough for a ServiceAccount and a TokenRequest.
"""

from __future__ import annotations

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
    return f[number][-1].decode() if number in f else None


def _metadata(raw: bytes) -> dict[str, Any]:
    # ObjectMeta: name 1, generateName 2, namespace 3, labels 11, annotations 12 (map entries: 1, 2)
    f = fields(raw)
    meta: dict[str, Any] = {}
    for key, number in (("name", 1), ("generateName", 2), ("namespace", 3)):
        if (value := _text(f, number)) is not None:
            meta[key] = value
    for key, number in (("labels", 11), ("annotations", 12)):
        entries = [fields(e) for e in f.get(number, [])]
        if entries:
            meta[key] = {_text(e, 1) or "": _text(e, 2) or "" for e in entries}
    return meta


def _token_request_spec(raw: bytes) -> dict[str, Any]:
    # TokenRequestSpec: audiences 1, boundObjectRef 3, expirationSeconds 4
    f = fields(raw)
    spec: dict[str, Any] = {"audiences": [a.decode() for a in f.get(1, [])]}
    if 4 in f:
        spec["expirationSeconds"] = f[4][-1]
    return spec


def decode(body: bytes) -> dict[str, Any]:
    """The object in a `application/vnd.kubernetes.protobuf` body, as JSON would have carried it."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (no k8s\\0 magic)")
    unknown = fields(body[len(MAGIC) :])
    type_meta = fields(unknown[1][-1]) if 1 in unknown else {}
    api_version, kind = _text(type_meta, 1) or "", _text(type_meta, 2) or ""
    raw = fields(unknown[2][-1]) if 2 in unknown else {}
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    if 1 in raw:
        obj["metadata"] = _metadata(raw[1][-1])
    if kind == "TokenRequest" and 2 in raw:
        obj["spec"] = _token_request_spec(raw[2][-1])
    elif kind not in ("ServiceAccount", "TokenRequest"):
        raise ProtobufError(f"{kind or 'this kind'} in protobuf is not supported; send JSON")
    return obj
