"""`metadata` as the API server reads it: decoded into metav1.ObjectMeta, so typed, and unknown keys gone.

The API server round-trips a custom resource's metadata through the ObjectMeta struct
(apiextensions-apiserver's objectmeta.GetObjectMeta): a label that is a number cannot be decoded and
the request is refused with 400, an unknown metadata field is dropped, a null is the zero value.
"""

from __future__ import annotations

from typing import Any

from blocklearn.devtools.emulator.wire import BodyError, json_type

Obj = dict[str, Any]

_STRINGS = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion")
_TIMES = ("creationTimestamp", "deletionTimestamp")
_INTEGERS = ("generation", "deletionGracePeriodSeconds")
_MAPS = ("labels", "annotations")
_OWNER_STRINGS = ("apiVersion", "kind", "name", "uid")
_OWNER_BOOLS = ("controller", "blockOwnerDeletion")


def _refuse(value: Any, field: str, go_type: str) -> BodyError:
    return BodyError(
        f"json: cannot unmarshal {json_type(value)} into Go struct field {field} of type {go_type}"
    )


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _refuse(value, field, "string")
    return value


def coerce(meta: Any) -> Obj:
    """The metadata the API server would keep, or BodyError saying what cannot be decoded."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise _refuse(meta, "Object.metadata", "v1.ObjectMeta")
    out: Obj = {}
    for key, value in meta.items():
        if value is None:
            continue
        field = f"ObjectMeta.metadata.{key}"
        if key in _STRINGS or key in _TIMES:
            if text := _string(value, field):  # an empty string is Go's zero value: omitted
                out[key] = text
        elif key in _INTEGERS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _refuse(value, field, "int64")
            out[key] = value
        elif key in _MAPS:
            if not isinstance(value, dict):
                raise _refuse(value, field, "map[string]string")
            out[key] = {k: _string(v, field) for k, v in value.items()}
        elif key == "finalizers":
            if not isinstance(value, list):
                raise _refuse(value, field, "[]string")
            out[key] = [_string(v, field) for v in value]
        elif key == "ownerReferences":
            out[key] = _owner_references(value, field)
        elif key == "managedFields":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise _refuse(value, field, "[]v1.ManagedFieldsEntry")
            out[key] = value
    return out


def _owner_references(value: Any, field: str) -> list[Obj]:
    if not isinstance(value, list):
        raise _refuse(value, field, "[]v1.OwnerReference")
    refs = []
    for ref in value:
        if not isinstance(ref, dict):
            raise _refuse(ref, field, "v1.OwnerReference")
        out: Obj = {}
        for key in _OWNER_STRINGS:
            if ref.get(key) is not None:
                out[key] = _string(ref[key], f"OwnerReference.{field}.{key}")
        for key in _OWNER_BOOLS:
            if ref.get(key) is not None:
                if not isinstance(ref[key], bool):
                    raise _refuse(ref[key], f"OwnerReference.{field}.{key}", "bool")
                out[key] = ref[key]
        refs.append(out)
    return refs
