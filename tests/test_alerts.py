"""Alert rules, checked and unit-tested with the real promtool."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "charts" / "blocklearn" / "files" / "alerts.yaml"
TESTS = sorted((ROOT / "tests" / "alerts").glob("*.test.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
pytestmark = pytest.mark.needs_tools("promtool")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run hack/install-system-tools.sh (hack/test.sh does)")
    return path


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def alerts() -> list[dict]:
    return [r for r in rules() if "alert" in r]


def test_rules_pass_promtool_check(promtool: str) -> None:
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert len(TESTS) >= 2
    out = subprocess.run([promtool, "test", "rules", *map(str, TESTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [case for path in TESTS for case in yaml.safe_load(path.read_text())["tests"]]
    for alert in alerts():
        name = alert["alert"]
        checks = [c for t in cases for c in t.get("alert_rule_test", []) if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in checks), f"{name} has no firing case"
        assert any(not c["exp_alerts"] for c in checks), f"{name} has no quiet case"


def test_every_alert_is_well_formed_and_has_a_runbook_section() -> None:
    sections = set(re.findall(r"^## (\w+)$", RUNBOOKS.read_text(), flags=re.M))
    for alert in alerts():
        name = alert["alert"]
        assert name.startswith("Blocklearn")
        assert alert["labels"]["severity"] in ("critical", "warning")
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])
        assert alert["annotations"]["runbook_url"] == f"docs/runbooks.md#{name.lower()}"
        assert name in sections, f"docs/runbooks.md has no section for {name}"
        assert "for" in alert, f"{name} would flap without a for:"


def test_every_recording_rule_is_used_by_a_tested_expression() -> None:
    tested = " ".join(
        e["expr"]
        for path in TESTS
        for case in yaml.safe_load(path.read_text())["tests"]
        for e in case.get("promql_expr_test", [])
    )
    tested += " ".join(a["expr"] for a in alerts())
    for rule in rules():
        if "record" in rule:
            assert rule["record"] in tested, f"{rule['record']} is not tested"
