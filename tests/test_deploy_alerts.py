"""Alert rules (promtool unit tests) and the Grafana dashboard: valid PromQL over metrics the collector exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify
from prometheus_client.core import CounterMetricFamily

from collector.mappings import load_mappings
from collector.metrics import EvidenceMetrics
from collector.state import State

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "evidence-collector-rules.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "evidence-collector.json"
ALERTS = {"EvidenceStale", "EvidenceAtRisk", "ConnectorFailing", "CollectorDown", "ControlChecksFailing"}
_PROMQL_WORDS = {"max", "min", "sum", "count", "by", "absent", "or", "and", "vector", "time", "increase", "rate"}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (apt-get install -y --no-install-recommends prometheus)")
    return path


def exported_metric_names() -> set[str]:
    metrics = EvidenceMetrics(State(), load_mappings(ROOT / "mappings"))
    names = set()
    for family in metrics.describe():
        names.add(f"{family.name}_total" if isinstance(family, CounterMetricFamily) else family.name)
    return names


def metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\([a-z, ]*\)(?=\s*\()", " ", expr)
    words = set(re.findall(r"[a-z_][a-z0-9_]*", without_labels))
    return {w for w in words if w not in _PROMQL_WORDS and "_" in w}


def rules() -> list[dict[str, object]]:
    return yaml.safe_load(RULES.read_text())["groups"][0]["rules"]  # type: ignore[no-any-return]


def test_the_rules_pass_promtool_unit_tests_including_stale_evidence(promtool: str) -> None:
    tests = yaml.safe_load((PROMETHEUS / "evidence-collector-rules.test.yaml").read_text())
    assert any("stale" in t["name"] for t in tests["tests"])
    tested = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert tested == ALERTS, "every alert has a firing test case"
    result = subprocess.run(
        [promtool, "test", "rules", "evidence-collector-rules.test.yaml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_reports_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    tests = yaml.safe_load((PROMETHEUS / "evidence-collector-rules.test.yaml").read_text())
    tests["rule_files"] = [str(RULES)]
    stale = tests["tests"][0]["alert_rule_test"][0]
    stale["exp_alerts"] = [{"exp_labels": {"severity": "critical", "framework": "soc2", "control": "CC7.1"}}]
    broken = tmp_path / "broken.test.yaml"
    broken.write_text(yaml.safe_dump(tests))
    result = subprocess.run([promtool, "test", "rules", str(broken)], capture_output=True, text=True)
    assert result.returncode == 1, "evidence stale for 10 minutes must not alert yet"


def runbook_page(url: str) -> Path:
    """The docs page a runbook URL on the docs site points at."""
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["site_url"]
    assert url.startswith(site), f"{url} is not on the docs site {site}"
    page = url.removeprefix(site).partition("#")[0].strip("/")
    return ROOT / "docs" / (f"{page}.md" if page else "index.md")


def heading_anchors(page: Path) -> set[str]:
    """The anchors MkDocs gives the page's headings (its toc extension's slugify)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {slugify(h.strip(), "-") for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def test_alert_rules_use_only_exported_metrics_and_link_a_runbook() -> None:
    exported = exported_metric_names()
    assert {r["alert"] for r in rules()} == ALERTS
    for rule in rules():
        assert metric_names(str(rule["expr"])) <= exported, rule["alert"]
        url = str(rule["annotations"]["runbook_url"])  # type: ignore[index]
        page = runbook_page(url)
        assert page.is_file(), f"{rule['alert']}: {url} points at no docs page ({page})"
        assert url.endswith(f"#runbook-{str(rule['alert']).lower()}")
        assert url.rpartition("#")[2] in heading_anchors(page), f"no runbook section for {rule['alert']} in {page}"


def test_runbook_anchors_are_read_from_the_page_headings(tmp_path: Path) -> None:
    page = tmp_path / "alerts.md"
    page.write_text("# Alerts\n\n```\n# Runbook: InCode\n```\n\n### Runbook: EvidenceStale\n")
    assert heading_anchors(page) == {"alerts", "runbook-evidencestale"}


def test_the_dashboard_queries_parse_and_use_only_exported_metrics(promtool: str, tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    exported = exported_metric_names()
    used: set[str] = set()
    for expr in exprs:
        used |= metric_names(expr)
    assert used <= exported, used - exported
    assert {"evidence_status", "connector_consecutive_failures", "control_check_failures"} <= used
    as_rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e.replace("$framework", ".*")}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(as_rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
