"""What a Block should look like, and the writes that get it there: pure functions, no I/O.

The reconcilers read the current objects from the cache, ask these functions for the desired state
and the patch between the two, and write only a patch that is not empty. Every patch carries the
resourceVersion it was computed from, so a write from stale state gets 409 and is redone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from blocklearn import API_VERSION, GROUP
from blocklearn.learn.outcome import Outcomes
from blocklearn.learn.rule import Decision, Reason, example_name
from blocklearn.resources.conditions import now_rfc3339, set_condition
from blocklearn.resources.models import BlockStatus, Condition, ExampleSpec

Obj = dict[str, Any]
SOURCE_CHANGED = f"{GROUP}/source-changed-at"
BLOCK_LABEL = f"{GROUP}/block"
# Where the kopf-handled controller kept its state (a diff base: a second copy of the spec).
KOPF_PREFIX = f"kopf.{GROUP}/"


class _Same:
    """The patch between two equal values: nothing to write."""

    def __repr__(self) -> str:
        return "SAME"


SAME: Any = _Same()


def merge_patch(current: Any, desired: Any) -> Any:
    """The RFC 7386 merge patch that turns `current` into `desired`, or SAME when they are equal.

    A key of `current` that `desired` lacks (or holds as None) is removed with a null; lists and
    scalars are replaced whole, objects are patched key by key.
    """
    if isinstance(current, Mapping) and isinstance(desired, Mapping):
        patch: dict[str, Any] = {}
        for key in current.keys() - desired.keys():
            patch[key] = None
        for key, value in desired.items():
            if value is None:
                if current.get(key) is not None:
                    patch[key] = None
            elif key not in current:
                patch[key] = value
            else:
                sub = merge_patch(current[key], value)
                if sub is not SAME:
                    patch[key] = sub
        return patch if patch else SAME
    return SAME if current == desired else desired


@dataclass(frozen=True)
class Outcome:
    """What a reconcile concluded about a Block: its two conditions and its Example, if any."""

    ready: tuple[str, str, str]  # status, reason, message
    learned: tuple[str, str, str]
    example: ExampleSpec | None

    @classmethod
    def invalid(cls, message: str) -> Outcome:
        return cls(("False", Reason.INVALID, message), ("False", Reason.INVALID, message), None)

    @classmethod
    def of(cls, decision: Decision) -> Outcome:
        learned = "True" if decision.teaches else "False"
        return cls(
            ("True", "Reconciled", "Block reconciled."),
            (learned, decision.reason.value, decision.message),
            decision.example,
        )


def block_status(block: Mapping[str, Any], outcome: Outcome, outcomes: Outcomes | None = None) -> BlockStatus:
    """The Block's desired status; transition times kept where a condition's status stays."""
    generation = block.get("metadata", {}).get("generation")
    ref = example_name(block["metadata"]["name"]) if outcome.example is not None else None
    current = [c for c in (block.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]
    try:
        status = _block_status(current, outcome, generation, ref)
    except ValidationError:  # someone wrote conditions of another shape: start them afresh
        status = _block_status([], outcome, generation, ref)
    if outcomes is None:
        return status
    update = {"suggestion_outcome": outcomes.suggestion, "retrieval_outcome": outcomes.retrieval}
    return status.model_copy(update=update)


def _block_status(
    current: list[Obj], outcome: Outcome, generation: int | None, ref: str | None
) -> BlockStatus:
    conditions = [c for c in current if c.get("type") in ("Ready", "Learned")]
    conditions = set_condition(conditions, "Ready", *outcome.ready, generation)
    conditions = set_condition(conditions, "Learned", *outcome.learned, generation)
    return BlockStatus(
        conditions=[Condition.model_validate(c) for c in conditions],
        observed_generation=generation,
        example_ref=ref,
    )


def status_patch(obj: Mapping[str, Any], desired: BaseModel) -> Obj | None:
    """The /status patch that writes `desired`, with the object's resourceVersion; None if current."""
    wanted = desired.model_dump(by_alias=True, exclude_none=True, mode="json")
    patch = merge_patch(obj.get("status") or {}, wanted)
    if patch is SAME:
        return None
    return {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": patch}


def owner_reference(block: Mapping[str, Any]) -> Obj:
    meta = block["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Block",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: Mapping[str, Any], block: Mapping[str, Any]) -> bool:
    uid = block["metadata"].get("uid")
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def source_changed_at(block: Mapping[str, Any]) -> str:
    """When the Block's current content appeared: its creation, or now for a later generation."""
    meta = block["metadata"]
    if meta.get("generation", 1) == 1 and meta.get("creationTimestamp"):
        return str(meta["creationTimestamp"])
    return now_rfc3339()


def spec_of(example: ExampleSpec) -> Obj:
    return example.model_dump(by_alias=True, exclude_none=True, mode="json")


def new_example(block: Mapping[str, Any], example: ExampleSpec) -> Obj:
    """The Example to create for a Block: named after it, labelled, owned by it."""
    name = block["metadata"]["name"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Example",
        "metadata": {
            "name": example_name(name),
            "namespace": block["metadata"]["namespace"],
            # Label values stop at 63 characters; Block names may be longer.
            "labels": {BLOCK_LABEL: name} if len(name) <= 63 else {},
            "annotations": {SOURCE_CHANGED: source_changed_at(block)},
            "ownerReferences": [owner_reference(block)],
        },
        "spec": spec_of(example),
    }


def leftover_annotations(obj: Mapping[str, Any]) -> dict[str, None]:
    """kopf's state left by the controller before this one, to remove once: the diff base is a
    second copy of the spec, which alone could reach the API server's 256 KiB annotation limit."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return {key: None for key in annotations if key.startswith(KOPF_PREFIX)}


def block_patch(block: Mapping[str, Any]) -> Obj | None:
    """The patch of a Block's own metadata: only to remove kopf's leftovers, once."""
    leftovers = leftover_annotations(block)
    if not leftovers:
        return None
    return {"metadata": {"resourceVersion": block["metadata"]["resourceVersion"], "annotations": leftovers}}


def example_patch(current: Mapping[str, Any], block: Mapping[str, Any], example: ExampleSpec) -> Obj | None:
    """The patch that makes an existing Example the Block's, or None when it already is: its spec,
    and its owner (made by hand, or by an earlier Block of the same name: adopted, so deletion
    cascades)."""
    patch: Obj = {}
    spec = merge_patch(current.get("spec") or {}, spec_of(example))
    if spec is not SAME:
        patch["spec"] = spec
        patch["metadata"] = {"annotations": {SOURCE_CHANGED: source_changed_at(block)}}
    if not owned_by(current, block):
        others = [
            r for r in current.get("metadata", {}).get("ownerReferences") or [] if not r.get("controller")
        ]
        patch.setdefault("metadata", {})["ownerReferences"] = [*others, owner_reference(block)]
    if leftovers := leftover_annotations(current):
        patch.setdefault("metadata", {}).setdefault("annotations", {}).update(leftovers)
    if not patch:
        return None
    patch.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
    return patch
