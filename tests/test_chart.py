"""The Helm chart, rendered by the real helm and validated against the Kubernetes schemas."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import pytest
import yaml

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.settings import Settings
from tests.conftest import Api, block_body, is_embedded
from tests.processes import Process, eventually
from tests.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "blocklearn"
HELM = ROOT / ".bin" / "helm"
pytestmark = pytest.mark.needs_tools("helm")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail("helm is missing: run hack/install-tools.sh (hack/test.sh does)")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=60)


def render(*sets: str) -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART), "--namespace", "blocklearn"]
    for s in sets:
        args += ["--set", s]
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


VALUE_SETS = {
    "defaults": [],
    "namespaced": ["watchNamespaces={team-a,team-b}"],
    "monitoring": [
        "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
        "prometheusRule.runbookBaseUrl=https://runbooks.example/blocklearn.md",
    ],
    "dashboards": ["dashboards.enabled=true", "dashboards.annotations.grafana_folder=Blocklearn"],
    "openai": [
        "embedder.type=openai",
        "embedder.openai.apiKeySecret.name=openai",
        "embedder.openai.apiKeySecret.key=token",
    ],
    "single-replica-without-leader-election": ["replicaCount=1", "controller.leaderElection.enabled=false"],
    "pinned-image-and-network-policy": [
        "image.registry=registry.example.com:5000",
        "image.repository=platform/blocklearn",
        "image.digest=sha256:" + "ab" * 32,
        "networkPolicy.enabled=true",
        "networkPolicy.from[0].namespaceSelector.matchLabels.team=notebooks",
        "index.expose=true",
        "index.auth.tokenSecret.name=idx",
    ],
    "bounded-growth-with-quotas": [
        "watchNamespaces={team-a,team-b}",
        "resourceQuota.enabled=true",
        "resourceQuota.blocks=5000",
        "resourceQuota.examples=1200",
        "controller.blockTTLSeconds=3600",
        "controller.maxExamplesPerNamespace=1000",
        "controller.exampleMaxAgeDays=90",
        "alerts.storeBudgetBytes=1073741824",
    ],
    "quota-in-the-release-namespace": ["resourceQuota.enabled=true"],
    "exposed-with-token-review": [
        "index.expose=true",
        "index.auth.tokenReview.enabled=true",
        "index.auth.tokenReview.audiences={blocklearn}",
        "index.auth.tokenReview.trustedSubjects={system:serviceaccounts:ops}",
    ],
}


def test_helm_lint_is_clean() -> None:
    out = helm("lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_manifests_validate_against_the_kubernetes_schemas(name: str, tmp_path: Path) -> None:
    import kubernetes_validate

    docs = [d for d in render(*VALUE_SETS[name]) if d["apiVersion"] != "monitoring.coreos.com/v1"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.35", strict=True)


def test_defaults_are_hardened_and_probes_hit_real_endpoints() -> None:
    docs = render()
    assert kinds(docs) == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    assert all(d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs)
    deploy = one(docs, "Deployment")
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"controller", "index"}
    for c in containers.values():
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert c["livenessProbe"]["httpGet"]["port"] in ports
    ctl, idx = containers["controller"], containers["index"]
    for c in (ctl, idx):  # a slow first list must not fail liveness: a startup probe comes first
        assert c["startupProbe"]["httpGet"] == c["livenessProbe"]["httpGet"]
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 300
    assert ctl["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # One server for the kubelet and Prometheus: /healthz and /metrics on the metrics port.
    assert ctl["livenessProbe"]["httpGet"]["port"] == "metrics" and set(ports_of(ctl)) == {"metrics"}
    assert f"--metrics-port={ports_of(ctl)['metrics']}" in ctl["args"]
    # Search on localhost only; the kubelet and Prometheus reach the probe port.
    assert idx["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "index-http"}
    assert set(ports_of(idx)) == {"index-http"}
    assert "--host=127.0.0.1" in idx["args"] and "--port=8081" in idx["args"]
    assert f"--probe-port={ports_of(idx)['index-http']}" in idx["args"]
    assert "search" not in {p["name"] for p in one(docs, "Service")["spec"]["ports"]}
    # The controller and the index must embed alike: same settings in both.
    assert env_of(ctl, "BLOCKLEARN_EMBEDDER") == env_of(idx, "BLOCKLEARN_EMBEDDER") == "semantic"
    assert env_of(ctl, "BLOCKLEARN_HASHING_DIM") == env_of(idx, "BLOCKLEARN_HASHING_DIM") == "4096"
    assert env_of(ctl, "BLOCKLEARN_SEMANTIC_THREADS") == env_of(idx, "BLOCKLEARN_SEMANTIC_THREADS") == "1"
    assert env_of(ctl, "BLOCKLEARN_EMBEDDING_DTYPE") == "float16"
    assert env_of(ctl, "BLOCKLEARN_NAMESPACES") == "[]"
    assert env_of(ctl, "BLOCKLEARN_SECRETS") == "redact"
    assert env_of(ctl, "MALLOC_ARENA_MAX") == env_of(idx, "MALLOC_ARENA_MAX") == "2"
    assert env_of(idx, "BLOCKLEARN_CROSS_NAMESPACE_SEARCH") == "false"
    # Bounded growth: the controller's own defaults (a day's TTL, 1,000 Examples a namespace, no age
    # limit), and a 512 MiB budget, which the controller alone does not set.
    own = Settings()
    defaults = [own.block_ttl_seconds, own.max_examples_per_namespace, own.example_max_age_days]
    assert [float(env_of(ctl, f"BLOCKLEARN_{n}")) for n in GROWTH[:3]] == defaults
    assert defaults[:2] == [86400, 1000] and own.store_budget_bytes == 0
    assert env_of(ctl, "BLOCKLEARN_STORE_BUDGET_BYTES") == str(512 * 1024**2)
    assert "ResourceQuota" not in kinds(docs)


GROWTH = ("BLOCK_TTL_SECONDS", "MAX_EXAMPLES_PER_NAMESPACE", "EXAMPLE_MAX_AGE_DAYS", "STORE_BUDGET_BYTES")


def test_bounded_growth_values_reach_the_controller_and_the_quota_is_a_backstop_per_namespace() -> None:
    docs = render(*VALUE_SETS["bounded-growth-with-quotas"])
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    ctl = next(c for c in pod["containers"] if c["name"] == "controller")
    assert [env_of(ctl, f"BLOCKLEARN_{n}") for n in GROWTH] == ["3600", "1000", "90", "1073741824"]
    quotas = [d for d in docs if d["kind"] == "ResourceQuota"]
    hard = {"count/blocks.blocklearn.dev": "5000", "count/examples.blocklearn.dev": "1200"}
    assert [(q["metadata"]["namespace"], q["spec"]) for q in quotas] == [
        ("team-a", {"hard": hard}),
        ("team-b", {"hard": hard}),
    ]
    # Watching every namespace, the one quota bounds the release's namespace only.
    [quota] = [
        d for d in render(*VALUE_SETS["quota-in-the-release-namespace"]) if d["kind"] == "ResourceQuota"
    ]
    assert quota["metadata"]["namespace"] == "blocklearn"
    assert quota["spec"]["hard"] == {
        "count/blocks.blocklearn.dev": "100000",
        "count/examples.blocklearn.dev": "20000",
    }


def test_two_replicas_by_default_elect_a_leader_and_stay_up_through_rollouts_and_drains() -> None:
    docs = render()
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    selector = spec["selector"]["matchLabels"]
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["labelSelector"]["matchLabels"] == selector for c in pod["topologySpreadConstraints"])
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    ctl = next(c for c in pod["containers"] if c["name"] == "controller")
    assert env_of(ctl, "BLOCKLEARN_LEADER_ELECTION") == "true"
    assert env_of(ctl, "BLOCKLEARN_LEADER_ELECTION_NAME") == "rel-blocklearn-controller"
    assert env_of(ctl, "BLOCKLEARN_LEADER_ELECTION_NAMESPACE") == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert env_of(ctl, "BLOCKLEARN_LEADER_ELECTION_IDENTITY") == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert [
        env_of(ctl, f"BLOCKLEARN_{n}_SECONDS") for n in ("LEASE_DURATION", "RENEW_DEADLINE", "RETRY_PERIOD")
    ] == [
        "15",
        "10",
        "2",
    ]
    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == "blocklearn"
    assert {v for r in role["rules"] for v in r["verbs"]} == {"create", "get", "update"}
    assert one(docs, "RoleBinding")["subjects"][0]["name"] == pod["serviceAccountName"]
    # The Service selects every replica: each index serves search.
    assert one(docs, "Service")["spec"]["selector"] == selector


def test_one_replica_without_leader_election_never_overlaps() -> None:
    docs = render(*VALUE_SETS["single-replica-without-leader-election"])
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert "PodDisruptionBudget" not in kinds(docs) and "Role" not in kinds(docs)
    ctl = next(c for c in spec["template"]["spec"]["containers"] if c["name"] == "controller")
    assert env_of(ctl, "BLOCKLEARN_LEADER_ELECTION") == "false"
    out = helm("template", "rel", str(CHART), "--set", "controller.leaderElection.enabled=false")
    assert out.returncode != 0 and "replicaCount > 1 needs controller.leaderElection.enabled" in out.stderr


def test_image_registry_and_digest_and_the_network_policy() -> None:
    assert (
        one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "blocklearn:0.1.0"
    )
    tagged = render("image.registry=r.example", "image.tag=1.2.3")
    assert (
        one(tagged, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "r.example/blocklearn:1.2.3"
    )
    docs = render(*VALUE_SETS["pinned-image-and-network-policy"])
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    digest = "sha256:" + "ab" * 32
    assert {c["image"] for c in pod["containers"]} == {
        f"registry.example.com:5000/platform/blocklearn@{digest}"
    }
    out = helm("template", "rel", str(CHART), "--set", "image.digest=latest")
    assert out.returncode != 0 and "digest" in out.stderr
    assert "NetworkPolicy" not in kinds(render())
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    [rule] = policy["ingress"]
    assert {p["port"] for p in rule["ports"]} == {8081, 9090, 8082}
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"team": "notebooks"}}}]


def ports_of(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def env_of(container: dict[str, Any], name: str) -> Any:
    [entry] = [e for e in container["env"] if e["name"] == name]
    return entry.get("value", entry.get("valueFrom"))


def test_monitoring_objects_are_gated_and_carry_the_tested_rules() -> None:
    assert "ServiceMonitor" not in kinds(render()) and "PrometheusRule" not in kinds(render())
    docs = render(*VALUE_SETS["monitoring"])
    rule = one(docs, "PrometheusRule")
    plain = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    rendered = rule["spec"]["groups"][0]["rules"]
    assert [r.get("alert", r.get("record")) for r in rendered] == [
        r.get("alert", r.get("record")) for r in plain["groups"][0]["rules"]
    ]
    assert all(
        r["annotations"]["runbook_url"].startswith("https://runbooks.example/blocklearn.md#")
        for r in rendered
        if "alert" in r
    )
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports


def test_the_dashboard_configmap_is_rendered_only_when_enabled_and_holds_the_generated_dashboard() -> None:
    assert "ConfigMap" not in kinds(render())
    [config] = [d for d in render(*VALUE_SETS["dashboards"]) if d["kind"] == "ConfigMap"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["labels"]["app.kubernetes.io/component"] == "monitoring"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Blocklearn"}
    committed = json.loads((CHART / "files" / "dashboard.json").read_text())
    assert json.loads(config["data"]["blocklearn.json"]) == committed
    assert committed["uid"] == "blocklearn-overview"


def test_the_acceptance_drop_thresholds_are_values_and_the_rest_is_the_tested_file(tmp_path: Path) -> None:
    docs = render(
        "prometheusRule.enabled=true",
        "prometheusRule.acceptanceDrop.percent=40",
        "prometheusRule.acceptanceDrop.minSuggestions=200",
    )
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    plain = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
    records = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    assert records["blocklearn:suggestions_acceptance_drop:threshold"] == "vector(0.4)"
    assert records["blocklearn:suggestions_acceptance_drop:min_suggestions"] == "vector(200)"
    for group in (groups, plain):  # everything else is the file promtool tests
        for g in group:
            g["rules"] = [r for r in g["rules"] if "acceptance_drop:" not in r.get("record", "")]
    assert groups == plain
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run hack/install-system-tools.sh (hack/test.sh does)"
    rendered = tmp_path / "rules.yaml"
    rendered.write_text(yaml.safe_dump({"groups": one(docs, "PrometheusRule")["spec"]["groups"]}))
    out = subprocess.run([promtool, "check", "rules", str(rendered)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_index_token_is_mounted_from_a_secret_when_set() -> None:
    assert "index-token" not in json.dumps(render())
    pod = one(render("index.auth.tokenSecret.name=idx"), "Deployment")["spec"]["template"]["spec"]
    index = next(c for c in pod["containers"] if c["name"] == "index")
    assert env_of(index, "BLOCKLEARN_INDEX_TOKEN_FILE") == "/var/run/blocklearn/index-token/token"
    assert {"name": "index-token", "mountPath": "/var/run/blocklearn/index-token", "readOnly": True} in index[
        "volumeMounts"
    ]
    assert {"name": "index-token", "secret": {"secretName": "idx"}} in pod["volumes"]


def test_an_exposed_index_requires_authentication() -> None:
    out = helm("template", "rel", str(CHART), "--set", "index.expose=true")
    assert out.returncode != 0 and "index.expose needs index.auth" in out.stderr
    docs = render(*VALUE_SETS["exposed-with-token-review"])
    index = next(
        c for c in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"] if c["name"] == "index"
    )
    assert "--host=0.0.0.0" in index["args"] and "search" in ports_of(index)
    assert env_of(index, "BLOCKLEARN_INDEX_TOKEN_REVIEW") == "true"
    assert json.loads(env_of(index, "BLOCKLEARN_INDEX_TOKEN_AUDIENCES")) == ["blocklearn"]
    assert json.loads(env_of(index, "BLOCKLEARN_INDEX_TRUSTED_SUBJECTS")) == ["system:serviceaccounts:ops"]
    service = one(docs, "Service")
    assert {"name": "search", "port": 8081, "targetPort": "search"} in service["spec"]["ports"]


def test_the_api_key_comes_from_a_secret_only() -> None:
    docs = render(*VALUE_SETS["openai"])
    for c in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]:
        assert env_of(c, "OPENAI_API_KEY") == {"secretKeyRef": {"name": "openai", "key": "token"}}
    out = helm("template", "rel", str(CHART), "--set", "embedder.type=openai")
    assert out.returncode != 0 and "reads its API key from a Secret" in out.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bogus=1", "additional properties 'bogus' not allowed"),
        ("embedder.type=word2vec", "embedder/type"),
        ("embedder.storageDtype=int8", "embedder/storageDtype"),
        ("watchNamespaces={Team_A}", "watchNamespaces/0"),
        ("controller.resyncSeconds=1", "resyncSeconds"),
        ("embedder.openai.apiKey=sk-123", "additional properties 'apiKey' not allowed"),
        ("prometheusRule.acceptanceDrop.percent=0.25", "acceptanceDrop/percent"),
        ("controller.blockTTLSeconds=-1", "blockTTLSeconds"),
        ("controller.maxExamplesPerNamespace=-5", "maxExamplesPerNamespace"),
        ("alerts.storeBudgetBytes=-1", "storeBudgetBytes"),
        ("alerts.budget=1", "additional properties 'budget' not allowed"),
        ("resourceQuota.blocks=0", "resourceQuota/blocks"),
        ("resourceQuota.pods=10", "additional properties 'pods' not allowed"),
    ],
)
def test_wrong_values_are_rejected_with_a_clear_message(value: str, message: str) -> None:
    out = helm("template", "rel", str(CHART), "--set", value)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


def test_chart_crds_are_the_generated_ones() -> None:
    for path in (ROOT / "crds").glob("*.yaml"):
        assert (CHART / "crds" / path.name).read_text() == path.read_text(), (
            f"copy crds/{path.name} into the chart"
        )


def allowed(rules: list[dict[str, Any]], verb: str, group: str, resource: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


@pytest.mark.e2e
async def test_rbac_allows_exactly_the_calls_the_code_makes(
    api: Api, emulator: Emulator, stack: Stack, tmp_path: Path
) -> None:
    """Run the controller, the index (checking a search's ServiceAccount token) and a backfill for
    real; every call they made must be allowed, and every permission granted must have been used."""
    env = {
        "BLOCKLEARN_HASHING_DIM": "64",
        "BLOCKLEARN_RESYNC_SECONDS": "1",
        # Long enough for b1's steps below, short enough to see Blocks expire (delete blocks) and
        # a teaching one let its Example go first (patch examples).
        "BLOCKLEARN_BLOCK_TTL_SECONDS": "20",
    }
    # As the chart runs it: with leader election (its Lease calls are checked too).
    election = {
        "BLOCKLEARN_LEADER_ELECTION": "true",
        "BLOCKLEARN_LEADER_ELECTION_NAME": "rel-blocklearn-controller",
    }
    procs = [
        stack.controller(env={**env, **election}),
        stack.index(env={**env, "BLOCKLEARN_INDEX_TOKEN_REVIEW": "true"}),
    ]
    index_port = procs[1].port
    # A conflict on each status write: the controller reads that one object again (get) and redoes.
    conflicted: set[str] = set()

    def first_status_write(r: kmock.Request) -> bool:
        plural = r.resource.plural if r.resource else ""
        if r.method == "PATCH" and r.subresource == "status" and plural not in conflicted:
            conflicted.add(str(plural))
            return True
        return False

    emulator[first_status_write] << kmock.KubernetesError(status=409, reason="Conflict", message="stale")
    try:
        await api.call("POST", api.path("blocks"), block_body("b1"))
        await api.call("POST", api.path("blocks"), block_body("expires", executed="kubectl get po -A -w"))
        bad = block_body("bad")
        bad["spec"]["executedAt"] = "never"
        await api.call("POST", api.path("blocks"), bad)

        async def embedded() -> bool:
            return is_embedded(await _example_of(api, "b1"))

        await eventually(embedded, what="embedded", logs=procs)
        example = await _example_of(api, "b1")

        async def index_ready() -> bool:
            try:
                return (await api.call("GET", f"http://127.0.0.1:{index_port}/readyz"))[0] == 200
            except aiohttp.ClientConnectionError:
                return False  # not listening yet

        await eventually(index_ready, what="index ready", logs=procs)
        accounts = f"{api.base}/api/v1/namespaces/default/serviceaccounts"
        await api.call("POST", accounts, {"metadata": {"name": "notebook"}})
        _, answer = await api.call("POST", f"{accounts}/notebook/token", {"spec": {}})
        code, _ = await api.call(
            "POST",
            f"http://127.0.0.1:{index_port}/v1/search",
            {"query": "pods", "namespace": "default"},
            headers={"Authorization": f"Bearer {answer['status']['token']}"},
        )
        assert code == 200
        await api.call(
            "PATCH",
            api.path("blocks", name="b1"),
            {"spec": {"executedCell": {"kind": "code", "contents": "kubectl get pods -o wide"}}},
        )  # still teaches, something else: another Example, the old one deleted
        await eventually(
            lambda: _answer_is(api, "kubectl get pods -o wide"), what="Example patched", logs=procs
        )
        await api.call(
            "PATCH",
            api.path("blocks", name="b1"),
            {"spec": {"executedCell": {"kind": "code", "contents": "kubectl get pods"}}},
        )  # stops teaching: the Example is deleted
        args = ["backfill", "--since", "2000-01-01T00:00:00Z"]
        backfill = Process(
            "backfill", args, tmp_path, {**stack.env, **env, "KUBECONFIG": str(stack.kubeconfig)}
        )
        backfill.start()
        assert await backfill.exited() == 0
        await eventually(lambda: _gone(api), what="Example deleted", logs=procs)
        await eventually(lambda: _resynced(procs[0]), what="a resync", logs=procs)
        await eventually(
            lambda: _expired(api, "expires", "bad"), timeout=90, what="Blocks expired", logs=procs
        )
    finally:
        await stack.astop()
    # What our processes called (kopf, and our own client, which every process uses); the test's own
    # aiohttp calls are not the operator's.
    ours = ("kopf", "blocklearn")
    agents = {c[3] for c in emulator.calls}
    assert set(ours) <= agents, agents
    calls = {c[:3] for c in emulator.calls if c[3] in ours}
    assert {
        ("patch", "blocklearn.dev", "blocks/status"),
        ("delete", "blocklearn.dev", "examples"),
        ("delete", "blocklearn.dev", "blocks"),
        ("patch", "blocklearn.dev", "examples"),
        ("create", "", "events"),
        ("watch", "apiextensions.k8s.io", "customresourcedefinitions"),
        ("create", "coordination.k8s.io", "leases"),
        ("update", "coordination.k8s.io", "leases"),
    } <= calls
    review = "index.auth.tokenReview.enabled=true"
    for name, sets in (("cluster-wide", [review]), ("namespaced", ["watchNamespaces={default}", review])):
        rules = [r for d in render(*sets) if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
        lease = [d for d in render(*sets) if d["kind"] == "Role" and "leases" in d["rules"][0]["resources"]]
        assert [d["rules"][1]["resourceNames"] for d in lease] == [["rel-blocklearn-controller"]]
        missing = sorted(c for c in calls if not allowed(rules, *c))
        assert not missing, f"{name} RBAC lacks {missing}"
    defaults = [r for d in render() if d["kind"] == "ClusterRole" for r in d["rules"]]
    assert not allowed(defaults, "create", "authentication.k8s.io", "tokenreviews")  # only when enabled
    # and nothing more than the code uses: every granted verb was exercised
    rules = [r for d in render(review) if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
    granted = {
        (v, g, res) for r in rules for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]
    }
    # Checked by admission, never called: blockOwnerDeletion on an Example's ownerReference needs
    # it where OwnerReferencesPermissionEnforcement is on (OpenShift).
    admission_only = {("update", "blocklearn.dev", "blocks/finalizers")}
    unused = granted - calls - admission_only
    assert unused == set(), f"granted but never used: {sorted(unused)}"
    assert [ref.get("blockOwnerDeletion") for ref in example["metadata"]["ownerReferences"]] == [True]


async def _example_of(api: Api, block: str) -> dict[str, Any] | None:
    """The Example a Block names in its status (Examples are named from their content)."""
    _, blk = await api.call("GET", api.path("blocks", name=block))
    ref = blk.get("status", {}).get("exampleRef")
    code, ex = await api.call("GET", api.path("examples", name=ref)) if ref else (404, {})
    return ex if code == 200 else None


async def _answer_is(api: Api, contents: str) -> bool:
    ex = await _example_of(api, "b1")
    return ex is not None and ex["spec"]["answer"][0]["contents"] == contents


async def _gone(api: Api) -> bool:
    _, listed = await api.call("GET", api.path("examples"))
    return [e["spec"]["blockRef"]["name"] for e in listed["items"]] == ["expires"]


async def _expired(api: Api, *blocks: str) -> bool:
    codes = [(await api.call("GET", api.path("blocks", name=b)))[0] for b in blocks]
    return codes == [404] * len(blocks)


async def _resynced(proc: Process) -> bool:
    return "Resynced:" in proc.log.read_text()
