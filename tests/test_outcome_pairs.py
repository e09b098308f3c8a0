"""Every pair of outcomes through the controller's informers and reconcilers in this process
(tests/harness.py): Blocks applied to the emulator as `kubectl apply` would, each Block's suggestion and
retrieval outcomes derived into its status and shown by `kubectl get blk`, and
`blocklearn_suggestions_total{outcome,retrieval}` counting each Block exactly once per generation,
under the first pair decided for it, through resyncs, edits, curation, an Example that goes away and
comes back, and an upgrade from the release before the outcomes."""

from __future__ import annotations

from typing import Any

from blocklearn.learn.outcome import PAIRS
from tests.harness import Harness, sample

# Three corrections taught first; the Blocks after them name their Examples as what they were shown.
SEEDS = {
    "a": "kubectl logs -n kube-system deploy/coredns --previous",
    "b": "df -h /",
    "c": "kubectl top nodes",
}
RAN = SEEDS["a"]
WRONG = "kubectl logs coredns"
Pair = tuple[str | None, str | None]


async def apply(harness: Harness, *blocks: dict[str, Any]) -> None:
    """`kubectl apply`: create each Block, or replace the spec of the one of its name."""
    api = harness.api
    for body in blocks:
        name = body["metadata"]["name"]
        code, current = await api.call("GET", api.path("blocks", name=name))
        if code == 404:
            code, answer = await api.call("POST", api.path("blocks"), body)
            assert code == 201, answer
        else:
            replaced = {**current, "spec": body["spec"]}
            code, answer = await api.call("PUT", api.path("blocks", name=name), replaced)
            assert code == 200, answer


async def settles_to(harness: Harness, expected: dict[str, Pair]) -> None:
    """Wait until the Blocks' outcomes are the expected ones; fail naming the Blocks that differ."""

    def same() -> bool:
        return outcomes(harness) == expected

    try:
        await harness.until(same, "the outcomes", timeout=90)
    except AssertionError:
        now = outcomes(harness)
        wrong = {n: (now.get(n), want) for n, want in expected.items() if now.get(n) != want}
        raise AssertionError(f"outcomes (now, expected) differ: {wrong}") from None


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


def statuses(harness: Harness) -> dict[str, dict[str, Any]]:
    return {name: b.get("status") or {} for name, b in harness.blocks().items()}


def example_refs(harness: Harness) -> dict[str, str]:
    """The seeds' Examples by seed, read from each Block's status: never assume name == Block's."""
    found = statuses(harness)
    return {k: found[f"seed-{k}"]["exampleRef"] for k in SEEDS if "exampleRef" in found.get(f"seed-{k}", {})}


def outcomes(harness: Harness) -> dict[str, Pair]:
    return {
        name: (s.get("suggestionOutcome"), s.get("retrievalOutcome"))
        for name, s in statuses(harness).items()
        if s.get("observedGeneration")
    }


def counts() -> dict[Pair, float]:
    return {
        (p.suggestion, p.retrieval): sample(
            "blocklearn_suggestions_total", outcome=p.suggestion, retrieval=p.retrieval
        )
        for p in PAIRS
    }


async def after_two_resyncs(harness: Harness) -> None:
    await harness.resync()
    await harness.resync()
    await harness.settled()


async def test_every_outcome_pair_is_in_the_status_and_counted_once(harness: Harness) -> None:
    start = counts()
    await harness.start()
    await apply(harness, *(block(f"seed-{k}", executed=v) for k, v in SEEDS.items()))
    ex = await harness.until(lambda: r if len(r := example_refs(harness)) == len(SEEDS) else None, "seeds")

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
    await apply(harness, *blocks)

    assert {(s, r) for s, r in expected.values() if s} == {(p.suggestion, p.retrieval) for p in PAIRS}
    await settles_to(harness, expected)
    want: dict[Pair, float] = dict(start)
    for pair in expected.values():
        if pair[0]:
            want[pair] += 1
    assert counts() == want
    header, rows = await harness.table("blocks")  # `kubectl get blk`
    assert header[4:6] == ["Suggestion", "Retrieval"]
    shown_by_kubectl = {row[0]: tuple(row[4:6]) for row in rows}
    assert shown_by_kubectl["corrected-hit"] == ("Corrected", "Hit")
    assert shown_by_kubectl["from-eval"] == ("<none>", "<none>")

    # Resyncs confirm; they count nothing again.
    await after_two_resyncs(harness)
    assert counts() == want and outcomes(harness) == expected

    # An edit that changes the pair is counted under the new pair (the old count stays: a counter).
    await apply(harness, block("notexecuted-notrecorded", executed=RAN, shown=[ex["a"]]))
    expected["notexecuted-notrecorded"] = ("Corrected", "Hit")
    want[("Corrected", "Hit")] += 1
    await settles_to(harness, expected)
    assert counts() == want

    # Curation takes the correction out of learning, not out of the record.
    annotate = {"metadata": {"annotations": {"blocklearn.dev/learn": "false"}}}  # `kubectl annotate`
    await harness.api.call("PATCH", harness.api.path("blocks", name="corrected-hit"), annotate)
    await harness.until(lambda: statuses(harness)["corrected-hit"].get("exampleRef") is None, "excluded")

    # An Example that goes (its Block deleted) leaves the Hits and Misses decided with it as they
    # were: what the assistant was shown does not change afterwards. A Block naming it now: Unknown.
    await harness.api.call("DELETE", harness.api.path("blocks", name="seed-a"))
    await harness.until(lambda: ex["a"] not in harness.examples(), "its Example gone")
    del expected["seed-a"]
    await apply(harness, block("after-it-went", shown=[ex["a"]]))
    expected["after-it-went"] = ("Corrected", "Unknown")
    want[("Corrected", "Unknown")] += 1
    await settles_to(harness, expected)
    await after_two_resyncs(harness)
    assert outcomes(harness) == expected
    assert counts() == want

    # Taught again, the Example comes back under its name, and a Block that named it and could not
    # tell is decided now, settled as it was: the Example's event queues it, not a resync (a resync
    # replays only the Blocks whose last reconcile did not end converged). Its status says Hit; the
    # counter keeps it under the pair first decided (Unknown): one count per Block generation.
    await apply(harness, block("seed-a", executed=SEEDS["a"]))
    expected["seed-a"] = ("Corrected", "NotRecorded")
    expected["after-it-went"] = ("Corrected", "Hit")
    want[("Corrected", "NotRecorded")] += 1
    await settles_to(harness, expected)
    assert example_refs(harness)["a"] == ex["a"]
    assert counts() == want


async def test_an_upgrade_writes_the_outcomes_of_decided_blocks_without_counting_them(
    harness: Harness,
) -> None:
    """The release before the outcomes decided these Blocks (its status: the conditions, the
    observed generation, no outcome fields). The controller that replaces it writes their outcomes,
    but counting them would put every Block there is into the counter's rate at once."""
    controller = await harness.start()
    await apply(harness, block("seed-a", executed=SEEDS["a"]))
    ex = await harness.until(lambda: example_refs(harness).get("a"), "seed")
    await apply(harness, block("old-hit", shown=[ex]), block("old-miss", executed="ls", shown=[ex]))
    expected: dict[str, Pair] = {
        "seed-a": ("Corrected", "NotRecorded"),
        "old-hit": ("Corrected", "Hit"),
        "old-miss": ("Corrected", "Miss"),
    }
    await settles_to(harness, expected)
    await harness.stop(controller)
    forget = {"status": {"suggestionOutcome": None, "retrievalOutcome": None}}  # the old release's
    for name in expected:
        code, answer = await harness.api.call(
            "PATCH", harness.api.path("blocks", name=name) + "/status", forget
        )
        assert code == 200, answer
    assert outcomes(harness) == dict.fromkeys(expected, (None, None))
    before = counts()
    await harness.start()
    await settles_to(harness, expected)
    await harness.settled()
    assert counts() == before
    # A Block decided after the upgrade is counted as ever.
    await apply(harness, block("new-hit", shown=[ex]))
    expected["new-hit"] = ("Corrected", "Hit")
    await settles_to(harness, expected)
    assert counts() == {**before, ("Corrected", "Hit"): before[("Corrected", "Hit")] + 1}
