"""Reports from S3 prefixes (a real moto server) and SageMaker schedules (botocore Stubber: moto has none)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from collector.connector import CollectContext, Problem
from collector.model import Observation, Outcome
from connectors.model_monitor import CHECKS, ModelMonitorConnector, ModelMonitorSettings
from connectors.model_monitor.sagemaker import schedule_period
from tests.helpers import running_moto_server

DATA = Path(__file__).parents[1] / "data" / "model_monitor"
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
REGION = "eu-west-1"
ACCOUNT = "123456789012"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with running_moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3(moto_url: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_url, region_name=REGION)


@pytest.fixture
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    name = f"monitoring-{request.node.name.lower().replace('_', '-')[:40]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def run(settings: dict[str, Any], clients: Any = None) -> tuple[list[Observation], list[Problem]]:
    connector = ModelMonitorConnector(ModelMonitorSettings.model_validate(settings), clients=clients)
    ctx = CollectContext(instance="aws", run_id="r1", now=NOW)
    return list(connector.collect(ctx)), ctx.problems


def judge(observation: Observation, settings: dict[str, Any], now: datetime = NOW) -> tuple[Outcome, str]:
    [check] = [c for c in CHECKS if c.kind == observation.kind]
    result = check.run(observation, ModelMonitorSettings.model_validate(settings), now)
    return result.result, result.message


# ------------------------------------------------------------------------------------------- S3 prefixes


def test_reports_under_an_s3_prefix(s3: Any, bucket: str, moto_url: str, shared_fixtures: Path) -> None:
    sagemaker = shared_fixtures / "aws-sagemaker"
    objects = {
        "fraud/evidently/drift.json": shared_fixtures / "evidently" / "report-v0.6.7-data-drift.json",
        "fraud/mm/2024/03/01/10/constraint_violations.json": sagemaker / "constraint_violations-data-quality.json",
        "fraud/mm/2024/03/01/10/statistics.json": sagemaker / "statistics-data-quality.json",
        "fraud/mm/2024/03/01/11/statistics.json": sagemaker / "statistics-data-quality.json",
        "fraud/baseline/constraints.json": sagemaker / "constraints-data-quality.json",
        "fraud/baseline/statistics.json": sagemaker / "statistics-data-quality.json",
        "fraud/clarify/analysis.json": sagemaker / "clarify-bias-analysis.json",
        "fraud/bad/explanations.json": DATA / "bad" / "explainability-analysis.json",
        "fraud/notes.txt": DATA / "bad" / "array.json",
        "other/evidently/drift.json": shared_fixtures / "evidently" / "report-v0.6.7-data-drift.json",
    }
    for key, path in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    settings = {
        "aws": {"endpoint_url": moto_url, "region": REGION},
        "reports": [{"s3": f"s3://{bucket}/fraud/", "model": "fraud"}],
    }
    observations, problems = run(settings)
    assert [(p.source, p.reason.split(";")[0]) for p in problems] == [
        (f"s3://{bucket}/fraud/bad/explanations.json", "unknown report shape (top-level keys: explanations, version)")
    ]
    found = sorted((o.kind, o.source.removeprefix(f"s3://{bucket}/")) for o in observations)
    assert found == [
        ("monitor.bias_report", "fraud/clarify/analysis.json"),
        ("monitor.drift_report", "fraud/evidently/drift.json"),
        ("monitor.quality_report", "fraud/mm/2024/03/01/10/constraint_violations.json"),
        ("monitor.quality_report", "fraud/mm/2024/03/01/11/statistics.json"),
    ]
    by_source = {o.source.rsplit("/", 2)[-2]: o for o in observations if o.kind == "monitor.quality_report"}
    assert by_source["10"].payload["violation_count"] == 7
    assert by_source["11"].payload["violation_count"] == 0
    assert by_source["11"].payload["observed_at_source"] == "s3_last_modified"
    collected_at = datetime.now(UTC)  # S3 LastModified dates these objects
    assert judge(by_source["10"], settings, collected_at)[0] is Outcome.FAIL
    assert judge(by_source["11"], settings, collected_at) == (
        Outcome.PASS,
        "no constraint violations in the latest monitoring execution "
        "(dated by the S3 object's LastModified: the report carries no time of its own)",
    )
    assert {str(o.subject) for o in observations} == {"model:fraud"}


def test_s3_path_form_and_format_filter(s3: Any, bucket: str, moto_url: str) -> None:
    s3.put_object(
        Bucket=bucket, Key="runs/analysis.json", Body=(DATA / "reports" / "clarify" / "analysis.json").read_bytes()
    )
    s3.put_object(
        Bucket=bucket, Key="runs/suite.json", Body=(DATA / "reports" / "evidently" / "test_suite.json").read_bytes()
    )
    settings = {"aws": {"endpoint_url": moto_url}, "reports": [{"path": f"s3://{bucket}/runs", "format": "clarify"}]}
    observations, problems = run(settings)
    assert [o.kind for o in observations] == ["monitor.bias_report"]
    [problem] = problems
    assert problem.source == f"s3://{bucket}/runs/suite.json"
    assert "this is a evidently report but the source is configured as format clarify" in problem.reason


def test_a_missing_bucket_is_one_problem_and_other_sources_proceed(moto_url: str) -> None:
    settings = {
        "aws": {"endpoint_url": moto_url},
        "reports": [{"s3": "s3://no-such-bucket-here/x/"}, {"path": str(DATA / "reports" / "clarify" / "*.json")}],
    }
    observations, problems = run(settings)
    assert [o.kind for o in observations] == ["monitor.bias_report"]
    [problem] = problems
    assert problem.source == "s3://no-such-bucket-here/x/"
    assert problem.reason.startswith("cannot list: NoSuchBucket")


def test_an_oversized_object_is_skipped_with_a_problem(s3: Any, bucket: str, moto_url: str) -> None:
    s3.put_object(
        Bucket=bucket, Key="big/analysis.json", Body=(DATA / "reports" / "clarify" / "analysis.json").read_bytes()
    )
    settings = {"aws": {"endpoint_url": moto_url}, "reports": [{"s3": f"s3://{bucket}/big/"}], "max_file_bytes": 100}
    observations, [problem] = run(settings)
    assert observations == []
    assert problem.reason.startswith("object too large: ")


# ------------------------------------------------------------------------------------------- schedules


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


def _described(
    name: str,
    *,
    expression: str = "cron(0 * ? * * *)",
    status: str = "Scheduled",
    monitoring_type: str = "DataQuality",
    execution: dict[str, Any] | None = None,
    failure: str | None = None,
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "MonitoringScheduleArn": _arn("monitoring-schedule", name),
        "MonitoringScheduleName": name,
        "MonitoringScheduleStatus": status,
        "MonitoringType": monitoring_type,
        "CreationTime": NOW - timedelta(days=30),
        "LastModifiedTime": NOW - timedelta(days=1),
        "EndpointName": "fraud-endpoint",
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": expression},
            "MonitoringJobDefinitionName": f"{name}-definition",
            "MonitoringType": monitoring_type,
        },
    }
    if failure:
        described["FailureReason"] = failure
    if execution:
        described["LastMonitoringExecutionSummary"] = {
            "MonitoringScheduleName": name,
            "CreationTime": execution["scheduled"],
            "LastModifiedTime": execution["scheduled"] + timedelta(minutes=12),
            "EndpointName": "fraud-endpoint",
            "MonitoringType": monitoring_type,
            **execution["summary"],
            "ScheduledTime": execution["scheduled"],
        }
    return described


def _execution(status: str, scheduled: datetime, job: str | None = None, reason: str | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {"MonitoringExecutionStatus": status}
    if job:
        summary["ProcessingJobArn"] = _arn("processing-job", job)
    if reason:
        summary["FailureReason"] = reason
    return {"scheduled": scheduled, "summary": summary}


def _summary(described: dict[str, Any]) -> dict[str, Any]:
    return {
        key: described[key]
        for key in (
            "MonitoringScheduleName",
            "MonitoringScheduleArn",
            "CreationTime",
            "LastModifiedTime",
            "MonitoringScheduleStatus",
            "EndpointName",
            "MonitoringType",
        )
    }


def _processing_job(name: str, output_uri: str) -> dict[str, Any]:
    return {
        "ProcessingJobName": name,
        "ProcessingJobArn": _arn("processing-job", name),
        "ProcessingJobStatus": "Completed",
        "CreationTime": NOW - timedelta(minutes=40),
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}
        },
        "AppSpecification": {
            "ImageUri": "156813124566.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer"
        },
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/monitor",
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {
                        "S3Uri": output_uri,
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
    }


class StubbedAws:
    """Real boto3 clients; SageMaker answers from a Stubber (moto lacks monitoring schedules), S3 from moto."""

    def __init__(self, moto_url: str) -> None:
        self.s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
        self.sagemaker = {r: boto3.client("sagemaker", region_name=r) for r in (REGION, "us-east-1")}
        self.stubbers = {r: Stubber(c) for r, c in self.sagemaker.items()}
        for stubber in self.stubbers.values():
            stubber.activate()

    def __call__(self, service: str, region: str | None) -> Any:
        return self.s3 if service == "s3" else self.sagemaker[region or REGION]

    def assert_all_used(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


def test_schedules_health_and_latest_violations(s3: Any, bucket: str, moto_url: str, shared_fixtures: Path) -> None:
    violations_uri = f"s3://{bucket}/fraud-endpoint/fraud-dq/2024/03/01/11"
    s3.put_object(
        Bucket=bucket,
        Key="fraud-endpoint/fraud-dq/2024/03/01/11/constraint_violations.json",
        Body=(shared_fixtures / "aws-sagemaker" / "constraint_violations-data-quality.json").read_bytes(),
    )
    schedules = [
        _described("fraud-dq", execution=_execution("CompletedWithViolations", NOW - timedelta(minutes=55), "job-dq")),
        _described(
            "fraud-bias",
            expression="cron(0 0 ? * * *)",
            monitoring_type="ModelBias",
            execution=_execution("CompletedWithViolations", NOW - timedelta(days=3), "job-bias"),
        ),
        _described("churn-dq", status="Failed", failure="Role lacks s3:GetObject"),
        _described("brand-new"),
        _described(
            "fraud-mq",
            expression="cron(0 */6 ? * * *)",
            monitoring_type="ModelQuality",
            execution=_execution("Failed", NOW - timedelta(hours=2), reason="AlgorithmError: no ground truth"),
        ),
    ]
    aws = StubbedAws(moto_url)
    eu = aws.stubbers[REGION]
    eu.add_response(
        "list_monitoring_schedules",
        {"MonitoringScheduleSummaries": [_summary(s) for s in schedules[:3]], "NextToken": "page-2"},
        {},
    )
    eu.add_response(
        "list_monitoring_schedules",
        {"MonitoringScheduleSummaries": [_summary(s) for s in schedules[3:]]},
        {"NextToken": "page-2"},
    )
    eu.add_response("describe_monitoring_schedule", schedules[0], {"MonitoringScheduleName": "fraud-dq"})
    eu.add_response(
        "describe_processing_job", _processing_job("job-dq", violations_uri), {"ProcessingJobName": "job-dq"}
    )
    eu.add_response("describe_monitoring_schedule", schedules[1], {"MonitoringScheduleName": "fraud-bias"})
    eu.add_response(
        "describe_processing_job",
        _processing_job("job-bias", f"s3://{bucket}/fraud-endpoint/fraud-bias/empty"),
        {"ProcessingJobName": "job-bias"},
    )
    for described in schedules[2:]:
        eu.add_response(
            "describe_monitoring_schedule", described, {"MonitoringScheduleName": described["MonitoringScheduleName"]}
        )
    aws.stubbers["us-east-1"].add_client_error(
        "list_monitoring_schedules", "AccessDeniedException", "not authorized", 400
    )

    settings = {"sagemaker_schedules": {"enabled": True, "regions": [REGION, "us-east-1"]}}
    observations, problems = run(settings, clients=aws)
    aws.assert_all_used()

    assert [(p.source, p.reason) for p in problems] == [
        ("sagemaker:us-east-1", "cannot list monitoring schedules: AccessDeniedException: not authorized")
    ]
    health = {o.payload["schedule_name"]: judge(o, settings) for o in observations if o.kind == "monitor.schedule"}
    assert health == {
        "fraud-dq": (Outcome.PASS, "fraud-dq last completed within its period"),
        "fraud-bias": (
            Outcome.FAIL,
            "last execution of fraud-bias was scheduled 72.0h ago, more than its period plus grace (25h)",
        ),
        "churn-dq": (Outcome.FAIL, "schedule churn-dq is Failed: Role lacks s3:GetObject"),
        "brand-new": (Outcome.FAIL, "schedule brand-new has never executed"),
        "fraud-mq": (Outcome.FAIL, "last execution of fraud-mq is Failed: AlgorithmError: no ground truth"),
    }
    reports = {o.payload["schedule_name"]: o for o in observations if o.kind != "monitor.schedule"}
    assert set(reports) == {"fraud-dq", "fraud-bias"}
    dq, bias = reports["fraud-dq"], reports["fraud-bias"]
    assert dq.kind == "monitor.quality_report"
    assert dq.payload["violation_count"] == 7
    assert dq.observed_at == NOW - timedelta(minutes=55) + timedelta(minutes=12)
    assert judge(dq, settings)[0] is Outcome.FAIL
    assert bias.kind == "monitor.bias_report"
    assert bias.payload["violation_count"] == 0  # no violations file under the output prefix
    assert judge(bias, settings) == (Outcome.PASS, "no bias violations in the latest monitoring execution")


def test_schedules_filtered_by_endpoint(moto_url: str) -> None:
    aws = StubbedAws(moto_url)
    one = _described("fraud-dq", execution=_execution("Completed", NOW - timedelta(minutes=20), "job-dq"))
    aws.stubbers[REGION].add_response(
        "list_monitoring_schedules",
        {"MonitoringScheduleSummaries": [_summary(one)]},
        {"EndpointName": "fraud-endpoint"},
    )
    aws.stubbers[REGION].add_response("describe_monitoring_schedule", one, {"MonitoringScheduleName": "fraud-dq"})
    settings = {"sagemaker_schedules": {"enabled": True, "regions": [REGION], "endpoint_names": ["fraud-endpoint"]}}
    observations, problems = run(settings, clients=aws)
    aws.assert_all_used()
    assert problems == []
    schedule, report = observations
    assert schedule.payload["period_seconds"] == 3600
    assert schedule.payload["last_execution"]["violation_count"] == 0
    assert report.payload["violation_count"] == 0  # Completed: no violations report is read


@pytest.mark.parametrize(
    ("expression", "hours"),
    [
        ("cron(0 * ? * * *)", 1),
        ("cron(0 */6 ? * * *)", 6),
        ("cron(0 0/12 ? * * *)", 12),
        ("cron(0 8 ? * * *)", 24),
        ("cron(0 8 ? * MON *)", None),
        ("NOW", None),
        ("rate(1 hour)", None),
    ],
)
def test_schedule_periods(expression: str, hours: int | None) -> None:
    period = schedule_period(expression)
    assert period == (timedelta(hours=hours) if hours else None)


def test_a_failed_processing_job_behind_a_completed_execution_is_never_a_pass(moto_url: str) -> None:
    aws = StubbedAws(moto_url)
    described = _described(
        "fraud-dq", execution=_execution("CompletedWithViolations", NOW - timedelta(minutes=20), "j")
    )
    job = {
        **_processing_job("j", "s3://monitoring/fraud-dq/2024/03/01/11"),
        "ProcessingJobStatus": "Failed",
        "FailureReason": "AlgorithmError: See job logs for more information",
    }
    stubber = aws.stubbers[REGION]
    stubber.add_response("list_monitoring_schedules", {"MonitoringScheduleSummaries": [_summary(described)]}, {})
    stubber.add_response("describe_monitoring_schedule", described, {"MonitoringScheduleName": "fraud-dq"})
    stubber.add_response("describe_processing_job", job, {"ProcessingJobName": "j"})
    settings = {"sagemaker_schedules": {"enabled": True, "regions": [REGION]}}
    observations, problems = run(settings, clients=aws)
    aws.assert_all_used()
    assert problems == []
    [schedule] = observations  # what a failed job left behind is not read as a report
    assert judge(schedule, settings) == (
        Outcome.FAIL,
        "last execution of fraud-dq is CompletedWithViolations but its processing job is Failed: "
        "AlgorithmError: See job logs for more information",
    )


def test_an_execution_scheduled_in_the_future_fails_as_in_the_future(moto_url: str) -> None:
    aws = StubbedAws(moto_url)
    described = _described("fraud-dq", execution=_execution("Completed", NOW + timedelta(days=3650), "j"))
    stubber = aws.stubbers[REGION]
    stubber.add_response("list_monitoring_schedules", {"MonitoringScheduleSummaries": [_summary(described)]}, {})
    stubber.add_response("describe_monitoring_schedule", described, {"MonitoringScheduleName": "fraud-dq"})
    settings = {"sagemaker_schedules": {"enabled": True, "regions": [REGION]}}
    observations, _ = run(settings, clients=aws)
    schedule, report = observations
    outcome, message = judge(schedule, settings)
    assert outcome is Outcome.FAIL
    assert message.startswith("last execution of fraud-dq is scheduled at 2034-02-27T12:00:00+00:00, in the future")
    assert judge(report, settings)[0] is Outcome.FAIL
    execution = {**schedule.payload["last_execution"], "scheduled_time": "not-a-date"}
    unreadable = Observation(
        schedule.kind, schedule.subject, schedule.observed_at, {**schedule.payload, "last_execution": execution}
    )
    assert judge(unreadable, settings) == (
        Outcome.ERROR,
        "last execution of fraud-dq: scheduled_time 'not-a-date' is not a timestamp",
    )
