"""blocklearn.client against real processes: the emulator, the controller and the index (tests/stack.py,
one stack for the module), plus indexes started with authentication or without their embedder.

The client is synchronous; the tests that also serve something in their event loop (a fake
embedder) call it through a thread, so that loop keeps serving."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import pytest
import requests
from kubernetes.client import CustomObjectsApi

from blocklearn.client import (
    BadRequestError,
    Client,
    ForbiddenError,
    Recorded,
    UnauthorizedError,
    UnavailableError,
    block_name,
    few_shot_messages,
)
from blocklearn.runtime.kubeclient import api_client
from blocklearn.search.openapi import document
from tests.fake_embeddings import FakeEmbeddings
from tests.processes import eventually, free_port, kubectl_binary, scrape
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.needs_tools("kubectl", "weights")]
ENV = {"BLOCKLEARN_EMBEDDER": "semantic"}
T = TypeVar("T")

COREDNS = {
    "context": ["The coredns pod in kube-system keeps crashing. Show me the logs of the crashed one."],
    "generated": "kubectl logs coredns",
    "executed": "kubectl logs -n kube-system deploy/coredns --previous",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack.started(tmp_path_factory.mktemp("stack"), ENV) as s:
        s.wait_ready(s.controller(), s.index())
        yield s


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with Client(stack.child("index").url, kubeconfig=str(stack.kubeconfig), backoff=0.05) as c:
        yield c


def wait_for(check: Callable[[], T], timeout: float = 60) -> T:
    """Poll until check() is truthy; fail, not hang, when it never is."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out; last: {result!r}"
        time.sleep(0.2)
    return result


def learned_reason(stack: Stack, name: str) -> str | None:
    api = CustomObjectsApi(api_client(str(stack.kubeconfig)))
    block = api.get_namespaced_custom_object("blocklearn.dev", "v1alpha1", "default", "blocks", name)
    conditions = block.get("status", {}).get("conditions", [])  # type: ignore[attr-defined]
    return next((c["reason"] for c in conditions if c["type"] == "Learned"), None)


def test_a_recorded_correction_comes_back_as_a_few_shot_example(client: Client, stack: Stack) -> None:
    recorded = client.record_block(**COREDNS, gen_trace_id="gen-coredns-1", exec_trace_ids=["exec-1"])
    assert recorded == Recorded("default", block_name("gen-coredns-1"), "created")
    # Recording the same event again is the same Block, untouched.
    again = client.record_block(**COREDNS, gen_trace_id="gen-coredns-1", exec_trace_ids=["exec-1"])
    assert again.action == "unchanged"

    def found() -> list[Any]:
        response = client.search("coredns crashed again, show me its logs", k=2)
        return [r for r in response.results if r.block_ref.name == recorded.name]

    [hit] = wait_for(found)
    assert hit.answer[0].contents == COREDNS["executed"] and hit.support == 1
    messages = few_shot_messages(client.search("coredns crashed again, show me its logs", k=1))
    assert messages == [
        {"role": "user", "content": COREDNS["context"][0]},
        {"role": "assistant", "content": f"```bash\n{COREDNS['executed']}\n```"},
    ]
    blocks = CustomObjectsApi(api_client(str(stack.kubeconfig))).list_namespaced_custom_object(
        "blocklearn.dev", "v1alpha1", "default", "blocks"
    )
    names = [b["metadata"]["name"] for b in blocks["items"]]  # type: ignore[index]
    assert names.count(recorded.name) == 1


def test_recording_a_changed_event_updates_its_block(client: Client, stack: Stack) -> None:
    first = client.record_block(**{**COREDNS, "executed": "df -h /"}, gen_trace_id="gen-disk", exit_code=1)
    assert first.action == "created"
    assert wait_for(lambda: learned_reason(stack, first.name) == "ExecutionFailed")
    fixed = client.record_block(**{**COREDNS, "executed": "df -h /"}, gen_trace_id="gen-disk", exit_code=0)
    assert fixed == Recorded("default", first.name, "updated")
    assert wait_for(lambda: learned_reason(stack, first.name) == "Learned")


def test_search_takes_cells_and_answers_distinct_results_unless_raw(client: Client) -> None:
    for i, request in enumerate(["list every pod", "show all pods", "pods in all namespaces, please"]):
        client.record_block(
            context=[request],
            generated="kubectl get pods",
            executed="kubectl get pods -A",
            gen_trace_id=f"p{i}",
        )
    cells = ["I need an overview of the cluster.", "list the pods of every namespace"]

    def all_three() -> Any:
        response = client.search(cells=cells, k=1)
        return response if response.results and response.results[0].support == 3 else None

    response = wait_for(all_three)
    assert response.results[0].answer[0].contents == "kubectl get pods -A"
    raw = client.search(cells=cells, k=10, distinct=False)
    assert [r.answer[0].contents for r in raw.results].count("kubectl get pods -A") == 3
    assert {r.support for r in raw.results} == {1}
    distinct = client.search(cells=cells, k=10)
    assert len({r.answer[0].contents for r in distinct.results}) == len(distinct.results) < len(raw.results)


def test_errors_carry_the_servers_message(client: Client, stack: Stack) -> None:
    with pytest.raises(BadRequestError, match="namespace is required") as bad:
        client.search("pods", all_namespaces=True)
    assert bad.value.status == 400
    with pytest.raises(ValueError, match="either query or cells"):
        client.search()
    unreachable = Client(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01)
    with pytest.raises(UnavailableError, match="cannot reach the index"):
        unreachable.search("pods")


def test_a_silent_index_times_out() -> None:
    with socket.socket() as server:  # accepts connections (the backlog), never answers
        server.bind(("127.0.0.1", free_port()))
        server.listen(8)
        silent = Client(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=0.5, retries=0)
        with pytest.raises(UnavailableError, match=r"did not answer within 0.5 s"):
            silent.search("pods")


def test_live_answers_match_the_openapi_document(client: Client, stack: Stack) -> None:
    doc = document()
    assert client.openapi() == doc

    def validator(name: str) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        )

    client.record_block(**COREDNS, gen_trace_id="gen-openapi")
    url = stack.child("index").url + "/v1/search"
    wait_for(
        lambda: requests.post(url, json={"query": "coredns logs", "namespace": "default"}).json()["results"]
    )
    for body in (
        {"query": "coredns logs", "namespace": "default"},
        {
            "query": {"cells": [{"kind": "markup", "contents": "coredns logs"}]},
            "namespace": "default",
            "k": 5,
        },
        {"query": "coredns logs", "namespace": "default", "distinct": False, "minScore": 0.1},
    ):
        answer = requests.post(url, json=body, timeout=10)
        assert answer.status_code == 200
        validator("SearchResponse").validate(answer.json())
    assert not validator("SearchResponse").is_valid({**answer.json(), "indexSize": -1})  # it can fail
    for body in ({"query": ""}, {"query": "x", "k": 0}, {"query": "x"}):
        refused = requests.post(url, json=body, timeout=10)
        assert refused.status_code == 400
        validator("ErrorResponse").validate(refused.json())


def test_tokens_401_and_403(stack: Stack, tmp_path: Path) -> None:
    shared = tmp_path / "token"
    shared.write_text("s3cret-shared-token\n")
    env = {"BLOCKLEARN_INDEX_TOKEN_FILE": str(shared), "BLOCKLEARN_INDEX_TOKEN_REVIEW": "true"}
    index = stack.index("index-auth", env)
    url = index.url
    try:
        wait_for(lambda: _status(url + "/readyz") == 200)
        with pytest.raises(UnauthorizedError, match="a valid bearer token is required"):
            Client(url).search("pods")
        token_file = tmp_path / "client-token"
        token_file.write_text("s3cret-shared-token")
        assert Client(url, token_file=token_file).search("pods").model
        token_file.write_text("rotated-but-wrong")  # re-read at each request
        with pytest.raises(UnauthorizedError):
            Client(url, token_file=token_file).search("pods")

        kubectl = [str(kubectl_binary()), "--kubeconfig", str(stack.kubeconfig)]
        subprocess.run([*kubectl, "create", "namespace", "team-a"], check=True)
        subprocess.run([*kubectl, "create", "serviceaccount", "notebook", "-n", "team-a"], check=True)
        sa_token = subprocess.run(
            [*kubectl, "create", "token", "notebook", "-n", "team-a"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        notebook = Client(url, sa_token, namespace="team-a")
        assert notebook.search("pods").results == []
        with pytest.raises(ForbiddenError, match="may not search namespace default") as forbidden:
            notebook.search("pods", namespace="default")
        assert forbidden.value.status == 403
    finally:
        index.stop()


async def test_503_is_retried_with_backoff_until_the_index_is_ready(stack: Stack, tmp_path: Path) -> None:
    embeddings = FakeEmbeddings(free_port())  # down: the index waits for it, answering 503
    index = stack.index("index-waiting", {**embeddings.env(), "BLOCKLEARN_EMBED_TIMEOUT_SECONDS": "1"})
    url = index.url
    try:
        await eventually(lambda: _astatus(url + "/healthz", 200), what="index alive", logs=[index])

        few = Client(url, retries=2, backoff=0.01)
        with pytest.raises(UnavailableError, match="waiting for its embedder") as unavailable:
            await asyncio.to_thread(few.search, "pods")
        assert unavailable.value.status == 503
        assert _not_ready(url) == 3  # one attempt and two retries

        patient = Client(url, retries=100, backoff=0.05, max_backoff=0.5)
        search = asyncio.create_task(asyncio.to_thread(patient.search, "pods"))
        await eventually(lambda: _aof(_not_ready(url) >= 4), what="a 503 in this search", logs=[index])
        await embeddings.up()
        response = await asyncio.wait_for(search, 120)
        # Answered once ready; the stack's Examples may be among the results (those of another
        # model by their text alone), so only the model is checked.
        assert response.model.startswith("openai")
    finally:
        await index.astop()
        await embeddings.down()


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0


async def _astatus(url: str, want: int) -> bool:
    return await asyncio.to_thread(_status, url) == want


async def _aof(value: bool) -> bool:
    return value


def _not_ready(url: str) -> int:
    for line in scrape(url + "/metrics").splitlines():
        if line.startswith('blocklearn_search_total{result="not_ready"}'):
            return int(float(line.split()[1]))
    return 0


def test_the_search_command_uses_the_client(stack: Stack, client: Client) -> None:
    client.record_block(**COREDNS, gen_trace_id="gen-cli")
    wait_for(lambda: client.search("coredns logs").results)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "blocklearn",
            "search",
            "coredns logs",
            "--url",
            stack.child("index").url,
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["results"][0]["support"] >= 1
    failed = subprocess.run(
        [sys.executable, "-m", "blocklearn", "search", "pods", "-A", "--url", stack.child("index").url],
        capture_output=True,
        text=True,
    )
    assert failed.returncode != 0 and "the index answered 400: namespace is required" in failed.stderr
