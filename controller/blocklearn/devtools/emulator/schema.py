"""Structural-schema validation and pruning, as the API server applies a CRD's openAPIV3Schema.

Only what CRDs here use: object, array, string, integer, number, boolean, enum, required, nullable,
maxLength (in characters: the server counts runes), maxItems, pattern and
x-kubernetes-preserve-unknown-fields.
Unknown fields are pruned, not rejected, like the real server (a status field missing from the schema
silently disappears: kopf #574).
"""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "object": (dict,),
    "array": (list,),
}


def prune_and_validate(
    schema: dict[str, Any], value: Any, path: str = "", strict: bool = False
) -> tuple[Any, list[str]]:
    """Return the pruned value and a list of `path: problem` errors (empty when valid).

    `strict` is the API server's fieldValidation=Strict: an unknown field is an error, not pruned.
    """
    if value is None:
        return value, [] if schema.get("nullable") else [f"{path or '.'}: must not be null"]
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _TYPES[kind]) and not (
            kind in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            return value, [f"{path or '.'}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        return value, [f"{path or '.'}: {value!r} is not one of {schema['enum']}"]
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        return value, [f"{path or '.'}: Too long: may not be longer than {schema['maxLength']}"]
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        return value, [f"{path or '.'}: Invalid value: {value[:40]!r}: should match '{schema['pattern']}'"]
    errors: list[str] = []
    if isinstance(value, list) and len(value) > schema.get("maxItems", len(value)):
        errors.append(f"{path or '.'}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields", False)
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in props:
                out[key], errs = prune_and_validate(props[key], item, f"{path}.{key}", strict)
                errors += errs
            elif isinstance(extra, dict):
                out[key], errs = prune_and_validate(extra, item, f"{path}.{key}", strict)
                errors += errs
            elif keep_unknown:
                out[key] = item
            elif strict:
                errors.append(f"{path}.{key}: field not declared in schema")
        errors += [f"{path}.{key}: Required value" for key in schema.get("required", []) if key not in value]
        return out, errors
    if isinstance(value, list) and "items" in schema:
        items = []
        for i, item in enumerate(value):
            pruned, errs = prune_and_validate(schema["items"], item, f"{path}[{i}]", strict)
            items.append(pruned)
            errors += errs
        return items, errors
    return value, errors
