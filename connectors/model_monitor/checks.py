"""Pure judgements over model-monitor observations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from collector.sdk import (
    Check,
    CheckResult,
    Observation,
    Outcome,
    finite_number,
    format_duration,
    in_the_future,
    is_non_finite,
    non_finite_paths,
    non_finite_text,
    parse_timestamp,
)

from .sagemaker import PROCESSING_JOB_FAILED
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


Evaluate = Callable[[Observation, ModelMonitorSettings, datetime], CheckResult]

_UNDATED = {
    "file_mtime": "dated by the file's modification time: the report carries no time of its own",
    "s3_last_modified": "dated by the S3 object's LastModified: the report carries no time of its own",
    "collection": "dated by the collection time: the execution carries no time of its own",
}


def _tests_failing(payload: Any) -> list[str]:
    return [f"{t['name']} ({t['status']})" for t in payload.get("failing_tests") or []]


def _tests_errored(payload: Any) -> list[str]:
    return [f"{t['name']}: {t.get('description') or 'no message'}" for t in payload.get("errored_tests") or []]


def _in_the_future(at: datetime, now: datetime, settings: ModelMonitorSettings) -> str | None:
    return in_the_future(at, now, settings.clock_skew_tolerance)


def _dated(judge: Evaluate) -> Evaluate:
    """A report judged only when its time is known and not in the future; an undated one says how it was dated."""

    def evaluate(observation: Observation, settings: ModelMonitorSettings, now: datetime) -> CheckResult:
        p = observation.payload
        check_id = _CHECK_OF_KIND[observation.kind]
        if p.get("time_error"):
            return CheckResult(check_id, Outcome.ERROR, f"{p['time_error']}: the report's age is unknown")
        if future := _in_the_future(observation.observed_at, now, settings):
            details = {"observed_at": observation.observed_at.isoformat()}
            return CheckResult(check_id, Outcome.FAIL, f"the report is dated {future}", details)
        if where := non_finite_paths(p, text=True):
            return CheckResult(check_id, Outcome.FAIL, f"non-finite values in the report: {_names(where)}")
        result = judge(observation, settings, now)
        note = _UNDATED.get(str(p.get("observed_at_source")))
        if note is None:
            return result
        details = {**result.details, "observed_at_source": p["observed_at_source"]}
        return CheckResult(result.check_id, result.result, f"{result.message} ({note})", details)

    return evaluate


def _violations(payload: Any) -> list[str]:
    return [
        f"{v.get('feature_name') or v.get('metric_name') or '?'}: {v['constraint_check_type']}"
        for v in payload.get("violations") or []
    ]


# --------------------------------------------------------------------------------------------- metrics


def _non_finite_samples(p: Any) -> dict[str, int]:
    """NaN/±Inf samples by how they read: from the figures, else from the stored series, else from the worst
    value or the counts alone."""
    counted = p.get("non_finite_values")
    if isinstance(counted, dict) and counted:
        return {str(k): int(v) for k, v in counted.items()}
    found: dict[str, int] = {}
    for series in p.get("series") or []:
        for _, value in series.get("values") or []:
            if is_non_finite(value):
                found[non_finite_text(value)] = found.get(non_finite_text(value), 0) + 1
    if not found and is_non_finite(p.get("worst_value")):
        found[non_finite_text(p["worst_value"])] = 1
    count = finite_number(p.get("non_finite_count")) or finite_number(p.get("nan_count"))
    if not found and count:
        found["non-finite"] = int(count)
    return found


def metric_within_bounds(observation: Observation, settings: ModelMonitorSettings, now: datetime) -> CheckResult:
    """PASS when the share of steps within bounds reaches ``min_coverage`` and every sample was a finite number
    in an answer Prometheus gave without warnings; no data is its own failure."""
    p = observation.payload
    check_id, name = METRIC_WITHIN_BOUNDS.id, p["monitor"]
    if p["status"] == "error":
        return CheckResult(check_id, Outcome.ERROR, f"monitor {name}: {p['error']}")
    if where := non_finite_paths({k: v for k, v in p.items() if k != "series"}):
        return CheckResult(check_id, Outcome.ERROR, f"monitor {name}: non-finite figures at {_names(where)}")
    annotations = [*(p.get("warnings") or []), *(p.get("infos") or [])]
    if annotations:
        message = f"monitor {name}: Prometheus annotated its answer, so it is not judged: {'; '.join(annotations)}"
        return CheckResult(check_id, Outcome.ERROR, message, {"warnings": p.get("warnings"), "infos": p.get("infos")})
    bound = Bound.model_validate(p["bound"])
    window = p["window"]["duration"]
    details = {
        "share_within_bounds": p.get("share_within_bounds"),
        "min_coverage": p["min_coverage"],
        "worst_value": p.get("worst_value"),
        "sample_count": p.get("sample_count", 0),
    }
    if p["status"] == "no_data":
        outside = p.get("samples_outside_window") or 0
        note = f" ({outside} samples fell outside the window's evaluation steps)" if outside else ""
        return CheckResult(
            check_id, Outcome.FAIL, f"fail: no data for monitor {name} over the last {window}{note}", details
        )
    non_finite = _non_finite_samples(p)
    share, needed = finite_number(p.get("share_within_bounds")), finite_number(p.get("min_coverage"))
    if share is None or needed is None:
        message = f"monitor {name}: share within bounds {p.get('share_within_bounds')!r} is not a finite number"
        return CheckResult(check_id, Outcome.ERROR, message, details)
    summary = (
        f"monitor {name}: {share:.1%} of the last {window} within bounds ({bound.describe()}), "
        f"{needed:.1%} required; worst value {p['worst_value']}"
    )
    if non_finite:
        counts = ", ".join(f"{text} x{count}" for text, count in sorted(non_finite.items()))
        details["non_finite_values"] = non_finite
        if sum(non_finite.values()) >= (finite_number(p.get("sample_count")) or 0):
            message = f"monitor {name}: no sample over the last {window} is a finite number ({counts})"
            return CheckResult(check_id, Outcome.ERROR, message, details)
        return CheckResult(check_id, Outcome.FAIL, f"non-finite values ({counts}): {summary}", details)
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
    if non_finite := p.get("non_finite") or []:
        reasons.append(f"non-finite values: {_names(non_finite)}")
    if p.get("suite_all_passed") is False and not failing and not p.get("errored_tests"):
        reasons.append("the test suite reports that not all of its tests passed")
    details = {"drift_fail_on": settings.drift_fail_on, "drifted_columns": len(drifted)}
    if reasons:
        return DRIFT_FREE.result(Outcome.FAIL, "; ".join(reasons), **details)
    if errored := _tests_errored(p):
        return DRIFT_FREE.result(Outcome.ERROR, f"drift tests that Evidently could not run: {_names(errored)}")
    note = f" ({len(drifted)} columns drifted, below the dataset threshold)" if drifted else ""
    return DRIFT_FREE.result(Outcome.PASS, f"no drift in the {p['format']} report{note}", **details)


def data_quality(observation: Observation, settings: ModelMonitorSettings, now: datetime) -> CheckResult:
    p = observation.payload
    failing, violations, errored = _tests_failing(p), _violations(p), _tests_errored(p)
    if failing:
        message = f"{p['failing_test_count']} of {p['test_count']} tests failing: {_names(failing)}"
        if errored:
            message += f"; {len(errored)} could not run: {_names(errored)}"
        return DATA_QUALITY.result(Outcome.FAIL, message, failing=p["failing_test_count"])
    if violations:
        message = f"{p['violation_count']} constraint violations: {_names(violations)}"
        return DATA_QUALITY.result(Outcome.FAIL, message, violations=p["violation_count"])
    if non_finite := p.get("non_finite_metrics") or []:
        message = f"non-finite values in the execution's statistics: {_names(non_finite)}"
        return DATA_QUALITY.result(Outcome.FAIL, message, non_finite=non_finite)
    if errored:
        return DATA_QUALITY.result(Outcome.ERROR, f"{len(errored)} tests Evidently could not run: {_names(errored)}")
    if p.get("suite_all_passed") is False:
        return DATA_QUALITY.result(Outcome.FAIL, "the test suite reports that not all of its tests passed")
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
            if metric.get("non_finite"):
                outside.append(f"{where}: {metric['non_finite']} is not a finite number")
            elif value is None:
                reason = f": {metric['error']}" if metric.get("error") else ""
                outside.append(f"{where} not computed{reason}")
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
    if where := non_finite_paths(p):
        return SCHEDULE_HEALTHY.result(Outcome.ERROR, f"schedule {name}: non-finite numbers at {_names(where)}")
    if status != "Scheduled":
        reason = f": {p['failure_reason']}" if p.get("failure_reason") else ""
        return SCHEDULE_HEALTHY.result(Outcome.FAIL, f"schedule {name} is {status}{reason}")
    if execution is None:
        return SCHEDULE_HEALTHY.result(Outcome.FAIL, f"schedule {name} has never executed")
    if execution["status"] not in ("Completed", "CompletedWithViolations"):
        reason = f": {execution['failure_reason']}" if execution.get("failure_reason") else ""
        return SCHEDULE_HEALTHY.result(Outcome.FAIL, f"last execution of {name} is {execution['status']}{reason}")
    job_status = execution.get("processing_job_status")
    if job_status in PROCESSING_JOB_FAILED:
        reason = f": {execution['processing_job_failure']}" if execution.get("processing_job_failure") else ""
        message = f"last execution of {name} is {execution['status']} but its processing job is {job_status}{reason}"
        return SCHEDULE_HEALTHY.result(Outcome.FAIL, message)
    raw_time = execution.get("scheduled_time")
    scheduled = parse_timestamp(raw_time)
    if scheduled is None and (raw_time or p["period_seconds"] is not None):
        message = f"last execution of {name}: scheduled_time {raw_time!r} is not a timestamp"
        return SCHEDULE_HEALTHY.result(Outcome.ERROR, message)
    if scheduled is not None and (future := _in_the_future(scheduled, now, settings)):
        message = f"last execution of {name} is scheduled at {future}"
        return SCHEDULE_HEALTHY.result(Outcome.FAIL, message, scheduled_time=scheduled.isoformat())
    if p["period_seconds"] is None or scheduled is None:
        return SCHEDULE_HEALTHY.result(Outcome.PASS, f"one-time schedule {name} completed")
    allowed = timedelta(seconds=p["period_seconds"]) + settings.sagemaker_schedules.grace
    age = now - scheduled
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
DRIFT_FREE: Check[ModelMonitorSettings] = Check("monitor.drift_free", KIND_DRIFT, "No data drift", _dated(drift_free))
DATA_QUALITY: Check[ModelMonitorSettings] = Check(
    "monitor.data_quality", KIND_QUALITY, "Data and model quality tests pass", _dated(data_quality)
)
BIAS_WITHIN_BOUNDS: Check[ModelMonitorSettings] = Check(
    "monitor.bias_within_bounds", KIND_BIAS, "Bias metrics within bounds", _dated(bias_within_bounds)
)
SCHEDULE_HEALTHY: Check[ModelMonitorSettings] = Check(
    "monitor.schedule_healthy", KIND_SCHEDULE, "Monitoring schedule runs on time", schedule_healthy
)
CHECKS = (METRIC_WITHIN_BOUNDS, DRIFT_FREE, DATA_QUALITY, BIAS_WITHIN_BOUNDS, SCHEDULE_HEALTHY)
_CHECK_OF_KIND = {check.kind: check.id for check in (DRIFT_FREE, DATA_QUALITY, BIAS_WITHIN_BOUNDS)}
