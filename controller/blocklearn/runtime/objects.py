"""Kubernetes objects as plain JSON: their type, key, version, URL path, and the API's time format.

Pure (no I/O, no client): the runtime, the controller's desired state and the index share these.
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


def key_of(obj: Obj) -> Key:
    meta = obj["metadata"]
    # A few namespaces are shared by every key: one string each, not one per object.
    return sys.intern(str(meta.get("namespace", ""))), str(meta["name"])


def version_of(obj: Obj | None) -> int:
    """The object's resourceVersion as a number (0 when it has none): etcd's revisions only grow."""
    rv = str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "0")
    return int(rv) if rv.isdigit() else 0


def resource_path(
    api_version: str, plural: str, namespace: str | None = None, name: str = "", sub: str = ""
) -> str:
    """The URL path of a collection, an object, or its subresource (`v1` is the core group)."""
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path += f"/namespaces/{namespace}/{plural}" if namespace else f"/{plural}"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def now_rfc3339(at: float | None = None, micro: bool = False) -> str:
    """RFC 3339 in UTC as the API server writes it: metav1.Time (seconds), or metav1.MicroTime."""
    moment = datetime.datetime.fromtimestamp(time.time() if at is None else at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: object) -> datetime.datetime | None:
    """A time as the API writes it (`Z` or an offset, with or without fractions); None when it is
    not one, or has no zone."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
