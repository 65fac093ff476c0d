"""Pure judgements over one ``data.validation`` observation (the latest validation of one asset by one suite)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from collector.sdk import Check, CheckResult, Observation, Outcome, format_duration, in_the_future, parse_timestamp

from .settings import DataValidationSettings

__all__ = ["ASSET_VALIDATED", "CHECKS", "KIND", "LATEST_SUCCEEDED", "VALIDATION_RECENT"]

KIND = "data.validation"


def _name(payload: Mapping[str, Any]) -> str:
    suite = payload.get("suite") or "any suite"
    return f"{payload['datasource']}/{payload['asset']} ({suite})"


def _missing(check_id: str, payload: Mapping[str, Any]) -> CheckResult:
    window = payload.get("window") or "the window"
    return CheckResult(check_id, Outcome.FAIL, f"{_name(payload)}: missing, no validation result in the last {window}")


def latest_succeeded(observation: Observation, settings: DataValidationSettings, now: datetime) -> CheckResult:
    check_id = "data_validation.latest_succeeded"
    payload = observation.payload
    latest = payload.get("latest")
    if latest is None:
        return _missing(check_id, payload)
    stats, failing = latest["statistics"], latest["failing_expectations"]
    name = _name(payload)
    if latest["success"] is not True:
        shown = ", ".join(sorted({f["type"] for f in failing})[:5]) or "none listed"
        return CheckResult(
            check_id,
            Outcome.FAIL,
            f"{name}: latest validation failed: {stats['unsuccessful_expectations']} of"
            f" {stats['evaluated_expectations']} expectations failed ({shown})",
            {"failing": len(failing)},
        )
    if failing or stats["unsuccessful_expectations"]:
        return CheckResult(
            check_id, Outcome.ERROR, f"{name}: the result says success but lists failed expectations", {}
        )
    if stats["evaluated_expectations"] == 0:
        return CheckResult(check_id, Outcome.FAIL, f"{name}: the latest validation evaluated no expectation")
    return CheckResult(
        check_id, Outcome.PASS, f"{name}: all {stats['evaluated_expectations']} expectations met in the latest run"
    )


def validation_recent(observation: Observation, settings: DataValidationSettings, now: datetime) -> CheckResult:
    check_id = "data_validation.recent"
    payload = observation.payload
    latest = payload.get("latest")
    if latest is None:
        return _missing(check_id, payload)
    at = parse_timestamp(latest["validated_at"])
    if at is None:
        return CheckResult(check_id, Outcome.ERROR, f"{_name(payload)}: validated_at is not a readable time")
    if (future := in_the_future(at, now, settings.clock_skew_tolerance)) is not None:
        return CheckResult(check_id, Outcome.FAIL, f"{_name(payload)}: validated {future}")
    max_age = settings.max_age_of(payload["datasource"], payload["asset"])
    age = max(now - at, timedelta(0))
    details = {"age_seconds": int(age.total_seconds()), "max_age_seconds": int(max_age.total_seconds())}
    message = f"{_name(payload)}: last validated {format_duration(age)} ago (max {format_duration(max_age)})"
    return CheckResult(check_id, Outcome.PASS if age <= max_age else Outcome.FAIL, message, details)


def asset_validated(observation: Observation, settings: DataValidationSettings, now: datetime) -> CheckResult:
    check_id = "data_validation.asset_validated"
    payload = observation.payload
    if not payload["expected"]:
        return CheckResult(check_id, Outcome.NOT_APPLICABLE, f"{_name(payload)} is not in expected_assets")
    if payload.get("latest") is None or payload["validations_in_window"] == 0:
        return _missing(check_id, payload)
    return CheckResult(
        check_id,
        Outcome.PASS,
        f"{_name(payload)}: {payload['validations_in_window']} validation(s) in the last {payload['window']}",
    )


LATEST_SUCCEEDED: Check[DataValidationSettings] = Check(
    "data_validation.latest_succeeded",
    KIND,
    "The latest validation of the asset met every expectation",
    latest_succeeded,
)
VALIDATION_RECENT: Check[DataValidationSettings] = Check(
    "data_validation.recent", KIND, "The asset was validated within its max age", validation_recent
)
ASSET_VALIDATED: Check[DataValidationSettings] = Check(
    "data_validation.asset_validated", KIND, "Every expected asset was validated in the window", asset_validated
)
CHECKS = (LATEST_SUCCEEDED, VALIDATION_RECENT, ASSET_VALIDATED)
