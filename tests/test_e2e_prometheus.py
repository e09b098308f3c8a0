"""A real Prometheus scrapes the real controller and index; a real failure fires an alert.

The embedder is an OpenAI-compatible endpoint served by the test. Stopping it is the failure: the
controller's embedding requests are refused, BlocklearnEmbedderFailing goes to firing in
Prometheus's own API, and it resolves after the endpoint returns. The rules are the shipped file with
only the `for:` durations and range windows shortened, so the test takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api, block_body, kubeconfig_for
from tests.fake_embeddings import FakeEmbeddings
from tests.processes import Process, eventually, free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "charts" / "blocklearn" / "files" / "alerts.yaml"


def shortened_rules(tmp: Path) -> Path:
    text = RULES.read_text()
    text = re.sub(r"for: \d+m", "for: 3s", text)
    text = re.sub(r"\[(5|10|15)m\]", "[15s]", text)
    path = tmp / "alerts.yaml"
    path.write_text(text)
    assert yaml.safe_load(text)["groups"][0]["rules"]
    return path


def alerts(port: int) -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as resp:
        body = json.load(resp)
    return {a["labels"]["alertname"]: a["state"] for a in body["data"]["alerts"]}


def targets_up(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as resp:
        body = json.load(resp)
    return sum(1 for t in body["data"]["activeTargets"] if t["health"] == "up")


async def test_embedder_down_fires_an_alert_in_prometheus_and_recovers(
    api: Api, emulator: Emulator, embeddings: FakeEmbeddings, tmp_path: Path
) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: run hack/install-system-tools.sh (hack/test.sh does)")
    config = kubeconfig_for(emulator, tmp_path)
    metrics_port, index_port, prom_port = free_port(), free_port(), free_port()
    env = {
        "KUBECONFIG": str(config),
        **embeddings.env(),
        "BLOCKLEARN_RETRY_BASE_SECONDS": "0.5",
        "BLOCKLEARN_RETRY_MAX_SECONDS": "2",
        "BLOCKLEARN_EMBED_TIMEOUT_SECONDS": "2",
    }
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(shortened_rules(tmp_path))],
                "scrape_configs": [
                    {
                        "job_name": "blocklearn-controller",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                    },
                    {
                        "job_name": "blocklearn-index",
                        "static_configs": [{"targets": [f"127.0.0.1:{index_port}"]}],
                    },
                ],
            }
        )
    )
    procs = [
        Process(
            "controller",
            [
                "controller",
                "--metrics-port",
                str(metrics_port),
                "--liveness",
                f"http://127.0.0.1:{free_port()}/healthz",
            ],
            tmp_path,
            env,
        ).start(),
        Process("index", ["index", "--port", str(index_port)], tmp_path, env).start(),
    ]
    prom = start_prometheus(prometheus, prom_config, tmp_path, prom_port)
    try:

        async def scraping() -> bool:
            return await asyncio.to_thread(_safe, lambda: targets_up(prom_port) == 2)

        await eventually(scraping, timeout=60, what="Prometheus scraping both targets", logs=procs)
        await api.call("POST", api.path("blocks"), block_body("before", executed="kubectl get pods -A"))
        await eventually(
            lambda: _embedded(api, "before"), what="embedded while the embedder is up", logs=procs
        )
        assert "BlocklearnEmbedderFailing" not in await asyncio.to_thread(alerts, prom_port)

        await embeddings.down()  # the failure
        await api.call("POST", api.path("blocks"), block_body("during", executed="kubectl get nodes -o wide"))

        async def state(want: str) -> bool:
            return await asyncio.to_thread(
                _safe, lambda: alerts(prom_port).get("BlocklearnEmbedderFailing") == want
            )

        await eventually(
            lambda: state("firing"), timeout=90, what="BlocklearnEmbedderFailing firing", logs=procs
        )
        assert not await _embedded(api, "during")

        await embeddings.up()  # recovery: the backlog drains and the alert resolves
        await eventually(
            lambda: _embedded(api, "during"), timeout=60, what="embedded after recovery", logs=procs
        )

        async def resolved() -> bool:
            return await asyncio.to_thread(
                _safe, lambda: "BlocklearnEmbedderFailing" not in alerts(prom_port)
            )

        await eventually(resolved, timeout=90, what="alert resolved", logs=procs)
    finally:
        prom.terminate()
        await asyncio.to_thread(prom.wait, 30)
        for p in procs:
            await p.astop()


def start_prometheus(binary: str, config: Path, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    args = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}"]
    args.append(f"--web.listen-address=127.0.0.1:{port}")
    return subprocess.Popen(args, stdout=(tmp / "prometheus.log").open("wb"), stderr=subprocess.STDOUT)


def _safe(check):  # type: ignore[no-untyped-def]
    try:
        return check()
    except OSError:
        return False


async def _embedded(api: Api, block: str) -> bool:
    """Whether the Example the Block names in its status (named from its content) has its vector."""
    _, blk = await api.call("GET", api.path("blocks", name=block))
    ref = blk.get("status", {}).get("exampleRef")
    code, ex = await api.call("GET", api.path("examples", name=ref)) if ref else (404, {})
    return code == 200 and bool(ex.get("status", {}).get("embedding"))
