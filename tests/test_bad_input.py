"""A corpus of 100+ malformed Blocks against the controller (its informers and reconcilers in this
process, tests/harness.py): each is refused by the CRD schema or ends Ready=False, reason=Invalid with
a message naming the field; valid Blocks between them keep learning, and no watch, worker or resync
of the controller dies or stalls."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from blocklearn.resources.models import MAX_CELL_CHARS, MAX_CELLS
from tests.conftest import block_body
from tests.harness import Harness
from tests.processes import eventually

Mutation = Callable[[dict[str, Any]], None]


def setter(path: str, value: Any) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        node = spec
        *parents, last = path.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def deleter(path: str) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        node = spec
        *parents, last = path.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[last]

    return mutate


FIELDS = [
    "exitCode",
    "executedAt",
    "genTraceId",
    "evalMode",
    "suggestionStatus",
    "execTraceIds",
    "executedCell",
    "generatedCell",
    "doc",
    "doc.cells",
    "doc.cells.0",
    "doc.cells.0.kind",
    "doc.cells.0.contents",
    "doc.cells.0.language",
    "doc.cells.0.outputs",
    "executedCell.kind",
    "executedCell.contents",
    "executedCell.language",
    "executedCell.outputs",
    "generatedCell.contents",
]
WRONG_VALUES = ["text", 7, 3.5, True, [], {}, ["x", 1]]
# Values of WRONG_VALUES that are in fact right for a field, by the Block's documented shape.
RIGHT = {
    "exitCode": [7],
    "genTraceId": ["text"],
    "evalMode": [True],
    "execTraceIds": [[]],
    "doc": [{}],
    "doc.cells": [[]],
    "doc.cells.0.contents": ["text"],
    "doc.cells.0.language": ["text"],
    "doc.cells.0.outputs": [[]],
    "executedCell.contents": ["text"],
    "executedCell.language": ["text"],
    "executedCell.outputs": [[]],
    "generatedCell.contents": ["text"],
}


def corpus() -> list[tuple[str, Mutation, str]]:
    """(name, mutation of a valid spec, expected field in the message)."""
    cases: list[tuple[str, Mutation, str]] = []
    for field in FIELDS:
        for value in WRONG_VALUES:
            if any(value == ok and type(value) is type(ok) for ok in RIGHT.get(field, [])):
                continue
            cases.append((f"type-{field}-{type(value).__name__}-{value!r}"[:60], setter(field, value), field))
    for field in ("doc.cells.0.kind", "doc.cells.0.contents", "executedCell.kind", "executedCell.contents"):
        cases.append((f"missing-{field}", deleter(field), field))
    huge = "x" * (MAX_CELL_CHARS + 1)
    cases += [
        ("ten-megabytes", setter("executedCell.contents", "y" * 10_000_000), "executedCell.contents"),
        ("over-the-cell-limit", setter("doc.cells.0.contents", huge), "doc.cells.0.contents"),
        ("nul-byte", setter("executedCell.contents", "ls\x00-la"), "executedCell.contents"),
        ("binary-garbage", setter("executedCell.contents", "\x00\x01\x02\xff\xfe"), "executedCell.contents"),
        ("lone-surrogate", setter("executedCell.contents", "ls \udc80"), "executedCell.contents"),
        ("surrogate-in-output", setter("doc.cells.0.outputs", ["ok", "bad \udcff"]), "doc.cells.0.outputs"),
        ("nested-outputs", setter("doc.cells.0.outputs", [[["deep"]]]), "doc.cells.0.outputs"),
        (
            "too-many-cells",
            setter("doc.cells", [{"kind": "markup", "contents": "c"}] * (MAX_CELLS + 1)),
            "doc.cells",
        ),
        ("unknown-kind", setter("executedCell.kind", "shell"), "executedCell.kind"),
        ("bad-status-enum", setter("suggestionStatus", "Maybe"), "suggestionStatus"),
        ("time-without-zone", setter("executedAt", "2024-06-01T10:00:00"), "executedAt"),
        ("time-not-a-time", setter("executedAt", "next tuesday"), "executedAt"),
    ]
    # (Unknown fields are not here: the API server prunes them by default, and refuses them with
    # fieldValidation=Strict, as kubectl sends; tests/test_emulator.py covers both.)
    return cases


async def test_malformed_blocks_are_refused_or_invalid_and_valid_ones_keep_learning(harness: Harness) -> None:
    api, emulator = harness.api, harness.emulator
    controller = await harness.start(hashing_dim=128)
    cases = corpus()
    assert len(cases) >= 100
    refused, accepted, good = 0, {}, []
    for i, (name, mutate, field) in enumerate(cases):
        body = block_body(f"bad-{i:03d}")
        mutate(body["spec"])
        # Connection: close, so that a body refused half-read (413) leaves no connection for the
        # server to wait on at shutdown.
        headers = {"Content-Type": "application/json", "Connection": "close"}
        async with api.session.post(api.path("blocks"), data=json.dumps(body), headers=headers) as resp:
            code, text = resp.status, await resp.text()
        if code == 413:  # too large for any API server (the real one stops at 3 MiB)
            refused += 1
        elif code == 422:
            refused += 1
            assert field.split(".")[-1] in json.loads(text)["message"], (name, text[:300])
        else:
            assert code == 201, (name, code, text[:300])
            accepted[f"bad-{i:03d}"] = (name, field)
        if i % 10 == 0:  # valid Blocks in between must keep learning
            good.append(f"good-{i:03d}")
            await api.call("POST", api.path("blocks"), block_body(good[-1], executed=f"kubectl logs pod-{i}"))
    long_name = "n" * 253  # at the name length limit
    await api.call("POST", api.path("blocks"), block_body(long_name))
    good.append(long_name)

    async def settled() -> bool:
        stored = {b["metadata"]["name"]: b for b in emulator.objects_of("blocklearn.dev/v1alpha1/blocks")}
        ready = {n: _condition(stored[n], "Ready") for n in [*accepted, *good]}
        return all(r is not None for r in ready.values())

    await eventually(settled, timeout=120, what="every Block reconciled")
    stored = {b["metadata"]["name"]: b for b in emulator.objects_of("blocklearn.dev/v1alpha1/blocks")}
    for block_name, (name, field) in accepted.items():
        ready = _condition(stored[block_name], "Ready")
        assert ready is not None and ready["status"] == "False" and ready["reason"] == "Invalid", name
        assert f"spec.{field}" in ready["message"], (name, ready["message"])
    learned = emulator.objects_of("blocklearn.dev/v1alpha1/examples")
    examples = {e["spec"]["blockRef"]["name"] for e in learned}  # named from content, not Blocks
    assert set(good) <= examples and not examples & set(accepted)
    assert all(len(e["metadata"]["name"]) <= 63 for e in learned)  # also the 253-character Block's
    assert controller.alive()
    # most are refused by the CRD schema (types and size caps); what passes it (NUL, surrogates, times)
    # is Invalid
    assert refused > 100 and len(accepted) >= 7, (refused, len(accepted))


def _condition(block: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in block.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def test_the_corpus_mutations_apply() -> None:
    for name, mutate, _ in corpus():
        body = copy.deepcopy(block_body("x"))
        mutate(body["spec"])
        assert body != block_body("x"), name
