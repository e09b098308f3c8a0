"""What the API server checks of an object before admission: its type meta, its metadata, its name."""

from __future__ import annotations

from typing import Any

import kmock

from blocklearn.devtools.emulator import names, objectmeta, statuses
from blocklearn.devtools.emulator.kinds import ResourceType
from blocklearn.devtools.emulator.statuses import FieldError, bad_request
from blocklearn.devtools.emulator.wire import BodyError, json_type

Obj = dict[str, Any]


def undecodable(rtype: ResourceType, why: object) -> kmock.KubernetesError:
    """transformDecodeError for a body whose kind was known: 400."""
    return bad_request(
        f"{rtype.kind} in version {names.go_quote(rtype.version)} cannot be handled as a {rtype.kind}: {why}"
    )


def coerce_metadata(rtype: ResourceType, meta: Any) -> Obj:
    try:
        return objectmeta.coerce(meta)
    except BodyError as exc:
        raise undecodable(rtype, exc) from None


def read_object(rtype: ResourceType, namespace: str | None, data: Any) -> Obj:
    """A create's or a replace's body, checked as the handler checks it before admission: 400 for an
    apiVersion, a namespace or metadata it cannot take, 422 for another kind."""
    if not isinstance(data, dict):
        raise bad_request(
            f"the object provided is unrecognized (must be of type {rtype.kind}): "
            "couldn't get version/kind; json parse error: unexpected end of JSON input (<empty>)"
        )
    obj = dict(data)
    api_version = obj.get("apiVersion")
    if api_version and api_version != rtype.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({rtype.api_version})"
        )
    meta = coerce_metadata(rtype, obj.get("metadata"))
    kind = obj.get("kind")
    if kind and kind != rtype.kind:
        error = statuses.invalid_value("kind", str(kind), f"must be {rtype.kind}")
        raise statuses.invalid(rtype.kind, rtype.group, meta.get("name", ""), [error])
    given = meta.get("namespace")
    if rtype.namespaced and given and namespace and given != namespace:
        raise bad_request(
            f"the namespace of the object ({given}) does not match the namespace on the request ({namespace})"
        )
    obj["metadata"] = meta
    obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
    return obj


def object_meta_errors(rtype: ResourceType, meta: Obj) -> list[FieldError]:
    """ValidateObjectMeta: the name (or generateName), labels, annotation keys, owner references."""
    errors: list[FieldError] = []
    namespace = rtype.key == "/v1/namespaces"
    name, generate = meta.get("name", ""), meta.get("generateName", "")
    if generate:
        errors += [
            statuses.invalid_value("metadata.generateName", generate, m)
            for m in names.name_errors(generate, namespace, prefix=True)
        ]
    if not name:
        errors.append(statuses.required("metadata.name", "name or generateName is required"))
    else:
        errors += [
            statuses.invalid_value("metadata.name", name, m) for m in names.name_errors(name, namespace)
        ]
    for key, value in (meta.get("labels") or {}).items():
        errors += [statuses.invalid_value("metadata.labels", key, m) for m in names.qualified_name(key)]
        errors += [statuses.invalid_value("metadata.labels", value, m) for m in names.label_value(value)]
    for key in meta.get("annotations") or {}:
        errors += [
            statuses.invalid_value("metadata.annotations", key, m) for m in names.qualified_name(key.lower())
        ]
    refs = meta.get("ownerReferences") or []
    for ref in refs:
        version = str(ref.get("apiVersion", "")).rpartition("/")[2]
        for key, value in (("apiVersion", version), ("kind", ref.get("kind")), ("name", ref.get("name"))):
            if not value:
                message = f"{'version' if key == 'apiVersion' else key} must not be empty"
                errors.append(
                    statuses.invalid_value(f"metadata.ownerReferences.{key}", str(ref.get(key, "")), message)
                )
        if not ref.get("uid"):
            errors.append(statuses.invalid_value("metadata.ownerReferences.uid", "", "uid must not be empty"))
    controllers = [f"{r.get('kind')}/{r.get('name')}" for r in refs if r.get("controller")]
    if len(controllers) > 1:
        message = (
            'Only one reference can have Controller set to true. Found "true" in references for '
            + " and ".join(controllers)
        )
        errors.append(
            FieldError("metadata.ownerReferences", "FieldValueInvalid", f"Invalid value: {message}")
        )
    return errors


def builtin_errors(rtype: ResourceType, obj: Obj) -> None:
    """The typed fields of the built-in kinds the emulator itself reads (a Namespace's finalizers and
    phase, a ResourceQuota's lists of quantities): 400 when they cannot be decoded, as in Go."""
    shapes: dict[str, dict[str, dict[str, str]]] = {
        "/v1/namespaces": {"spec": {"finalizers": "[]string"}, "status": {"phase": "string"}},
        "/v1/resourcequotas": {
            "spec": {"hard": "v1.ResourceList", "scopes": "[]string"},
            "status": {"hard": "v1.ResourceList", "used": "v1.ResourceList"},
        },
    }
    for part, fields in shapes.get(rtype.key, {}).items():
        value = obj.get(part)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise undecodable(
                rtype, f"json: cannot unmarshal {json_type(value)} into Go struct field {rtype.kind}.{part}"
            )
        for name, go_type in fields.items():
            item = value.get(name)
            ok = (
                item is None
                or (go_type == "string" and isinstance(item, str))
                or (
                    go_type == "[]string" and isinstance(item, list) and all(isinstance(i, str) for i in item)
                )
                or (
                    go_type == "v1.ResourceList"
                    and isinstance(item, dict)
                    and all(isinstance(v, str | int) for v in item.values())
                )
            )
            if not ok:
                field = f"{rtype.kind}.{part}.{name}"
                why = (
                    f"json: cannot unmarshal {json_type(item)} into Go struct field {field} of type {go_type}"
                )
                raise undecodable(rtype, why)
