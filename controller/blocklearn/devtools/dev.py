"""`blocklearn dev`: the whole system on a laptop, no cluster: the local Kubernetes API, the
controller and the index, each its own process on 127.0.0.1, logs and kubeconfig under `--dir`.

It heals as a local cluster (kind, minikube) does: a child that dies is restarted with backoff, 1 s
doubling to 30 s (back to 1 s once a run has lasted a minute, as the kubelet's CrashLoopBackOff
resets), and the lines it logged in the run that died are shown. Objects persist under `--dir` in the
emulator's journal, written as they change, so they survive a kill -9 of any child and a stop and
start of dev; `--ephemeral` keeps them in memory. Ctrl-C or SIGTERM stops the children in reverse
order.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from blocklearn.printable import printable

READY_TIMEOUT = 60
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
HEALTHY_AFTER = 60.0  # a run this long was a good one: the next crash backs off from the start
TAIL_BYTES = 64 * 1024


@dataclass
class Child:
    name: str
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    _handle: IO[bytes] | None = None
    offset: int = 0  # where this run's lines start in the log, which all runs share
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    restart_at: float | None = None  # when a dead child starts again

    def start(self) -> None:
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self._handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "blocklearn", *self.args],
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,  # a Ctrl-C reaches the supervisor, which stops children in order
        )
        self.started_at = time.monotonic()

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 15) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def tail(self, lines: int = 20) -> str:
        """The last lines this run logged (not an earlier run's), escaped for a terminal; none when
        its log was removed meanwhile."""
        try:
            with self.log.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                start = self.offset if self.offset <= size else 0  # a new file in its place
                log.seek(max(start, size - TAIL_BYTES))
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return printable("\n".join(text.splitlines()[-lines:]), keep="\n\t")


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _answers(url: str, want: int = 200) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == want)
    except (urllib.error.URLError, OSError):
        return False


class Stop(Exception):
    pass


class StartError(Exception):
    pass


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A port free on 127.0.0.1 now, chosen below the ephemeral range.

    A port the OS hands out for bind(0) comes from the range it also gives outgoing connections,
    and one of those took it before the child process bound it (seen in the tests)."""
    low = _ephemeral_low()
    for port in random.sample(range(max(1024, low - 12000), low), 64):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # everything tried is taken: let the OS pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Ports:
    api: int = 8001
    index: int = 8081
    metrics: int = 9090  # the controller's /metrics and /healthz

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port())


class Stack:
    """The local Kubernetes API, the controller and the index: started in order, each waited for."""

    def __init__(
        self, directory: Path, ports: Ports, persist: bool = False, env: dict[str, str] | None = None
    ):
        """`persist` keeps the emulator's objects in `directory`/state.json and its journal."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.ports = directory, ports
        self.kubeconfig = directory / "kubeconfig"
        self.api_url = f"http://127.0.0.1:{ports.api}"
        self.index_url = f"http://127.0.0.1:{ports.index}"
        liveness = f"http://127.0.0.1:{ports.metrics}/healthz"
        # Two malloc arenas, as in the image: Python with worker threads otherwise keeps one
        # fragmented arena per thread (measured in bench/soak.py).
        child_env = {"KUBECONFIG": str(self.kubeconfig), "MALLOC_ARENA_MAX": "2", **(env or {})}
        emulator_args = ["emulator", "--port", str(ports.api), "--kubeconfig", str(self.kubeconfig)]
        self.state = directory / "state.json" if persist else None
        if self.state is not None:
            emulator_args += ["--persist", str(self.state)]
        self.children = [
            Child("emulator", emulator_args, directory / "emulator.log"),
            Child(
                "controller",
                ["controller", "--metrics-port", str(ports.metrics)],
                directory / "controller.log",
                child_env,
            ),
            Child("index", ["index", "--port", str(ports.index)], directory / "index.log", child_env),
        ]
        self._ready = {
            "emulator": f"{self.api_url}/version",
            "controller": liveness,
            "index": f"{self.index_url}/readyz",
        }
        self.started: list[Child] = []
        self._starting = self._stop_pending = False

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT or SIGTERM: Stop, but never while a child is being started. Raised inside Popen,
        or before the new process is recorded, it would leave that process running unstopped."""
        if self._starting:
            self._stop_pending = True
        else:
            raise Stop()

    @contextlib.contextmanager
    def _starting_child(self) -> Iterator[None]:
        self._starting = True
        try:
            yield
        finally:
            self._starting = False
        if self._stop_pending:
            raise Stop()

    def start(self, on_started: Callable[[Child], None] = lambda child: None) -> None:
        self.kubeconfig.unlink(missing_ok=True)
        for child in self.children:
            with self._starting_child():
                child.start()
                self.started.append(child)
            deadline = time.monotonic() + READY_TIMEOUT
            while not _answers(self._ready[child.name]):
                if child.exited() is not None or time.monotonic() > deadline:
                    raise StartError(f"{child.name} did not start; its log ({child.log}):\n{child.tail()}")
                time.sleep(0.1)
            on_started(child)

    def dead(self) -> Child | None:
        return next((c for c in self.started if c.exited() is not None), None)

    def heal(self, report: Callable[[str], None]) -> None:
        """Restart each child that died, after its backoff; called in the supervisor's loop."""
        now = time.monotonic()
        for child in self.started:
            code = child.exited()
            if code is None:
                continue
            if child.restart_at is None:  # just died
                lasted = now - child.started_at
                again = child.backoff > 0 and lasted < HEALTHY_AFTER  # crashing in a loop: back off more
                child.backoff = min(BACKOFF_MAX, 2 * child.backoff) if again else BACKOFF_FIRST
                child.restart_at = now + child.backoff
                lines = "\n".join(f"  {line}" for line in child.tail().splitlines())
                report(
                    f"{child.name} exited ({describe_exit(code)}) after {lasted:.0f} s; the last lines"
                    f" it logged ({child.log}):\n{lines}\nrestarting {child.name} in {child.backoff:g} s"
                )
            elif now >= child.restart_at:
                child.stop()  # closes the log handle of the dead run
                with self._starting_child():
                    child.start()
                child.restarts += 1
                child.restart_at = None
                report(f"restarted {child.name} (restart {child.restarts}) log: {child.log}")

    def stop(self) -> dict[str, int | None]:
        for child in reversed(self.started):
            child.stop()
        return {c.name: c.exited() for c in self.started}


def run(directory: Path, ports: Ports, persist: bool = True) -> int:
    stack = Stack(directory, ports, persist)

    def report(message: str) -> None:
        print(f"blocklearn dev: {message}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, stack.on_signal)
    signal.signal(signal.SIGTERM, stack.on_signal)
    code = 0
    try:
        stack.start(lambda child: print(f"started {child.name:<10} log: {child.log}", flush=True))
        kept = f"kept in {stack.state}" if stack.state is not None else "in memory only (--ephemeral)"
        print(
            f"\nBlocklearn is running (Ctrl-C stops it; objects are {kept}). Next:\n"
            f"  export KUBECONFIG={stack.kubeconfig.resolve()}\n"
            "  kubectl apply -f examples/blocks/\n"
            f'  blocklearn search "how do I list the pods of kube-system" --url {stack.index_url}\n',
            flush=True,
        )
        while True:
            stack.heal(report)
            time.sleep(0.5)
    except StartError as exc:
        report(str(exc))
        code = 1
    except Stop:
        print("\nstopping...", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(f"stopped: {json.dumps(stack.stop())}", flush=True)
    return code
