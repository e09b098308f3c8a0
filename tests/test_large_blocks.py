"""A large Block's learning rule (redaction reads every character) runs off the event loop, so one
Block built to be slow does not stall the reconciles, watches and writes of all the others."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from blocklearn.controller import reconcilers as reconcilers_module
from blocklearn.controller.reconcilers import LARGE_BLOCK_CHARS
from blocklearn.learn import rule as learning
from tests.conftest import block_body
from tests.harness import Harness


@pytest.mark.parametrize(("cells", "off_loop"), [(1, False), (LARGE_BLOCK_CHARS // 4000 + 1, True)])
async def test_the_learning_rule_of_a_large_block_runs_in_a_thread(
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    cells: int,
    off_loop: bool,
) -> None:
    threads: list[threading.Thread] = []

    def watched(*args: Any) -> learning.Decision:
        threads.append(threading.current_thread())
        return learning.decide(*args)

    monkeypatch.setattr(reconcilers_module, "decide", watched)
    reconcilers = harness.reconcilers()
    body = block_body("big")
    text = ("list every pod " * 300)[:4000]  # a cell holds at most 4,096 characters (the CRD)
    body["spec"]["doc"]["cells"] = [{"kind": "markup", "contents": text}] * cells
    _, created = await harness.api.call("POST", harness.api.path("blocks"), body)
    reconcilers.blocks.put(created)
    await reconcilers.reconcile_block(("default", "big"))
    assert [t is not threading.main_thread() for t in threads] == [off_loop]
    (example,) = harness.examples().values()  # learned all the same
    assert example["spec"]["answer"][0]["contents"] == "kubectl get pods -A"
