"""Hostile or damaged scan reports never pass: a field the checks read that is renamed, missing, null or of the
wrong type is a problem naming it; an unreadable severity is UNKNOWN and never below the threshold; an unknown
fix state counts as fixable; an oversize report is not read. Each case is a real report (tests/fixtures, see
SOURCES.md) with one field changed."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.connector import CollectContext, Problem
from collector.model import CheckResult, Observation, Outcome
from connectors.container_scan import NO_FIXABLE_VULNS, ContainerScanConnector, ContainerScanSettings
from connectors.kubernetes.trivy_operator import read_report as read_operator_report

FIXTURES = Path(__file__).parents[1] / "fixtures"
CRITICAL = 4
"""``trivy-alpine-39-critical.json``: Results[0].Vulnerabilities[4] is CVE-2019-14697, CRITICAL, fixed in musl."""


def real(source: str, name: str) -> Any:
    return json.loads((FIXTURES / source / name).read_text(encoding="utf-8"))


def collect(tmp_path: Path, document: Any, **settings: Any) -> tuple[list[Observation], list[Problem]]:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    connector = ContainerScanConnector(ContainerScanSettings(paths=[str(path)], **settings))
    ctx = CollectContext(instance="scans", run_id="r1", now=datetime.now(UTC))
    return list(connector.collect(ctx)), ctx.problems


def problem(tmp_path: Path, document: Any) -> str:
    observations, problems = collect(tmp_path, document)
    assert observations == []
    [only] = problems
    return only.reason


def verdict(tmp_path: Path, document: Any, threshold: str = "HIGH") -> CheckResult:
    observations, problems = collect(tmp_path, document)
    assert problems == []
    [observation] = observations
    settings = ContainerScanSettings(paths=["x"], fail_on_severity=threshold)
    return NO_FIXABLE_VULNS.run(observation, settings, observation.observed_at + timedelta(hours=1))


def trivy_critical() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The failing Trivy report with only its CRITICAL records left (both fixable: musl, musl-utils)."""
    report = real("trivy", "trivy-alpine-39-critical.json")
    records = [r for r in report["Results"][0]["Vulnerabilities"] if r["Severity"] == "CRITICAL"]
    report["Results"][0]["Vulnerabilities"] = records
    return report, records


# ------------------------------------------------------------------------------------------- Trivy


@pytest.mark.parametrize("renamed", ["vulnerabilities", "Vulnerabilites", "Vulns", "Findings"])
def test_a_renamed_trivy_vulnerabilities_array_is_a_problem_naming_it(tmp_path: Path, renamed: str) -> None:
    report = real("trivy", "trivy-alpine-39-critical.json")
    result = report["Results"][0]
    result[renamed] = result.pop("Vulnerabilities")
    reason = problem(tmp_path, report)
    assert reason == f"malformed trivy report: Results[0].Vulnerabilities is missing; found `{renamed}`"


def test_a_trivy_result_without_vulnerabilities_is_still_a_clean_target(tmp_path: Path) -> None:
    report = real("trivy", "trivy-alpine-39-critical.json")
    del report["Results"][0]["Vulnerabilities"]
    assert verdict(tmp_path, report).result is Outcome.PASS  # how trivy writes a clean target (omitempty)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Severity": None}, "Results[0].Vulnerabilities[4].Severity is null"),
        ({"Severity": 9.8}, "Results[0].Vulnerabilities[4].Severity is a JSON number (9.8), expected a string"),
        ({"FixedVersion": ["1.2"]}, "Results[0].Vulnerabilities[4].FixedVersion is a JSON array, expected a string"),
        ({"VulnerabilityID": " "}, "Results[0].Vulnerabilities[4].VulnerabilityID is blank"),
    ],
)
def test_a_mistyped_trivy_field_is_a_problem_naming_its_path(
    tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    report = real("trivy", "trivy-alpine-39-critical.json")
    report["Results"][0]["Vulnerabilities"][CRITICAL].update(change)
    assert reason in problem(tmp_path, report)


def test_a_trivy_record_without_severity_is_a_problem_not_a_low_finding(tmp_path: Path) -> None:
    report = real("trivy", "trivy-alpine-39-critical.json")
    del report["Results"][0]["Vulnerabilities"][CRITICAL]["Severity"]
    assert problem(tmp_path, report) == "malformed trivy report: Results[0].Vulnerabilities[4].Severity is missing"


@pytest.mark.parametrize("renamed", ["fixedVersion", "Fixed_Version", "FixedVersions"])
def test_a_renamed_fixed_version_is_a_problem_not_no_fix(tmp_path: Path, renamed: str) -> None:
    report = real("trivy", "trivy-legacy-v0.19-array.json")  # no Status: FixedVersion alone says "fixable"
    record = report[0]["Vulnerabilities"][0]
    record[renamed] = record.pop("FixedVersion")
    assert problem(tmp_path, report) == (
        f"malformed trivy-legacy report: results[0].Vulnerabilities[0].FixedVersion is missing; found `{renamed}`"
    )


@pytest.mark.parametrize(
    ("status", "fixed_version", "outcome"),
    [
        ("fixed", None, Outcome.FAIL),  # Status says fixed even without the version
        ("unknown", None, Outcome.FAIL),  # unknown fix state counts as fixable
        ("banana", None, Outcome.FAIL),
        (None, None, Outcome.FAIL),  # Status left out where the other records carry it: trivy does not know
        ("will_not_fix", None, Outcome.PASS),
        ("affected", None, Outcome.PASS),
        ("affected", "1.1.20-r5", Outcome.FAIL),
    ],
)
def test_trivy_status_and_fixed_version_decide_the_fix_state(
    tmp_path: Path, status: str | None, fixed_version: str | None, outcome: Outcome
) -> None:
    report, records = trivy_critical()
    for record in records:
        record.pop("FixedVersion")
        record.pop("Status")
        if status is not None:
            record["Status"] = status
        if fixed_version is not None:
            record["FixedVersion"] = fixed_version
    report["Results"][0]["Vulnerabilities"].append({**records[0], "VulnerabilityID": "CVE-0", "Severity": "LOW"})
    report["Results"][0]["Vulnerabilities"][-1]["Status"] = "affected"
    assert verdict(tmp_path, report).result is outcome


def test_trivy_status_fixed_without_a_version_and_status_unknown_fail(tmp_path: Path) -> None:
    # a real report with one record per Trivy status, none with a FixedVersion
    result = verdict(tmp_path, real("trivy", "trivy-all-statuses.json"), threshold="LOW")
    assert result.result is Outcome.FAIL
    assert (result.details["with_fix"], result.details["fix_state_unknown"]) == (1, 1)  # fixed; unknown


def test_a_secret_result_class_does_not_hide_the_vulnerabilities_it_holds(tmp_path: Path) -> None:
    report = real("trivy", "trivy-alpine-39-critical.json")
    report["Results"][0]["Class"] = "secret"
    assert verdict(tmp_path, report).result is Outcome.FAIL


def test_an_unknown_trivy_severity_with_a_fix_fails_even_at_critical(tmp_path: Path) -> None:
    report, records = trivy_critical()
    for record in records:
        record["Severity"] = "SEVERE"
    result = verdict(tmp_path, report, threshold="CRITICAL")
    assert result.result is Outcome.FAIL
    assert result.details["counts"] == {"CRITICAL": 0, "UNKNOWN": 2}
    assert "UNKNOWN 2 (an unknown severity counts as at or above the threshold)" in result.message


def test_a_trivy_operator_record_without_severity_is_an_error_naming_it() -> None:
    report = real("trivy-operator", "vulnerabilityreport-no-vuln.json")
    report["report"]["vulnerabilities"] = [
        {
            "vulnerabilityID": "CVE-2019-14697",
            "resource": "musl",
            "installedVersion": "1.1.20-r4",
            "fixedVersion": "1.1.20-r5",
            "title": "",
            "primaryLink": "",
        }
    ]
    with pytest.raises(ValueError, match=r"report\.vulnerabilities\[0\]\.severity is missing"):
        read_operator_report(report, "vulnerabilityreports/x")


# ------------------------------------------------------------------------------------------- Grype


def grype_critical() -> tuple[dict[str, Any], dict[str, Any]]:
    report = real("grype", "grype-image-newest-fields.json")
    [critical] = [m["vulnerability"] for m in report["matches"] if m["vulnerability"]["severity"] == "Critical"]
    return report, critical


@pytest.mark.parametrize(
    "fix", [{"state": "unknown", "versions": []}, {"state": "", "versions": []}, {"versions": []}, None, "garbage"]
)
def test_a_grype_critical_with_an_unknown_or_missing_fix_state_fails(tmp_path: Path, fix: Any) -> None:
    report, critical = grype_critical()
    if fix is None:
        del critical["fix"]
    elif isinstance(fix, dict):
        critical["fix"] = fix
    else:
        critical["fix"]["state"] = fix
    result = verdict(tmp_path, report)
    assert result.result is Outcome.FAIL
    assert result.details["fix_state_unknown"] == 1


def test_a_grype_match_without_severity_is_unknown_severity_and_fails(tmp_path: Path) -> None:
    report, critical = grype_critical()
    del critical["severity"]  # real grype 0.96 reports leave it out
    result = verdict(tmp_path, report)
    assert result.result is Outcome.FAIL
    assert result.details["counts"]["UNKNOWN"] == 1


@pytest.mark.parametrize(("field", "renamed"), [("severity", "Severity"), ("fix", "Fix"), ("id", "ID")])
def test_a_renamed_grype_field_is_a_problem_naming_it(tmp_path: Path, field: str, renamed: str) -> None:
    report = real("grype", "grype-image-newest-fields.json")
    vulnerability = report["matches"][0]["vulnerability"]
    vulnerability[renamed] = vulnerability.pop(field)
    assert problem(tmp_path, report) == (
        f"malformed grype report: matches[0].vulnerability.{field} is missing; found `{renamed}`"
    )


def test_grype_fix_versions_of_the_wrong_type_are_a_problem(tmp_path: Path) -> None:
    report, critical = grype_critical()
    critical["fix"]["versions"] = "1.2.1"
    assert "matches[1].vulnerability.fix.versions is '1.2.1', expected an array" in problem(tmp_path, report)


# ------------------------------------------------------------------------------------------- SARIF


def sarif_without_severity_words() -> dict[str, Any]:
    """Grype's SARIF with the severity words gone, so level and security-severity are all that is left."""
    report = real("sarif", "grype-image.sarif.json")
    for rule in report["runs"][0]["tool"]["driver"]["rules"]:
        rule["help"]["text"] = rule["help"]["text"].replace("Severity:", "Sev:")
    for result in report["runs"][0]["results"]:
        del result["level"]
    return report


@pytest.mark.parametrize("score", ["NaN", "-1", "11", "Infinity", "high", -1, 1e400])
def test_a_sarif_security_severity_out_of_range_is_unknown_severity_and_fails(tmp_path: Path, score: Any) -> None:
    report = sarif_without_severity_words()
    for rule in report["runs"][0]["tool"]["driver"]["rules"]:
        rule["properties"]["security-severity"] = score
    result = verdict(tmp_path, report, threshold="CRITICAL")
    assert result.result is Outcome.FAIL
    assert result.details["counts"] == {"CRITICAL": 0, "UNKNOWN": 2}


def test_a_valid_sarif_security_severity_still_grades_the_finding(tmp_path: Path) -> None:
    report = sarif_without_severity_words()
    for rule in report["runs"][0]["tool"]["driver"]["rules"]:
        rule["properties"]["security-severity"] = "3.1"
    assert verdict(tmp_path, report).result is Outcome.PASS  # two LOW, threshold HIGH


@pytest.mark.parametrize("level", ["critical", 3, ["error"]])
def test_a_sarif_level_outside_the_four_levels_is_a_problem_naming_it(tmp_path: Path, level: Any) -> None:
    report = real("sarif", "grype-image.sarif.json")
    report["runs"][0]["results"][1]["level"] = level
    assert "runs[0].results[1].level is " in problem(tmp_path, report)


@pytest.mark.parametrize("results", ["missing", None])
def test_a_sarif_run_without_results_is_an_error_not_a_clean_run(tmp_path: Path, results: Any) -> None:
    report = real("sarif", "grype-image.sarif.json")
    if results == "missing":
        del report["runs"][0]["results"]
    else:
        report["runs"][0]["results"] = results
    result = verdict(tmp_path, report)
    assert result.result is Outcome.ERROR
    assert "runs[0].results is " in result.message


@pytest.mark.parametrize("rule_id", [["CVE-1999-0001-package-1"], None, "", "missing"])
def test_a_sarif_rule_without_a_string_id_is_a_problem_naming_it(tmp_path: Path, rule_id: Any) -> None:
    report = real("sarif", "grype-image.sarif.json")
    rule = report["runs"][0]["tool"]["driver"]["rules"][0]
    if rule_id == "missing":
        del rule["id"]
    else:
        rule["id"] = rule_id
    assert "runs[0].tool.driver.rules[0].id is " in problem(tmp_path, report)


def test_a_sarif_result_without_a_rule_id_never_borrows_another_rule(tmp_path: Path) -> None:
    """A result that lost its ruleId is never read with some other rule (the mutation test once found an
    error-level finding that took a broken-id rule's LOW severity, and the report passed)."""
    report = real("sarif", "grype-image.sarif.json")
    error_result = next(r for r in report["runs"][0]["results"] if r["level"] == "error")
    del error_result["ruleId"]
    error_result.pop("ruleIndex", None)
    assert "has no ruleId" in problem(tmp_path, report)


def test_trivy_vulnerabilities_moved_under_an_unknown_key_at_any_depth_are_a_problem(tmp_path: Path) -> None:
    report, records = trivy_critical()
    result = report["Results"][0]
    del result["Vulnerabilities"], result["Class"]
    result["0"] = [records]
    assert "Results[0].Vulnerabilities is missing; found `0`" in problem(tmp_path, report)


# ------------------------------------------------------------------------------------------- size


def test_a_generous_size_limit_does_not_allocate_it(tmp_path: Path) -> None:
    observations, problems = collect(tmp_path, real("grype", "grype-image-newest-fields.json"), max_file_bytes=2**50)
    assert problems == []
    assert len(observations) == 1


def test_a_report_over_the_limit_is_a_problem_naming_its_size_and_is_not_read(tmp_path: Path) -> None:
    report = real("trivy", "trivy-alpine-39-critical.json")
    size = len(json.dumps(report).encode())
    observations, problems = collect(tmp_path, report, max_file_bytes=size - 1)
    assert observations == []
    assert [p.reason for p in problems] == [f"file too large: {size} bytes, max_file_bytes is {size - 1}"]


def test_a_report_that_grew_after_its_size_was_taken_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fstat = os.fstat

    def stale_fstat(fd: int) -> os.stat_result:
        fields = list(real_fstat(fd))
        fields[stat.ST_SIZE] = 1
        return os.stat_result(fields)

    monkeypatch.setattr("connectors.container_scan.connector.os.fstat", stale_fstat)
    observations, problems = collect(tmp_path, real("grype", "grype-image-newest-fields.json"))
    assert problems == []
    assert len(observations) == 1
