"""Every pair of outcomes through the real processes: Blocks applied with the real kubectl to the
emulator, the real controller deriving each Block's suggestion and retrieval outcomes into its status,
and `blocklearn_suggestions_total{outcome,retrieval}` counting each Block exactly once per pair it
takes, through resyncs, edits, curation and an Example that goes away and comes back."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from blocklearn.devtools.dev import Ports, Stack
from blocklearn.learn.outcome import PAIRS
from tests.processes import kubectl_binary, scrape

pytestmark = pytest.mark.e2e
T = TypeVar("T")
# Three corrections taught first; the Blocks after them name their Examples as what they were shown.
SEEDS = {
    "a": "kubectl logs -n kube-system deploy/coredns --previous",
    "b": "df -h /",
    "c": "kubectl top nodes",
}
RAN = SEEDS["a"]
WRONG = "kubectl logs coredns"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    kubectl_binary()
    env = {
        "BLOCKLEARN_EMBEDDER": "hashing",
        "BLOCKLEARN_HASHING_DIM": "512",
        "BLOCKLEARN_RESYNC_SECONDS": "1",
    }
    s = Stack(tmp_path / "stack", Ports.free(), env=env)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def kubectl(stack: Stack, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(stack.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def apply(stack: Stack, *blocks: dict[str, Any]) -> None:
    kubectl(stack, "apply", "-f", "-", stdin=yaml.safe_dump_all(blocks))


def wait_for(check: Callable[[], T], timeout: float = 90) -> T:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out; last: {result!r}"
        time.sleep(0.2)
    return result


def settles_to(stack: Stack, expected: dict[str, tuple[str | None, str | None]]) -> None:
    """Wait until the Blocks' outcomes are the expected ones; fail naming the Blocks that differ."""
    deadline = time.monotonic() + 90
    while (now := outcomes(stack)) != expected:
        wrong = {n: (now.get(n), want) for n, want in expected.items() if now.get(n) != want}
        assert time.monotonic() < deadline, f"outcomes (now, expected) differ: {wrong}"
        time.sleep(0.2)


def block(
    name: str,
    *,
    generated: str | None = WRONG,
    executed: str | None = RAN,
    exit_code: int = 0,
    shown: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "doc": {"cells": [{"kind": "markup", "contents": f"the request of {name}"}]},
        "exitCode": exit_code,
        "retrievedExamples": shown or [],
        **extra,
    }
    if generated is not None:
        spec["generatedCell"] = {"kind": "code", "language": "bash", "contents": generated}
    if executed is not None:
        spec["executedCell"] = {"kind": "code", "language": "bash", "contents": executed}
    return {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Block",
        "metadata": {"name": name},
        "spec": spec,
    }


def statuses(stack: Stack) -> dict[str, dict[str, Any]]:
    items = json.loads(kubectl(stack, "get", "blk", "-o", "json"))["items"]
    return {b["metadata"]["name"]: b.get("status") or {} for b in items}


def example_refs(stack: Stack) -> dict[str, str]:
    """The seeds' Examples by seed, read from each Block's status: never assume name == Block's."""
    found = statuses(stack)
    return {k: found[f"seed-{k}"]["exampleRef"] for k in SEEDS if "exampleRef" in found.get(f"seed-{k}", {})}


def outcomes(stack: Stack) -> dict[str, tuple[str | None, str | None]]:
    return {
        name: (s.get("suggestionOutcome"), s.get("retrievalOutcome"))
        for name, s in statuses(stack).items()
        if s.get("observedGeneration")
    }


def counted(stack: Stack) -> dict[tuple[str | None, str | None], float]:
    page = scrape(f"http://127.0.0.1:{stack.ports.metrics}/metrics")
    [family] = [f for f in text_string_to_metric_families(page) if f.name == "blocklearn_suggestions"]
    return {
        (s.labels["outcome"], s.labels["retrieval"]): s.value
        for s in family.samples
        if s.name.endswith("_total")
    }


def resync_passes(stack: Stack) -> float:
    page = scrape(f"http://127.0.0.1:{stack.ports.metrics}/metrics")
    [family] = [f for f in text_string_to_metric_families(page) if f.name == "blocklearn_resync_passes"]
    return sum(s.value for s in family.samples if s.name.endswith("_total"))


def after_two_resyncs(stack: Stack) -> None:
    start = resync_passes(stack)
    wait_for(lambda: resync_passes(stack) >= start + 2)


def test_every_outcome_pair_is_in_the_status_and_counted_once(stack: Stack) -> None:
    apply(stack, *(block(f"seed-{k}", executed=v) for k, v in SEEDS.items()))
    ex = wait_for(lambda: r if len(r := example_refs(stack)) == len(SEEDS) else None)

    shown = {
        "Hit": [ex["b"], ex["a"]],  # the answer ran was shown second
        "Miss": [ex["b"], ex["c"]],
        "NotRecorded": [],
        "Unknown": [ex["b"], "an-example-that-is-gone"],  # b did not match; the gone one might have
    }
    ran_spaced = "kubectl  logs -n kube-system\tdeploy/coredns   --previous"  # whitespace aside, RAN
    suggestion = {
        "Accepted": {"generated": RAN, "executed": RAN},
        "Corrected": {"executed": ran_spaced},
        "Failed": {"exit_code": 1},
        "NoSuggestion": {"generated": None},
    }
    expected: dict[str, tuple[str | None, str | None]] = {
        f"seed-{k}": ("Corrected", "NotRecorded") for k in SEEDS
    }
    blocks = []
    for s, fields in suggestion.items():
        for r, names in shown.items():
            name = f"{s}-{r}".lower()
            blocks.append(block(name, shown=names, **fields))
            expected[name] = (s, r)
    for r in ("NotRecorded", "Unknown"):  # nothing ran: neither a Hit nor a Miss
        name = f"notexecuted-{r}".lower()
        blocks.append(block(name, executed=None, shown=shown[r]))
        expected[name] = ("NotExecuted", r)
    # No outcome: a Block of an evaluation run, and an invalid one (the API admits it, the model not).
    blocks.append(block("from-eval", shown=shown["Hit"], evalMode=True))
    blocks.append(block("bad-time", shown=shown["Hit"], executedAt="yesterday at noon"))
    expected["from-eval"] = expected["bad-time"] = (None, None)
    apply(stack, *blocks)

    assert {(s, r) for s, r in expected.values() if s} == {(p.suggestion, p.retrieval) for p in PAIRS}
    settles_to(stack, expected)
    want: dict[tuple[str | None, str | None], float] = {(p.suggestion, p.retrieval): 0.0 for p in PAIRS}
    for pair in expected.values():
        if pair[0]:
            want[pair] += 1
    assert counted(stack) == want
    header, *rows = [line.split() for line in kubectl(stack, "get", "blk").splitlines()]
    assert header[4:6] == ["SUGGESTION", "RETRIEVAL"]
    shown_by_kubectl = {row[0]: tuple(row[4:6]) for row in rows}
    assert shown_by_kubectl["corrected-hit"] == ("Corrected", "Hit")
    assert shown_by_kubectl["from-eval"] == ("<none>", "<none>")

    # Resyncs confirm; they count nothing again.
    after_two_resyncs(stack)
    assert counted(stack) == want and outcomes(stack) == expected

    # An edit that changes the pair is counted under the new pair (the old count stays: a counter).
    apply(stack, block("notexecuted-notrecorded", executed=RAN, shown=[ex["a"]]))
    expected["notexecuted-notrecorded"] = ("Corrected", "Hit")
    want[("Corrected", "Hit")] += 1
    settles_to(stack, expected)
    assert counted(stack) == want

    # Curation takes the correction out of learning, not out of the record.
    kubectl(stack, "annotate", "blk", "corrected-hit", "blocklearn.dev/learn=false")
    wait_for(lambda: statuses(stack)["corrected-hit"].get("exampleRef") is None)

    # An Example that goes (its Block deleted) leaves the Hits and Misses decided with it as they
    # were: what the assistant was shown does not change afterwards. A Block naming it now: Unknown.
    kubectl(stack, "delete", "blk", "seed-a")
    wait_for(lambda: ex["a"] not in kubectl(stack, "get", "ex", "-o", "name"))
    del expected["seed-a"]
    apply(stack, block("after-it-went", shown=[ex["a"]]))
    expected["after-it-went"] = ("Corrected", "Unknown")
    want[("Corrected", "Unknown")] += 1
    settles_to(stack, expected)
    after_two_resyncs(stack)
    assert outcomes(stack) == expected
    assert counted(stack) == want

    # Taught again, the Example comes back under its name, and a Block that named it and could not
    # tell is decided now, settled as it was: the Example's event queues it, not a resync (a resync
    # replays only the Blocks whose last reconcile did not end converged).
    apply(stack, block("seed-a", executed=SEEDS["a"]))
    expected["seed-a"] = ("Corrected", "NotRecorded")
    expected["after-it-went"] = ("Corrected", "Hit")
    want[("Corrected", "NotRecorded")] += 1
    want[("Corrected", "Hit")] += 1
    settles_to(stack, expected)
    assert example_refs(stack)["a"] == ex["a"]
    assert counted(stack) == want
