"""The real processes of the process-level tests: the emulator (served by the test's event loop, or a
`blocklearn emulator` child for a test that blocks), controllers and indexes, each on free ports with
its own log and environment, always stopped; a failing test shows every running child's last lines.

What needs no process (the reconcilers' and the index's behaviour) is tested in-process with
tests/harness.py; these are for what only processes show: a process killed, failover, kubectl,
Prometheus, the HTTP servers and commands as a user meets them.

    async def test_something(stack: Stack) -> None:          # the emulator in this event loop
        controller = stack.controller(env={"BLOCKLEARN_RESYNC_SECONDS": "1"})
        index = stack.index(probe_port=True)
        await stack.ready(controller, index)

    with Stack.started(directory, env) as stack:              # the emulator as a child (sync tests)
        stack.wait_ready(stack.controller(), stack.index())
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from blocklearn.devtools.emulator.serve import kubeconfig as kubeconfig_text
from tests.processes import Process, eventually, free_port

# Every child's settings unless a test says otherwise: the embedder that needs no weights, retries
# that do not wait out the production backoff.
ENV = {"BLOCKLEARN_EMBEDDER": "hashing", "BLOCKLEARN_RETRY_BASE_SECONDS": "0.2"}


def get_json(url: str, timeout: float = 5) -> tuple[int, Any]:
    """GET a URL: (status, JSON body); (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError:
        return 0, {}


class Child(Process):
    """A controller, an index or the emulator, and the port it answers HTTP on: the index's search
    and probes, the controller's /metrics and /healthz, the emulator's API."""

    def __init__(self, name: str, args: list[str], directory: Path, env: dict[str, str], port: int) -> None:
        super().__init__(name, args, directory, env)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = {"controller": "/healthz", "index": "/readyz", "emulator": "/version"}[args[0]]

    def get(self, path: str, timeout: float = 5) -> tuple[int, Any]:
        """GET a path: (status, JSON body); (0, {}) when nothing answers."""
        return get_json(self.url + path, timeout)

    def ready(self) -> bool:
        return self.get(self.ready_path)[0] == 200

    def metric(self, sample: str) -> float:
        """The sum of a sample's lines on /metrics (`name` or `name{labels}` as printed); NaN when
        nothing answers."""
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as resp:
                page = resp.read().decode()
        except OSError:
            return float("nan")
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(sample + " ")
        )


class Stack:
    """The processes a test runs against one API; `stop` ends them all, in reverse order."""

    running: ClassVar[list[Stack]] = []  # what a failing test's report shows the logs of

    def __init__(self, directory: Path, api_url: str, env: dict[str, str] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.api_url = directory, api_url
        self.env = {**ENV, **(env or {})}
        self.kubeconfig = self.kubeconfig_for("local")
        self.children: list[Child] = []
        Stack.running.append(self)

    @classmethod
    @contextlib.contextmanager
    def started(cls, directory: Path, env: dict[str, str] | None = None) -> Iterator[Stack]:
        """A stack whose emulator is a child process too, for tests that block (a synchronous client,
        raw sockets) and so cannot serve the API from their own event loop."""
        port = free_port()
        stack = cls(directory, f"http://127.0.0.1:{port}", env)
        try:
            emulator = stack._start("emulator", ["emulator", "--port", str(port)], {}, port)
            stack.wait_ready(emulator)
            yield stack
        finally:
            stack.stop()

    def kubeconfig_for(self, token: str) -> Path:
        """A kubeconfig for the API with a bearer token of its own: the emulator records who called."""
        path = self.directory / f"kubeconfig-{token}"
        path.write_text(kubeconfig_text(self.api_url).replace("token: local", f"token: {token}"))
        return path

    def controller(
        self,
        name: str = "controller",
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        kubeconfig: Path | None = None,
    ) -> Child:
        """`blocklearn controller`, its /metrics and /healthz on a port of its own."""
        port = free_port()
        return self._start(
            name, ["controller", "--metrics-port", str(port), *(args or [])], env, port, kubeconfig
        )

    def index(
        self,
        name: str = "index",
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        kubeconfig: Path | None = None,
        port: int | None = None,
    ) -> Child:
        """`blocklearn index`, serving search on a port of its own (or `port`: a restart's)."""
        port = port or free_port()
        return self._start(name, ["index", "--port", str(port), *(args or [])], env, port, kubeconfig)

    def child(self, name: str) -> Child:
        """The child of this name started last."""
        return next(c for c in reversed(self.children) if c.name == name)

    def restart(self, child: Child, name: str) -> Child:
        """The same command again (after a kill): same ports, settings and kubeconfig, a log of its own."""
        again = Child(name, child.args, self.directory, child.env, child.port)
        again.start()
        self.children.append(again)
        return again

    def _start(
        self,
        name: str,
        args: list[str],
        env: dict[str, str] | None,
        port: int,
        kubeconfig: Path | None = None,
    ) -> Child:
        environment = {**self.env, "KUBECONFIG": str(kubeconfig or self.kubeconfig), **(env or {})}
        child = Child(name, args, self.directory, environment, port)
        child.start()
        self.children.append(child)
        return child

    def wait_ready(self, *children: Child, timeout: float = 120) -> None:
        """Block until each child answers its readiness path; fail with the logs if one exits first."""
        deadline = time.monotonic() + timeout
        for child in children:
            while not child.ready():
                assert child.alive(), f"{child.name} exited:\n{self.logs()}"
                assert time.monotonic() < deadline, f"{child.name} not ready:\n{self.logs()}"
                time.sleep(0.1)

    async def ready(self, *children: Child, timeout: float = 120) -> None:
        """Wait, without blocking the event loop that serves the emulator, for each child to be ready."""

        for child in children:

            async def answers(child: Child = child) -> bool:
                if not child.alive():  # fail now, not at the timeout
                    pytest.fail(f"{child.name} exited:\n{self.logs()}")
                return await asyncio.to_thread(child.ready)

            await eventually(answers, timeout, f"{child.name} ready", self.children)

    async def until(self, check: Any, what: str, timeout: float = 120) -> Any:
        """`eventually`, with these processes' logs when it times out."""
        return await eventually(check, timeout, what, self.children)

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {c.name} ({c.log})\n{c.tail(lines)}" for c in self.children)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        if self in Stack.running:
            Stack.running.remove(self)

    async def astop(self) -> None:
        """Stop without blocking the event loop: a stopping child may still call the emulator."""
        await asyncio.to_thread(self.stop)
