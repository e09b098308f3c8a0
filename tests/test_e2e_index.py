"""Emulator + the real controller and index processes: learn, search, forget, survive a cut watch."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path

import kmock
import pytest

from blocklearn.devtools.emulator.api import Emulator
from tests.conftest import Api, block_body, is_embedded
from tests.processes import Process, free_port, run_kubectl, scrape
from tests.stack import Child, Stack

pytestmark = pytest.mark.e2e
EXAMPLES = "blocklearn.dev/v1alpha1/examples"
ENV = {"BLOCKLEARN_HASHING_DIM": "512"}


async def run_search(index: Child, *args: str) -> tuple[int, str, str]:
    """`blocklearn search --url <index> -o json ARGS`, the real command, run as a person would."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "blocklearn",
        "search",
        "--url",
        index.url,
        "-o",
        "json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return int(proc.returncode or 0), out.decode(), err.decode()


async def search(index: Child, query: str, k: int = 3) -> dict:
    code, out, err = await run_search(index, query, "-k", str(k))
    assert code == 0, err
    return dict(json.loads(out))


async def ready(index: Child) -> bool:
    return await asyncio.to_thread(index.ready)


def indexed_names(index: Child) -> set[str]:
    """What the index holds, read through its own API: a search for everything, k=max (the lexical
    channel returns the examples sharing a word with the query: every block_body's doc says "list")."""
    req = urllib.request.Request(
        index.url + "/v1/search",
        data=json.dumps({"query": "list every pod", "k": 100, "namespace": "default"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = json.load(resp)
    return {r["blockRef"]["name"] for r in body["results"]}


def embedded(emulator: Emulator) -> set[str]:
    """The Blocks whose Examples are embedded (Examples are named from their content)."""
    return {o["spec"]["blockRef"]["name"] for o in emulator.objects_of(EXAMPLES) if is_embedded(o)}


async def test_a_block_applied_is_found_by_search_and_forgotten_when_deleted(api: Api, stack: Stack) -> None:
    growth = {
        "BLOCKLEARN_BLOCK_TTL_SECONDS": "3600",
        "BLOCKLEARN_MAX_EXAMPLES_PER_NAMESPACE": "0",
        "BLOCKLEARN_STORE_BUDGET_BYTES": "536870912",
    }
    controller = stack.controller(env={**ENV, **growth})
    index = stack.index(env=ENV)
    await stack.ready(controller, index)
    # The settings from the environment, printed once at start and the budget exported for the alert.
    started = [line for line in controller.log.read_text().splitlines() if "Started controller:" in line]
    assert len(started) == 1 and "block_ttl_seconds=3600 max_examples_per_namespace=0" in started[0]
    assert controller.metric("blocklearn_store_budget_bytes") == 536870912
    await api.call(
        "POST",
        api.path("blocks"),
        block_body(
            "kube-logs",
            doc="show the logs of the crashing coredns pod in kube-system",
            generated="kubectl logs coredns",
            executed="kubectl logs -n kube-system deploy/coredns --previous",
        ),
    )
    await api.call(
        "POST",
        api.path("blocks"),
        block_body(
            "tar",
            doc="archive the build directory",
            generated="tar cf build",
            executed="tar czf build.tgz build/",
        ),
    )

    async def found() -> dict | None:
        result = await search(index, "logs of the coredns pod that keeps crashing", k=1)
        hits = result["results"]
        return result if hits and hits[0]["blockRef"]["name"] == "kube-logs" else None

    result = await stack.until(found, "search finds the correction")
    assert (
        result["results"][0]["answer"][0]["contents"]
        == "kubectl logs -n kube-system deploy/coredns --previous"
    )
    assert result["results"][0]["blockRef"]["name"] == "kube-logs"

    args = ["search", "archive my build folder", "--url", index.url]
    table = Process("search-table", args, stack.directory)
    table.start()
    assert await table.exited() == 0
    text = table.log.read_text()
    assert text.splitlines()[0].split() == ["SCORE", "SUPPORT", "NAMESPACE/NAME", "QUERY", "ANSWER"]
    assert "default/tar-czf-build-tgz-build-" in text.splitlines()[1] and "tar czf build.tgz build/" in text

    await api.call("DELETE", api.path("blocks", name="kube-logs"))

    async def forgotten() -> bool:
        result = await search(index, "logs of the coredns pod that keeps crashing", k=5)
        return all(r["blockRef"]["name"] != "kube-logs" for r in result["results"])

    await stack.until(forgotten, "deleted Block forgotten")
    assert index.metric("blocklearn_learning_latency_seconds_count") >= 2
    assert index.metric("blocklearn_index_size") == 1


async def test_index_converges_after_a_dropped_watch_and_410(
    api: Api, emulator: Emulator, stack: Stack
) -> None:
    stack.controller(env=ENV)
    index = stack.index(env=ENV)
    for i in range(6):
        await api.call("POST", api.path("blocks"), block_body(f"b{i}", executed=f"kubectl get pods -n n{i}"))
    await stack.until(lambda: _same(index, emulator, 6), "first sync")

    # Cut every watch and refuse the index's new ones (not kopf's: the controller must keep working),
    # change the world in the gap, and compact the history so that resuming is impossible.
    refuse = {"on": True}

    def index_watch(r: kmock.Request) -> bool:
        return (
            refuse["on"]
            and r.params.get("watch") == "true"
            and not r.headers.get("User-Agent", "").startswith("kopf")
        )

    emulator[index_watch] << 500
    emulator.drop_watches()
    for i in range(3):
        await api.call("DELETE", api.path("blocks", name=f"b{i}"))
    for i in range(6, 9):
        await api.call("POST", api.path("blocks"), block_body(f"b{i}", executed=f"kubectl get pods -n n{i}"))
    await stack.until(lambda: _embedded_are(emulator, {f"b{i}" for i in range(3, 9)}), "controller converged")
    emulator.compact()
    refuse["on"] = False

    await stack.until(lambda: _same(index, emulator, 6), "index converged", timeout=60)
    assert indexed_names(index) == {f"b{i}" for i in range(3, 9)}
    assert index.metric("blocklearn_index_relists_total") >= 2  # the first list, and after the gap
    assert index.metric("blocklearn_index_watch_restarts_total") >= 1


async def _same(index: Child, emulator: Emulator, count: int) -> bool:
    names = embedded(emulator)
    return len(names) == count and index.ready() and indexed_names(index) == names


async def _embedded_are(emulator: Emulator, names: set[str]) -> bool:
    return embedded(emulator) == names


async def test_index_is_not_ready_until_the_api_answers(emulator: Emulator, stack: Stack) -> None:
    emulator[kmock.action.LIST] << 503
    index = stack.index(env=ENV)

    async def answers() -> bool:
        return index.get("/readyz")[0] != 0

    await stack.until(answers, "index serving")
    assert index.get("/readyz")[0] == 503
    assert index.get("/healthz")[0] == 200


async def test_secrets_reach_no_example_index_answer_log_event_or_metric(
    api: Api, emulator: Emulator, stack: Stack
) -> None:
    """One secret in every field that reaches an Example, of the kinds issue 14 found leaking."""
    literal, token = "Zx9-very-secret-pw", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
    prose, positional, output = "8f2a9c1d7e3bQ", "Wint3r!sComing", "Xk29fpQz0Lm"
    body = block_body(
        "db-secret",
        doc=f"create the db secret; my github token is {token}. The token for staging is {prose}.",
        executed=f"kubectl create secret generic db --from-literal=password={literal}",
    )
    body["spec"]["doc"]["cells"].append(
        {
            "kind": "code",
            "language": "bash",
            "contents": f"sshpass -p '{positional}' ssh ops@10.0.0.7 uptime",
            "outputs": [f"Initial admin password: {output}"],
        }
    )
    controller, index = stack.controller(env=ENV), stack.index(env=ENV)
    await api.call("POST", api.path("blocks"), body)

    async def found() -> dict | None:
        result = await search(index, "create the db secret", k=1)
        return result if result["results"] else None

    result = await stack.until(found, "the redacted example searchable")
    answer = result["results"][0]["answer"][0]["contents"]
    assert answer == "kubectl create secret generic db --from-literal=password=<REDACTED:k8s-secret-literal>"
    places = {
        "search answer": json.dumps(result),
        "Example": json.dumps(emulator.objects_of(EXAMPLES)),
        "Events": json.dumps(emulator.objects_of("/v1/events")),
        "controller log": controller.log.read_text(),
        "index log": index.log.read_text(),
        "index metrics": scrape(index.url + "/metrics"),
    }
    for where, text in places.items():
        for secret in (literal, token, prose, positional, output):
            assert secret not in text, f"a secret leaked into the {where}"
    for kind in ("github-token", "prose-secret", "sshpass-password"):
        assert f"<REDACTED:{kind}>" in places["Example"], kind
    assert "Initial admin password" not in places["Example"]  # outputs are not kept in Examples


async def test_an_index_with_a_token_answers_only_searches_that_carry_it(
    stack: Stack, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("t0ken-from-a-secret\n")
    index = stack.index(env={**ENV, "BLOCKLEARN_INDEX_TOKEN_FILE": str(token_file)})
    await stack.ready(index)
    code, _, err = await run_search(index, "pods")
    assert code != 0 and "401" in err and "bearer token" in err
    code, out, _ = await run_search(index, "pods", "--token-file", str(token_file))
    assert code == 0 and json.loads(out)["results"] == []


async def kubectl(config: Path, *args: str) -> str:
    code, out, err = await run_kubectl(config, *args)
    assert code == 0, err
    return out


@pytest.mark.needs_tools("kubectl")
async def test_an_index_checks_service_account_tokens_with_a_token_review(
    api: Api, emulator: Emulator, stack: Stack, tmp_path: Path
) -> None:
    """A notebook agent's ServiceAccount token, made by `kubectl create token`, lets it search its own
    namespace; a token for another audience, or a search of another namespace, is refused."""
    review = {"BLOCKLEARN_INDEX_TOKEN_REVIEW": "true", "BLOCKLEARN_INDEX_TOKEN_AUDIENCES": '["blocklearn"]'}
    stack.controller(env=ENV)
    index = stack.index(env={**ENV, **review})
    for ns in ("team-a", "team-b"):
        await kubectl(stack.kubeconfig, "create", "namespace", ns)
        body = block_body("pods", executed=f"kubectl get pods -n {ns}")
        assert (await api.call("POST", api.path("blocks", namespace=ns), body))[0] == 201
    await kubectl(stack.kubeconfig, "create", "serviceaccount", "notebook", "-n", "team-a")
    tokens = {}
    for audience in ("blocklearn", "some-other-service"):
        tokens[audience] = tmp_path / f"token-{audience}"
        token = await kubectl(
            stack.kubeconfig, "create", "token", "notebook", "-n", "team-a", "--audience", audience
        )
        tokens[audience].write_text(token)

    async def indexed() -> bool:
        return index.get("/readyz")[1].get("indexSize") == 2

    await stack.until(indexed, "both Examples indexed")
    allowed = str(tokens["blocklearn"])
    code, out, err = await run_search(index, "pods", "-n", "team-a", "--token-file", allowed)
    assert code == 0, err
    assert [r["answer"][0]["contents"] for r in json.loads(out)["results"]] == ["kubectl get pods -n team-a"]
    code, _, err = await run_search(index, "pods", "-n", "team-b", "--token-file", allowed)
    assert code != 0 and "403" in err and "may not search namespace team-b" in err
    code, _, err = await run_search(
        index, "pods", "-n", "team-a", "--token-file", str(tokens["some-other-service"])
    )
    assert code != 0 and "401" in err
    code, _, err = await run_search(index, "pods", "-n", "team-a")
    assert code != 0 and "401" in err
    assert ("create", "authentication.k8s.io", "tokenreviews", "blocklearn") in emulator.calls
    for token in tokens.values():
        assert token.read_text().strip() not in index.log.read_text()


async def test_probes_have_a_port_of_their_own_and_an_open_address_needs_a_token(stack: Stack) -> None:
    probe_port = free_port()
    stack.index(env=ENV, args=["--probe-port", str(probe_port)])
    probes = f"http://127.0.0.1:{probe_port}"

    async def probe_ready() -> bool:
        return get_status(probes + "/readyz") == 200

    await stack.until(probe_ready, "ready on the probe port")
    assert get_status(probes + "/metrics") == 200 and get_status(probes + "/healthz") == 200
    assert get_status(probes + "/v1/search", b'{"query": "pods", "namespace": "default"}') == 404
    open_index = stack.index("index-open", env=ENV, args=["--host", "0.0.0.0"])
    assert await open_index.exited() != 0
    assert "refusing to serve search on 0.0.0.0 without authentication" in open_index.log.read_text()


def get_status(url: str, data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
