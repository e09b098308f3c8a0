"""The API server's failure Statuses (apimachinery's api/errors), with its codes, reasons and messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kmock

from blocklearn.devtools.emulator.names import go_quote


def status(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details or {})


def bad_request(message: str) -> kmock.KubernetesError:
    return status(400, "BadRequest", message)


def too_large_resource_version(wanted: int, current: int) -> kmock.KubernetesError:
    """storage.NewTooLargeResourceVersionError: a Timeout (504) the client retries after a second, or
    relists (client-go's reflector knows it by its cause)."""
    return status(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {wanted}, current: {current}",
        retryAfterSeconds=1,
        causes=[{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
    )


def not_found(resource: str, name: str, group: str = "") -> kmock.KubernetesError:
    """NewNotFound: `resource` is the plural, `group` its API group."""
    qualified = f"{resource}.{group}" if group else resource
    return status(
        404, "NotFound", f"{qualified} {go_quote(name)} not found", name=name, group=group, kind=resource
    )


def forbidden(resource: str, group: str, name: str, why: str, **extra: Any) -> kmock.KubernetesError:
    """NewForbidden: `<resource>.<group> "name" is forbidden: why`."""
    qualified = f"{resource}.{group}" if group else resource
    message = (
        f"{qualified} {go_quote(name)} is forbidden: {why}" if name else f"{qualified} is forbidden: {why}"
    )
    return status(403, "Forbidden", message, name=name, group=group, kind=resource, **extra)


@dataclass(frozen=True)
class FieldError:
    """One field.Error: `field` (metadata.name), its type (FieldValueInvalid) and its body."""

    field: str
    type: str
    body: str

    def __str__(self) -> str:
        return f"{self.field}: {self.body}" if self.field else self.body


def invalid_value(field: str, value: str, detail: str) -> FieldError:
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {go_quote(value)}: {detail}")


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def not_supported(field: str, value: str, supported: list[str]) -> FieldError:
    shown = ", ".join(go_quote(s) for s in supported)
    return FieldError(
        field, "FieldValueNotSupported", f"Unsupported value: {go_quote(value)}: supported values: {shown}"
    )


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> kmock.KubernetesError:
    """NewInvalid: 422 with one cause per field error; the message aggregates them as Go does."""
    qualified = f"{kind}.{group}" if group else kind
    texts = list(dict.fromkeys(str(e) for e in errors))  # the aggregate drops duplicates
    aggregate = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    causes = [{"reason": e.type, "message": e.body, "field": e.field.lstrip(".")} for e in errors]
    return status(
        422,
        "Invalid",
        f"{qualified} {go_quote(name)} is invalid: {aggregate}",
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )
