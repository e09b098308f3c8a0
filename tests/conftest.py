from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import kmock
import pytest

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.devtools.emulator.serve import kubeconfig
from blocklearn.embed.semantic import INSTALL_COMMAND, WEIGHTS_PACKAGE
from blocklearn.resources.crds import all_crds
from tests.fake_embeddings import FakeEmbeddings
from tests.processes import free_port
from tests.stack import Stack

if TYPE_CHECKING:
    from tests.harness import Harness

BIN = Path(__file__).resolve().parent.parent / ".bin"
# What `@pytest.mark.needs_tools(...)` may name: how to tell it is here, and how to get it.
TOOLS: dict[str, tuple[Callable[[], bool], str]] = {
    "helm": (lambda: (BIN / "helm").exists(), "helm is missing: run hack/install-tools.sh"),
    "kubectl": (lambda: (BIN / "kubectl").exists(), "kubectl is missing: run hack/install-tools.sh"),
    "promtool": (
        lambda: bool(shutil.which("promtool")),
        "promtool is missing: run hack/install-system-tools.sh",
    ),
    "prometheus": (
        lambda: bool(shutil.which("prometheus")),
        "prometheus is missing: run hack/install-system-tools.sh",
    ),
    "strace": (
        lambda: all(shutil.which(t) for t in ("strace", "unshare", "ip")),
        "strace, unshare or ip is missing (Debian: strace, util-linux, iproute2):"
        " run hack/install-system-tools.sh",
    ),
    "weights": (
        lambda: importlib.util.find_spec(WEIGHTS_PACKAGE) is not None,
        f"the semantic model's weights are missing: {INSTALL_COMMAND}",
    ),
    "podman": (
        lambda: bool(shutil.which("podman")),
        "podman is missing: apt-get install -y podman debootstrap, then hack/image.sh build",
    ),
}


def in_ci() -> bool:
    """CI (CI=true, as CI services set it) installs every tool: there a missing one fails the run."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `needs_tools("helm", ...)` skips, naming what to install, when one is missing;
    under CI it fails instead, as hack/test.sh installs them all."""
    missing = [
        TOOLS[tool][1]
        for mark in item.iter_markers("needs_tools")
        for tool in mark.args
        if not TOOLS[tool][0]()
    ]
    if missing:
        (pytest.fail if in_ci() else pytest.skip)("; ".join(dict.fromkeys(missing)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, object]:
    """A test that fails while processes of a Stack run shows their last lines with its failure."""
    report = yield
    if isinstance(report, pytest.TestReport) and report.failed:
        for stack in Stack.running:
            report.sections.append((f"processes of {stack.directory}", stack.logs()))
    return report


class Api:
    """A small HTTP client for the emulator, for tests."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    def path(self, plural: str, namespace: str = "default", name: str = "", sub: str = "") -> str:
        p = f"{self.base}/apis/blocklearn.dev/v1alpha1/namespaces/{namespace}/{plural}"
        return p + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    async def call(
        self,
        method: str,
        url: str,
        body: object = None,
        ctype: str = "application/merge-patch+json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict]:
        hdrs = {"Content-Type": ctype if method == "PATCH" else "application/json", **(headers or {})}
        async with self.session.request(method, url, json=body, headers=hdrs) as resp:
            return resp.status, await resp.json(content_type=None)

    async def create_namespace(self, name: str) -> None:
        """Objects go only into a namespace that exists, as in a cluster: make it first."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        code, answer = await self.call("POST", f"{self.base}/api/v1/namespaces", body)
        assert code == 201, answer


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator()
    emu.register_crds(all_crds())
    async with emu, kmock.Server(emu):
        yield emu
        # A watch whose client is gone waits for the next event before it notices; end them all, or
        # the server's shutdown waits 60 s for their handlers.
        emu.drop_watches()


@pytest.fixture
async def api(emulator: Emulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, str(emulator.url).rstrip("/"))


@pytest.fixture
async def harness(
    emulator: Emulator, api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    """The controller's parts (and the index's, if asked) in this event loop: tests/harness.py."""
    from tests.harness import Harness  # it imports this module

    running = Harness(emulator, api, tmp_path, monkeypatch)
    monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))  # what the index's code reads
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def stack(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Stack]:
    """Real controllers and indexes against the emulator this event loop serves (tests/stack.py)."""
    running = Stack(tmp_path / "stack", str(emulator.url).rstrip("/"))
    try:
        yield running
    finally:
        await running.astop()


def block_body(
    name: str,
    generated: str = "kubectl get pods",
    executed: str = "kubectl get pods -A",
    doc: str = "list every pod",
) -> dict:
    return {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Block",
        "metadata": {"name": name},
        "spec": {
            "doc": {"cells": [{"kind": "markup", "contents": doc}]},
            "generatedCell": {"kind": "code", "language": "bash", "contents": generated},
            "executedCell": {"kind": "code", "language": "bash", "contents": executed},
            "exitCode": 0,
        },
    }


def is_embedded(example: dict | None) -> bool:
    """Embedded=True with a textHash: what "embedded" means for every embedder, `hashing` included,
    which stores no vector (the index reads the Example's text)."""
    status = (example or {}).get("status") or {}
    conditions = status.get("conditions") or []
    return bool(status.get("textHash")) and any(
        c.get("type") == "Embedded" and c.get("status") == "True" for c in conditions
    )


def kubeconfig_for(emulator: Emulator, directory: Path) -> Path:
    """A kubeconfig file pointing at the emulator, for the real processes a test starts."""
    path = directory / "kubeconfig"
    path.write_text(kubeconfig(str(emulator.url).rstrip("/")))
    return path


@pytest.fixture
async def embeddings() -> AsyncIterator[FakeEmbeddings]:
    fake = FakeEmbeddings(free_port())
    await fake.up()
    yield fake
    await fake.down()
