"""The suggestion and retrieval outcomes of a Block: pure functions, every branch."""

from __future__ import annotations

from typing import Any

import pytest

from blocklearn.controller.cache import RETRIEVED, block_store
from blocklearn.controller.desired import Outcome, block_status, status_patch
from blocklearn.learn.outcome import (
    PAIRS,
    RETRIEVAL_OUTCOMES,
    SUGGESTION_OUTCOMES,
    Outcomes,
    assess,
    decided_retrieval,
    example_answer,
    is_counted,
    retrieval_outcome,
    shown_answers,
    suggestion_outcome,
)
from blocklearn.learn.rule import decide
from blocklearn.resources.models import BlockRef, BlockSpec
from tests.test_learning import spec

FIX = "kubectl get pods -n kube-system"


def shown(*names: str) -> BlockSpec:
    return spec(retrievedExamples=list(names))


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({}, "Corrected"),
        ({"executedCell": {"kind": "code", "contents": "  kubectl get pods \n"}}, "Accepted"),
        ({"exitCode": 1}, "Failed"),
        ({"exitCode": 1, "executedCell": {"kind": "code", "contents": "kubectl get pods"}}, "Failed"),
        ({"executedCell": None}, "NotExecuted"),
        ({"generatedCell": None}, "NoSuggestion"),
        ({"generatedCell": None, "executedCell": None}, "NoSuggestion"),
        ({"generatedCell": None, "exitCode": 2}, "NoSuggestion"),
        # the learning rule's other reasons hide nothing of what happened to the suggestion
        ({"doc": {"cells": []}}, "Corrected"),
        ({"executedCell": {"kind": "code", "contents": " "}}, "Corrected"),
        ({"exitCode": None}, "Corrected"),
    ],
)
def test_the_suggestion_outcome_says_what_the_person_did(fields: dict[str, Any], outcome: str) -> None:
    assert suggestion_outcome(spec(**fields)) == outcome


def test_an_evaluation_block_has_no_outcome() -> None:
    assert suggestion_outcome(spec(evalMode=True)) is None
    assert assess(spec(evalMode=True), {}) is None


def test_the_suggestion_outcome_follows_the_learning_rule_s_reasons() -> None:
    ref = BlockRef(name="b")
    expected = {
        "Learned": "Corrected",
        "Unchanged": "Accepted",
        "ExecutionFailed": "Failed",
        "NotExecuted": "NotExecuted",
        "NoSuggestion": "NoSuggestion",
    }
    cases = [
        {},
        {"executedCell": {"kind": "code", "contents": "kubectl get pods"}},
        {"exitCode": 3},
        {"executedCell": None},
        {"generatedCell": None},
    ]
    for fields in cases:
        block = spec(**fields)
        assert suggestion_outcome(block) == expected[decide(block, ref).reason.value]


@pytest.mark.parametrize(
    ("names", "answers", "outcome"),
    [
        ((), {}, "NotRecorded"),
        (("a",), {"a": FIX}, "Hit"),
        (("a", "b"), {"a": "kubectl get pods", "b": "  kubectl  get pods\n-n kube-system "}, "Hit"),
        (("a", "b"), {"a": "kubectl get pods", "b": "kubectl get nodes"}, "Miss"),
        (("a", "b"), {"a": "kubectl get pods"}, "Unknown"),  # b is gone: it might have matched
        (("a", "b"), {"a": FIX}, "Hit"),  # b is gone, but a matched
        (("a",), {"a": None}, "Miss"),  # an answer that cannot be read matches nothing
        (("a",), {}, "Unknown"),
    ],
)
def test_the_retrieval_outcome_compares_the_executed_cell_with_the_answers_shown(
    names: tuple[str, ...], answers: dict[str, str | None], outcome: str
) -> None:
    assert retrieval_outcome(shown(*names), answers) == outcome


def test_nothing_executed_cannot_be_a_hit_or_a_miss() -> None:
    assert retrieval_outcome(spec(retrievedExamples=["a"], executedCell=None), {"a": FIX}) == "Unknown"
    assert retrieval_outcome(spec(executedCell=None), {}) == "NotRecorded"


def test_a_redacted_answer_matches_the_command_run_with_its_secret() -> None:
    ran = "mysql -u root -pS3cretPassw0rd -h db"
    block = spec(retrievedExamples=["a"], executedCell={"kind": "code", "contents": ran})
    assert retrieval_outcome(block, {"a": "mysql -u root -p<REDACTED:mysql-password> -h db"}) == "Hit"
    assert retrieval_outcome(block, {"a": "mysql -u admin -p<REDACTED:mysql-password> -h db"}) == "Miss"


def test_a_decided_retrieval_stays_for_its_generation_when_examples_go() -> None:
    block = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "retrievalOutcome": "Hit"}}
    assert decided_retrieval(block) == "Hit"
    assert assess(shown("a"), {}, decided_retrieval(block)) == Outcomes("Corrected", "Hit")
    # a new generation (the Block changed) is judged afresh; Unknown and NotRecorded are never kept
    assert decided_retrieval({**block, "metadata": {"generation": 3}}) is None
    unknown = {
        "metadata": {"generation": 2},
        "status": {"observedGeneration": 2, "retrievalOutcome": "Unknown"},
    }
    assert decided_retrieval(unknown) is None
    assert decided_retrieval({"metadata": {"generation": 1}}) is None


def test_shown_answers_reads_the_named_examples_from_a_cache() -> None:
    cache = {
        "a": {"spec": {"answer": [{"kind": "code", "contents": FIX}]}},
        "b": {"spec": {"answer": [{"kind": "code", "contents": 3}]}},
    }
    assert shown_answers(["a", "b", "c"], cache.get) == {"a": FIX, "b": None}
    assert example_answer({"spec": {}}) is None
    assert example_answer({"spec": {"answer": {"contents": "ls"}}}) == "ls"


def test_a_generation_is_counted_once_its_status_records_a_decision_for_it() -> None:
    def block(generation: int | None, status: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"generation": generation}, "status": status}

    assert not is_counted(block(1, {}))  # new
    assert not is_counted(block(2, {"observedGeneration": 1, "suggestionOutcome": "Accepted"}))  # edited
    assert is_counted(block(1, {"observedGeneration": 1, "retrievalOutcome": "Unknown"}))  # decided
    assert is_counted(block(1, {"observedGeneration": 1}))  # decided by the previous release
    assert not is_counted(block(None, {}))


def test_the_pairs_are_bounded_and_leave_out_only_the_impossible() -> None:
    assert len(PAIRS) == len(SUGGESTION_OUTCOMES) * len(RETRIEVAL_OUTCOMES) - 2
    assert Outcomes("NotExecuted", "Hit") not in PAIRS and Outcomes("NotExecuted", "Unknown") in PAIRS


def _block(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "b", "namespace": "default", "generation": 1, "resourceVersion": "7"},
        "status": status or {},
    }


def test_the_outcomes_go_into_the_desired_status_and_leave_it_when_gone() -> None:
    decision = decide(spec(), BlockRef(name="b"))
    status = block_status(_block(), Outcome.of(decision), "an-example", Outcomes("Corrected", "Miss"))
    wire = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert (wire["suggestionOutcome"], wire["retrievalOutcome"]) == ("Corrected", "Miss")
    # an Invalid Block has none: a patch removes what an earlier generation had
    patch = status_patch(_block(wire), block_status(_block(wire), Outcome.invalid("bad"), None))
    assert patch is not None
    assert patch["status"]["suggestionOutcome"] is None and patch["status"]["retrievalOutcome"] is None


def test_only_blocks_whose_retrieval_is_still_to_decide_are_filed_under_what_they_were_shown() -> None:
    """An Example's arrival requeues the Blocks filed under it: not those already a Hit or a Miss,
    nor those with nothing run (Unknown whatever the Examples do)."""
    store = block_store()
    shown = {"retrievedExamples": ["a"], "executedCell": {"kind": "code", "contents": FIX}}
    for rv, (name, body, status) in enumerate(
        [
            ("undecided", shown, {}),
            ("not-run", {"retrievedExamples": ["a"]}, {}),
            ("decided", shown, {"observedGeneration": 1, "retrievalOutcome": "Hit"}),
        ],
        start=1,
    ):
        meta = {"namespace": "ns", "name": name, "generation": 1, "resourceVersion": str(rv)}
        store.put({"metadata": meta, "spec": body, "status": status})
    assert store.by_index(RETRIEVED, "ns/a") == [("ns", "undecided")]
