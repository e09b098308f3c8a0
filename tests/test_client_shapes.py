"""blocklearn.client's pure parts: Block names from trace ids, the Block it builds, few-shot messages."""

from __future__ import annotations

import datetime
import re

import pytest
from pydantic import ValidationError

from blocklearn.client import (
    TRACE_ANNOTATION,
    BadRequestError,
    Client,
    block_name,
    build_block,
    few_shot_messages,
    retrieved_names,
)
from blocklearn.learn.rule import Reason, decide
from blocklearn.resources.models import MAX_CELLS, BlockRef, BlockSpec, Cell
from blocklearn.search.schema import SearchResponse, SearchResult

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    "trace",
    ["01J9ZK5V8Q", "Trace/ID with spaces", "x" * 300, "____", "é", "a-", "0af7651916cd43dd8448eb211c80319c"],
)
def test_block_names_are_valid_deterministic_and_short(trace: str) -> None:
    name = block_name(trace)
    assert NAME.match(name) and len(name) <= 53, name
    assert block_name(trace) == name


def test_different_trace_ids_give_different_names() -> None:
    assert block_name("trace/1") != block_name("trace-1")  # same slug, different hash
    assert block_name("a" * 100) != block_name("a" * 101)
    with pytest.raises(ValueError, match="trace id"):
        block_name("")


def test_build_block_makes_a_block_the_controller_learns_from() -> None:
    when = datetime.datetime(2026, 11, 26, 9, 30, tzinfo=datetime.UTC)
    body = build_block(
        context=[
            "Show the logs of the crashed coredns pod",
            Cell(kind="code", language="bash", contents="kubectl get pods -n kube-system"),
        ],
        generated="kubectl logs coredns",
        executed="kubectl logs -n kube-system deploy/coredns --previous",
        exit_code=0,
        gen_trace_id="gen-42",
        exec_trace_ids=["exec-1"],
        executed_at=when,
    )
    assert body["metadata"] == {"name": block_name("gen-42"), "annotations": {TRACE_ANNOTATION: "gen-42"}}
    spec = body["spec"]
    assert spec["executedAt"] == "2026-11-26T09:30:00Z"
    assert spec["generatedCell"] == {
        "kind": "code",
        "language": "bash",
        "contents": "kubectl logs coredns",
        "outputs": [],
    }
    assert spec["doc"]["cells"][0]["kind"] == "markup" and spec["execTraceIds"] == ["exec-1"]
    decision = decide(BlockSpec.model_validate(spec, strict=False), BlockRef(name="x"))
    assert decision.reason is Reason.LEARNED


def test_build_block_is_named_from_the_execution_without_a_suggestion_and_refuses_bad_input() -> None:
    body = build_block(context=["list pods"], executed="kubectl get pods", exec_trace_ids=["exec-9"])
    assert body["metadata"]["name"] == block_name("exec-9") and "generatedCell" not in body["spec"]
    with pytest.raises(ValueError, match="trace"):
        build_block(context=["list pods"], executed="kubectl get pods")
    with pytest.raises(ValueError, match="time zone"):
        build_block(context=["x"], executed="y", gen_trace_id="t", executed_at=datetime.datetime(2026, 1, 1))
    with pytest.raises(ValidationError):
        build_block(context=["x"], executed="y\x00", gen_trace_id="t")  # the model's own checks


def result(name: str, score: float, request: str, answer: str, namespace: str = "default") -> SearchResult:
    return SearchResult.model_validate(
        {
            "namespace": namespace,
            "name": name,
            "score": score,
            "query": request,
            "answer": [{"kind": "code", "language": "bash", "contents": answer}],
            "blockRef": {"name": name},
        }
    )


def test_few_shot_messages_alternate_user_and_assistant_with_the_best_example_last() -> None:
    response = SearchResponse(
        results=[
            result("best", 0.9, "list pods", "kubectl get pods -A"),
            result("next", 0.5, "list nodes", "kubectl get nodes"),
        ],
        model="m",
        index_size=2,
    )
    assert few_shot_messages(response) == [
        {"role": "user", "content": "list nodes"},
        {"role": "assistant", "content": "```bash\nkubectl get nodes\n```"},
        {"role": "user", "content": "list pods"},
        {"role": "assistant", "content": "```bash\nkubectl get pods -A\n```"},
    ]
    assert few_shot_messages(response.results) == few_shot_messages(response)
    assert few_shot_messages([]) == []


def test_a_block_records_the_examples_shown_in_rank_order() -> None:
    response = SearchResponse(
        results=[
            result("best", 0.9, "list pods", "kubectl get pods -A"),
            result("elsewhere", 0.8, "list pods", "kubectl get pods", namespace="team-b"),
            result("next", 0.5, "list nodes", "kubectl get nodes"),
        ],
        model="m",
        index_size=3,
    )
    body = build_block(
        context=["list pods"], executed="kubectl get pods -A", gen_trace_id="t", retrieved=response
    )
    # a Block names Examples of its own namespace: when the client knows it, others are left out
    assert body["spec"]["retrievedExamples"] == ["best", "elsewhere", "next"]
    assert retrieved_names(response, "default") == ["best", "next"]
    assert retrieved_names(response.results, "team-b") == ["elsewhere"]
    # names work too; repeats are recorded once; at most the 10 best are kept, as the CRD allows
    assert retrieved_names(["a", "b", "a"]) == ["a", "b"]
    assert retrieved_names([f"e{i}" for i in range(15)]) == [f"e{i}" for i in range(10)]
    assert build_block(context=["x"], executed="y", gen_trace_id="t")["spec"]["retrievedExamples"] == []
    with pytest.raises(TypeError, match="not one name"):
        retrieved_names("best")
    with pytest.raises(ValidationError):
        build_block(context=["x"], executed="y", gen_trace_id="t", retrieved=["Not_A_Name"])


def test_search_sends_only_the_last_32_cells_and_refuses_what_the_index_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[dict] = []

    def call(method: str, path: str, body: dict) -> dict:
        sent.append(body)
        return {"results": [], "model": "m", "indexSize": 0}

    with Client("http://127.0.0.1:9") as client:
        monkeypatch.setattr(client, "_call", call)
        client.search(cells=[f"cell {i}" for i in range(MAX_CELLS + 8)])
        with pytest.raises(BadRequestError, match=r"query\.text: String should have at most 4096") as refused:
            client.search("x" * 5000)
    cells = [c["contents"] for c in sent[0]["query"]["cells"]]
    assert cells == [f"cell {i}" for i in range(8, MAX_CELLS + 8)]
    assert len(sent) == 1 and refused.value.status == 0  # the refused one was never sent
