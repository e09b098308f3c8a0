"""Curation: `kubectl annotate blk NAME blocklearn.dev/learn=false` takes a correction out of what the
assistant learns (its Example deleted, not recreated by resyncs, not found), and removing the
annotation brings it back. The controller and the index in this process (tests/harness.py), then
through the real kubectl, processes and client."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from blocklearn.client import Client
from tests.harness import Harness, sample
from tests.processes import kubectl_binary, scrape
from tests.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
BAD_NAME = "coredns-logs"
QUERY = "the coredns pod keeps crashing, show me why"
COREDNS = "kubectl logs -n kube-system deploy/coredns --previous"


LEARN_FALSE = {"metadata": {"annotations": {"blocklearn.dev/learn": "false"}}}
LEARN_AGAIN = {"metadata": {"annotations": {"blocklearn.dev/learn": None}}}


async def test_an_annotated_block_is_excluded_across_resyncs_and_comes_back_when_unannotated(
    harness: Harness,
) -> None:
    excluded = sample("blocklearn_block_decisions_total", reason="Excluded")
    await harness.start()
    index = await harness.index()
    for path in sorted((ROOT / "examples" / "blocks").glob("*.yaml")):
        for body in yaml.safe_load_all(path.read_text()):
            code, answer = await harness.api.call("POST", harness.api.path("blocks"), body)
            assert code in (201, 422), answer  # 13-bad-timestamp is refused by the schema or invalid

    def reason() -> tuple[str, str] | None:
        status = harness.blocks()[BAD_NAME].get("status", {})
        cond = next((c for c in status.get("conditions", []) if c["type"] == "Learned"), None)
        return (cond["status"], cond["reason"]) if cond else None

    def learned_from() -> set[str]:
        return {e["spec"]["blockRef"]["name"] for e in harness.examples().values()}

    async def answers() -> list[str]:
        return [r["answer"][0]["contents"] for r in await index.search(QUERY, k=8)]

    async def answered() -> bool:
        return COREDNS in await answers()

    async def not_answered() -> bool:
        return COREDNS not in await answers()

    await harness.until(lambda: reason() == ("True", "Learned"), "learned")
    await harness.until(answered, "found")
    assert sample("blocklearn_block_decisions_total", reason="Excluded") == excluded

    await harness.api.call("PATCH", harness.api.path("blocks", name=BAD_NAME), LEARN_FALSE)
    await harness.until(lambda: reason() == ("False", "Excluded"), "excluded")
    await harness.until(lambda: BAD_NAME not in learned_from(), "its Example deleted")
    await harness.until(not_answered, "not found")
    assert sample("blocklearn_block_decisions_total", reason="Excluded") == excluded + 1

    # Resyncs re-derive every Block that did not settle: the Example must stay gone, and no other
    # Example may be touched.
    others = harness.examples()
    await harness.resync()
    await harness.resync()
    await harness.settled()
    assert harness.examples() == others and reason() == ("False", "Excluded")
    assert await not_answered()

    await harness.api.call("PATCH", harness.api.path("blocks", name=BAD_NAME), LEARN_AGAIN)
    await harness.until(lambda: reason() == ("True", "Learned"), "learned again")
    await harness.until(lambda: BAD_NAME in learned_from(), "its Example back")
    await harness.until(answered, "found again")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Stack]:
    """The emulator (a child: the test blocks), the controller with the default embedder, the index."""
    kubectl_binary()
    with Stack.started(tmp_path / "stack", {"BLOCKLEARN_EMBEDDER": "semantic"}) as s:
        s.wait_ready(s.controller(), s.index())
        yield s


def kubectl(stack: Stack, *args: str) -> str:
    out = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(stack.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def wait_for(check: Callable[[], T], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out; last: {result!r}"
        time.sleep(0.2)
    return result


def learned(stack: Stack, name: str) -> tuple[str, str]:
    block = json.loads(kubectl(stack, "get", "blk", name, "-o", "json"))
    cond = next(
        c for c in block.get("status", {}).get("conditions", [{"type": "Learned"}]) if c["type"] == "Learned"
    )
    return cond.get("status", ""), cond.get("reason", "")


def examples(stack: Stack) -> set[str]:
    """The Blocks the Examples were learned from (Examples are named from their content)."""
    listed = json.loads(kubectl(stack, "get", "ex", "-o", "json"))["items"]
    return {e["spec"]["blockRef"]["name"] for e in listed}


def answers(stack: Stack) -> list[str]:
    with Client(stack.child("index").url) as client:
        return [r.answer[0].contents for r in client.search(QUERY, k=8).results]


def excluded_decisions(stack: Stack) -> float:
    page = scrape(stack.child("controller").url + "/metrics")
    for line in page.splitlines():
        if line.startswith('blocklearn_block_decisions_total{reason="Excluded"}'):
            return float(line.split()[1])
    return 0.0


@pytest.mark.e2e
@pytest.mark.needs_tools("kubectl", "weights")
def test_kubectl_annotate_takes_a_correction_out_and_back(processes: Stack) -> None:
    """As a person curates: kubectl, against the real processes (the default, semantic, embedder),
    and the assistant's client searching the index."""
    stack = processes
    kubectl(stack, "apply", "-f", str(ROOT / "examples" / "blocks"))
    wait_for(lambda: learned(stack, BAD_NAME) == ("True", "Learned"))
    wait_for(lambda: COREDNS in answers(stack))
    assert excluded_decisions(stack) == 0

    kubectl(stack, "annotate", "blk", BAD_NAME, "blocklearn.dev/learn=false")
    wait_for(lambda: learned(stack, BAD_NAME) == ("False", "Excluded"))
    wait_for(lambda: BAD_NAME not in examples(stack))
    wait_for(lambda: COREDNS not in answers(stack))
    row = next(line for line in kubectl(stack, "get", "blk").splitlines() if line.startswith(BAD_NAME))
    assert row.split()[1:4] == ["False", "Excluded", "<none>"]
    described = kubectl(stack, "describe", "blk", BAD_NAME)
    assert "blocklearn.dev/learn=false" in described
    assert excluded_decisions(stack) >= 1

    kubectl(stack, "annotate", "blk", BAD_NAME, "blocklearn.dev/learn-")
    wait_for(lambda: learned(stack, BAD_NAME) == ("True", "Learned"))
    wait_for(lambda: BAD_NAME in examples(stack))
    wait_for(lambda: COREDNS in answers(stack))
