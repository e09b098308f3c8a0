"""kubectl's server-side Table format, from a CRD's additionalPrinterColumns."""

from __future__ import annotations

import datetime
import re
from typing import Any

_FILTER = re.compile(r"^\[\?\(@\.(\w+)==[\"'](.*)[\"']\)\]$")


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of JSONPath printer columns use: `.a.b`, `.a[0]` and `.a[?(@.k=="v")].b`."""
    current: Any = obj
    for token in re.findall(r"\.[\w-]+|\[[^\]]*\]", path):
        if current is None:
            return None
        if token.startswith("."):
            current = current.get(token[1:]) if isinstance(current, dict) else None
        elif m := _FILTER.match(token):
            key, value = m.groups()
            found = [i for i in current or [] if isinstance(i, dict) and str(i.get(key)) == value]
            current = found[0] if found else None
        elif token[1:-1].isdigit():
            idx = int(token[1:-1])
            current = current[idx] if isinstance(current, list) and idx < len(current) else None
    return current


def human_age(stamp: Any, now: datetime.datetime | None = None) -> str:
    """What the API server prints for `type: date` columns: 45s, 12m, 3h, 8d."""
    try:
        then = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(0, seconds)}s"


def render_table(columns: list[dict[str, Any]], items: list[dict[str, Any]], rv: str) -> dict[str, Any]:
    definitions = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    definitions += [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    rows = []
    for item in items:
        cells: list[Any] = [item["metadata"]["name"]]
        for c in columns:
            # A built-in kind's column may be computed, as the API server's own printers compute it.
            value = c["value"](item) if "value" in c else jsonpath(item, c["jsonPath"])
            if value is not None and c.get("type") == "date":
                value = human_age(value)
            cells.append("<none>" if value is None else value)
        partial = {
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": item["metadata"],
        }
        rows.append({"cells": cells, "object": partial})
    return {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "Table",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": definitions,
        "rows": rows,
    }
