"""Label and field selectors, as clients send them on lists and watches."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def labels_match(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.strip().startswith("!"):
            if term.strip()[1:] in labels:
                return False
        elif term.strip() not in labels:
            return False
    return True


def fields_match(selector: str | None, obj: Obj) -> bool:
    """Field selectors as `kubectl describe` sends them: `involvedObject.name=x,metadata.namespace=y`."""
    if not selector:
        return True
    for term in selector.split(","):
        negate = "!=" in term
        path, _, want = term.replace("!=", "=").replace("==", "=").partition("=")
        value: Any = obj
        for part in path.strip().split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if (str(value if value is not None else "") == want.strip()) == negate:
            return False
    return True
