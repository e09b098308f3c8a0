"""DeleteOptions, and how the registry turns them into the garbage collector's finalizers.

kubectl's `--cascade=orphan|background|foreground` sends `propagationPolicy` Orphan, Background or
Foreground; older clients send `orphanDependents`. The registry (genericregistry.Store.Delete)
then gives the object the `orphan` or the `foregroundDeletion` finalizer, or deletes it at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blocklearn.devtools.emulator import statuses
from blocklearn.devtools.emulator.controllers import FOREGROUND, ORPHAN
from blocklearn.devtools.emulator.statuses import bad_request
from blocklearn.devtools.emulator.wire import json_type

Obj = dict[str, Any]
POLICIES = ("Foreground", "Background", "Orphan")


def delete_options(data: Any, params: Mapping[str, str]) -> Obj:
    """DeleteOptions from the body (kubectl, kopf) or the query, validated as the API server does."""
    options: Obj = dict(data) if isinstance(data, dict) else {}
    for name in ("propagationPolicy", "orphanDependents"):
        if name not in options and params.get(name) not in (None, ""):
            text = params[name]
            options[name] = text.lower() == "true" if name == "orphanDependents" else text
    policy, orphan = options.get("propagationPolicy"), options.get("orphanDependents")
    for given, field, go_type, expected in (
        (orphan, "orphanDependents", "bool", bool),
        (policy, "propagationPolicy", "v1.DeletionPropagation", str),
        (options.get("preconditions"), "preconditions", "v1.Preconditions", dict),
    ):
        if given is not None and not isinstance(given, expected):
            raise bad_request(
                f"json: cannot unmarshal {json_type(given)} into Go struct field DeleteOptions.{field} "
                f"of type {go_type}"
            )
    errors = []
    if orphan is not None and policy is not None:
        message = "orphanDependents and deletionPropagation cannot be both set"
        errors.append(statuses.invalid_value("propagationPolicy", policy, message))
    if policy is not None and policy not in POLICIES:
        errors.append(statuses.not_supported("propagationPolicy", policy, [*POLICIES, "nil"]))
    if errors:
        raise statuses.invalid("DeleteOptions", "meta.k8s.io", "", errors)
    return options


def finalizers_for(options: Obj, finalizers: list[str]) -> list[str]:
    """The finalizers an object gets when deleted with `options` (deletionFinalizersForGarbageCollection):
    the policy asked for, else the one its finalizers already say, else Background (neither)."""
    orphan_dependents, policy = options.get("orphanDependents"), options.get("propagationPolicy")
    if orphan_dependents is not None:
        orphan, foreground = bool(orphan_dependents), False
    elif policy in POLICIES:
        orphan, foreground = policy == "Orphan", policy == "Foreground"
    else:
        first = next((f for f in finalizers if f in (ORPHAN, FOREGROUND)), None)
        orphan, foreground = first == ORPHAN, first == FOREGROUND
    wanted = [f for f in finalizers if f not in (ORPHAN, FOREGROUND)]
    wanted += [ORPHAN] if orphan else []
    wanted += [FOREGROUND] if foreground else []
    return finalizers if set(wanted) == set(finalizers) else wanted
