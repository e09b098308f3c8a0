"""The README's worked example, run exactly as written against `blocklearn dev` (hack/dev.sh): an
assistant loop records a correction with the client and gets it back as a few-shot example."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_dev import ROOT, Dev, dev_dir, reasons, wait_for

__all__ = ["dev_dir"]  # the fixture, imported for use here
pytestmark = [pytest.mark.e2e, pytest.mark.needs_tools("kubectl", "weights")]
FIX = "kubectl logs -n kube-system deploy/coredns --previous"


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- assistant-loop: begin -->\n```python\n(.*?)```\n<!-- assistant-loop: end -->", readme, re.S
    )
    assert block, "the README's assistant-loop example is missing"
    return block.group(1)


def test_the_readme_assistant_loop_learns_a_correction_and_uses_it(dev_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "assistant_loop.py"
    script.write_text(readme_example())
    dev = Dev(dev_dir)
    try:
        env = {**dev.env, "BLOCKLEARN_URL": f"http://127.0.0.1:{dev.index_port}"}
        run = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        shown, _, turns = run.stdout.rpartition("]\n")
        messages = json.loads(shown + "]")
        assert messages[-1] == {"role": "assistant", "content": f"```bash\n{FIX}\n```"}
        assert messages[0]["role"] == "user" and "CoreDNS keeps crashing" in messages[0]["content"]
        assert turns.splitlines() == ["turn 1 suggested: kubectl logs coredns", f"turn 2 suggested: {FIX}"]
        # Two Blocks, named from their trace ids: the correction learned, the accepted one not.
        assert wait_for(lambda: sorted(reasons(dev).values()) == ["Learned", "Unchanged"])
        # Turn 1 was shown nothing (an empty index); turn 2 was shown the correction and followed it.
        assert wait_for(lambda: outcomes(dev) == [("Accepted", "Hit"), ("Corrected", "NotRecorded")])
    finally:
        assert dev.stop() == 0


def outcomes(dev: Dev) -> list[tuple[str, str]]:
    blocks = json.loads(dev.kubectl("get", "blk", "-o", "json"))["items"]
    status = [b.get("status", {}) for b in blocks]
    return sorted((s.get("suggestionOutcome", ""), s.get("retrievalOutcome", "")) for s in status)


def test_after_the_walkthrough_turn_1_is_already_right_and_its_block_ends_unchanged(
    dev_dir: Path, tmp_path: Path
) -> None:
    # What the README says the example shows on a stack that went through the walkthrough.
    script = tmp_path / "assistant_loop.py"
    script.write_text(readme_example())
    dev = Dev(dev_dir)
    try:
        dev.kubectl("apply", "-f", str(ROOT / "examples" / "blocks"))
        assert wait_for(lambda: reasons(dev).get("coredns-logs") == "Learned")
        assert wait_for(lambda: dev.search("CoreDNS keeps crashing")["results"])
        walkthrough = set(reasons(dev))
        env = {**dev.env, "BLOCKLEARN_URL": f"http://127.0.0.1:{dev.index_port}"}
        run = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.splitlines()[-2:] == [f"turn 1 suggested: {FIX}", f"turn 2 suggested: {FIX}"]

        def loop_blocks() -> list[str]:
            return [r for name, r in reasons(dev).items() if name not in walkthrough]

        assert wait_for(lambda: loop_blocks() == ["Unchanged", "Unchanged"]), reasons(dev)
    finally:
        assert dev.stop() == 0
