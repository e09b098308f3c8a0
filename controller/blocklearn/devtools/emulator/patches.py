"""Patches as the API server applies them: RFC 7386 merge patches and RFC 6902 JSON patches."""

from __future__ import annotations

import copy
import re
from typing import Any

from blocklearn.devtools.emulator.names import go_quote
from blocklearn.devtools.emulator.statuses import bad_request, status

Obj = dict[str, Any]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_POINTER_ESCAPE = re.compile(r"~[01]")


def apply_json_patch(target: Obj, ops: Any) -> Obj:
    """RFC 6902, the operations kubectl and kopf send: add, replace, remove, test."""
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise bad_request("json: cannot unmarshal the patch into []jsonpatch.Operation")
    doc = copy.deepcopy(target)
    for op in ops:
        kind, path = op.get("op"), str(op.get("path", ""))
        if kind not in ("add", "replace", "remove", "test"):
            raise bad_request(f"Unexpected kind: {kind}")
        try:
            _apply_operation(doc, kind, path, op)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            raise status(
                422,
                "Invalid",
                f"{kind} operation does not apply: doc is missing path: {go_quote(path)}",
            ) from None
    return doc


def _apply_operation(doc: Obj, kind: str, path: str, op: Obj) -> None:
    parts = [_POINTER_ESCAPE.sub(lambda m: "~" if m.group() == "~0" else "/", p) for p in path.split("/")[1:]]
    parent: Any = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
    last = parts[-1] if parts else ""
    if kind in ("add", "replace"):
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            parent.insert(idx, op["value"]) if kind == "add" else parent.__setitem__(idx, op["value"])
        else:
            parent[last] = op["value"]
    elif kind == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    else:
        actual = parent[int(last)] if isinstance(parent, list) else parent.get(last)
        if actual != op.get("value"):
            raise status(422, "Invalid", f"testing value {path} failed: test failed")
