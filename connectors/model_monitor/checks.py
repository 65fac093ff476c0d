"""Pure judgements over model-monitor observations."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from collector.connector import Check
from collector.durations import format_duration
from collector.model import CheckResult, Observation, Outcome

from .settings import Bound, ModelMonitorSettings

__all__ = [
    "BIAS_WITHIN_BOUNDS",
    "CHECKS",
    "DATA_QUALITY",
    "DRIFT_FREE",
    "KINDS",
    "KIND_BIAS",
    "KIND_DRIFT",
    "KIND_METRIC",
    "KIND_OF_ASPECT",
    "KIND_QUALITY",
    "KIND_SCHEDULE",
    "METRIC_WITHIN_BOUNDS",
    "SCHEDULE_HEALTHY",
]

KIND_METRIC = "monitor.metric"
KIND_DRIFT = "monitor.drift_report"
KIND_QUALITY = "monitor.quality_report"
KIND_BIAS = "monitor.bias_report"
KIND_SCHEDULE = "monitor.schedule"
KINDS = frozenset({KIND_METRIC, KIND_DRIFT, KIND_QUALITY, KIND_BIAS, KIND_SCHEDULE})
KIND_OF_ASPECT = {"drift": KIND_DRIFT, "quality": KIND_QUALITY, "bias": KIND_BIAS}

_LISTED = 5


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def _tests_failing(payload: Any) -> list[str]:
    return [f"{t['name']} ({t['status']})" for t in payload.get("failing_tests") or []]


def _violations(payload: Any) -> list[str]:
    return [
        f"{v.get('feature_name') or v.get('metric_name') or '?'}: {v['constraint_check_type']}"
        for v in payload.get("violations") or []
    ]


# --------------------------------------------------------------------------------------------- metrics


def metric_within_bounds(observation: Observation, settings: ModelMonitorSettings, now: datetime) -> CheckResult:
    """PASS when the share of steps within bounds reaches ``min_coverage``; no data is its own failure."""
    p = observation.payload
    check_id, name = METRIC_WITHIN_BOUNDS.id, p["monitor"]
    if p["status"] == "error":
        return CheckResult(check_id, Outcome.ERROR, f"monitor {name}: {p['error']}")
    bound = Bound.model_validate(p["bound"])
    window = p["window"]["duration"]
    details = {
        "share_within_bounds": p.get("share_within_bounds"),
        "min_coverage": p["min_coverage"],
        "worst_value": p.get("worst_value"),
        "sample_count": p.get("sample_count", 0),
    }
    if p["status"] == "no_data":
        return CheckResult(check_id, Outcome.FAIL, f"fail: no data for monitor {name} over the last {window}", details)
    share, needed = p["share_within_bounds"], p["min_coverage"]
    summary = (
        f"monitor {name}: {share:.1%} of the last {window} within bounds ({bound.describe()}), "
        f"{needed:.1%} required; worst value {p['worst_value']}"
    )
    if share >= needed:
        return CheckResult(check_id, Outcome.PASS, summary, details)
    return CheckResult(check_id, Outcome.FAIL, f"breach: {summary}", details)


# --------------------------------------------------------------------------------------------- reports


def drift_free(observation: Observation, settings: ModelMonitorSettings, now: datetime) -> CheckResult:
    p = observation.payload
    reasons: list[str] = []
    drifted = [c["column"] for c in p.get("drifted_columns") or []]
    if p.get("dataset_drift") is True and settings.drift_fail_on == "dataset":
        reasons.append(f"dataset drift detected ({p.get('number_of_drifted_columns')} columns drifted)")
    if drifted and settings.drift_fail_on == "any_column":
        reasons.append(f"drifted columns: {_names(drifted)}")
    if failing := _tests_failing(p):
        reasons.append(f"failing drift tests: {_names(failing)}")
    if violations := _violations(p):
        reasons.append(f"{len(violations)} drift violations: {_names(violations)}")
    details = {"drift_fail_on": settings.drift_fail_on, "drifted_columns": len(drifted)}
    if reasons:
        return DRIFT_FREE.result(Outcome.FAIL, "; ".join(reasons), **details)
    note = f" ({len(drifted)} columns drifted, below the dataset threshold)" if drifted else ""
    return DRIFT_FREE.result(Outcome.PASS, f"no drift in the {p['format']} report{note}", **details)


def data_quality(observation: Observation, settings: ModelMonitorSettings, now: datetime) -> CheckResult:
    p = observation.payload
    failing, violations = _tests_failing(p), _violations(p)
    if failing:
        message = f"{p['failing_test_count']} of {p['test_count']} tests failing: {_names(failing)}"
        return DATA_QUALITY.result(Outcome.FAIL, message, failing=p["failing_test_count"])
    if violations:
        message = f"{p['violation_count']} constraint violations: {_names(violations)}"
        return DATA_QUALITY.result(Outcome.FAIL, message, violations=p["violation_count"])
    if "test_count" in p:
        return DATA_QUALITY.result(Outcome.PASS, f"all {p['test_count']} data and model quality tests pass")
    return DATA_QUALITY.result(Outcome.PASS, "no constraint violations in the latest monitoring execution")


def _out_of_bounds(p: Any, bounds: dict[str, Bound]) -> tuple[list[str], int]:
    outside, judged = [], 0
    for group in p.get("facet_groups") or []:
        for metric in group["metrics"]:
            bound = bounds.get(metric["name"])
            if bound is None:
                continue
            judged += 1
            value = metric["value"]
            where = f"{metric['name']} for {group['facet']}={group['facet_value']} ({group['stage']})"
            if value is None:
                outside.append(f"{where} not computed")
            elif not bound.contains(value):
                outside.append(f"{where} = {value:.4g}, expected {bound.describe()}")
    return outside, judged


def bias_within_bounds(observation: Observation, settings: ModelMonitorSettings, now: datetime) -> CheckResult:
    p = observation.payload
    if "violations" in p:
        violations = _violations(p)
        if violations:
            return BIAS_WITHIN_BOUNDS.result(Outcome.FAIL, f"{len(violations)} bias violations: {_names(violations)}")
        return BIAS_WITHIN_BOUNDS.result(Outcome.PASS, "no bias violations in the latest monitoring execution")
    outside, judged = _out_of_bounds(p, settings.bias_bounds)
    if not judged:
        known = ", ".join(sorted(settings.bias_bounds))
        return BIAS_WITHIN_BOUNDS.result(
            Outcome.NOT_APPLICABLE, f"the report has none of the metrics with bias_bounds ({known})"
        )
    if outside:
        return BIAS_WITHIN_BOUNDS.result(
            Outcome.FAIL, f"{len(outside)} of {judged} bias metrics out of bounds: {_names(outside)}"
        )
    return BIAS_WITHIN_BOUNDS.result(Outcome.PASS, f"all {judged} bounded bias metrics within bounds")


# --------------------------------------------------------------------------------------------- schedules


def schedule_healthy(observation: Observation, settings: ModelMonitorSettings, now: datetime) -> CheckResult:
    """Scheduled, and the last execution completed within its period (plus ``grace``)."""
    p = observation.payload
    name, status, execution = p["schedule_name"], p["status"], p["last_execution"]
    if status != "Scheduled":
        reason = f": {p['failure_reason']}" if p.get("failure_reason") else ""
        return SCHEDULE_HEALTHY.result(Outcome.FAIL, f"schedule {name} is {status}{reason}")
    if execution is None:
        return SCHEDULE_HEALTHY.result(Outcome.FAIL, f"schedule {name} has never executed")
    if execution["status"] not in ("Completed", "CompletedWithViolations"):
        reason = f": {execution['failure_reason']}" if execution.get("failure_reason") else ""
        return SCHEDULE_HEALTHY.result(Outcome.FAIL, f"last execution of {name} is {execution['status']}{reason}")
    if p["period_seconds"] is None:
        return SCHEDULE_HEALTHY.result(Outcome.PASS, f"one-time schedule {name} completed")
    allowed = timedelta(seconds=p["period_seconds"]) + settings.sagemaker_schedules.grace
    age = now - datetime.fromisoformat(execution["scheduled_time"])
    details = {"age_seconds": int(age.total_seconds()), "allowed_seconds": int(allowed.total_seconds())}
    if age > allowed:
        message = (
            f"last execution of {name} was scheduled {age.total_seconds() / 3600:.1f}h ago, "
            f"more than its period plus grace ({format_duration(allowed)})"
        )
        return SCHEDULE_HEALTHY.result(Outcome.FAIL, message, **details)
    return SCHEDULE_HEALTHY.result(Outcome.PASS, f"{name} last completed within its period", **details)


METRIC_WITHIN_BOUNDS: Check[ModelMonitorSettings] = Check(
    "monitor.metric_within_bounds", KIND_METRIC, "Production metric stayed within its bound", metric_within_bounds
)
DRIFT_FREE: Check[ModelMonitorSettings] = Check("monitor.drift_free", KIND_DRIFT, "No data drift", drift_free)
DATA_QUALITY: Check[ModelMonitorSettings] = Check(
    "monitor.data_quality", KIND_QUALITY, "Data and model quality tests pass", data_quality
)
BIAS_WITHIN_BOUNDS: Check[ModelMonitorSettings] = Check(
    "monitor.bias_within_bounds", KIND_BIAS, "Bias metrics within bounds", bias_within_bounds
)
SCHEDULE_HEALTHY: Check[ModelMonitorSettings] = Check(
    "monitor.schedule_healthy", KIND_SCHEDULE, "Monitoring schedule runs on time", schedule_healthy
)
CHECKS = (METRIC_WITHIN_BOUNDS, DRIFT_FREE, DATA_QUALITY, BIAS_WITHIN_BOUNDS, SCHEDULE_HEALTHY)
