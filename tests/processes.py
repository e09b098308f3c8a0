"""Real processes for end-to-end tests: started on free ports, logs kept, always stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from blocklearn.devtools.dev import free_port

__all__ = ["Process", "eventually", "free_port", "kubectl_binary", "metric", "run_kubectl", "scrape"]

T = TypeVar("T")


class Process:
    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.args = name, args
        self.log = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "blocklearn", *self.args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        return self

    async def exited(self, timeout: float = 60) -> int:
        """Wait for exit without blocking the event loop (the emulator may be serving in it)."""
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    async def astop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop without blocking the event loop: a stopping child may still call the emulator."""
        return await asyncio.to_thread(self.stop, sig)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 30,
    what: str = "condition",
    logs: Sequence[Process] | None = None,
) -> T:
    """Poll an async check until it returns something truthy; fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
            last = result
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(0.1)
    details = "\n".join(f"--- {p.name}\n{p.tail()}" for p in logs or [])
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{details}")


def scrape(url: str) -> str:
    """A /metrics page, as text."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def metric(text: str, name: str) -> float:
    """One unlabelled sample from a /metrics page."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def kubectl_binary() -> Path:
    """The kubectl that hack/install-tools.sh installs; the test fails, not skips, without it."""
    path = Path(__file__).resolve().parent.parent / ".bin" / "kubectl"
    if not path.exists():
        pytest.fail("kubectl is missing: run hack/install-tools.sh (hack/test.sh does)")
    return path


async def run_kubectl(config: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """The real kubectl against a kubeconfig, without blocking the event loop (the emulator may be
    serving in it): (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        str(kubectl_binary()),
        "--kubeconfig",
        str(config),
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), 120)
    return proc.returncode or 0, out.decode(), err.decode()
