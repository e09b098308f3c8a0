"""The Grafana dashboard: built as code, committed as generated, and every query valid PromQL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from blocklearn.cli import main
from blocklearn.devtools.dashboard import build, concrete, queries, render

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "charts" / "blocklearn" / "files" / "dashboard.json"
RULES = ROOT / "charts" / "blocklearn" / "files" / "alerts.yaml"


def test_the_committed_dashboard_is_the_generated_one(tmp_path: Path) -> None:
    out = tmp_path / "dashboard.json"
    main(["dashboard", "--out", str(out)])
    assert out.read_text() == COMMITTED.read_text(), (
        "charts/blocklearn/files/dashboard.json is stale: "
        "run `blocklearn dashboard --out charts/blocklearn/files/dashboard.json`"
    )
    assert render(build()) == COMMITTED.read_text()


def test_the_dashboard_has_the_panels_the_platform_team_asked_for() -> None:
    model = build()
    titles = [p["title"] for p in model["panels"] if p["type"] != "row"]
    assert titles == [
        "Acceptance ratio",
        "Retrieval-hit ratio",
        "Suggestions per hour, by outcome and retrieval",
        "Corrections learned per hour",
        "Examples and bytes stored",
        "Search latency",
        "Embedding backlog",
        "Reconcile errors",
    ]
    ids = [p["id"] for p in model["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in model["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and panel["description"]
    [variable] = model["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )


def test_every_recording_rule_the_dashboard_reads_is_in_the_rules_file() -> None:
    recorded = {
        r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r
    }
    used = {expr for _, expr in queries(build()) if expr.startswith("blocklearn:")}
    assert used and used <= recorded


def test_every_panel_query_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run hack/install-system-tools.sh (hack/test.sh does)")
    found = list(queries(build()))
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": concrete(expr)} for i, (_, expr) in enumerate(found)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(found)} rules found" in out.stdout


def test_grafana_variables_are_replaced_for_prometheus() -> None:
    assert concrete("rate(x[$__rate_interval])", "1m") == "rate(x[1m])"
    assert all("$" not in concrete(expr) for _, expr in queries(build()))
