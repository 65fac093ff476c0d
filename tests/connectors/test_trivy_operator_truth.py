"""No false pass from a Trivy Operator VulnerabilityReport: unreadable, missing or future times. Each case is the
real report in tests/fixtures/trivy-operator (see SOURCES.md) with one field changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collector.model import Observation, Outcome
from connectors.kubernetes import KubernetesSettings
from connectors.kubernetes.checks import SCAN_CHECKS
from connectors.kubernetes.trivy_operator import image_scans, read_report

FIXTURES = Path(__file__).parents[1] / "fixtures" / "trivy-operator"
UPDATED = datetime(2023, 3, 23, 16, 23, 1, tzinfo=UTC)
SETTINGS = KubernetesSettings.model_validate({"namespaces": ["default"]})


def real_report() -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((FIXTURES / "vulnerabilityreport-no-vuln.json").read_text(encoding="utf-8"))
    return obj


def observe(obj: dict[str, Any], collected_at: datetime) -> Observation:
    """As the kubernetes connector builds the observation."""
    [scan] = image_scans([read_report(obj, "vulnerabilityreports/default/nginx")])
    return Observation("container.scan", scan.subject, scan.scanned_at or collected_at, scan.payload, scan.source)


def outcomes(observation: Observation, now: datetime) -> dict[str, Outcome]:
    return {check.id: check.run(observation, SETTINGS, now).result for check in SCAN_CHECKS}


def test_a_clean_report_of_a_named_image_passes() -> None:
    observation = observe(real_report(), UPDATED + timedelta(hours=1))
    assert observation.observed_at == UPDATED
    assert set(outcomes(observation, UPDATED + timedelta(hours=1)).values()) == {Outcome.PASS}


def test_an_unreadable_update_timestamp_is_named_and_recency_is_an_error() -> None:
    obj = real_report()
    obj["report"]["updateTimestamp"] = "not-a-date"
    report = read_report(obj, "vulnerabilityreports/default/nginx")
    assert report.scan.time_error == "report.updateTimestamp 'not-a-date' is not a readable timestamp"
    assert report.scan.scanned_at == UPDATED  # the object's creationTimestamp still dates the evidence
    observation = observe(obj, UPDATED + timedelta(hours=1))
    assert "report.updateTimestamp 'not-a-date'" in observation.payload["time_error"]
    result = {c.id: c.run(observation, SETTINGS, UPDATED + timedelta(hours=1)) for c in SCAN_CHECKS}
    assert result["container.scan_recent"].result is Outcome.ERROR
    assert "report.updateTimestamp" in result["container.scan_recent"].message
    assert result["container.no_fixable_vulns"].result is Outcome.PASS


def test_a_report_without_any_time_is_not_recent_by_default() -> None:
    obj = real_report()
    del obj["report"]["updateTimestamp"]
    del obj["metadata"]["creationTimestamp"]
    collected_at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    observation = observe(obj, collected_at)
    assert observation.payload["observed_at_source"] == "collected"
    assert outcomes(observation, collected_at)["container.scan_recent"] is Outcome.ERROR


def test_a_report_dated_after_collection_is_in_the_future() -> None:
    obj = real_report()
    obj["report"]["updateTimestamp"] = "2023-03-23T16:53:01Z"  # 30 minutes after the collection below
    observation = observe(obj, UPDATED)
    result = next(c for c in SCAN_CHECKS if c.id == "container.scan_recent").run(observation, SETTINGS, UPDATED)
    assert result.result is Outcome.FAIL
    assert "30m in the future" in result.message
