from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.store import Store

DATA = Path(__file__).resolve().parent / "data" / "scans"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
database: {{url: "sqlite:///{tmp_path / "e.db"}"}}
connectors:
  - name: scans
    type: container_scan
    settings: {{paths: ["{DATA}/*.json"], max_age: 3650d}}
"""
    )
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def test_collect_then_status_json_has_the_documented_shape(config: Path) -> None:
    code, _ = invoke("--config", str(config), "collect")
    assert code == 0
    code, out = invoke("status", "--config", str(config), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"generated_at", "controls", "connectors"}
    by_id = {(c["framework"], c["control"]): c for c in doc["controls"]}
    cc71 = by_id[("soc2", "CC7.1")]
    assert set(cc71) == {
        "framework", "control", "title", "status", "age_seconds", "ttl_seconds", "expires_at", "evidence_kinds",
        "failing_checks",
    }  # fmt: skip
    assert cc71["status"] in {"fresh", "at_risk", "stale"}
    assert cc71["evidence_kinds"] == ["container.scan"]
    assert cc71["failing_checks"] == ["container.no_fixable_vulns"]
    assert doc["connectors"] == [
        {
            "name": "scans",
            "type": "container_scan",
            "last_success": doc["connectors"][0]["last_success"],
            "last_status": "succeeded",
            "last_error": None,
            "consecutive_failures": 0,
        }
    ]
    assert doc["connectors"][0]["last_success"] is not None


def test_evidence_filters_by_control_alias_check_and_result(config: Path) -> None:
    invoke("--config", str(config), "collect")
    code, out = invoke("evidence", "--config", str(config), "--format", "json")
    assert code == 0
    records = json.loads(out)["records"]
    assert len(records) == 3
    first = records[0]
    assert {"id", "kind", "subject", "observed_at", "collected_at", "connector", "controls", "checks",
            "content_sha256", "payload"} <= set(first)  # fmt: skip
    assert set(first["subject"]) == {"type", "id"}

    code, out = invoke("evidence", "--config", str(config), "--control", "iso27001:A.12.6.1", "--format", "json")
    assert code == 0 and len(json.loads(out)["records"]) == 3  # the 2013 number resolves to A.8.8

    code, out = invoke(
        "evidence", "--config", str(config), "--check", "container.no_fixable_vulns", "--result", "fail",
        "--format", "json",
    )  # fmt: skip
    failing = json.loads(out)["records"]
    assert failing, "the sample Trivy report has fixable CRITICAL/HIGH vulnerabilities"
    assert len(failing) < len(records)
    for rec in failing:
        [check] = [c for c in rec["checks"] if c["id"] == "container.no_fixable_vulns"]
        assert check["result"] == "fail"

    code, _ = invoke("evidence", "--config", str(config), "--control", "soc2:CC99.1")
    assert code == 2


def test_verify_passes_then_names_the_tampered_row(config: Path, tmp_path: Path) -> None:
    invoke("--config", str(config), "collect")
    code, out = invoke("verify", "--config", str(config))
    assert code == 0 and "3 records verified" in out
    Store(f"sqlite:///{tmp_path / 'e.db'}").execute_sql("update evidence set source = 'elsewhere' where seq = 2")
    result = CliRunner().invoke(app, ["verify", "--config", str(config)])
    assert result.exit_code == 1
    assert "seq=2" in result.output and "altered" in result.output


def test_unreachable_database_is_exit_3_with_the_password_hidden(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('database: {url: "postgresql+psycopg://u:sekrit@127.0.0.1:1/x"}\n')
    result = CliRunner().invoke(app, ["--config", str(path), "verify"])
    assert result.exit_code == 3
    assert "sekrit" not in result.output


def test_controls_lists_the_catalog_with_mapped_kinds(config: Path) -> None:
    code, out = invoke("controls", "--config", str(config), "--framework", "iso27001", "--format", "json")
    assert code == 0
    controls = {c["control"]: c for c in json.loads(out)["controls"]}
    assert len(controls) == 93
    assert "container.scan" in controls["A.8.8"]["evidence_kinds"]
