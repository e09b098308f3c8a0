"""A real Prometheus scrapes the real controller and index; a real failure fires an alert, and every
query of the chart's dashboard answers data while a simulated assistant uses the stack.

The embedder is an OpenAI-compatible endpoint served by the test. Stopping it is the failure: the
controller's embedding requests are refused, BlocklearnEmbedderFailing goes to firing in
Prometheus's own API, and it resolves after the endpoint returns. The rules are the shipped file with
only the `for:` durations and range windows shortened (2 s and 6 s, with scrapes and evaluations
every 0.5 s), so the test takes seconds, not minutes; the rules themselves, at their real durations,
are tested by promtool (tests/test_alerts.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from blocklearn.client import Client
from blocklearn.devtools.assistant import Assistant, Task, popular
from blocklearn.devtools.dashboard import build, concrete, queries
from blocklearn.devtools.prometheus import Prometheus
from tests.conftest import Api, block_body
from tests.fake_embeddings import FakeEmbeddings
from tests.processes import eventually, free_port
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.needs_tools("prometheus")]
ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "charts" / "blocklearn" / "files" / "alerts.yaml"
INTERVAL, WINDOW = "500ms", "6s"  # scrapes and evaluations; rate() windows (3 retries at the cap)


def shortened_rules(tmp: Path) -> Path:
    text = RULES.read_text()
    text = re.sub(r"for: \d+m", "for: 2s", text)
    text = re.sub(r"\[(5|10|15)m\]", f"[{WINDOW}]", text)
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
    api: Api, embeddings: FakeEmbeddings, stack: Stack, tmp_path: Path
) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: run hack/install-system-tools.sh (hack/test.sh does)")
    prom_port = free_port()
    env = {
        **embeddings.env(),
        "BLOCKLEARN_RETRY_BASE_SECONDS": "0.5",
        "BLOCKLEARN_RETRY_MAX_SECONDS": "2",
        "BLOCKLEARN_EMBED_TIMEOUT_SECONDS": "2",
    }
    controller, index = stack.controller(env=env), stack.index(env=env)
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
                "rule_files": [str(shortened_rules(tmp_path))],
                "scrape_configs": [
                    {
                        "job_name": "blocklearn-controller",
                        "static_configs": [{"targets": [f"127.0.0.1:{controller.port}"]}],
                    },
                    {
                        "job_name": "blocklearn-index",
                        "static_configs": [{"targets": [f"127.0.0.1:{index.port}"]}],
                    },
                ],
            }
        )
    )
    procs = stack.children
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


# -- The dashboard against a live stack ---------------------------------------------------------------

# Requests a simulated assistant gets again and again, some of which its model already knows.
TASKS = [
    Task(
        "# kubectl",
        ("Show the logs of the crashed coredns container.", "coredns crashed, show its previous logs"),
        "kubectl logs -n kube-system deploy/coredns --previous",
        "kubectl logs coredns",
    ),
    Task(
        "# kubectl",
        ("List the pods of every namespace.", "list all pods"),
        "kubectl get pods -A",
        "kubectl get pods",
    ),
    Task("# df", ("Show the free space of the root disk.", "free disk space on /"), "df -h /", "df -h /"),
    Task(
        "# tar",
        ("Pack the logs folder into an archive.", "tar the logs dir"),
        "tar czf logs.tgz logs/",
        "tar logs",
    ),
    Task(
        "# kubectl",
        ("Restart the web deployment.", "restart web"),
        "kubectl rollout restart deploy/web",
        "kubectl",
    ),
]


@dataclass
class Live:
    stack: Stack
    prometheus: Prometheus
    errors: list[str]


def feed(stack: Stack, stop: threading.Event, errors: list[str]) -> None:
    """The assistant's turns, about three a second, until told to stop; errors are kept, not raised."""
    rng = random.Random(21)
    with Client(stack.child("index").url, kubeconfig=str(stack.kubeconfig), backoff=0.05) as client:
        assistant = Assistant(client, rng, fails=0.1)
        turn = 0
        while not stop.wait(0.3):
            try:
                assistant.turn(popular(TASKS, rng), f"live-{turn}")
            except Exception as exc:  # the test reports it; the feed goes on
                errors.append(repr(exc))
            turn += 1


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    directory = tmp_path_factory.mktemp("live")
    env = {"BLOCKLEARN_HASHING_DIM": "512"}
    stop, errors = threading.Event(), []
    prometheus = None
    with Stack.started(directory / "stack", env) as stack:
        controller, index = stack.controller(), stack.index()
        stack.wait_ready(controller, index)
        feeder = threading.Thread(target=feed, args=(stack, stop, errors), daemon=True)
        targets = {
            "blocklearn-controller": f"127.0.0.1:{controller.port}",
            "blocklearn-index": f"127.0.0.1:{index.port}",
        }
        try:
            prometheus = Prometheus(directory / "prometheus", targets, [RULES]).start()
            feeder.start()
            deadline = time.monotonic() + 60
            while prometheus.targets_up() < 2:
                assert time.monotonic() < deadline, "Prometheus did not scrape both targets"
                time.sleep(0.5)
            yield Live(stack, prometheus, errors)
        finally:
            stop.set()
            if feeder.is_alive():
                feeder.join(30)
            if prometheus is not None:
                prometheus.stop()


def _panel_params() -> list[Any]:
    return [pytest.param(expr, id=f"{title}: {expr}") for title, expr in queries(build())]


@pytest.mark.parametrize("expr", _panel_params())
def test_every_dashboard_query_returns_data_from_prometheus(live: Live, expr: str) -> None:
    """The panel's query, as Grafana sends it (its rate interval 1m), answers finite values from
    the real Prometheus scraping the real controller and index while an assistant uses them."""
    prometheus = live.prometheus
    for name in set(re.findall(r"\bblocklearn_[a-z_]+", expr)):
        assert prometheus.api("series", **{"match[]": name}), f"{name} is exported by no target"
    deadline = time.monotonic() + 120
    while True:
        samples = prometheus.query(concrete(expr, "1m"))
        values = [float(s["value"][1]) for s in samples]
        if any(math.isfinite(v) for v in values):
            break
        assert time.monotonic() < deadline, f"no data for {expr}: {samples}"
        time.sleep(1)
    assert not live.errors, live.errors[:3]
