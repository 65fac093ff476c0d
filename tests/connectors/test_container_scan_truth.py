"""No false pass from a scan report: failed runs, empty reports, unreadable or future times, runs that name
no artifact, old Grype fix fields. Each case is a real report (tests/fixtures, see SOURCES.md) with one field
changed."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.connector import CollectContext, Problem
from collector.model import CheckResult, Observation, Outcome, Subject
from collector.timestamps import UnreadableTimestamp, parse_timestamp, read_timestamp
from connectors.container_scan import NO_FIXABLE_VULNS, SCAN_RECENT, ContainerScanConnector, ContainerScanSettings

FIXTURES = Path(__file__).parents[1] / "fixtures"
TRIVY_CREATED_AT = datetime(2021, 8, 25, 12, 20, 30, tzinfo=UTC)


def real(source: str, name: str) -> Any:
    return json.loads((FIXTURES / source / name).read_text(encoding="utf-8"))


def write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def collect(path: Path, **settings: Any) -> tuple[list[Observation], list[Problem]]:
    connector = ContainerScanConnector(ContainerScanSettings(paths=[str(path)], **settings))
    ctx = CollectContext(instance="scans", run_id="r1", now=datetime.now(UTC))
    return list(connector.collect(ctx)), ctx.problems


def judge(observation: Observation, now: datetime | None = None, **settings: Any) -> dict[str, CheckResult]:
    scan_settings = ContainerScanSettings(paths=["x"], **settings)
    at = now or observation.observed_at + timedelta(hours=1)
    return {check.id: check.run(observation, scan_settings, at) for check in (NO_FIXABLE_VULNS, SCAN_RECENT)}


def outcomes(observation: Observation, now: datetime | None = None, **settings: Any) -> dict[str, Outcome]:
    return {check: result.result for check, result in judge(observation, now, **settings).items()}


# ------------------------------------------------------------------------------------------- a failed scan run

DB_FAILURE = "failed to load vulnerability db: database not found"


def failed_invocation(**invocation: Any) -> dict[str, Any]:
    return {
        "executionSuccessful": False,
        "toolExecutionNotifications": [{"level": "error", "message": {"text": DB_FAILURE}}],
        **invocation,
    }


@pytest.mark.parametrize("sample", ["trivy-alpine-310.sarif.json", "grype-image.sarif.json"])
def test_a_sarif_run_that_did_not_complete_is_an_error_with_the_tools_message(tmp_path: Path, sample: str) -> None:
    report = real("sarif", sample)
    report["runs"][0]["results"] = []
    report["runs"][0]["invocations"] = [failed_invocation()]
    observations, problems = collect(write(tmp_path / "failed.sarif", report))
    assert problems == []
    [observation] = observations
    assert observation.payload["scan_errors"] == [DB_FAILURE]
    results = judge(observation)
    assert {c: r.result for c, r in results.items()} == {
        "container.no_fixable_vulns": Outcome.ERROR,
        "container.scan_recent": Outcome.ERROR,
    }
    assert all(DB_FAILURE in r.message for r in results.values())


def test_a_failed_run_without_a_notification_is_still_an_error_naming_its_exit(tmp_path: Path) -> None:
    report = real("sarif", "trivy-alpine-310.sarif.json")
    report["runs"][0]["invocations"] = [
        {"executionSuccessful": False, "exitCode": 1, "exitCodeDescription": "scan aborted"}
    ]
    [observation], _ = collect(write(tmp_path / "failed.sarif", report))
    results = judge(observation)
    assert results["container.no_fixable_vulns"].result is Outcome.ERROR
    assert "executionSuccessful is false (exit code 1, scan aborted)" in results["container.no_fixable_vulns"].message


def test_an_error_notification_in_a_successful_run_is_an_error_but_a_warning_is_not(tmp_path: Path) -> None:
    report = real("sarif", "trivy-alpine-310.sarif.json")
    note = {"level": "error", "message": {"text": "analysis of layer 3 failed"}}
    report["runs"][0]["invocations"] = [{"executionSuccessful": True, "toolExecutionNotifications": [note]}]
    [errored], _ = collect(write(tmp_path / "error-note.sarif", report))
    assert outcomes(errored)["container.no_fixable_vulns"] is Outcome.ERROR
    note["level"] = "warning"
    [warned], _ = collect(write(tmp_path / "warning-note.sarif", report))
    assert warned.payload["scan_errors"] == []
    assert outcomes(warned)["container.no_fixable_vulns"] is Outcome.PASS  # four MEDIUM, threshold HIGH


@pytest.mark.parametrize(
    ("sample", "db", "reason"),
    [
        # grype 0.2x-0.8x: db.error is a Go error value, serialised as {} (its text lost) when set
        ("grype-directory-source.json", {"error": {}}, "grype did not serialise its message"),
        ("grype-directory-source.json", {"error": "db checksum mismatch"}, "db checksum mismatch"),
        # grype 0.88+: db.status {valid, error}
        (
            "grype-image-newest-fields.json",
            {"status": {"schemaVersion": "v6.0.2", "valid": False, "error": "no such file: vulnerability.db"}},
            "no such file: vulnerability.db",
        ),
    ],
)
def test_a_grype_report_whose_database_failed_is_an_error(
    tmp_path: Path, sample: str, db: dict[str, Any], reason: str
) -> None:
    report = real("grype", sample)
    report["descriptor"]["db"] = {**report["descriptor"].get("db", {}), **db}
    [observation], _ = collect(write(tmp_path / "grype.json", report))
    results = judge(observation)
    assert {r.result for r in results.values()} == {Outcome.ERROR}
    assert all(reason in r.message for r in results.values())


def test_a_grype_report_with_a_healthy_database_is_judged_as_usual(tmp_path: Path) -> None:
    report = real("grype", "grype-directory-source.json")
    assert report["descriptor"]["db"]["error"] is None
    [observation], _ = collect(write(tmp_path / "grype.json", report))
    assert observation.payload["scan_errors"] == []
    assert outcomes(observation)["container.no_fixable_vulns"] is Outcome.FAIL  # CRITICAL with unknown fix


# ------------------------------------------------------------------------------------------- future scan times


def test_a_scan_dated_after_collection_beyond_the_skew_tolerance_is_in_the_future(tmp_path: Path) -> None:
    [observation], _ = collect(write(tmp_path / "trivy.json", real("trivy", "trivy-alpine-310.json")))
    assert observation.observed_at == TRIVY_CREATED_AT
    ten_minutes_early = judge(observation, TRIVY_CREATED_AT - timedelta(minutes=10))["container.scan_recent"]
    assert ten_minutes_early.result is Outcome.FAIL
    assert "10m in the future" in ten_minutes_early.message
    assert "5m clock-skew tolerance" in ten_minutes_early.message
    within = judge(observation, TRIVY_CREATED_AT - timedelta(minutes=4))["container.scan_recent"]
    assert within.result is Outcome.PASS
    strict = judge(observation, TRIVY_CREATED_AT - timedelta(minutes=4), clock_skew_tolerance="1m")
    assert strict["container.scan_recent"].result is Outcome.FAIL


def test_a_scan_decades_ahead_is_never_recent(tmp_path: Path) -> None:
    report = real("trivy", "trivy-alpine-310.json")
    report["CreatedAt"] = "2099-01-01T00:00:00Z"
    [observation], _ = collect(write(tmp_path / "trivy.json", report))
    result = judge(observation, datetime.now(UTC))["container.scan_recent"]
    assert result.result is Outcome.FAIL
    assert "in the future" in result.message


def test_clock_skew_tolerance_defaults_to_five_minutes() -> None:
    assert ContainerScanSettings(paths=["x"]).clock_skew_tolerance == timedelta(minutes=5)
    assert ContainerScanSettings(paths=["x"], clock_skew_tolerance="30s").clock_skew_tolerance == timedelta(seconds=30)


# ------------------------------------------------------------------------------------------- runs without a name


def unnamed_trivy_run() -> dict[str, Any]:
    run = copy.deepcopy(real("sarif", "trivy-alpine-310.sarif.json")["runs"][0])
    del run["properties"]  # e.g. `trivy fs`/`trivy rootfs`: no image name, digest or ID
    return run


def test_sarif_runs_that_name_no_artifact_stay_distinct_subjects(tmp_path: Path) -> None:
    vulnerable = unnamed_trivy_run()
    clean = {**unnamed_trivy_run(), "results": []}
    path = write(tmp_path / "two-runs.sarif", {"version": "2.1.0", "runs": [vulnerable, clean]})
    observations, problems = collect(path, fail_on_severity="medium")
    assert problems == []
    assert [o.subject for o in observations] == [
        Subject("scan_target", f"{path}#runs[0] trivy"),
        Subject("scan_target", f"{path}#runs[1] trivy"),
    ]
    assert [outcomes(o, fail_on_severity="medium")["container.no_fixable_vulns"] for o in observations] == [
        Outcome.FAIL,
        Outcome.PASS,
    ]


def test_an_unnamed_run_is_named_by_what_it_analysed_when_the_run_says(tmp_path: Path) -> None:
    first, second = unnamed_trivy_run(), unnamed_trivy_run()
    second["originalUriBaseIds"] = {"ROOTPATH": {"uri": "file:///srv/model-server/"}}
    path = write(tmp_path / "two-runs.sarif", {"version": "2.1.0", "runs": [first, second]})
    observations, _ = collect(path)
    assert observations[1].subject == Subject("scan_target", f"{path}#runs[1] trivy file:///srv/model-server/")


def test_runs_about_the_same_image_are_judged_together(tmp_path: Path) -> None:
    named = real("sarif", "trivy-alpine-310.sarif.json")["runs"][0]
    clean_rescan = {**copy.deepcopy(named), "results": []}
    path = write(tmp_path / "same-image.sarif", {"version": "2.1.0", "runs": [named, clean_rescan]})
    [observation], _ = collect(path)
    assert observation.payload["severity_counts"]["MEDIUM"] == 4
    assert outcomes(observation, fail_on_severity="medium")["container.no_fixable_vulns"] is Outcome.FAIL


# ------------------------------------------------------------------------------------------- unreadable times


def test_an_unreadable_trivy_created_at_is_a_problem_and_recency_an_error(tmp_path: Path) -> None:
    report = real("trivy", "trivy-alpine-310.json")
    report["CreatedAt"] = "not-a-date"
    path = write(tmp_path / "trivy.json", report)
    [observation], problems = collect(path)
    assert problems == [
        Problem(
            str(path),
            "CreatedAt 'not-a-date' is not a readable timestamp: recorded with the file's mtime, recency is an error",
        )
    ]
    assert observation.payload["time_error"] == "CreatedAt 'not-a-date' is not a readable timestamp"
    results = judge(observation)
    assert results["container.scan_recent"].result is Outcome.ERROR
    assert "CreatedAt 'not-a-date'" in results["container.scan_recent"].message
    assert results["container.no_fixable_vulns"].result is Outcome.PASS  # the findings are still judged


@pytest.mark.parametrize(
    ("source", "sample", "change", "field"),
    [
        ("grype", "grype-directory-source.json", ("descriptor", "timestamp"), "descriptor.timestamp"),
        ("sarif", "trivy-alpine-310.sarif.json", None, "runs[0].invocations[0].endTimeUtc"),
    ],
)
def test_every_format_names_its_unreadable_time(
    tmp_path: Path, source: str, sample: str, change: tuple[str, str] | None, field: str
) -> None:
    report = real(source, sample)
    if change is None:
        report["runs"][0]["invocations"] = [{"executionSuccessful": True, "endTimeUtc": "yesterday"}]
    else:
        report[change[0]][change[1]] = "yesterday"
    [observation], problems = collect(write(tmp_path / "report.json", report))
    assert [p.reason.split(":")[0] for p in problems] == [f"{field} 'yesterday' is not a readable timestamp"]
    assert outcomes(observation)["container.scan_recent"] is Outcome.ERROR


def test_only_a_report_without_any_time_falls_back_to_the_mtime_and_says_so(tmp_path: Path) -> None:
    report = real("trivy", "trivy-alpine-310.json")
    del report["CreatedAt"]
    [observation], problems = collect(write(tmp_path / "trivy.json", report))
    assert problems == []
    assert observation.payload["observed_at_source"] == "file_mtime"
    result = judge(observation)["container.scan_recent"]
    assert result.result is Outcome.PASS
    assert "time from the file's mtime: the report has none" in result.message


def test_read_timestamp_tells_absent_from_unreadable() -> None:
    assert read_timestamp(None, "CreatedAt") is None
    assert read_timestamp("", "CreatedAt") is None
    assert read_timestamp("0001-01-01T00:00:00Z", "CreatedAt") is None  # Go's zero time: not set
    assert read_timestamp("2021-08-25T12:20:30.000000005Z", "CreatedAt") == TRIVY_CREATED_AT
    assert read_timestamp(datetime(2021, 8, 25, 14, 20, 30), "x") == datetime(2021, 8, 25, 14, 20, 30, tzinfo=UTC)
    for bad in ("not-a-date", "2021-13-40T00:00:00Z", 1629894030, True):
        with pytest.raises(UnreadableTimestamp, match=r"^CreatedAt .* is not a readable timestamp$"):
            read_timestamp(bad, "CreatedAt")
    assert parse_timestamp("not-a-date") is None  # the lenient reader other connectors use is unchanged


# ------------------------------------------------------------------------------------------- empty reports


def only_result(observations: list[Observation]) -> Observation:
    assert len(observations) == 1, "an empty report must still be recorded"
    return observations[0]


def test_sarif_without_runs_is_recorded_as_scanning_nothing(tmp_path: Path) -> None:
    report = real("sarif", "grype-image.sarif.json")
    report["runs"] = []
    path = write(tmp_path / "empty.sarif", report)
    observations, problems = collect(path)
    observation = only_result(observations)
    assert problems == []
    assert observation.subject == Subject("scan_target", str(path))
    assert "runs: []" in observation.payload["scanned_nothing"]
    assert set(outcomes(observation).values()) == {Outcome.NOT_APPLICABLE}


def test_legacy_trivy_null_is_not_a_clean_pass(tmp_path: Path) -> None:
    path = tmp_path / "legacy-clean.json"
    path.write_text("null\n")
    observation = only_result(collect(path)[0])
    assert observation.payload["format"] == "trivy-legacy"
    assert set(outcomes(observation).values()) == {Outcome.NOT_APPLICABLE}
    assert "JSON null" in judge(observation)["container.no_fixable_vulns"].message


def test_trivy_report_without_results_scanned_nothing(tmp_path: Path) -> None:
    report = real("trivy", "trivy-alpine-39-no-results.json")
    assert "Results" not in report  # the real sample: OS not detected, no package scanned
    observation = only_result(collect(write(tmp_path / "trivy.json", report))[0])
    assert set(outcomes(observation).values()) == {Outcome.NOT_APPLICABLE}
    assert "no Results" in observation.payload["scanned_nothing"]


def test_trivy_report_with_only_secret_results_scanned_no_package(tmp_path: Path) -> None:
    report = real("trivy", "trivy-alpine-310.json")
    report["Results"] = [{"Target": "/app/.env", "Class": "secret", "Secrets": []}]
    observation = only_result(collect(write(tmp_path / "trivy.json", report))[0])
    assert outcomes(observation)["container.no_fixable_vulns"] is Outcome.NOT_APPLICABLE


def test_grype_report_without_matches_or_source_scanned_nothing(tmp_path: Path) -> None:
    observation = only_result(collect(write(tmp_path / "g.json", real("grype", "grype-empty-matches.json")))[0])
    assert set(outcomes(observation).values()) == {Outcome.NOT_APPLICABLE}


def test_a_clean_scan_of_a_named_image_is_still_a_pass(tmp_path: Path) -> None:
    grype = real("grype", "grype-image-newest-fields.json")
    grype["matches"] = []
    grype["descriptor"]["timestamp"] = datetime.now(UTC).isoformat()
    observation = only_result(collect(write(tmp_path / "g.json", grype))[0])
    assert observation.payload["scanned_nothing"] is None
    assert set(outcomes(observation).values()) == {Outcome.PASS}


# ------------------------------------------------------------------------------------------- old Grype fix field


def test_grype_fixed_in_version_of_the_older_schema_is_the_fix(tmp_path: Path) -> None:
    report = real("grype", "grype-directory-source.json")
    index, match = next((i, m) for i, m in enumerate(report["matches"]) if m["vulnerability"]["severity"] == "High")
    del match["vulnerability"]["fix"]  # grype before 0.13 wrote `fixedInVersion` instead of a fix block
    match["vulnerability"]["fixedInVersion"] = "9.9.9"
    for other in report["matches"][:index] + report["matches"][index + 1 :]:
        other["vulnerability"]["fix"] = {"versions": [], "state": "not-fixed"}
    [observation], _ = collect(write(tmp_path / "grype-old.json", report))
    fixed = [v for v in observation.payload["vulnerabilities"] if v["fixed_version"] == "9.9.9"]
    assert [(v["fixable"], v["severity"]) for v in fixed] == [(True, "HIGH")]
    result = judge(observation)["container.no_fixable_vulns"]
    assert result.result is Outcome.FAIL
    assert "fix state unknown" not in result.message
    assert result.message.startswith("1 vulnerability with a fix at or above HIGH")
