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
    """One operation, as evanphx/json-patch (v4, kube-apiserver's) applies it: every parent must
    exist (no parent is made, so a path cannot nest deeper than the document already does); a
    negative index counts from the end, one past it is refused. Errors are the caller's 422."""
    parts = [_POINTER_ESCAPE.sub(lambda m: "~" if m.group() == "~0" else "/", p) for p in path.split("/")[1:]]
    parent: Any = doc
    for p in parts[:-1]:
        parent = parent[_index(parent, p)] if isinstance(parent, list) else parent[p]
    last = parts[-1] if parts else ""
    if kind in ("add", "replace"):
        if isinstance(parent, list):
            if kind == "add":
                parent.insert(len(parent) if last == "-" else _index(parent, last, adding=True), op["value"])
            else:
                parent[_index(parent, last)] = op["value"]
        elif isinstance(parent, dict):
            if kind == "replace" and last not in parent:
                raise KeyError(last)
            parent[last] = op["value"]
        else:
            raise TypeError(type(parent))
    elif kind == "remove":
        del parent[_index(parent, last) if isinstance(parent, list) else last]
    else:
        actual = parent[_index(parent, last)] if isinstance(parent, list) else parent.get(last)
        if actual != op.get("value"):
            raise status(422, "Invalid", f"testing value {path} failed: test failed")


_ARRAY_INDEX = re.compile(r"[+-]?[0-9]{1,18}")  # what Go's strconv.Atoi takes, within range


def _index(array: list[Any], token: str, adding: bool = False) -> int:
    """An array index of a pointer; IndexError when there is no such element (for an add: no such
    place, which may be one past the last)."""
    if not _ARRAY_INDEX.fullmatch(token):
        raise ValueError(token)
    index, size = int(token), len(array) + (1 if adding else 0)
    if index < 0:
        if index < -len(array):
            raise IndexError(index)
        index += len(array)
    if index >= size:
        raise IndexError(index)
    return index
