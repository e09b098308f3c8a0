"""The README's first command, `hack/dev.sh`, driven as a person would: real kubectl, real search."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import free_port, kubectl_binary

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
LEARNED = {
    "pods-kube-system",
    "coredns-logs",
    "pending-pod",
    "rollout-restart",
    "node-usage",
    "disk-usage",
    "tar-backup",
    "port-forward",
}
REASONS = {
    "accepted-as-is": "Unchanged",
    "failed-run": "ExecutionFailed",
    "not-run-yet": "NotExecuted",
    "from-eval": "EvalMode",
    "bad-timestamp": "Invalid",
    **dict.fromkeys(LEARNED, "Learned"),
}


class Dev:
    def __init__(self, directory: Path, *extra: str) -> None:
        self.dir = directory
        self.api_port, self.index_port, self.metrics_port = free_port(), free_port(), free_port()
        self.liveness_port = free_port()
        self.log = directory.parent / f"{directory.name}-dev.out"
        args = [
            str(ROOT / "hack" / "dev.sh"),
            "--dir",
            str(directory),
            "--api-port",
            str(self.api_port),
            "--index-port",
            str(self.index_port),
            "--metrics-port",
            str(self.metrics_port),
            *extra,
        ]
        self.env = {**os.environ, "KUBECONFIG": str(directory / "kubeconfig"), "HOME": str(directory.parent)}
        self.offset = self.log.stat().st_size if self.log.exists() else 0  # the log is shared by restarts
        self.proc = subprocess.Popen(args, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 120
        while "Blocklearn is running" not in self.output():
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text()[self.offset :] if self.log.exists() else ""

    def kubectl(self, *args: str) -> str:
        out = subprocess.run(
            [str(kubectl_binary()), *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def search(self, query: str) -> dict:
        out = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "blocklearn"),
                "search",
                query,
                "-k",
                "1",
                "-o",
                "json",
                "--url",
                f"http://127.0.0.1:{self.index_port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(30)


@pytest.fixture
def dev_dir(tmp_path: Path) -> Iterator[Path]:
    kubectl_binary()
    yield tmp_path / "dev"


def wait_for(check, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def reasons(dev: Dev) -> dict[str, str]:
    blocks = json.loads(dev.kubectl("get", "blk", "-o", "json"))["items"]
    return {
        b["metadata"]["name"]: next(
            (c["reason"] for c in b.get("status", {}).get("conditions", []) if c["type"] == "Learned"), ""
        )
        for b in blocks
    }


def test_dev_learns_from_the_examples_applied_with_kubectl(dev_dir: Path) -> None:
    dev = Dev(dev_dir)
    try:
        assert f"export KUBECONFIG={(dev_dir / 'kubeconfig').resolve()}" in dev.output()
        applied = dev.kubectl("apply", "-f", str(ROOT / "examples" / "blocks"))  # no --validate=false
        assert applied.count("created") == 13
        wait_for(lambda: reasons(dev) == REASONS)
        assert reasons(dev) == REASONS
        table = dev.kubectl("get", "blk")
        assert table.splitlines()[0].split() == ["NAME", "LEARNED", "REASON", "EXAMPLE", "AGE"]
        examples = json.loads(dev.kubectl("get", "ex", "-o", "json"))["items"]
        assert {e["spec"]["blockRef"]["name"] for e in examples} == LEARNED  # named from their content

        hit = wait_for(lambda: dev.search("the coredns pod crashes, show its previous logs")["results"])
        assert hit[0]["answer"][0]["contents"] == "kubectl logs -n kube-system deploy/coredns --previous"

        described = dev.kubectl("describe", "blk", "bad-timestamp")
        assert "not an RFC 3339 time" in described and "Warning  Invalid" in described

        coredns = next(
            e["metadata"]["name"] for e in examples if e["spec"]["blockRef"]["name"] == "coredns-logs"
        )
        dev.kubectl("delete", "blk", "coredns-logs")  # a person's delete takes its Example along
        assert wait_for(lambda: coredns not in dev.kubectl("get", "ex", "-o", "name"))
        explained = dev.kubectl("explain", "block.spec")
        assert "executedCell" in explained and "The cell the person executed" in explained
    finally:
        assert dev.stop() == 0
    assert 'stopped: {"emulator": 0, "controller": 0, "index": 0}' in dev.output()


def test_dev_starts_again_and_persists_only_when_asked(dev_dir: Path) -> None:
    dev = Dev(dev_dir, "--persist")
    try:
        dev.kubectl("apply", "-f", str(ROOT / "examples" / "blocks" / "01-pods-kube-system.yaml"))
        assert wait_for(lambda: reasons(dev).get("pods-kube-system") == "Learned")
    finally:
        assert dev.stop() == 0
    again = Dev(dev_dir, "--persist")
    try:
        assert reasons(again) == {"pods-kube-system": "Learned"}
        assert wait_for(lambda: again.search("pods of kube-system")["results"])
    finally:
        assert again.stop() == 0
    shutil.rmtree(dev_dir / "cache", ignore_errors=True)
    fresh = Dev(dev_dir)
    try:
        assert reasons(fresh) == {}
    finally:
        assert fresh.stop() == 0
