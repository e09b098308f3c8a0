"""The pure parts of the reconcilers: desired state and the patch between current and desired."""

from __future__ import annotations

from typing import Any

from blocklearn.controller.desired import (
    SAME,
    Outcome,
    block_patch,
    block_status,
    example_patch,
    merge_patch,
    new_example,
    owned_by,
    status_patch,
)
from blocklearn.learn.rule import BlockRef, Policy, decide
from blocklearn.resources.models import BlockSpec
from tests.conftest import block_body


def block(name: str = "b1", uid: str = "u1", rv: str = "7", **spec: Any) -> dict[str, Any]:
    body = block_body(name, **spec)
    body["metadata"].update(
        namespace="default",
        uid=uid,
        resourceVersion=rv,
        generation=1,
        creationTimestamp="2026-01-01T00:00:00Z",
    )
    return body


def teach(body: dict[str, Any]) -> Outcome:
    meta = body["metadata"]
    return Outcome.of(
        decide(BlockSpec.model_validate(body["spec"]), BlockRef(name=meta["name"], uid=meta["uid"]), Policy())
    )


def test_merge_patch_turns_current_into_desired_and_is_same_when_equal() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 2}}) is SAME
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 4}}) == {"b": {"c": 4, "d": None}}
    assert merge_patch({"a": [1, 2]}, {"a": [1]}) == {"a": [1]}  # lists are replaced whole
    assert merge_patch({"a": 1}, {"a": None}) == {"a": None} and merge_patch({}, {"a": None}) is SAME
    assert merge_patch({}, {"x": {"y": 1}}) == {"x": {"y": 1}}


def test_a_new_example_is_named_labelled_and_owned_by_its_block() -> None:
    b = block()
    outcome = teach(b)
    assert outcome.example is not None
    ex = new_example(b, outcome.example)
    assert ex["metadata"]["name"] == "b1" and ex["metadata"]["labels"] == {"blocklearn.dev/block": "b1"}
    assert owned_by(ex, b) and ex["metadata"]["ownerReferences"][0]["controller"] is True
    assert ex["metadata"]["annotations"]["blocklearn.dev/source-changed-at"] == "2026-01-01T00:00:00Z"
    assert ex["spec"]["answer"][0]["contents"] == "kubectl get pods -A"


def test_the_example_patch_is_none_when_current_and_carries_the_resource_version() -> None:
    b = block()
    outcome = teach(b)
    assert outcome.example is not None
    current = new_example(b, outcome.example)
    current["metadata"]["resourceVersion"] = "12"
    assert example_patch(current, b, outcome.example) is None
    edited = block(executed="kubectl get pods -o wide")
    patch = example_patch(current, edited, teach(edited).example)  # type: ignore[arg-type]
    assert patch is not None and patch["metadata"]["resourceVersion"] == "12"
    assert patch["spec"] == {
        "answer": [
            {"kind": "code", "language": "bash", "contents": "kubectl get pods -o wide", "outputs": []}
        ]
    }
    other = block(uid="u2")  # a new Block of the same name: adopt
    patch = example_patch(current, other, outcome.example)
    assert patch is not None and [r["uid"] for r in patch["metadata"]["ownerReferences"]] == ["u2"]


def test_block_status_keeps_transition_times_and_writes_nothing_when_converged() -> None:
    b = block()
    status = block_status(b, teach(b))
    patch = status_patch(b, status)
    assert patch is not None and patch["metadata"] == {"resourceVersion": "7"}
    assert patch["status"]["exampleRef"] == "b1" and patch["status"]["observedGeneration"] == 1
    b["status"] = patch["status"]
    assert status_patch(b, block_status(b, teach(b))) is None  # converged: no write
    invalid = block_status(b, Outcome.invalid("spec.x: wrong"))
    patch = status_patch(b, invalid)
    assert patch is not None and patch["status"]["exampleRef"] is None  # removed by the merge patch
    learned = next(c for c in patch["status"]["conditions"] if c["type"] == "Learned")
    assert learned["reason"] == "Invalid" and learned["message"] == "spec.x: wrong"
    ready_before = next(c for c in b["status"]["conditions"] if c["type"] == "Ready")
    ready_after = next(c for c in invalid.model_dump(by_alias=True)["conditions"] if c["type"] == "Ready")
    assert ready_after["status"] == "False" and ready_before["status"] == "True"


def test_conditions_someone_else_wrote_in_another_shape_are_replaced() -> None:
    b = block()
    b["status"] = {"conditions": [{"type": "Ready", "status": "Maybe", "lastTransitionTime": 5}, "junk"]}
    status = block_status(b, teach(b))
    assert {c.type for c in status.conditions} == {"Ready", "Learned"}


def test_kopfs_leftover_state_is_removed_once() -> None:
    """The kopf-handled controller left a diff base (a copy of the spec) in annotations."""
    b = block()
    assert block_patch(b) is None
    b["metadata"]["annotations"] = {
        "kopf.blocklearn.dev/last-handled-configuration": "{...}",
        "blocklearn.dev/reconcile-requested-at": "2026-01-01T00:00:00Z",
    }
    assert block_patch(b) == {
        "metadata": {
            "resourceVersion": "7",
            "annotations": {"kopf.blocklearn.dev/last-handled-configuration": None},
        }
    }
    outcome = teach(b)
    assert outcome.example is not None
    ex = new_example(b, outcome.example)
    ex["metadata"].update(resourceVersion="3", annotations={"kopf.blocklearn.dev/x": "y"})
    patch = example_patch(ex, b, outcome.example)
    assert patch == {"metadata": {"annotations": {"kopf.blocklearn.dev/x": None}, "resourceVersion": "3"}}
