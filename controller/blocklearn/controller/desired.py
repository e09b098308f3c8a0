"""What a Block should look like, and the writes that get it there: pure functions, no I/O.

The reconcilers read the current objects from the cache, ask these functions for the desired state
and the patch between the two, and write only a patch that is not empty. Every patch carries the
resourceVersion it was computed from, so a write from stale state gets 409 and is redone.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from blocklearn import API_VERSION, GROUP
from blocklearn.learn.outcome import Outcomes
from blocklearn.learn.rule import Decision, Reason, correction_key
from blocklearn.resources.conditions import find, set_condition
from blocklearn.resources.models import BlockRef, BlockStatus, Condition, ExampleSpec, ExampleStatus
from blocklearn.runtime.objects import Obj, now_rfc3339, parse_rfc3339

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


# The Block's status fields issue 21 derives; written with the rest, but no change of the Block.
OUTCOME_FIELDS = ("suggestionOutcome", "retrievalOutcome")


def block_status(
    block: Mapping[str, Any],
    outcome: Outcome,
    ref: str | None,
    outcomes: Outcomes | None = None,
    now: float | None = None,
) -> BlockStatus:
    """The Block's desired status, naming its Example `ref` and the outcomes of its suggestion;
    transition times kept where a condition's status stays, and `decidedAt` kept unless the
    decision, the Example or the generation changed (then it is `now`, the system's time if None: a
    Block that changes restarts its TTL). The outcomes are a record of what happened: deriving them
    restarts no TTL."""
    generation = block.get("metadata", {}).get("generation")
    status = block.get("status") or {}
    current = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    try:
        desired = _block_status(current, outcome, generation, ref)
    except ValidationError:  # someone wrote conditions of another shape: start them afresh
        desired = _block_status([], outcome, generation, ref)
    kept = {k: v for k, v in status.items() if k not in ("decidedAt", *OUTCOME_FIELDS)}
    unchanged = merge_patch(kept, _dump(desired)) is SAME
    # A status of before this field kept its age (decided_at reads the Learned condition): no write.
    desired.decided_at = status.get("decidedAt") if unchanged else now_rfc3339(now)
    if outcomes is not None:
        desired.suggestion_outcome = outcomes.suggestion
        desired.retrieval_outcome = outcomes.retrieval
    return desired


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


def decided_at(block: Mapping[str, Any]) -> datetime.datetime | None:
    """When the controller last decided about the Block's current content: its `decidedAt`, or,
    for a status written before that field, its Learned condition's transition."""
    status = block.get("status") or {}
    learned = find(status.get("conditions") or [], "Learned") or {}
    return parse_rfc3339(status.get("decidedAt")) or parse_rfc3339(learned.get("lastTransitionTime"))


def _dump(model: BaseModel) -> Obj:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def status_patch(obj: Mapping[str, Any], desired: BaseModel) -> Obj | None:
    """The /status patch that writes `desired`, with the object's resourceVersion; None if current."""
    patch = merge_patch(obj.get("status") or {}, _dump(desired))
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


def controller_owner(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Block that controls an Example (the one that created it), while it does."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "Block" and ref.get("controller"):
            return dict(ref)
    return None


def source_changed_at(block: Mapping[str, Any]) -> str:
    """When the Block's current content appeared: its creation, or now for a later generation."""
    meta = block["metadata"]
    if meta.get("generation", 1) == 1 and meta.get("creationTimestamp"):
        return str(meta["creationTimestamp"])
    return now_rfc3339()


def spec_of(example: ExampleSpec) -> Obj:
    return _dump(example)


def new_example(block: Mapping[str, Any], example: ExampleSpec, name: str) -> Obj:
    """The Example a Block creates, named from its content: labelled with and owned by the Block
    (a person's delete of the Block takes it along, until the Block's expiry lets it go)."""
    block_name = block["metadata"]["name"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Example",
        "metadata": {
            "name": name,
            "namespace": block["metadata"]["namespace"],
            # Label values stop at 63 characters; Block names may be longer.
            "labels": {BLOCK_LABEL: block_name} if len(block_name) <= 63 else {},
            "annotations": {SOURCE_CHANGED: source_changed_at(block)},
            "ownerReferences": [owner_reference(block)],
        },
        "spec": spec_of(example),
    }


def same_correction(current: Mapping[str, Any], example: ExampleSpec) -> bool:
    """Whether an existing Example holds the correction `example` teaches (what its name promises)."""
    try:
        spec = ExampleSpec.model_validate(current.get("spec") or {})
    except ValidationError:
        return False
    return correction_key(spec) == correction_key(example)


def occurrences(example: Mapping[str, Any]) -> int:
    value = (example.get("status") or {}).get("occurrences")
    return value if isinstance(value, int) and value > 0 else 1


def last_seen(example: Mapping[str, Any], now: float | None = None) -> datetime.datetime:
    """When a Block last taught the Example's correction, or last ran it as shown (a retrieval Hit):
    `lastSeenAt`, else its creation (else `now`, the system's time if None)."""
    meta, status = example.get("metadata") or {}, example.get("status") or {}
    found = parse_rfc3339(status.get("lastSeenAt")) or parse_rfc3339(meta.get("creationTimestamp"))
    return found or datetime.datetime.fromtimestamp(time.time() if now is None else now, datetime.UTC)


def _fields_patch(obj: Mapping[str, Any], fields: BaseModel) -> Obj:
    """The /status patch of the fields `fields` was given (the others stay), with the object's
    resourceVersion: two writers at once take turns instead of one undoing the other."""
    status = fields.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": status}


def occurrence_patch(example: Mapping[str, Any], now: float | None = None) -> Obj:
    """The /status patch that counts one more Block teaching the Example, seen `now` (the system's
    time if None)."""
    return _fields_patch(
        example, ExampleStatus(occurrences=occurrences(example) + 1, last_seen_at=now_rfc3339(now))
    )


def seen_patch(example: Mapping[str, Any], now: float | None = None) -> Obj:
    """The /status patch that records the Example seen `now` (a Block ran its answer as shown),
    without counting an occurrence: it taught nothing new."""
    return _fields_patch(example, ExampleStatus(last_seen_at=now_rfc3339(now)))


def release_patch(example: Mapping[str, Any], block: Mapping[str, Any]) -> Obj:
    """The patch that lets an Example stand without the Block: its owner reference removed."""
    uid = block["metadata"].get("uid")
    refs = [r for r in example["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
    return {"metadata": {"resourceVersion": example["metadata"]["resourceVersion"], "ownerReferences": refs}}


def is_embedded(example: Mapping[str, Any]) -> bool:
    status = example.get("status") or {}
    embedded = find(status.get("conditions") or [], "Embedded") or {}
    return bool(status.get("textHash")) and embedded.get("status") == "True"


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
    """The patch that makes an existing Example hold the correction its name stands for, or None
    when it does: edited by hand, its query and answer are put back (its provenance stays). An
    Example is never adopted: only the Block that created it owns it, so that a person's delete of
    another Block that taught the same correction does not take it."""
    patch: Obj = {}
    if not same_correction(current, example):
        desired = spec_of(example)
        with contextlib.suppress(ValidationError):  # the provenance it has, if still a valid one
            desired["blockRef"] = _dump(BlockRef.model_validate((current.get("spec") or {}).get("blockRef")))
        spec = merge_patch(current.get("spec") or {}, desired)
        if spec is not SAME:
            patch["spec"] = spec
            patch["metadata"] = {"annotations": {SOURCE_CHANGED: source_changed_at(block)}}
    if leftovers := leftover_annotations(current):
        patch.setdefault("metadata", {}).setdefault("annotations", {}).update(leftovers)
    if not patch:
        return None
    patch.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
    return patch
