"""Object-count ResourceQuota, as the ResourceQuota admission plugin and the quota controller keep it.

A quota names `count/<plural>.<group>` (`count/blocks.blocklearn.dev`) in `spec.hard`. The quota
controller copies `spec.hard` to `status.hard` and counts what exists into `status.used`; until it
has, the quota is not enforced (admission matches on `status.hard`). Admission refuses a create that
would exceed `status.hard` with 403 `exceeded quota: ...` and otherwise adds the create to
`status.used` itself, in a write of the quota before the object is stored; the controller gives the
count back when objects are deleted.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

Obj = dict[str, Any]

# resource.Quantity's grammar, and the message the API server gives for anything else.
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
QUANTITY_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_DECIMAL = {"": 0, "n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


def parse_quantity(text: Any) -> Decimal | None:
    """A Kubernetes quantity's value, or None when it is not one."""
    if isinstance(text, int) and not isinstance(text, bool):
        return Decimal(text)
    if not isinstance(text, str) or not (m := QUANTITY.match(text)):
        return None
    number, suffix = m.groups()
    try:
        value = Decimal(number)
        scaled: Decimal | None = None
        if suffix in _DECIMAL:
            scaled = value.scaleb(_DECIMAL[suffix])
        elif suffix in _BINARY:
            scaled = value * (2 ** _BINARY[suffix])
        elif suffix[:1] in "eE":
            scaled = value.scaleb(int(suffix[1:]))
        return scaled
    except (InvalidOperation, ValueError):
        return None


def canonical(value: Decimal) -> str:
    """Quantity.String() of a count: whole thousands as k, M, G (1000 is `1k`), else the digits."""
    if value != value.to_integral_value() or value < 0:
        return str(value.normalize())
    number, suffix = int(value), ""
    for unit in ("k", "M", "G", "T", "P", "E"):
        if number == 0 or number % 1000:
            break
        number, suffix = number // 1000, unit
    return f"{number}{suffix}"


def count_name(plural: str, group: str) -> str:
    """The quota resource that counts objects of a type: `count/blocks.blocklearn.dev`."""
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def pretty(items: dict[str, Decimal]) -> str:
    """prettyPrint: `k=v` sorted by key, joined with commas."""
    return ",".join(f"{k}={canonical(items[k])}" for k in sorted(items))


def hard_errors(quota: Obj) -> list[tuple[str, str]]:
    """(field, problem) for each value of spec.hard that is not a non-negative quantity."""
    hard = (quota.get("spec") or {}).get("hard") or {}
    problems = []
    for key, text in hard.items():
        value = parse_quantity(text)
        if value is None:
            problems.append((f"spec.hard[{key}]", QUANTITY_ERROR))
        elif value < 0:
            problems.append((f"spec.hard[{key}]", "must be greater than or equal to 0"))
    return problems


def status_of(quota: Obj, counts: dict[str, int]) -> Obj:
    """What the quota controller writes: status.hard from spec.hard, status.used counted."""
    hard = {k: v for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()}
    canonical_hard = {k: canonical(q) for k, v in hard.items() if (q := parse_quantity(v)) is not None}
    used = {k: canonical(Decimal(counts.get(k, 0))) for k in canonical_hard}
    return {"hard": canonical_hard, "used": used}


def usage_column(quota: Obj, limits: bool) -> str:
    """The REQUEST (or, with `limits`, LIMIT) column of `kubectl get quota`: `resource: used/hard`."""
    status = quota.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    shown = [k for k in sorted(hard) if k.startswith("limits.") == limits]
    return ", ".join(f"{k}: {used.get(k, '0')}/{hard[k]}" for k in shown)


class Exceeded(Exception):
    """A create refused by a quota: the reason after `is forbidden: `."""


def admit(quotas: list[Obj], resource: str) -> list[Obj]:
    """The quotas to write back with one more `resource` used; Exceeded when one would be over.

    Quotas whose status does not yet hold `resource` in `hard` do not apply (not synced yet); one
    whose `hard` has it but `used` does not refuses everything (`status unknown for quota`)."""
    updated = []
    for quota in quotas:
        status = quota.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        if resource not in hard:
            continue
        name = quota["metadata"]["name"]
        if resource not in used:
            raise Exceeded(f"status unknown for quota: {name}, resources: {resource}")
        limit, now = parse_quantity(hard[resource]), parse_quantity(used[resource])
        if limit is None or now is None:
            raise Exceeded(f"status unknown for quota: {name}, resources: {resource}")
        if now + 1 > limit:
            raise Exceeded(
                f"exceeded quota: {name}, requested: {pretty({resource: Decimal(1)})}, "
                f"used: {pretty({resource: now})}, limited: {pretty({resource: limit})}"
            )
        quota = {**quota, "status": {**status, "used": {**used, resource: canonical(now + 1)}}}
        updated.append(quota)
    return updated
