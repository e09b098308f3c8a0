"""Kubernetes-style conditions, merged so that lastTransitionTime moves only when the status does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from blocklearn.resources.models import MAX_CONDITION_MESSAGE_CHARS
from blocklearn.runtime.objects import now_rfc3339


def set_condition(
    existing: Sequence[Mapping[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Return the condition list with one condition set, keeping the others and the transition time."""
    others = [dict(c) for c in existing if c.get("type") != type_]
    previous = find(existing, type_)
    unchanged = previous is not None and previous.get("status") == status
    since = previous.get("lastTransitionTime") if unchanged and previous else None
    condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": _cut(message),
        "lastTransitionTime": since or now_rfc3339(),
        "observedGeneration": generation,
    }
    return [*others, condition]


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def _cut(message: str) -> str:
    """Within the CRD's cap: a longer message would make the API server refuse the whole status."""
    if len(message) <= MAX_CONDITION_MESSAGE_CHARS:
        return message
    return message[: MAX_CONDITION_MESSAGE_CHARS - 1] + "…"
