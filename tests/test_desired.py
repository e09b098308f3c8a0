"""The pure parts of the reconcilers: desired state and the patch between current and desired."""

from __future__ import annotations

import datetime
import re
from typing import Any

from blocklearn.controller.desired import (
    SAME,
    Outcome,
    block_patch,
    block_status,
    decided_at,
    example_patch,
    last_seen,
    merge_patch,
    new_example,
    occurrence_patch,
    occurrences,
    owned_by,
    release_patch,
    seen_patch,
    status_patch,
)
from blocklearn.learn.outcome import Outcomes
from blocklearn.learn.rule import BlockRef, Policy, decide, example_name
from blocklearn.resources.models import BlockSpec, ExampleStatus
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


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_a_new_example_is_named_from_its_content_labelled_and_owned_by_its_block() -> None:
    b = block("x" * 253)  # the longest name the API server admits: the Example's is still valid
    outcome = teach(b)
    assert outcome.example is not None
    name = example_name(outcome.example)
    ex = new_example(b, outcome.example, name)
    assert ex["metadata"]["name"] == name and name.startswith("kubectl-get-pods-a-")
    assert len(name) <= 63 and DNS_LABEL.match(name)
    assert ex["metadata"]["labels"] == {}  # a label value stops at 63 characters
    assert owned_by(ex, b) and ex["metadata"]["ownerReferences"][0]["controller"] is True
    assert ex["metadata"]["annotations"]["blocklearn.dev/source-changed-at"] == "2026-01-01T00:00:00Z"
    assert ex["spec"]["answer"][0]["contents"] == "kubectl get pods -A"
    assert ex["spec"]["blockRef"]["name"] == "x" * 253
    short = block("b1")
    assert new_example(short, teach(short).example, name)["metadata"]["labels"] == {  # type: ignore[arg-type]
        "blocklearn.dev/block": "b1"
    }


def test_identical_corrections_share_a_name_and_different_ones_do_not() -> None:
    a = teach(block("a", executed="kubectl  get pods -A "))  # other whitespace: the same correction
    b = teach(block("b", uid="u2", generated="kubectl get po"))  # another suggestion, same correction
    c = teach(block("c", uid="u3", executed="kubectl get pods -A -o wide"))
    d = teach(block("d", uid="u4", doc="list every pod, please"))
    assert a.example and b.example and c.example and d.example
    assert example_name(a.example) == example_name(b.example)
    assert len({example_name(a.example), example_name(c.example), example_name(d.example)}) == 3
    weird = teach(block("e", uid="u5", executed="../ÄÖ/\n -- $$"))
    assert weird.example is not None and DNS_LABEL.match(example_name(weird.example))


def test_an_example_edited_by_hand_gets_its_content_back_and_is_never_adopted() -> None:
    b = block()
    outcome = teach(b)
    assert outcome.example is not None
    current = new_example(b, outcome.example, example_name(outcome.example))
    current["metadata"]["resourceVersion"] = "12"
    assert example_patch(current, b, outcome.example) is None
    # Another Block teaching the same correction (other whitespace) neither adopts nor rewrites it.
    other = block("b2", uid="u2", executed="kubectl get pods  -A")
    assert example_patch(current, other, teach(other).example) is None  # type: ignore[arg-type]
    current["spec"]["answer"][0]["contents"] = "rm -rf /"  # edited by hand
    patch = example_patch(current, other, teach(other).example)  # type: ignore[arg-type]
    assert patch is not None and patch["metadata"]["resourceVersion"] == "12"
    assert patch["spec"] == {
        "answer": [{"kind": "code", "language": "bash", "contents": "kubectl get pods  -A", "outputs": []}]
    }
    assert "ownerReferences" not in patch["metadata"]  # the provenance and the owner stay the first Block's


def test_occurrences_count_with_a_precondition_and_release_drops_only_the_block() -> None:
    b = block()
    outcome = teach(b)
    assert outcome.example is not None
    ex = new_example(b, outcome.example, "n")
    ex["metadata"].update(resourceVersion="12", creationTimestamp="2026-01-02T00:00:00Z")
    assert occurrences(ex) == 1 and last_seen(ex) == datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    patch = occurrence_patch(ex)
    assert patch["metadata"] == {"resourceVersion": "12"} and patch["status"]["occurrences"] == 2
    # Only the fields it sets (the embedding and conditions stay), in the model's shape.
    assert set(patch["status"]) == {"occurrences", "lastSeenAt"}
    ExampleStatus.model_validate(patch["status"])
    seen = seen_patch(ex, 1767312000.0)
    assert seen == {"metadata": {"resourceVersion": "12"}, "status": {"lastSeenAt": "2026-01-02T00:00:00Z"}}
    ex["status"] = patch["status"]
    assert occurrences(ex) == 2 and last_seen(ex) > datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    ex["metadata"]["ownerReferences"].append({"kind": "Other", "uid": "o1", "name": "x"})
    release = release_patch(ex, b)
    assert release["metadata"] == {
        "resourceVersion": "12",
        "ownerReferences": [{"kind": "Other", "uid": "o1", "name": "x"}],
    }


def test_block_status_keeps_transition_times_and_writes_nothing_when_converged() -> None:
    b = block()
    ref = example_name(teach(b).example)  # type: ignore[arg-type]
    status = block_status(b, teach(b), ref)
    patch = status_patch(b, status)
    assert patch is not None and patch["metadata"] == {"resourceVersion": "7"}
    assert patch["status"]["exampleRef"] == ref and patch["status"]["observedGeneration"] == 1
    assert patch["status"]["decidedAt"]
    b["status"] = patch["status"]
    assert status_patch(b, block_status(b, teach(b), ref)) is None  # converged: no write
    invalid = block_status(b, Outcome.invalid("spec.x: wrong"), None)
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
    status = block_status(b, teach(b), None)
    assert {c.type for c in status.conditions} == {"Ready", "Learned"}


def test_the_ttl_clock_restarts_only_when_the_decision_or_the_block_changes() -> None:
    b = block()
    ref = example_name(teach(b).example)  # type: ignore[arg-type]
    b["status"] = {
        **block_status(b, teach(b), ref).model_dump(by_alias=True, exclude_none=True),
        "decidedAt": "2026-01-01T00:00:00Z",
    }
    assert decided_at(b) == datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert block_status(b, teach(b), ref).decided_at == "2026-01-01T00:00:00Z"  # a resync: same clock
    # The outcomes are derived for the record (issue 21): their first write restarts no TTL.
    derived = block_status(b, teach(b), ref, Outcomes("Corrected", "Unknown"))
    assert derived.decided_at == "2026-01-01T00:00:00Z" and derived.retrieval_outcome == "Unknown"
    b["status"]["retrievalOutcome"] = "Unknown"
    assert block_status(b, teach(b), ref, Outcomes("Corrected", "Miss")).decided_at == "2026-01-01T00:00:00Z"
    del b["status"]["retrievalOutcome"]
    b["metadata"]["generation"] = 2  # the Block changed: a new decision, a new clock
    assert block_status(b, teach(b), ref).decided_at != "2026-01-01T00:00:00Z"
    # A status written before decidedAt existed keeps its age (its Learned condition's) and no write.
    del b["status"]["decidedAt"]
    b["metadata"]["generation"] = 1
    learned = next(c for c in b["status"]["conditions"] if c["type"] == "Learned")
    learned["lastTransitionTime"] = "2025-12-31T00:00:00Z"
    assert status_patch(b, block_status(b, teach(b), ref)) is None
    assert decided_at(b) == datetime.datetime(2025, 12, 31, tzinfo=datetime.UTC)


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
    ex = new_example(b, outcome.example, "n")
    ex["metadata"].update(resourceVersion="3", annotations={"kopf.blocklearn.dev/x": "y"})
    patch = example_patch(ex, b, outcome.example)
    assert patch == {"metadata": {"annotations": {"kopf.blocklearn.dev/x": None}, "resourceVersion": "3"}}
