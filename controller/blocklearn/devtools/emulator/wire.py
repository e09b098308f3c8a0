"""What arrives on the wire, read as kube-apiserver reads it: paths, media types and JSON bodies.

kmock parses a request itself, and fails on what the API server answers with a 4xx: a namespace's
own path (`/api/v1/namespaces/x` read as a namespace with no resource: a `ValueError`), a body that
is not UTF-8 (a `UnicodeDecodeError`), JSON nested deeper than Python recurses (`RecursionError`).
Those became 500s with a traceback. Here the same `kmock.Request` is built without them, and a body
is decoded as Go's encoding/json decodes it: invalid UTF-8 inside a string becomes U+FFFD (Go's
documented behaviour; the API server stores it so), anywhere else it is a syntax error, and nesting
deeper than 10,000 levels is refused (Go's `maxNestingDepth`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp.web
import kmock
import numpy as np
from kmock._internal import parsing  # ParsedPath and guess_k8s: not re-exported by kmock 0.8

from blocklearn.devtools.emulator import protobuf
from blocklearn.devtools.emulator.kinds import ResourceType
from blocklearn.devtools.emulator.statuses import bad_request, status

# Go's encoding/json refuses deeper nesting; the API server answers 400.
GO_MAX_DEPTH = 10_000
# What the emulator holds: objects are copied, compared and patched by recursive Python, which stops
# near 1,000 frames. Deeper bodies are refused with 400 too, the message naming both limits; no
# Kubernetes object needs a tenth of it (and the CRDs here prune what their schema does not name).
MAX_DEPTH = 100

JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# The subresources of a Namespace: `/api/v1/namespaces/x/status` is not a resource named `status`.
NAMESPACE_SUBRESOURCES = ("status", "finalize")

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
# The struct SimpleMetaFactory.Interpret decodes into, as Go names it in an unmarshal error.
_FIND_KIND = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
)


class BodyError(ValueError):
    """A body that cannot be decoded: the message is what follows `json parse error: `."""


def media_type(header: str | None) -> str:
    """The media type of a Content-Type header, without its parameters (`; charset=utf-8`)."""
    return (header or "").split(";", 1)[0].strip().lower()


def parse_path(path: str) -> parsing.ParsedPath:
    """kmock's parse_path, with namespaces as the resource they are: `/api/v1/namespaces/x` is the
    Namespace `x`, `/api/v1/namespaces/x/status` its status; `/api/v1/namespaces/x/pods` are pods."""
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return parsing.parse_path(path)  # discovery and non-Kubernetes paths
    namespace = None
    if rest and rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return parsing.ParsedPath(group, version, plural, namespace, name, subresource)


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in a JSON text, counted without recursion."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return MAX_DEPTH  # cannot be deeper: skip the scan
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    steps = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    levels = np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1))
    return int(levels.max()) if len(levels) else 0


def decode_json(body: bytes) -> Any:
    """The JSON value of a body, or BodyError with Go's words for what is wrong."""
    text = body.decode("utf-8", errors="replace")
    depth = nesting_depth(text)
    if depth > GO_MAX_DEPTH:
        raise BodyError(f"invalid character {_go_char(text.lstrip()[:1] or '{')} exceeded max depth")
    if depth > MAX_DEPTH:
        raise BodyError(
            f"nesting depth {depth} exceeds the local emulator's limit of {MAX_DEPTH} "
            f"(kube-apiserver's is {GO_MAX_DEPTH})"
        )
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise BodyError(_go_syntax_error(exc)) from None


def decode_object(body: bytes) -> dict[str, Any]:
    """A body that must hold an object (create, replace, DeleteOptions)."""
    value = decode_json(body)
    if not isinstance(value, dict):
        raise BodyError(f"json: cannot unmarshal {json_type(value)} into Go value of type {_FIND_KIND}")
    return value


def summary(body: bytes, limit: int = 30) -> str:
    """summarizeData: how the API server shows a body it could not read."""
    if not body:
        return "<empty>"
    if body[:1] == b"{":
        head = body[:limit].decode(errors="replace")
        return head + " ..." if len(body) > limit else head
    return body[:limit].hex() + (" ..." if len(body) > limit else "")


def _no_constants(name: str) -> Any:
    raise json.JSONDecodeError("Expecting value", name, 0)  # Go has no NaN or Infinity literals


def _go_char(char: str) -> str:
    return "'\\''" if char == "'" else "'" + json.dumps(char, ensure_ascii=False)[1:-1] + "'"


def json_type(value: Any) -> str:
    """How Go names a JSON value in an unmarshal error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


# Python's json messages, in the words of Go's scanner (encoding/json/scanner.go).
_CONTEXTS = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
    "Expecting ':' delimiter": "after object key",
    "Expecting ',' delimiter": "after object key:value pair",
    "Extra data": "after top-level value",
    "Invalid control character at": "in string literal",
    "Invalid \\escape": "in string escape code",
    "Invalid \\uXXXX escape": "in \\u hexadecimal character escape",
    "Unterminated string starting at": "",
}


def _go_syntax_error(exc: json.JSONDecodeError) -> str:
    context = _CONTEXTS.get(exc.msg)
    if exc.pos >= len(exc.doc) or context == "":
        return "unexpected end of JSON input"
    if context is None:
        context = "looking for beginning of value"
    return f"invalid character {_go_char(exc.doc[exc.pos])} {context}"


# -- a whole request ---------------------------------------------------------------------------------

# The API server's MaxRequestBodyBytes: a body over it is refused before it is decoded.
MAX_REQUEST_BYTES = 3 * 1024 * 1024
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def method_not_allowed() -> kmock.KubernetesError:
    return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def unsupported(accepted: list[str]) -> kmock.KubernetesError:
    accepted_types = ", ".join(accepted)
    message = (
        f"the body of the request was in an unknown format - accepted media types include: {accepted_types}"
    )
    return status(415, "UnsupportedMediaType", message)


async def read_request(
    raw: aiohttp.web.BaseRequest, types: Callable[[str], ResourceType | None], request_id: int
) -> kmock.Request:
    """The kmock.Request of a raw request, its body decoded; a 4xx Status for what cannot be read."""
    method = raw.method.upper()
    if method not in METHODS:
        raise method_not_allowed()
    body = b""
    if raw.can_read_body:
        buffer = bytearray()
        try:
            while len(buffer) <= MAX_REQUEST_BYTES and (chunk := await raw.content.read(1 << 20)):
                buffer += chunk
        except aiohttp.web_protocol.RequestPayloadError as exc:  # a body Content-Encoding cannot undo
            raise bad_request(f"error reading the request body: {exc}") from None
        if len(buffer) > MAX_REQUEST_BYTES:
            raise status(
                413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_REQUEST_BYTES}"
            )
        body = bytes(buffer)
    path = parse_path(raw.path)
    params = dict(raw.query.items())
    data: Any = None
    if body and path.group is not None and method in ("POST", "PUT", "PATCH", "DELETE"):
        rtype = types(f"{path.group}/{path.version}/{path.plural}")
        data = decode_body(method, raw.headers.get("Content-Type"), body, rtype)
    try:
        cookies = dict(raw.cookies)
    except Exception:  # a Cookie header Python cannot parse is no reason to refuse the request
        cookies = {}
    resource = None
    if path.group is not None:
        resource = kmock.resource(group=path.group, version=path.version, plural=path.plural)
    return kmock.Request(
        id=request_id,
        raw_request=raw,
        url=raw.url,
        method=method,
        params=params,
        headers=dict(raw.headers),
        cookies=cookies,
        data=data,
        body=body,
        text=body.decode(errors="replace"),
        action=parsing.guess_k8s(path, kmock.method(method), params),
        resource=resource,
        namespace=path.namespace,
        name=path.name,
        subresource=path.subresource,
    )


def decode_body(method: str, content_type: str | None, body: bytes, rtype: ResourceType | None) -> Any:
    """A request body as the API server decodes it, or its 400 or 415."""
    media = media_type(content_type)
    builtin = rtype is None or rtype.builtin
    if method == "PATCH":
        # A strategic merge patch is read as a merge patch: it is what kubectl sends for the maps of
        # built-in kinds (labels, annotations); custom resources do not take it.
        accepted = [JSON_PATCH, MERGE_PATCH, *([STRATEGIC_PATCH] if builtin else [])]
        if media == APPLY_PATCH:
            raise status(
                415, "UnsupportedMediaType", "server-side apply is not supported by the local emulator"
            )
        if media not in accepted:
            raise unsupported(accepted)
        try:
            return decode_json(body)
        except BodyError as exc:
            raise bad_request(str(exc)) from None
    if media == PROTOBUF and builtin and method != "DELETE":
        # kubectl sends built-in kinds (a Namespace, a ServiceAccount, a TokenRequest, a
        # ResourceQuota) as protobuf: read the same object as JSON would carry it.
        try:
            return protobuf.decode(body)
        except protobuf.ProtobufError as exc:
            raise status(415, "UnsupportedMediaType", str(exc)) from None
    if media not in ("", JSON):
        # YAML, which the API server also reads, is not read here: no client of ours sends it.
        raise unsupported([JSON, PROTOBUF] if builtin and method != "DELETE" else [JSON])
    try:
        return decode_object(body)
    except BodyError as exc:
        if method == "DELETE":
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        kind = rtype.kind if rtype is not None else "Object"
        raise bad_request(
            f"the object provided is unrecognized (must be of type {kind}): "
            f"couldn't get version/kind; json parse error: {exc} ({summary(body)})"
        ) from None
