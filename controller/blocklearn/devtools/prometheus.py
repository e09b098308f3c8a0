"""A real Prometheus server for the tests and benchmarks: scrapes local processes, loads rule files,
answers PromQL over its HTTP API. The binary comes from Debian (hack/install-system-tools.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from blocklearn.devtools.dev import free_port


class PrometheusError(RuntimeError):
    """Prometheus is missing, did not start, or refused a query."""


class Prometheus:
    """One Prometheus process with its own data directory, scraping `targets` (job -> host:port)."""

    def __init__(
        self,
        directory: Path,
        targets: dict[str, str],
        rule_files: list[Path] | None = None,
        interval: str = "1s",
        port: int | None = None,
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusError("prometheus is missing: run hack/install-system-tools.sh")
        self.binary, self.directory = binary, directory
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = directory / "prometheus.yml"
        self.log = directory / "prometheus.log"
        directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": interval, "evaluation_interval": interval},
                    "rule_files": [str(p) for p in rule_files or []],
                    "scrape_configs": [
                        {"job_name": job, "static_configs": [{"targets": [address]}]}
                        for job, address in targets.items()
                    ],
                }
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Prometheus:
        args = [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.directory / 'tsdb'}"]
        args.append(f"--web.listen-address=127.0.0.1:{self.port}")
        self.proc = subprocess.Popen(args, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise PrometheusError(f"prometheus did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """One call to the HTTP API; its `data`."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"{path} {params}: {exc.read().decode(errors='replace')}") from exc
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        return list(self.api("query", **params)["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return list(self.api("query_range", **params)["result"])

    def targets_up(self) -> int:
        return sum(1 for t in self.api("targets")["activeTargets"] if t["health"] == "up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
