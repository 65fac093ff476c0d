"""SageMaker Model Monitor schedules: status, period, latest execution and its violations report in S3."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from collector.sdk import CollectContext, parse_timestamp

from .aws import AWS_ERRORS, ClientFactory, aws_error, split_s3_uri
from .reports import Aspect, ReportError, parse_document
from .settings import SageMakerSchedules
from .sources import decode_json, read_s3_object

__all__ = ["COMPLETED", "PROCESSING_JOB_FAILED", "ScheduleState", "schedule_period", "schedule_states"]

COMPLETED = ("Completed", "CompletedWithViolations")
PROCESSING_JOB_FAILED = ("Failed", "Stopped")
VIOLATIONS_FILE = "constraint_violations.json"
_ASPECT_OF_TYPE: dict[str, Aspect] = {
    "DataQuality": "quality",
    "ModelQuality": "quality",
    "ModelBias": "bias",
    "ModelExplainability": "drift",
}
_CRON = re.compile(r"^cron\((?P<fields>[^)]*)\)$", re.IGNORECASE)
_EVERY_N_HOURS = re.compile(r"^(?:\*|\d+)/(\d+)$")


def schedule_period(expression: str | None) -> timedelta | None:
    """The period of SageMaker's hourly/daily cron forms; ``None`` when the expression is not one of them."""
    match = _CRON.match((expression or "").strip())
    if not match:
        return None
    fields = match["fields"].split()
    if len(fields) != 6 or fields[2] not in ("*", "?") or fields[3] != "*" or fields[4] not in ("*", "?"):
        return None
    hours = fields[1]
    if hours == "*":
        return timedelta(hours=1)
    every = _EVERY_N_HOURS.match(hours)
    if every:
        return timedelta(hours=int(every[1]))
    if hours.isdigit():
        return timedelta(days=1)
    return None


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """One schedule as described, plus the violations of its latest completed execution (if any)."""

    payload: dict[str, Any]
    aspect: Aspect
    violations: list[dict[str, Any]] | None
    executed_at: datetime | None


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _execution(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if not summary:
        return None
    return {
        "status": summary.get("MonitoringExecutionStatus"),
        "scheduled_time": _iso(summary.get("ScheduledTime")),
        "last_modified_time": _iso(summary.get("LastModifiedTime")),
        "processing_job_arn": summary.get("ProcessingJobArn"),
        "failure_reason": summary.get("FailureReason"),
    }


def _output_uris(job: dict[str, Any]) -> list[str]:
    outputs = (job.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    return [o["S3Output"]["S3Uri"] for o in outputs if o.get("S3Output", {}).get("S3Uri")]


def _violations_at(s3: Any, uri: str, max_bytes: int) -> list[dict[str, Any]]:
    """The violations under one output prefix; a missing file means the execution found none."""
    bucket, prefix = split_s3_uri(uri)
    key = f"{prefix.rstrip('/')}/{VIOLATIONS_FILE}" if prefix else VIOLATIONS_FILE
    try:
        data = read_s3_object(s3, bucket, key, max_bytes)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return []
        raise
    reports = parse_document(decode_json(data), f"s3://{bucket}/{key}", "sagemaker")
    return [v for report in reports for v in report.summary["violations"]]


def _latest_violations(
    sagemaker: Any, s3: Any, execution: dict[str, Any], max_bytes: int
) -> list[dict[str, Any]] | None:
    """The violations the execution's processing job wrote; ``None`` when that job says it failed (what it left
    behind is not a result), with its status and reason added to ``execution``."""
    if execution["status"] == "Completed" or not execution["processing_job_arn"]:
        return []
    job = sagemaker.describe_processing_job(ProcessingJobName=execution["processing_job_arn"].rsplit("/", 1)[-1])
    execution["processing_job_status"] = job.get("ProcessingJobStatus")
    if job.get("ProcessingJobStatus") in PROCESSING_JOB_FAILED:
        execution["processing_job_failure"] = job.get("FailureReason") or job.get("ExitMessage")
        return None
    return [v for uri in _output_uris(job) for v in _violations_at(s3, uri, max_bytes)]


def _describe(sagemaker: Any, name: str, settings: SageMakerSchedules) -> dict[str, Any]:
    described = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=name)
    config = described.get("MonitoringScheduleConfig") or {}
    expression = (config.get("ScheduleConfig") or {}).get("ScheduleExpression")
    period = schedule_period(expression)
    one_time = (expression or "").strip().upper() == "NOW"
    return {
        "schedule_name": described["MonitoringScheduleName"],
        "schedule_arn": described["MonitoringScheduleArn"],
        "endpoint_name": described.get("EndpointName"),
        "monitoring_type": described.get("MonitoringType") or config.get("MonitoringType"),
        "status": described["MonitoringScheduleStatus"],
        "failure_reason": described.get("FailureReason"),
        "schedule_expression": expression,
        "one_time": one_time,
        "period_seconds": None if one_time else int((period or settings.default_period).total_seconds()),
        "period_source": "one_time" if one_time else "expression" if period else "default_period",
        "last_execution": _execution(described.get("LastMonitoringExecutionSummary")),
    }


def _schedule_names(sagemaker: Any, settings: SageMakerSchedules) -> Iterator[str]:
    paginator = sagemaker.get_paginator("list_monitoring_schedules")
    filters: list[dict[str, str]] = [{"EndpointName": e} for e in settings.endpoint_names] or [{}]
    for extra in filters:
        for page in paginator.paginate(**extra):
            for summary in page.get("MonitoringScheduleSummaries") or []:
                yield summary["MonitoringScheduleName"]


def _state(sagemaker: Any, s3: Any, name: str, settings: SageMakerSchedules, ctx: CollectContext) -> ScheduleState:
    """The schedule's health is reported even when its violations report cannot be read."""
    payload = _describe(sagemaker, name, settings)
    execution = payload["last_execution"]
    aspect = _ASPECT_OF_TYPE.get(str(payload["monitoring_type"]), "quality")
    if execution is None or execution["status"] not in COMPLETED:
        return ScheduleState(payload, aspect, None, None)
    try:
        violations = _latest_violations(sagemaker, s3, execution, settings.max_file_bytes)
    except (*AWS_ERRORS, ReportError) as exc:
        reason = aws_error(exc) if isinstance(exc, AWS_ERRORS) else str(exc)
        ctx.problem(f"sagemaker:{name}", f"violations report of the latest execution: {reason}")
        execution["violations_error"] = reason
        return ScheduleState(payload, aspect, None, None)
    if violations is None:
        return ScheduleState(payload, aspect, None, None)
    execution["violation_count"] = len(violations)
    executed_at = _parse_iso(execution["last_modified_time"]) or _parse_iso(execution["scheduled_time"])
    return ScheduleState(payload, aspect, violations, executed_at)


def _parse_iso(value: str | None) -> datetime | None:
    return parse_timestamp(value)


def schedule_states(
    clients: ClientFactory, settings: SageMakerSchedules, ctx: CollectContext
) -> Iterator[ScheduleState]:
    """Every schedule in every configured region; a failing region or schedule is a problem, not a stop."""
    for region in settings.regions:
        sagemaker = clients("sagemaker", region)
        s3 = clients("s3", region)
        try:
            names = list(_schedule_names(sagemaker, settings))
        except AWS_ERRORS as exc:
            ctx.problem(f"sagemaker:{region}", f"cannot list monitoring schedules: {aws_error(exc)}")
            continue
        for name in names:
            ctx.raise_if_cancelled()
            try:
                yield _state(sagemaker, s3, name, settings, ctx)
            except AWS_ERRORS as exc:
                ctx.problem(f"sagemaker:{region}:{name}", aws_error(exc))
