"""Curation through the real kubectl: `kubectl annotate blk NAME blocklearn.dev/learn=false` takes a
correction out of what the assistant learns (its Example deleted, not recreated by resyncs), and
removing the annotation brings it back. Real emulator, controller and index processes."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from blocklearn.client import Client
from blocklearn.devtools.dev import Ports, Stack
from tests.processes import kubectl_binary, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.needs_tools("kubectl", "weights")]
ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
BAD_NAME = "coredns-logs"
QUERY = "the coredns pod keeps crashing, show me why"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    kubectl_binary()
    env = {"BLOCKLEARN_HASHING_DIM": "512", "BLOCKLEARN_RESYNC_SECONDS": "1"}
    s = Stack(tmp_path / "stack", Ports.free(), env=env)
    try:
        s.start()
        yield s
    finally:
        s.stop()


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


def resyncs(stack: Stack) -> int:
    return (stack.directory / "controller.log").read_text().count("Resynced:")


def answers(stack: Stack) -> list[str]:
    with Client(stack.index_url) as client:
        return [r.answer[0].contents for r in client.search(QUERY, k=8).results]


def excluded_decisions(stack: Stack) -> float:
    page = scrape(f"http://127.0.0.1:{stack.ports.metrics}/metrics")
    for line in page.splitlines():
        if line.startswith('blocklearn_block_decisions_total{reason="Excluded"}'):
            return float(line.split()[1])
    return 0.0


def test_an_annotated_block_is_excluded_across_resyncs_and_comes_back_when_unannotated(stack: Stack) -> None:
    kubectl(stack, "apply", "-f", str(ROOT / "examples" / "blocks"))
    wait_for(lambda: learned(stack, BAD_NAME) == ("True", "Learned"))
    coredns = "kubectl logs -n kube-system deploy/coredns --previous"
    wait_for(lambda: coredns in answers(stack))
    assert excluded_decisions(stack) == 0

    kubectl(stack, "annotate", "blk", BAD_NAME, "blocklearn.dev/learn=false")
    wait_for(lambda: learned(stack, BAD_NAME) == ("False", "Excluded"))
    wait_for(lambda: BAD_NAME not in examples(stack))
    wait_for(lambda: coredns not in answers(stack))
    row = next(line for line in kubectl(stack, "get", "blk").splitlines() if line.startswith(BAD_NAME))
    assert row.split()[1:4] == ["False", "Excluded", "<none>"]
    described = kubectl(stack, "describe", "blk", BAD_NAME)
    assert "blocklearn.dev/learn=false" in described
    assert excluded_decisions(stack) >= 1

    # Resyncs (every second here) re-derive every Block: the Example must stay gone, and no other
    # Example may be touched.
    others = examples(stack)
    seen = resyncs(stack)
    wait_for(lambda: resyncs(stack) >= seen + 2)
    assert BAD_NAME not in examples(stack) and examples(stack) == others
    assert learned(stack, BAD_NAME) == ("False", "Excluded")
    assert coredns not in answers(stack)

    kubectl(stack, "annotate", "blk", BAD_NAME, "blocklearn.dev/learn-")
    wait_for(lambda: learned(stack, BAD_NAME) == ("True", "Learned"))
    wait_for(lambda: BAD_NAME in examples(stack))
    wait_for(lambda: coredns in answers(stack))
