"""The container_scan connector against real Trivy/Grype/SARIF reports and hand-made bad ones."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from collector.canonical import canonical_json
from collector.connector import CollectContext, Problem, RunCancelled, load_connector
from collector.model import Observation, Outcome, Subject
from collector.sdk.testing import ConnectorConformance
from collector.sdk.vulnerability_scan import ReportError
from collector.timestamps import parse_timestamp
from connectors.container_scan import (
    NO_FIXABLE_VULNS,
    SCAN_RECENT,
    ContainerScanConnector,
    ContainerScanSettings,
)
from connectors.container_scan.connector import read_report

FIXTURES = Path(__file__).parents[1] / "fixtures"
SAMPLES = Path(__file__).parents[1] / "data" / "scans"
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def collect(*paths: Path | str, **settings: Any) -> tuple[list[Observation], list[Problem]]:
    connector = ContainerScanConnector(ContainerScanSettings(paths=[str(p) for p in paths], **settings))
    ctx = CollectContext(instance="scans", run_id="r1", now=datetime.now(UTC))
    return list(connector.collect(ctx)), ctx.problems


def collect_one(path: Path) -> Observation:
    observations, problems = collect(path)
    assert problems == []
    assert len(observations) == 1
    return observations[0]


def counts(**given: int) -> dict[str, int]:
    return {severity: given.get(severity, 0) for severity in SEVERITIES}


def mtime_of(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def assert_counts_match_list(payload: Any) -> None:
    vulns = payload["vulnerabilities"]
    keys = [(v["id"], v["package"] or "", v["installed_version"] or "") for v in vulns]
    assert keys == sorted(set(keys)), "vulnerabilities must be deduplicated and sorted"
    assert payload["vulnerability_count"] == len(vulns)
    assert payload["severity_counts"] == counts(**Counter(v["severity"] for v in vulns))
    if payload["fix_state_known"]:
        assert payload["fixable_counts"] == counts(**Counter(v["severity"] for v in vulns if v["fixable"]))
        assert all(v["fixable"] is not None for v in vulns)
    else:
        assert payload["fixable_counts"] is None


# ------------------------------------------------------------------------------------------- real reports

ALPINE_310_IMAGE_ID = "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4"
ALPINE_39_IMAGE_ID = "sha256:055936d3920576da37aa9bc460d70c5f212028bda1c08c0879aedf03d7a66ea1"
TRIVY_CREATED_AT = datetime(2021, 8, 25, 12, 20, 30, tzinfo=UTC)

# file -> (format, subject, severity counts, fixable counts or None, scan time or None for "file mtime")
EXPECTED: dict[str, tuple[str, Subject, dict[str, int], dict[str, int] | None, datetime | None]] = {
    "trivy/trivy-alpine-310.json": (
        "trivy",
        Subject("container_image", ALPINE_310_IMAGE_ID),
        counts(MEDIUM=4),
        counts(MEDIUM=4),
        TRIVY_CREATED_AT,
    ),
    "trivy/trivy-alpine-39-critical.json": (
        "trivy",
        Subject("container_image", ALPINE_39_IMAGE_ID),
        counts(CRITICAL=2, MEDIUM=4),
        counts(CRITICAL=2, MEDIUM=4),
        TRIVY_CREATED_AT,
    ),
    "trivy/trivy-alpine-39-no-results.json": (
        "trivy",
        Subject("container_image", ALPINE_39_IMAGE_ID),
        counts(),
        counts(),
        TRIVY_CREATED_AT,
    ),
    "trivy/trivy-spring4shell-multi-target.json": (
        "trivy",
        Subject("container_image", "sha256:ed8f0747d483b60657982f0ef1ba74482aed08795cf0eb774b00bc53022a8351"),
        counts(CRITICAL=1),
        counts(CRITICAL=1),
        TRIVY_CREATED_AT,
    ),
    "trivy/trivy-legacy-v0.19-array.json": (
        "trivy-legacy",
        Subject("container_image", "testdata/fixtures/images/alpine-310.tar.gz"),
        counts(MEDIUM=6, LOW=2),
        counts(MEDIUM=6, LOW=2),
        None,
    ),
    "grype/grype-directory-source.json": (
        "grype",
        Subject("scan_target", '"."'),
        counts(CRITICAL=2, HIGH=2, MEDIUM=5),
        None,  # fix.state "unknown" on 8 of 9 matches: an unknown fix state, not "no fix"
        None,
    ),
    "grype/grype-image-newest-fields.json": (
        "grype",
        Subject("container_image", "sha256:ca738abb87a8d58f112d3400ebb079b61ceae7dc290beb34bda735be4b1941d5"),
        counts(CRITICAL=1, LOW=1),
        None,  # the CRITICAL's fix.state is "": unknown
        None,
    ),
    "sarif/trivy-alpine-310.sarif.json": (
        "sarif",
        Subject("container_image", ALPINE_310_IMAGE_ID),
        counts(MEDIUM=4),
        None,
        None,
    ),
    "sarif/grype-image.sarif.json": (
        "sarif",
        Subject("container_image", "user-input"),
        counts(CRITICAL=1, LOW=1),
        None,
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_report_is_read_as_the_file_says(fixtures: Path, name: str) -> None:
    form, subject, severity_counts, fixable_counts, scanned_at = EXPECTED[name]
    path = fixtures / name
    observation = collect_one(path)
    payload = observation.payload
    assert observation.kind == "container.scan"
    assert observation.subject == subject
    assert observation.source == str(path)
    assert payload["format"] == form
    assert payload["severity_counts"] == severity_counts
    assert payload["fixable_counts"] == fixable_counts
    assert payload["fix_state_known"] is (fixable_counts is not None)
    assert_counts_match_list(payload)
    if scanned_at is None:
        assert observation.observed_at == mtime_of(path)
        assert payload["observed_at_source"] == "file_mtime"
    else:
        assert observation.observed_at == scanned_at
        assert payload["observed_at_source"] == "report"


def test_grype_report_without_a_target_is_named_by_its_path(fixtures: Path) -> None:
    path = fixtures / "grype" / "grype-empty-matches.json"
    observation = collect_one(path)
    assert observation.subject == Subject("scan_target", str(path))
    assert observation.payload["artifact"]["name"] == "grype-empty-matches.json"
    assert observation.payload["severity_counts"] == counts()
    assert observation.payload["vulnerability_count"] == 0
    assert observation.observed_at == mtime_of(path)


def _fixture_files() -> list[str]:
    return sorted(
        str(p.relative_to(FIXTURES)) for d in ("trivy", "grype", "sarif") for p in (FIXTURES / d).glob("*.json")
    )


@pytest.mark.parametrize("name", _fixture_files())
def test_every_fixture_parses_into_consistent_evidence(fixtures: Path, name: str) -> None:
    observations, problems = collect(fixtures / name)
    assert problems == []
    assert observations
    for observation in observations:
        assert_counts_match_list(observation.payload)
        canonical_json(dict(observation.payload))  # JSON-able, no NaN, no stray types


def test_trivy_sarif_agrees_with_trivy_json_for_the_same_image(fixtures: Path) -> None:
    native = collect_one(fixtures / "trivy" / "trivy-alpine-310.json")
    sarif = collect_one(fixtures / "sarif" / "trivy-alpine-310.sarif.json")
    assert sarif.subject == native.subject

    def strip(observation: Observation) -> list[tuple[str, str, str, str]]:
        return [
            (v["id"], v["package"], v["installed_version"], v["severity"])
            for v in observation.payload["vulnerabilities"]
        ]

    # the rule's help names one package per CVE; the per-result message has the right one
    assert strip(sarif) == strip(native)
    assert len(strip(sarif)) == 4


def test_grype_sarif_takes_severity_from_the_words_not_the_cvss_score(fixtures: Path) -> None:
    # CVE-1999-0001 is "low" with security-severity 8.2; CVE-1999-0002 is "critical" with 8.5
    observation = collect_one(fixtures / "sarif" / "grype-image.sarif.json")
    by_id = {v["id"]: v for v in observation.payload["vulnerabilities"]}
    assert by_id["CVE-1999-0001"]["severity"] == "LOW"
    assert by_id["CVE-1999-0001"]["package"] == "package-1"
    assert by_id["CVE-1999-0002"]["severity"] == "CRITICAL"
    assert by_id["CVE-1999-0002"]["installed_version"] == "2.2.2"


def test_trivy_created_at_nanoseconds_are_trimmed_to_microseconds() -> None:
    assert parse_timestamp("2021-08-25T12:20:30.123456789Z") == datetime(2021, 8, 25, 12, 20, 30, 123456, tzinfo=UTC)
    assert parse_timestamp("2022-02-18T15:49:47.2353-05:00") == datetime(2022, 2, 18, 20, 49, 47, 235300, tzinfo=UTC)
    assert parse_timestamp("") is None
    assert parse_timestamp("0001-01-01T00:00:00Z") is None  # Go's zero time
    assert parse_timestamp("yesterday") is None


# ------------------------------------------------------------------------------------------- sample reports


def test_sample_trivy_report_dedupes_the_same_package_in_two_jars() -> None:
    observation = collect_one(SAMPLES / "trivy-model-server.json")
    payload = observation.payload
    raw = json.loads((SAMPLES / "trivy-model-server.json").read_text())
    listed = sum(len(r.get("Vulnerabilities") or []) for r in raw["Results"])
    assert listed == 5
    assert payload["vulnerability_count"] == 4
    assert observation.subject == Subject(
        "container_image",
        "ghcr.io/example/model-server@sha256:e35fc1315c11c24e9d312e0bc76b86f649020312d4ee9700b59b705289e5e644",
    )
    assert observation.observed_at == datetime(2026, 11, 24, 9, 30, 12, 123456, tzinfo=UTC)
    assert payload["scanner"] == {"name": "trivy", "version": "0.58.1"}
    assert payload["artifact"]["digest"] == "sha256:e35fc1315c11c24e9d312e0bc76b86f649020312d4ee9700b59b705289e5e644"
    assert payload["severity_counts"] == counts(CRITICAL=1, HIGH=2, LOW=1)
    assert payload["fixable_counts"] == counts(CRITICAL=1, HIGH=2)
    assert_counts_match_list(payload)


def test_sample_grype_clean_image_uses_the_repo_digest_and_descriptor_time() -> None:
    observation = collect_one(SAMPLES / "grype-feature-store-clean.json")
    assert observation.subject == Subject(
        "container_image",
        "ghcr.io/example/feature-store@sha256:65b9bbb6543aa607dff7436a0766fbbe20fcd643ad3d51624dab126818c14352",
    )
    assert observation.observed_at == datetime(2026, 11, 25, 16, 2, 11, 482915, tzinfo=UTC)
    assert observation.payload["vulnerability_count"] == 0
    assert observation.payload["artifact"]["repo_tags"] == ["ghcr.io/example/feature-store:2.0.0"]


def test_sample_sarif_ignores_trivy_secret_findings() -> None:
    observation = collect_one(SAMPLES / "trivy-inference-gateway.sarif.json")
    ids = [v["id"] for v in observation.payload["vulnerabilities"]]
    assert ids == ["CVE-2023-44487", "CVE-2023-5678", "CVE-2023-5678"]
    assert observation.payload["severity_counts"] == counts(HIGH=1, MEDIUM=2)
    assert observation.subject.id.startswith("ghcr.io/example/inference-gateway@sha256:e0349485")


def test_collecting_twice_gives_byte_identical_payloads() -> None:
    first, problems = collect(SAMPLES / "*.json")
    second, _ = collect(SAMPLES / "*.json")
    assert problems == []
    assert len(first) == 3
    assert [canonical_json(dict(o.payload)) for o in first] == [canonical_json(dict(o.payload)) for o in second]


# ------------------------------------------------------------------------------------------- formats in detail


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_trivy_image_scanned_by_id_with_blank_names_falls_back_to_the_image_id(tmp_path: Path) -> None:
    # real-world quirks: ArtifactName "", RepoTags [""], RepoDigests [""], Vulnerabilities null, config results
    path = write_json(
        tmp_path / "by-id.json",
        {
            "SchemaVersion": 2,
            "ArtifactName": "",
            "ArtifactType": "container_image",
            "Metadata": {"ImageID": "sha256:" + "b" * 64, "RepoTags": [""], "RepoDigests": [""]},
            "Results": [
                {"Target": "x (debian 12.1)", "Class": "os-pkgs", "Vulnerabilities": None},
                {"Target": "Dockerfile", "Class": "config", "Misconfigurations": [{"ID": "DS002", "Severity": "HIGH"}]},
                {
                    "Target": "Python",
                    "Class": "lang-pkgs",
                    "Vulnerabilities": [
                        {"VulnerabilityID": "GHSA-1", "PkgName": "p", "InstalledVersion": "1", "Severity": "UNKNOWN"}
                    ],
                },
            ],
        },
    )
    observation = collect_one(path)
    assert observation.subject == Subject("container_image", "sha256:" + "b" * 64)
    assert observation.payload["artifact"]["repo_tags"] == []
    assert observation.payload["artifact"]["digest"] is None
    assert observation.payload["severity_counts"] == counts(UNKNOWN=1)
    assert observation.payload["fixable_counts"] == counts()
    assert observation.observed_at == mtime_of(path)  # no CreatedAt before trivy 0.48


def test_grype_severities_are_normalised_and_duplicates_merged(tmp_path: Path) -> None:
    def match(vuln_id: str, package: str, severity: str | None, state: str, versions: list[str]) -> dict[str, Any]:
        vulnerability: dict[str, Any] = {"id": vuln_id, "fix": {"versions": versions, "state": state}}
        if severity is not None:
            vulnerability["severity"] = severity
        return {"vulnerability": vulnerability, "artifact": {"name": package, "version": "1.0"}}

    path = write_json(
        tmp_path / "grype.json",
        {
            "matches": [
                match("CVE-1", "a", "Negligible", "fixed", ["1.1"]),
                match("CVE-2", "b", None, "not-fixed", []),
                match("CVE-3", "c", "High", "wont-fix", []),
                match("CVE-3", "c", "Critical", "fixed", ["1.2"]),  # same package seen at a second location
            ],
            "source": {"type": "directory", "target": "/srv/app"},
            "descriptor": {"name": "grype", "version": "0.70.0", "timestamp": "2026-11-20T10:00:00Z"},
        },
    )
    observation = collect_one(path)
    payload = observation.payload
    assert observation.subject == Subject("scan_target", "/srv/app")
    assert payload["severity_counts"] == counts(CRITICAL=1, LOW=1, UNKNOWN=1)
    assert payload["fixable_counts"] == counts(CRITICAL=1, LOW=1)
    assert payload["vulnerabilities"][2]["fixed_version"] == "1.2"
    assert observation.observed_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert_counts_match_list(payload)


def test_old_grype_without_fix_blocks_has_unknown_fix_state(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "grype-old.json",
        {
            "matches": [
                {"vulnerability": {"id": "CVE-9", "severity": "High"}, "artifact": {"name": "x", "version": "1"}}
            ],
            "source": {"type": "image", "target": {"userInput": "alpine:3.12", "tags": ["alpine:3.12"]}},
            "descriptor": {"name": "grype", "version": "0.7.0"},
        },
    )
    observation = collect_one(path)
    assert observation.payload["fix_state_known"] is False
    assert observation.payload["fixable_counts"] is None
    assert observation.subject == Subject("container_image", "alpine:3.12")
    result = NO_FIXABLE_VULNS.run(observation, ContainerScanSettings(paths=["x"]), observation.observed_at)
    assert result.result is Outcome.FAIL
    assert "fix state unknown" in result.message


def sarif_run(driver: str = "Trivy", **run: Any) -> dict[str, Any]:
    return {"tool": {"driver": {"name": driver, "version": "0.50.0", "rules": run.pop("rules", [])}}, **run}


def test_sarif_time_comes_from_invocations_and_each_run_is_an_artifact(tmp_path: Path) -> None:
    image = {"imageName": "registry.local/a:1", "imageID": "sha256:" + "a" * 64}
    path = write_json(
        tmp_path / "two-runs.sarif",
        {
            "version": "2.1.0",
            "runs": [
                sarif_run(
                    properties=image,
                    invocations=[{"startTimeUtc": "2026-11-20T10:00:00Z", "endTimeUtc": "2026-11-20T10:05:00.5Z"}],
                    results=[],
                ),
                sarif_run(
                    properties={"imageName": "registry.local/b:2"},
                    invocations=[{"startTimeUtc": "2026-11-21T08:00:00Z"}],
                ),
            ],
        },
    )
    observations, problems = collect(path)
    assert problems == []
    assert [o.subject for o in observations] == [
        Subject("container_image", "sha256:" + "a" * 64),
        Subject("container_image", "registry.local/b:2"),
    ]
    assert observations[0].observed_at == datetime(2026, 11, 20, 10, 5, 0, 500000, tzinfo=UTC)
    assert observations[1].observed_at == datetime(2026, 11, 21, 8, tzinfo=UTC)
    assert all(o.payload["observed_at_source"] == "report" for o in observations)


def test_legacy_trivy_sarif_template_reads_severity_from_the_rule_id(tmp_path: Path) -> None:
    rule = {
        "id": "[HIGH] CVE-2020-1967",
        "help": {
            "text": "Vulnerability CVE-2020-1967\nSeverity: HIGH\nPackage: libssl1.1\nInstalled Version: 1.1.1d-r3"
        },
        "properties": {"tags": ["libssl1.1"]},
    }
    result = {"ruleId": "[HIGH] CVE-2020-1967", "ruleIndex": 0, "level": "error", "message": {"text": "Bad thing."}}
    path = write_json(
        tmp_path / "legacy.sarif", {"version": "2.1.0", "runs": [sarif_run(rules=[rule], results=[result])]}
    )
    observation = collect_one(path)
    assert observation.payload["vulnerabilities"] == [
        {
            "id": "CVE-2020-1967",
            "package": "libssl1.1",
            "installed_version": "1.1.1d-r3",
            "fixed_version": None,
            "severity": "HIGH",
            "fixable": None,
        }
    ]
    assert observation.subject == Subject("scan_target", str(path))


def test_clean_legacy_trivy_null_is_a_zero_finding_scan(tmp_path: Path) -> None:
    path = tmp_path / "legacy-clean.json"
    path.write_text("null\n")
    observation = collect_one(path)
    assert observation.payload["format"] == "trivy-legacy"
    assert observation.payload["artifact"]["name"] == "legacy-clean.json"
    assert observation.subject == Subject("scan_target", str(path))
    assert observation.payload["severity_counts"] == counts()
    assert observation.payload["vulnerabilities"] == []
    assert observation.payload["observed_at_source"] == "file_mtime"


# ------------------------------------------------------------------------------------------- bad inputs


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return Path(shutil.copy(SAMPLES / "grype-feature-store-clean.json", tmp_path / "good.json"))


BAD_INPUTS: dict[str, tuple[bytes, str]] = {
    "malformed": (
        b'{"SchemaVersion": 2\n "ArtifactName": "x"}',
        "not valid JSON: Expecting ',' delimiter at line 2 column 2",
    ),
    "empty": (b"", "empty file"),
    "blank": (b" \n\t\n", "empty file"),
    "latin-1": (b'{"matches": [], "note": "caf\xe9"}', "not UTF-8"),
    "unknown-keys": (b'{"b": 1, "a": 2}', "unknown report format: top-level keys a, b"),
    "scalar": (b"42", "unknown report format: top-level JSON number"),
    "array-of-strings": (b'["a", "b"]', "unknown report format"),
    "trivy-k8s": (b'{"ClusterName": "prod", "Resources": []}', "trivy k8s"),
    "trivy-schema-3": (b'{"SchemaVersion": 3, "Results": []}', "unsupported trivy report: SchemaVersion 3"),
    "trivy-bad-shape": (b'{"SchemaVersion": 2, "Results": "oops"}', "malformed trivy report: Results is a JSON string"),
    "trivy-no-id": (
        b'{"SchemaVersion": 2, "Results": [{"Target": "x", "Vulnerabilities": [{"PkgName": "p"}]}]}',
        "malformed trivy report: Results[0].Vulnerabilities[0].VulnerabilityID is missing",
    ),
    "grype-no-id": (
        b'{"matches": [{"vulnerability": {}}]}',
        "malformed grype report: matches[0].vulnerability.id is missing",
    ),
    "sarif-old": (b'{"version": "1.0.0", "runs": []}', "unsupported SARIF version '1.0.0'"),
    "sarif-codeql": (
        b'{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "CodeQL"}}, "results": []}]}',
        "not Trivy or Grype",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_file_is_a_problem_and_the_next_file_is_still_collected(tmp_path: Path, good: Path, case: str) -> None:
    content, reason = BAD_INPUTS[case]
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    observations, problems = collect(tmp_path / "*.json")
    assert [o.source for o in observations] == [str(good)]
    assert len(problems) == 1
    assert problems[0].source == str(bad)
    assert reason in problems[0].reason


def test_truncated_real_report_is_a_problem(fixtures: Path, tmp_path: Path, good: Path) -> None:
    whole = (fixtures / "trivy" / "trivy-alpine-39-critical.json").read_bytes()
    bad = tmp_path / "truncated.json"
    bad.write_bytes(whole[: len(whole) // 2])
    observations, problems = collect(tmp_path / "*.json")
    assert [o.source for o in observations] == [str(good)]
    assert [p.source for p in problems] == [str(bad)]
    assert problems[0].reason.startswith("not valid JSON: ")


def test_utf16_report_from_powershell_is_read(tmp_path: Path) -> None:
    text = (SAMPLES / "grype-feature-store-clean.json").read_text(encoding="utf-8")
    path = tmp_path / "utf16.json"
    path.write_bytes(text.encode("utf-16"))  # with a byte-order mark, as PowerShell's `>` writes
    assert collect_one(path).payload["format"] == "grype"


def test_file_over_the_size_limit_is_skipped(tmp_path: Path) -> None:
    small = tmp_path / "a-small.json"
    small.write_text("null")
    big = Path(shutil.copy(SAMPLES / "trivy-model-server.json", tmp_path / "b-big.json"))
    observations, problems = collect(tmp_path / "*.json", max_file_bytes=100)
    assert [o.source for o in observations] == [str(small)]
    assert [p.source for p in problems] == [str(big)]
    assert problems[0].reason.startswith("file too large")


def test_unreadable_path_raises_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="unreadable"):
        read_report(str(tmp_path), 1000)  # a directory cannot be opened as a file


def test_glob_matching_nothing_is_a_problem(tmp_path: Path, good: Path) -> None:
    missing = tmp_path / "nightly" / "*.json"
    observations, problems = collect(missing, good)
    assert [o.source for o in observations] == [str(good)]
    assert problems == [Problem(str(missing), "no files match")]


# ------------------------------------------------------------------------------------------- walking the globs


def test_files_are_walked_once_each_in_sorted_order(tmp_path: Path) -> None:
    nested = tmp_path / "deep" / "er"
    nested.mkdir(parents=True)
    for name in ("b.json", "a.json"):
        (tmp_path / name).write_text("null")
    (nested / "c.json").write_text("null")
    observations, problems = collect(tmp_path / "**" / "*.json", tmp_path / "a.json")
    assert problems == []
    assert [o.source for o in observations] == sorted(
        [str(tmp_path / "a.json"), str(tmp_path / "b.json"), str(nested / "c.json")]
    )


def test_cancellation_is_checked_between_files(tmp_path: Path) -> None:
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text("null")
    connector = ContainerScanConnector(ContainerScanSettings(paths=[str(tmp_path / "*.json")]))
    ctx = CollectContext(instance="scans", run_id="r1", now=datetime.now(UTC))
    stream = connector.collect(ctx)
    assert next(stream).source == str(tmp_path / "a.json")
    ctx.cancel_event.set()
    with pytest.raises(RunCancelled):
        next(stream)


# ------------------------------------------------------------------------------------------- settings, plugin


def test_settings_defaults_and_normalisation() -> None:
    settings = ContainerScanSettings(paths=["reports/**/*.json"], fail_on_severity="critical", max_age="3d")
    assert settings.fail_on_severity == "CRITICAL"
    assert settings.max_age == timedelta(days=3)
    defaults = ContainerScanSettings(paths=["x"])
    assert (defaults.max_age, defaults.fail_on_severity, defaults.max_file_bytes) == (
        timedelta(days=7),
        "HIGH",
        100 * 1024 * 1024,
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"paths": []},
        {"paths": [""]},
        {"paths": ["x"], "fail_on_severity": "severe"},
        {"paths": ["x"], "max_age": "soon"},
        {"paths": ["x"], "max_file_bytes": 0},
        {"paths": ["x"], "unexpected": 1},
    ],
)
def test_bad_settings_are_rejected(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ContainerScanSettings.model_validate(raw)


def test_connector_is_registered_under_its_type() -> None:
    cls = load_connector("container_scan")
    assert cls is ContainerScanConnector
    assert (cls.type, cls.version, cls.Settings) == ("container_scan", "0.1.0", ContainerScanSettings)
    assert cls.kinds == frozenset({"container.scan"})
    assert [(c.id, c.kind) for c in cls.checks] == [
        ("container.no_fixable_vulns", "container.scan"),
        ("container.scan_recent", "container.scan"),
    ]
    assert NO_FIXABLE_VULNS.title == "No fixable vulnerabilities at or above the configured severity"
    assert SCAN_RECENT.title == "Scan report is recent"


# ------------------------------------------------------------------------------------------- checks


def settings(**given: Any) -> ContainerScanSettings:
    return ContainerScanSettings(paths=["x"], **given)


def test_fixable_critical_fails_and_names_the_counts(fixtures: Path) -> None:
    observation = collect_one(fixtures / "trivy" / "trivy-alpine-39-critical.json")
    result = NO_FIXABLE_VULNS.run(observation, settings(), NOW)
    assert result.result is Outcome.FAIL
    assert "CRITICAL 2, HIGH 0" in result.message
    assert result.details["counts"] == {"CRITICAL": 2, "HIGH": 0, "UNKNOWN": 0}


def test_fixable_vulns_below_the_threshold_pass(fixtures: Path) -> None:
    observation = collect_one(fixtures / "trivy" / "trivy-alpine-310.json")  # four fixable MEDIUM
    assert NO_FIXABLE_VULNS.run(observation, settings(), NOW).result is Outcome.PASS
    lowered = NO_FIXABLE_VULNS.run(observation, settings(fail_on_severity="medium"), NOW)
    assert lowered.result is Outcome.FAIL
    assert "MEDIUM 4" in lowered.message


def test_unfixed_critical_passes_but_a_fixable_low_fails_at_low(fixtures: Path, tmp_path: Path) -> None:
    report = json.loads((fixtures / "grype" / "grype-image-newest-fields.json").read_text())
    unset = collect_one(write_json(tmp_path / "unset.json", report))
    assert NO_FIXABLE_VULNS.run(unset, settings(), unset.observed_at).result is Outcome.FAIL  # fix.state "" is unknown
    report["matches"][1]["vulnerability"]["fix"]["state"] = "not-fixed"
    observation = collect_one(write_json(tmp_path / "not-fixed.json", report))
    assert NO_FIXABLE_VULNS.run(observation, settings(), observation.observed_at).result is Outcome.PASS
    at_low = NO_FIXABLE_VULNS.run(observation, settings(fail_on_severity="LOW"), observation.observed_at)
    assert at_low.result is Outcome.FAIL
    assert "LOW 1" in at_low.message


def test_sarif_unknown_fix_state_is_never_a_pass_when_vulns_exist(fixtures: Path) -> None:
    grype = collect_one(fixtures / "sarif" / "grype-image.sarif.json")  # one CRITICAL
    result = NO_FIXABLE_VULNS.run(grype, settings(), grype.observed_at)
    assert result.result is Outcome.FAIL
    assert "fix state unknown" in result.message
    assert result.details["fix_state_known"] is False
    trivy = collect_one(fixtures / "sarif" / "trivy-alpine-310.sarif.json")  # four MEDIUM
    assert NO_FIXABLE_VULNS.run(trivy, settings(), trivy.observed_at).result is Outcome.PASS
    medium = settings(fail_on_severity="MEDIUM")
    assert NO_FIXABLE_VULNS.run(trivy, medium, trivy.observed_at).result is Outcome.FAIL


def test_a_broken_payload_is_an_error_not_a_pass() -> None:
    observation = Observation("container.scan", Subject("scan_target", "x"), NOW, {})
    assert NO_FIXABLE_VULNS.run(observation, settings(), NOW).result is Outcome.ERROR


def test_recent_scan_passes_and_old_scan_fails_with_its_age(fixtures: Path) -> None:
    observation = collect_one(fixtures / "trivy" / "trivy-alpine-310.json")
    created = observation.observed_at
    assert SCAN_RECENT.run(observation, settings(), created + timedelta(days=1)).result is Outcome.PASS
    assert SCAN_RECENT.run(observation, settings(), created + timedelta(days=7)).result is Outcome.PASS
    old = SCAN_RECENT.run(observation, settings(), created + timedelta(days=8, hours=3))
    assert old.result is Outcome.FAIL
    assert "8d 3h old" in old.message
    assert old.details["age_seconds"] == (8 * 24 + 3) * 3600
    tighter = SCAN_RECENT.run(observation, settings(max_age="12h"), created + timedelta(days=1))
    assert tighter.result is Outcome.FAIL


def test_scan_dated_in_the_future_is_not_recent(fixtures: Path) -> None:
    observation = collect_one(fixtures / "trivy" / "trivy-alpine-310.json")
    result = SCAN_RECENT.run(observation, settings(), observation.observed_at - timedelta(days=2))
    assert result.result is Outcome.FAIL
    assert "in the future" in result.message


def test_scan_time_from_mtime_is_said_in_the_message(tmp_path: Path) -> None:
    report = json.loads((SAMPLES / "trivy-model-server.json").read_text())
    del report["CreatedAt"]  # trivy before 0.48 writes no time
    observation = collect_one(write_json(tmp_path / "no-time.json", report))
    assert observation.payload["observed_at_source"] == "file_mtime"
    result = SCAN_RECENT.run(observation, settings(), observation.observed_at + timedelta(hours=1))
    assert result.result is Outcome.PASS
    assert "mtime" in result.message


class TestContainerScanConformance(ConnectorConformance):
    connector_cls = ContainerScanConnector
    invalid_settings: ClassVar[list[dict[str, Any]]] = [
        {},
        {"paths": []},
        {"paths": ["  "]},
        {"paths": ["x"], "fail_on_severity": "severe"},
        {"paths": ["x"], "max_file_bytes": 0},
        {"paths": ["x"], "max_age": "a week"},
    ]

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        reports = tmp_path / "reports"
        if not reports.exists():
            shutil.copytree(SAMPLES, reports)
        return {"paths": [str(reports / "*.json")]}
