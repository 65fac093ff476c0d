"""Alert rules (promtool unit tests) and the Grafana dashboard: valid PromQL over metrics the collector exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

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
CHART_DASHBOARD = ROOT / "deploy" / "helm" / "evidence-collector" / "files" / "evidence-collector-dashboard.json"
ALERTS = {"EvidenceStale", "EvidenceAtRisk", "ConnectorFailing", "CollectorDown", "ControlChecksFailing"}
_PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


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
    """The series names an expression selects: every identifier that is not a function, keyword or label."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = re.findall(r"(?<![\w.$])[a-zA-Z_:][\w:]*\b(?!\s*\()", bare)
    return set(names) - _PROMQL_KEYWORDS


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


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and the selectors of its query variables."""
    exprs = [str(t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", str(var["query"]["query"]))
            assert match, var["query"]
            exprs.append(match[1])
    return exprs


def test_metric_names_are_read_from_promql_without_functions_labels_or_variables() -> None:
    expr = (
        'time() - max by (connector, connector_instance) (a_timestamp_seconds{framework=~"$framework", x="y(z)"})'
        " unless ignoring (framework) (other == 0) or vector(0) > 2 * 1e3 + rate(c_total[5m] offset 1h)"
    )
    assert metric_names(expr) == {"a_timestamp_seconds", "other", "c_total"}


@pytest.mark.parametrize("path", [DASHBOARD, CHART_DASHBOARD], ids=["grafana", "chart"])
def test_the_dashboard_queries_parse_and_use_only_exported_metrics(promtool: str, tmp_path: Path, path: Path) -> None:
    exprs = dashboard_queries(json.loads(path.read_text()))
    assert len(exprs) >= 10
    exported = exported_metric_names()
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"{expr} selects no series"
        assert names <= exported, f"{expr}: {names - exported} not exported"
        used |= names
    assert {
        "evidence_collector_evidence_status",
        "evidence_collector_connector_consecutive_failures",
        "evidence_collector_control_check_failures",
    } <= used
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
    rules_path = tmp_path / "dashboard-queries.yaml"
    rules_path.write_text(yaml.safe_dump(as_rules))
    result = subprocess.run([promtool, "check", "rules", str(rules_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_never_sums_state_every_replica_exports() -> None:
    """Every replica exports the same database-wide state, so a sum over replicas counts it once per replica."""
    per_replica = {"evidence_collector_ready"}
    for expr in dashboard_queries(json.loads(DASHBOARD.read_text())):
        if metric_names(expr) <= per_replica:
            continue
        for aggregation in re.finditer(r"\b(sum|count)\b", expr):
            inner = expr[aggregation.end() :]
            assert re.match(r"\s*(by\s*\([^)]*\)\s*)?\(\s*max by", inner), f"{expr}: {aggregation[1]} over replicas"


def test_the_alert_rules_select_series_only_by_labels_the_collector_exports() -> None:
    """``connector_instance``, not ``instance``: the target label Prometheus sets would override it."""
    for rule in rules():
        grouping = re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", str(rule["expr"]))
        labels = {label.strip() for group in grouping for label in group.split(",")}
        assert not labels & {"instance", "job"}, rule["alert"]
        assert "$labels.instance" not in json.dumps(rule["annotations"]), rule["alert"]


def test_every_collector_metric_named_in_docs_and_deployment_files_is_exported() -> None:
    exported = exported_metric_names()
    sources = [*(ROOT / "docs").rglob("*.md"), ROOT / "README.md", *(ROOT / "deploy").rglob("*.y*ml")]
    sources += [*(ROOT / "deploy").rglob("*.json"), *(ROOT / "deploy").rglob("*.txt")]
    named: dict[str, set[Path]] = {}
    for source in sources:
        for name in re.findall(r"\bevidence_collector_[a-z0-9_]*[a-z0-9]\b", source.read_text()):
            named.setdefault(name, set()).add(source.relative_to(ROOT))
    assert len(named) >= 10
    unknown = {name: sorted(map(str, where)) for name, where in named.items() if name not in exported}
    assert not unknown, "not exported by the collector"
