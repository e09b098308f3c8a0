"""Kubernetes Events for transitions (a Block becoming Invalid), written by our own client.

Only on a transition, never again for the same state: an Event is a write, and a resync that
re-reads a converged cluster must write nothing. kopf's own success Events are off.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from blocklearn import metrics
from blocklearn.runtime.objects import now_rfc3339
from blocklearn.runtime.rest import ApiError, Rest

log = logging.getLogger("blocklearn.events")
COMPONENT = "blocklearn-controller"


def event_body(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> dict[str, Any]:
    meta = obj["metadata"]
    now = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        # Cut so that the name stays a DNS subdomain (253 characters, no label ending in - or .).
        "metadata": {
            "name": f"{meta['name'][:200].rstrip('-.')}.{uuid.uuid4().hex[:16]}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


async def post(rest: Rest, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post an Event; a failure is logged, never raised: the status already says the same."""
    namespace = obj["metadata"]["namespace"]
    try:
        await rest.request(
            "POST", f"/api/v1/namespaces/{namespace}/events", event_body(obj, type_, reason, message)
        )
        metrics.events_total.labels(reason).inc()
        metrics.api_writes_total.labels("events", "create").inc()
    except (ApiError, OSError) as exc:
        log.warning(
            "Failed to post an Event: namespace=%s name=%s error=%s", namespace, obj["metadata"]["name"], exc
        )
