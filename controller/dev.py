"""`blocklearn dev`: the whole system on a laptop, no cluster: the local Kubernetes API, the
controller and the index, each its own process on 127.0.0.1, logs and kubeconfig under `--dir`.

Ctrl-C or SIGTERM stops them in reverse order; if one dies, the others are stopped and its log tail
is printed. Objects live in memory unless `--persist` saves them under `--dir` at stop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

READY_TIMEOUT = 60


@dataclass
class Child:
    name: str
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    _handle: IO[bytes] | None = None

    def start(self) -> None:
        self._handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller", *self.args],
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,  # a Ctrl-C reaches the supervisor, which stops children in order
        )

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

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _answers(url: str, want: int = 200) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == want)
    except (urllib.error.URLError, OSError):
        return False


class Stop(Exception):
    pass


def run(
    directory: Path, api_port: int, index_port: int, metrics_port: int, liveness_port: int, persist: bool
) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    kubeconfig = directory / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    api = f"http://127.0.0.1:{api_port}"
    index = f"http://127.0.0.1:{index_port}"
    env = {"KUBECONFIG": str(kubeconfig)}
    liveness = f"http://127.0.0.1:{liveness_port}/healthz"
    emulator_args = ["emulator", "--port", str(api_port), "--kubeconfig", str(kubeconfig)]
    if persist:
        emulator_args += ["--persist", str(directory / "state.json")]
    children = [
        Child("emulator", emulator_args, directory / "emulator.log"),
        Child(
            "controller",
            [
                "controller",
                "--metrics-port",
                str(metrics_port),
                "--liveness",
                liveness,
            ],
            directory / "controller.log",
            env,
        ),
        Child("index", ["index", "--port", str(index_port)], directory / "index.log", env),
    ]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise Stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started: list[Child] = []
    code = 0
    try:
        for child in children:
            child.start()
            started.append(child)
            ready_url = {
                "emulator": f"{api}/version",
                "controller": liveness,
                "index": f"{index}/readyz",
            }[child.name]
            deadline = time.monotonic() + READY_TIMEOUT
            while not _answers(ready_url):
                if child.exited() is not None or time.monotonic() > deadline:
                    print(
                        f"blocklearn dev: {child.name} did not start; its log ({child.log}):\n{child.tail()}",
                        file=sys.stderr,
                    )
                    return 1
                time.sleep(0.1)
            print(f"started {child.name:<10} log: {child.log}", flush=True)
        print(
            "\nBlocklearn is running (Ctrl-C stops it). Next:\n"
            f"  export KUBECONFIG={kubeconfig.resolve()}\n"
            "  kubectl apply -f examples/blocks/\n"
            f'  blocklearn search "how do I list the pods of kube-system" --url {index}\n',
            flush=True,
        )
        while True:
            for child in started:
                if child.exited() is not None:
                    print(
                        f"blocklearn dev: {child.name} exited with {child.exited()}; log:\n{child.tail()}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
    except Stop:
        print("\nstopping...", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(started):
            child.stop()
        summary = {c.name: c.exited() for c in started}
        print(f"stopped: {json.dumps(summary)}", flush=True)
    return code
