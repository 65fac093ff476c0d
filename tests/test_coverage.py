"""Coverage: per control automated / attested / attestable / uncovered; totals, goals, metrics, CLI, suggestions."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from collector.attestation import AttestationFields, default_templates_dir, load_templates
from collector.cli import app
from collector.connector import available_connectors
from collector.coverage import (
    ConnectorCapability,
    CoverageBasis,
    CoverageState,
    compute_coverage,
    coverage_basis,
)
from collector.crosswalk import default_crosswalks_dir, load_crosswalks, suggest_links
from collector.mappings import load_mappings
from collector.metrics import EvidenceMetrics
from collector.model import ControlRef
from collector.state import State
from collector.store import Store
from tests.helpers import store_attestation

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MAPPINGS = load_mappings()
TEMPLATES = load_templates(default_templates_dir(), MAPPINGS)
SCANNER = ConnectorCapability(
    "container_scan", frozenset({"container.scan"}), frozenset({"container.no_fixable_vulns", "container.scan_recent"})
)
ATTESTATION = "attestation.document"


def state_of(report: Any, control: str) -> Any:
    ref = ControlRef.parse(control)
    return next(c for c in report.controls if c.ref == ref)


def test_a_control_is_automated_only_when_a_configured_connector_produces_its_evidence() -> None:
    configured = compute_coverage(MAPPINGS, CoverageBasis({"container_scan": SCANNER}, {}), {}, NOW)
    cc71 = state_of(configured, "soc2:CC7.1")
    assert cc71.state is CoverageState.AUTOMATED
    assert cc71.connectors == ("container_scan",)
    assert "container.scan" in cc71.kinds
    assert "container.no_fixable_vulns" in cc71.checks

    nothing = compute_coverage(MAPPINGS, CoverageBasis({}, {}), {}, NOW)
    assert state_of(nothing, "soc2:CC7.1").state is CoverageState.UNCOVERED
    assert "container.scan" in state_of(nothing, "soc2:CC7.1").unconfigured


def test_attested_needs_an_unexpired_attestation_and_attestable_a_template() -> None:
    observed = NOW - timedelta(days=10)
    newest = {
        ("soc2:CC1.2", ATTESTATION): (observed, NOW + timedelta(days=300)),
        ("soc2:CC1.3", ATTESTATION): (observed - timedelta(days=400), NOW - timedelta(days=1)),
    }
    basis = CoverageBasis({}, TEMPLATES)
    report = compute_coverage(MAPPINGS, basis, newest, NOW, "soc2")
    assert state_of(report, "soc2:CC1.2").state is CoverageState.ATTESTED
    expired = state_of(report, "soc2:CC1.3")
    assert expired.state is CoverageState.ATTESTABLE  # expired: back to what a template could cover
    assert expired.attestations[0].status.value == "stale"
    assert "organisation-and-roles" in expired.templates
    assert state_of(report, "soc2:PI1.2").state is CoverageState.UNCOVERED

    later = compute_coverage(MAPPINGS, basis, newest, NOW + timedelta(days=301), "soc2")
    assert state_of(later, "soc2:CC1.2").state is CoverageState.ATTESTABLE


def test_totals_per_framework_and_group_add_up() -> None:
    report = compute_coverage(MAPPINGS, CoverageBasis({"container_scan": SCANNER}, TEMPLATES), {}, NOW)
    totals = {t.framework: t for t in report.frameworks}
    assert {fw: t.total for fw, t in totals.items()} == {"iso27001": 93, "iso42001": 38, "nist_ai_rmf": 72, "soc2": 61}
    for framework, total in totals.items():
        groups = [g for g in report.groups if g.framework == framework]
        assert sum(g.total for g in groups) == total.total
        for state in CoverageState:
            assert sum(g.counts[state] for g in groups) == total.counts[state]
    nist_groups = {g.group for g in report.groups if g.framework == "nist_ai_rmf"}
    assert nist_groups == {"GOVERN", "MAP", "MEASURE", "MANAGE"}
    iso_groups = {g.group: g.total for g in report.groups if g.framework == "iso27001"}
    assert iso_groups == {"A.5": 37, "A.6": 8, "A.7": 14, "A.8": 34}


def test_the_shipped_templates_meet_the_attestation_backed_goals() -> None:
    """With every installed connector counted as configured; the automated-only goals depend on connector mappings
    and are reported, not asserted here."""
    basis = coverage_basis(available_connectors(), TEMPLATES)
    report = compute_coverage(MAPPINGS, basis, {}, NOW)
    for goal in report.goals:
        if CoverageState.ATTESTABLE in goal.goal.states:
            assert goal.met, goal.as_json()
    soc2 = next(g for g in report.goals if g.goal.framework == "soc2")
    assert soc2.total == 33


def test_a_connector_that_fails_to_load_is_reported_and_counts_as_not_configured() -> None:
    basis = coverage_basis(["container_scan", "no_such_connector"], {})
    assert set(basis.capabilities) == {"container_scan"}
    assert "unknown connector type" in basis.unavailable["no_such_connector"]


def test_coverage_is_exported_as_metrics_by_framework_and_state() -> None:
    state = State()
    state.observe("attestation.document", "attested_document", "p", NOW, [], ["soc2:CC1.2"], NOW + timedelta(days=9))
    registry = CollectorRegistry()
    basis = CoverageBasis({"container_scan": SCANNER}, TEMPLATES)
    registry.register(EvidenceMetrics(state, MAPPINGS, clock=lambda: NOW, coverage=basis))
    samples = {
        (s.labels["framework"], s.labels["state"]): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        if family.name == "evidence_collector_control_coverage"
        for s in family.samples
    }
    report = compute_coverage(MAPPINGS, basis, state.snapshot().newest, NOW)
    for totals in report.frameworks:
        for st in CoverageState:
            assert samples[(totals.framework, st.value)] == totals.counts[st]
    assert samples[("soc2", "attested")] == 1
    assert sum(v for (fw, _), v in samples.items() if fw == "iso27001") == 93


def test_without_a_coverage_basis_no_coverage_series_are_exported() -> None:
    registry = CollectorRegistry()
    registry.register(EvidenceMetrics(State(), MAPPINGS, clock=lambda: NOW))
    assert "evidence_collector_control_coverage{" not in generate_latest(registry).decode()


# ------------------------------------------------------------------------------------------------ crosswalks


def test_crosswalks_load_and_suggest_only_from_automated_to_not_automated() -> None:
    crosswalks = load_crosswalks(default_crosswalks_dir(), MAPPINGS)
    assert {tuple(c.frameworks) for c in crosswalks} == {("soc2", "iso27001"), ("nist_ai_rmf", "iso42001")}
    report = compute_coverage(MAPPINGS, CoverageBasis({"container_scan": SCANNER}, TEMPLATES), {}, NOW)
    suggestions = suggest_links(report, crosswalks)
    automated = {c.ref for c in report.controls if c.state is CoverageState.AUTOMATED}
    assert suggestions
    for s in suggestions:
        assert s.via in automated
        assert s.control not in automated
    # container.scan is automated on soc2:CC7.1; the crosswalk pairs CC7.1 with iso27001:A.8.9, not mapped by it
    assert any(
        s.control == ControlRef("iso27001", "A.8.9") and s.via == ControlRef("soc2", "CC7.1") for s in suggestions
    )


# ------------------------------------------------------------------------------------------------- commands


def config_for(tmp_path: Path, db_url: str, connectors: list[dict[str, Any]] | None = None) -> Path:
    path = tmp_path / "collector.yaml"
    doc = {"database": {"url": db_url}, "log": {"format": "json", "level": "warning"}, "connectors": connectors or []}
    path.write_text(json.dumps(doc))
    return path


def cli(config: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(config), *args])


@pytest.fixture
def attested_store(db_url: str, tmp_path: Path) -> str:
    store = Store(db_url)
    store.upgrade()
    minutes = tmp_path / "minutes.pdf"
    minutes.write_bytes(b"minutes")
    fields = AttestationFields.model_validate(
        {"title": "Board minutes Q3", "by": "Company secretary", "controls": ["soc2:CC1.2"], "valid_for": "90d"}
    )
    store_attestation(store, MAPPINGS, fields, minutes, now=datetime.now(UTC), templates=TEMPLATES)
    store.dispose()
    return db_url


def test_coverage_command_json_reads_configured_connectors_and_stored_attestations(
    attested_store: str, tmp_path: Path
) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    scanner = {"name": "scans", "type": "container_scan", "settings": {"paths": [f"{scans}/*.json"]}}
    config = config_for(tmp_path, attested_store, [scanner])
    result = cli(config, "coverage", "--format", "json", "--framework", "soc2")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    by_id = {c["control"]: c for c in doc["controls"]}
    assert by_id["CC1.2"]["state"] == "attested"
    assert by_id["CC1.2"]["attestations"][0]["status"] == "fresh"
    assert by_id["CC7.1"]["state"] == "automated"
    assert by_id["CC7.1"]["connectors"] == ["container_scan"]
    assert doc["connectors"] == ["container_scan"]
    assert {f["framework"] for f in doc["frameworks"]} == {"soc2"}
    assert [g["framework"] for g in doc["goals"]] == ["soc2"]


def test_coverage_command_csv_has_a_row_per_control(attested_store: str, tmp_path: Path) -> None:
    result = cli(config_for(tmp_path, attested_store), "coverage", "--format", "csv", "--framework", "iso42001")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 38
    assert {r["state"] for r in rows} <= {s.value for s in CoverageState}
    assert next(r for r in rows if r["control"] == "A.5.3")["templates"].split(";") == ["ai-impact-assessment"]


def test_coverage_command_table_shows_goals(attested_store: str, tmp_path: Path) -> None:
    result = cli(config_for(tmp_path, attested_store), "coverage", "--framework", "soc2")
    assert result.exit_code == 0, result.output
    assert "SOC 2 CC1-CC9" in result.stdout
    assert "attested" in result.stdout


def test_documented_goal_command_needs_no_database(tmp_path: Path) -> None:
    config = config_for(tmp_path, f"sqlite:///{tmp_path / 'absent' / 'never.db'}")
    result = cli(config, "coverage", "--all-connectors", "--no-store", "--format", "json")
    assert result.exit_code == 0, result.output
    goals = json.loads(result.stdout)["goals"]
    assert len(goals) == 6
    assert not (tmp_path / "absent" / "never.db").exists()


def test_unknown_framework_is_a_clear_error(tmp_path: Path) -> None:
    result = cli(config_for(tmp_path, "sqlite:///x.db"), "coverage", "--framework", "pci", "--no-store")
    assert result.exit_code == 2
    assert "unknown framework 'pci'" in result.output


def test_controls_suggest_command(attested_store: str, tmp_path: Path) -> None:
    result = cli(config_for(tmp_path, attested_store), "controls-suggest", "--all-connectors", "--format", "json")
    assert result.exit_code == 0, result.output
    suggestions = json.loads(result.stdout)["suggestions"]
    assert suggestions
    assert all(s["crosswalk"] for s in suggestions)
    only_iso = cli(
        config_for(tmp_path, attested_store), "controls-suggest", "--all-connectors", "--framework", "iso27001",
        "--format", "json",
    )  # fmt: skip
    assert {s["control"].split(":")[0] for s in json.loads(only_iso.stdout)["suggestions"]} == {"iso27001"}


def test_controls_suggest_reads_the_crosswalks_of_the_configured_mappings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import shutil

    from collector.mappings import default_mappings_dir

    config = config_for(tmp_path, f"sqlite:///{tmp_path / 'evidence.db'}")
    shipped = cli(config, "controls-suggest", "--all-connectors", "--format", "json")
    assert json.loads(shipped.stdout)["suggestions"]
    custom = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), custom)
    for crosswalk in (custom / "crosswalks").glob("*.yaml"):
        crosswalk.unlink()
    monkeypatch.setenv("EVIDENCE_COLLECTOR_MAPPINGS", str(custom))
    result = cli(config, "controls-suggest", "--all-connectors", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["suggestions"] == []
