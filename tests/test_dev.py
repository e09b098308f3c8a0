"""The README's first command, `hack/dev.sh`, driven as a person would: real kubectl, real search."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocklearn.embed.semantic import default_cache_dir
from tests.processes import free_port, kubectl_binary

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.needs_tools("kubectl", "weights")]
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
    def __init__(self, directory: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.dir = directory
        self.api_port, self.index_port, self.metrics_port = free_port(), free_port(), free_port()
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
        # A HOME of its own, but this machine's model cache, as hack/dev.sh uses it (built once, not at
        # each start: tests/test_offline.py and tests/test_semantic.py test the build).
        self.env = {
            **os.environ,
            "KUBECONFIG": str(directory / "kubeconfig"),
            "HOME": str(directory.parent),
            "BLOCKLEARN_MODEL_CACHE_DIR": os.environ.get(
                "BLOCKLEARN_MODEL_CACHE_DIR", str(default_cache_dir())
            ),
            **(env or {}),
        }
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
        header, *rows = [line.split() for line in table.splitlines()]
        assert header == ["NAME", "LEARNED", "REASON", "EXAMPLE", "SUGGESTION", "RETRIEVAL", "AGE"]
        # What the README's walkthrough shows: these Blocks name no Example they were shown.
        shown = {row[0]: tuple(row[4:6]) for row in rows}
        assert shown["coredns-logs"] == ("Corrected", "NotRecorded")
        assert shown["accepted-as-is"] == ("Accepted", "NotRecorded")
        assert shown["bad-timestamp"] == shown["from-eval"] == ("<none>", "<none>")
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


def test_dev_keeps_what_it_learned_across_a_stop_and_start_unless_ephemeral(dev_dir: Path) -> None:
    dev = Dev(dev_dir)
    try:
        assert f"objects are kept in {dev_dir / 'state.json'}" in dev.output()
        dev.kubectl("apply", "-f", str(ROOT / "examples" / "blocks" / "01-pods-kube-system.yaml"))
        assert wait_for(lambda: reasons(dev).get("pods-kube-system") == "Learned")
    finally:
        assert dev.stop() == 0
    again = Dev(dev_dir)
    try:
        assert reasons(again) == {"pods-kube-system": "Learned"}
        assert wait_for(lambda: again.search("pods of kube-system")["results"])
    finally:
        assert again.stop() == 0
    shutil.rmtree(dev_dir / "cache", ignore_errors=True)
    fresh = Dev(dev_dir, "--ephemeral")
    try:
        assert "objects are in memory only (--ephemeral)" in fresh.output()
        assert reasons(fresh) == {}
    finally:
        assert fresh.stop() == 0


def children(pid: int) -> dict[str, int]:
    """The processes `blocklearn dev` (pid) runs, by subcommand, read from /proc."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"blocklearn" in argv:
                found[argv[argv.index(b"blocklearn") + 1].decode()] = int(child)
    return found


def teaching_block(i: int) -> dict:
    words = ["pods", "nodes", "services", "secrets", "events", "leases", "jobs", "volumes"]
    what = f"{words[i % len(words)]} of team {i}"
    return {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Block",
        "metadata": {"name": f"heal-{i}"},
        "spec": {
            "doc": {"cells": [{"kind": "markup", "contents": f"list the {what}"}]},
            "generatedCell": {"kind": "code", "language": "bash", "contents": "kubectl get all"},
            "executedCell": {"kind": "code", "language": "bash", "contents": f"kubectl get {what}"},
            "exitCode": 0,
        },
    }


class Applier(threading.Thread):
    """Creates Blocks one after the other as a client does: retrying while the API is down, and
    taking 409 AlreadyExists as done (the create went through, its answer was lost)."""

    def __init__(self, api_port: int, count: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{api_port}/apis/blocklearn.dev/v1alpha1/namespaces/default/blocks"
        self.count, self.done = count, 0

    def run(self) -> None:
        for i in range(self.count):
            body = json.dumps(teaching_block(i)).encode()
            while True:
                req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=10):
                        break
                except urllib.error.HTTPError as exc:
                    if exc.code == 409:
                        break
                    time.sleep(0.2)
                except OSError:
                    time.sleep(0.2)
            self.done = i + 1
            time.sleep(0.05)


def test_dev_heals_each_child_killed_while_blocks_are_applied(dev_dir: Path) -> None:
    dev_dir.mkdir(parents=True)
    # An earlier run's traceback in the same log must not be shown as the cause of a new death.
    (dev_dir / "index.log").write_text("Traceback (most recent call last):\nRuntimeError: OLD-UNRELATED\n")
    dev = Dev(dev_dir, env={"BLOCKLEARN_EMBEDDER": "hashing"})
    count = 40
    try:
        applier = Applier(dev.api_port, count)
        applier.start()
        for name in ("emulator", "controller", "index"):
            wait_for(lambda: applier.done >= 5, timeout=120)
            before = applier.done
            pid = children(dev.proc.pid)[name]
            os.kill(pid, signal.SIGKILL)
            assert wait_for(lambda n=name: f"restarted {n} (restart 1)" in dev.output(), timeout=60), (
                dev.output()
            )
            assert wait_for(lambda n=name, p=pid: children(dev.proc.pid).get(n, p) != p, timeout=30)
            wait_for(lambda b=before: applier.done >= min(count, b + 5), timeout=120)  # applies go on
        applier.join(300)
        assert applier.done == count

        def settled() -> bool:
            blocks = json.loads(dev.kubectl("get", "blk", "-o", "json"))["items"]
            refs = [(b.get("status") or {}).get("exampleRef") for b in blocks]
            return len(blocks) == count and all(refs)

        assert wait_for(settled, timeout=180), dev.kubectl("get", "blk")
        blocks = json.loads(dev.kubectl("get", "blk", "-o", "json"))["items"]
        examples = json.loads(dev.kubectl("get", "ex", "-o", "json"))["items"]
        refs = [b["status"]["exampleRef"] for b in blocks]
        # Every teaching Block has exactly one Example, and no Example is left over or doubled.
        assert len(set(refs)) == count and {e["metadata"]["name"] for e in examples} == set(refs)
        assert len(examples) == count
        hit = wait_for(lambda: dev.search("list the secrets of team 3")["results"])
        assert hit[0]["answer"][0]["contents"] == "kubectl get secrets of team 3"

        output = dev.output()
        for name in ("emulator", "controller", "index"):
            assert f"blocklearn dev: {name} exited (killed by SIGKILL)" in output
        assert "OLD-UNRELATED" not in output  # the tail shown is the dead run's own
        assert "Serving search" in output.split("index exited", 1)[1]
    finally:
        assert dev.stop() == 0
    again = Dev(dev_dir, env={"BLOCKLEARN_EMBEDDER": "hashing"})
    try:  # and all of it is still there after a stop and start
        assert len(json.loads(again.kubectl("get", "ex", "-o", "json"))["items"]) == count
    finally:
        assert again.stop() == 0
