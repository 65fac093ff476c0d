"""The data_access connector against a real moto server (S3 log files in CloudTrail's layout, the trail, its event
selectors and status). moto does not implement cloudtrail:LookupEvents (HTTP 500), so that one operation is
answered by botocore's Stubber, whose responses botocore validates against the LookupEvents output shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.session import Session
from botocore.stub import Stubber

from collector.connector import CollectContext, load_connector
from collector.model import Observation, Outcome
from collector.sdk.testing import ConnectorConformance
from connectors.data_access import CHECKS, DataAccessConnector, DataAccessSettings
from connectors.data_access.summary import Summariser
from tests.cloudtrail_records import (
    ACCOUNT,
    CONSOLE_AGENT,
    REGION,
    aws_service,
    digest_file_key,
    feature_store_event,
    iam_user,
    log_file,
    log_file_key,
    management_event,
    role_session,
    s3_data_event,
    sso_session,
)
from tests.helpers import running_moto_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
POLICY_FILE = ROOT / "deploy" / "aws" / "iam-policy.json"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TRAIL_BUCKET = "org-cloudtrail-logs"
TRAIL_PREFIX = "trails"
DATA_BUCKET = "ml-training-data"
ARTIFACT_BUCKET = "ml-model-artifacts"
TRAINING = role_session("training", "training-job-0042")
PIPELINE = role_session("feature-pipeline", "airflow-run-17")
STRANGER = role_session("analytics-adhoc", "notebook-3")
ALICE = iam_user("alice")
BOB_SSO = sso_session("DataScientist", "bob@example.com")
ADVANCED_SELECTORS = [
    {
        "Name": "training data objects",
        "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
            {"Field": "resources.ARN", "StartsWith": [f"arn:aws:s3:::{DATA_BUCKET}/churn/"]},
        ],
    },
    {
        "Name": "feature groups",
        "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::SageMaker::FeatureGroup"]},
        ],
    },
]


def at(minutes: int) -> str:
    return (NOW - timedelta(hours=2) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def delivered(minutes: int) -> datetime:
    return NOW - timedelta(hours=2) + timedelta(minutes=minutes)


# ------------------------------------------------------------------------------------------- moto and stubs


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with running_moto_server() as url:
        yield url


class LookupEventsStubber(Stubber):
    """botocore's Stubber for LookupEvents only: every other call of the client goes to moto."""

    def activate(self) -> None:
        self.client.meta.events.register_first(
            "before-parameter-build.cloudtrail.LookupEvents",
            self._assert_expected_params,
            unique_id=self._expected_params_event_id,
        )
        self.client.meta.events.register(
            "before-call.cloudtrail.LookupEvents", self._get_response_handler, unique_id=self._event_id
        )


class StubbedSession(Session):
    """A botocore session whose CloudTrail clients answer LookupEvents from queued, shape-validated responses."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: dict[str, list[dict[str, Any]]] = {}
        """Region -> CloudTrail records returned (one page each per resource name asked about, then empty)."""
        self.lookup_params: list[dict[str, Any]] = []
        self.lookup_error: str | None = None
        self.called: set[str] = set()
        self.register("before-parameter-build", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.called.add(f"{model.service_model.signing_name}:{model.name}")

    def create_client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        client = super().create_client(service_name, *args, **kwargs)
        if service_name != "cloudtrail":
            return client
        stubber = LookupEventsStubber(client)
        region = kwargs.get("region_name")
        records = self.lookups.get(str(region), [])
        for _ in range(4):  # one answer per resource name the connector asks about
            if self.lookup_error:
                stubber.add_client_error("lookup_events", self.lookup_error, "denied", 400)
                continue
            stubber.add_response("lookup_events", {"Events": [_lookup_event(r) for r in records]})
        stubber.activate()
        client.meta.events.register(
            "before-parameter-build.cloudtrail.LookupEvents", lambda params, **_: self.lookup_params.append(params)
        )
        return client


def _lookup_event(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "EventId": record["eventID"],
        "EventName": record["eventName"],
        "ReadOnly": str(record["readOnly"]).lower(),
        "AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
        "EventTime": datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        "EventSource": record["eventSource"],
        "Username": "feature-admin",
        "Resources": [{"ResourceType": "AWS::SageMaker::FeatureGroup", "ResourceName": "customers"}],
        "CloudTrailEvent": json.dumps(record),
    }


class Moto:
    def __init__(self, url: str) -> None:
        self.url = url

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def put_log(self, minutes: int, records: list[dict[str, Any]], body: bytes | None = None) -> str:
        key = log_file_key(delivered(minutes), TRAIL_PREFIX)
        self.client("s3").put_object(Bucket=TRAIL_BUCKET, Key=key, Body=body if body is not None else log_file(records))
        return key


@pytest.fixture
def moto(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Moto:
    requests.post(f"{moto_url}/moto-api/reset", timeout=5).raise_for_status()
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return Moto(moto_url)


def seed_trail(moto: Moto, selectors: list[dict[str, Any]] | None = None, *, logging: bool = True) -> None:
    s3 = moto.client("s3")
    for bucket in (TRAIL_BUCKET, DATA_BUCKET, ARTIFACT_BUCKET):
        s3.create_bucket(Bucket=bucket)
    cloudtrail = moto.client("cloudtrail")
    cloudtrail.create_trail(
        Name="org-trail", S3BucketName=TRAIL_BUCKET, S3KeyPrefix=TRAIL_PREFIX, IsMultiRegionTrail=True
    )
    cloudtrail.put_event_selectors(
        TrailName="org-trail", AdvancedEventSelectors=ADVANCED_SELECTORS if selectors is None else selectors
    )
    if logging:
        cloudtrail.start_logging(Name="org-trail")


def seed_logs(moto: Moto) -> dict[str, str]:
    """Two hours of a training platform's data events in three log files, a digest file beside them."""
    duplicate = s3_data_event("GetObject", DATA_BUCKET, "churn/2026/11/part-0001.parquet", TRAINING, at(5))
    first = [
        duplicate,
        s3_data_event("GetObject", DATA_BUCKET, "churn/2026/11/part-0002.parquet", TRAINING, at(6)),
        s3_data_event("PutObject", DATA_BUCKET, "churn/2026/12/part-0001.parquet", PIPELINE, at(7)),
        feature_store_event("GetRecord", "customers", TRAINING, at(8)),
        # not a designated dataset: never counted
        s3_data_event("GetObject", DATA_BUCKET, "marketing/leads.csv", STRANGER, at(9)),
        s3_data_event("GetObject", "another-bucket", "x.csv", STRANGER, at(9)),
        # a management event in the log file: counted through LookupEvents only
        management_event("s3.amazonaws.com", "PutBucketPolicy", ALICE, at(9), {"bucketName": DATA_BUCKET}),
    ]
    second = [
        duplicate,  # CloudTrail delivered it twice
        s3_data_event(
            "GetObject",
            DATA_BUCKET,
            "churn/2026/11/part-0003.parquet",
            ALICE,
            at(40),
            agent=CONSOLE_AGENT,
            source_ip="81.2.69.142",
        ),
        s3_data_event(
            "GetObject", DATA_BUCKET, "churn/2026/11/part-0003.parquet", BOB_SSO, at(41), source_ip="81.2.69.143"
        ),
        s3_data_event("GetObject", DATA_BUCKET, "churn/labels.csv", STRANGER, at(42), error_code="AccessDenied"),
    ]
    third = [
        s3_data_event("DeleteObject", DATA_BUCKET, "churn/2026/11/part-0002.parquet", PIPELINE, at(70)),
        feature_store_event("PutRecord", "customers", PIPELINE, at(71)),
        s3_data_event(
            "GetObject",
            DATA_BUCKET,
            "churn/2026/11/part-0001.parquet",
            aws_service("athena.amazonaws.com"),
            at(72),
            source_ip="athena.amazonaws.com",
            agent="athena.amazonaws.com",
        ),
    ]
    keys = {"first": moto.put_log(10, first), "second": moto.put_log(45, second), "third": moto.put_log(75, third)}
    moto.client("s3").put_object(
        Bucket=TRAIL_BUCKET, Key=digest_file_key(delivered(60), TRAIL_PREFIX), Body=b"not read: a digest file"
    )
    return keys


def settings(moto: Moto, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "endpoint_url": moto.url,
        "trail": {"name": "org-trail", "region": REGION, "bucket": TRAIL_BUCKET, "prefix": TRAIL_PREFIX},
        "datasets": [
            {
                "name": "churn-training",
                "s3": [{"bucket": DATA_BUCKET, "prefix": "churn/"}],
                "allowed_principals": [
                    f"arn:aws:iam::{ACCOUNT}:role/training",
                    f"arn:aws:iam::{ACCOUNT}:role/feature-pipeline",
                    "service:athena.amazonaws.com",
                ],
                "human_readers": [f"arn:aws:iam::{ACCOUNT}:user/alice"],
            },
            {
                "name": "customer-features",
                "feature_groups": ["customers"],
                "allowed_principals": [f"arn:aws:iam::{ACCOUNT}:role/training", f"arn:aws:iam::{ACCOUNT}:role/model-*"],
            },
        ],
        "first_window": "1d",
        "review_period": "90d",
    }
    raw.update(overrides)
    return raw


def run(
    moto: Moto, session: StubbedSession | None = None, cursor: Any = None, now: datetime = NOW, **overrides: Any
) -> tuple[dict[tuple[str, str], Observation], CollectContext, DataAccessConnector]:
    connector = DataAccessConnector(
        DataAccessSettings.model_validate(settings(moto, **overrides)), session=session or StubbedSession()
    )
    ctx = CollectContext(instance="data", run_id="r1", now=now, cursor=cursor)
    observations = {(o.kind, o.subject.id): o for o in connector.collect(ctx)}
    return observations, ctx, connector


def verdicts(observation: Observation, connector: DataAccessConnector, now: datetime = NOW) -> dict[str, Any]:
    return {
        check.id: check.run(observation, connector.settings, now) for check in CHECKS if check.kind == observation.kind
    }


def by_principal(observation: Observation) -> dict[str, dict[str, Any]]:
    return {p["principal"]: p for p in observation.payload["principals"]}


# ------------------------------------------------------------------------------------------- behaviour


def test_each_dataset_is_summarised_per_principal_from_the_trails_log_files(moto: Moto) -> None:
    seed_trail(moto)
    seed_logs(moto)
    observations, ctx, _ = run(moto)
    churn = observations[("data.access", "churn-training")].payload
    assert churn["log_files"] == {"read": 3, "unreadable": 0, "not_read": 0, "latest": "20261201T1115Z"}
    assert churn["counts"] == {"read": 5, "write": 1, "delete": 1, "metadata": 0, "other": 0}
    assert churn["denied"] == 1
    assert churn["duplicates_dropped"] == 1
    principals = by_principal(observations[("data.access", "churn-training")])
    training = principals[f"arn:aws:iam::{ACCOUNT}:role/training"]
    assert training["counts"]["read"] == 2  # the duplicate delivery counted once
    assert training["type"] == "role_session" and training["human"] is False
    assert training["sessions"] == ["training-job-0042"]
    assert training["source_ip_classes"] == ["private"] and training["user_agent_classes"] == ["sdk"]
    assert training["key_prefixes"] == ["2026/"]  # key_depth 1: never the object names
    assert (training["first"], training["last"]) == (at(5), at(6))
    alice = principals[f"arn:aws:iam::{ACCOUNT}:user/alice"]
    assert (alice["type"], alice["human"], alice["user_agent_classes"], alice["source_ip_classes"]) == (
        "iam_user",
        True,
        ["console"],
        ["public"],
    )
    bob = principals[
        f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_DataScientist_0123456789abcdef"
    ]
    assert (bob["type"], bob["human"], bob["sessions"]) == ("sso_session", True, ["bob@example.com"])
    assert principals["service:athena.amazonaws.com"]["source_ip_classes"] == ["aws_service"]
    stranger = principals[f"arn:aws:iam::{ACCOUNT}:role/analytics-adhoc"]
    assert stranger["denied"] == 1 and not any(stranger["counts"].values())
    features = observations[("data.access", "customer-features")].payload
    assert features["counts"] == {"read": 1, "write": 1, "delete": 0, "metadata": 0, "other": 0}
    assert "marketing" not in json.dumps(churn) and "part-0001" not in json.dumps(churn)
    assert ctx.problems == []
    assert set(ctx.new_cursor["files"].values()) == {max(ctx.new_cursor["files"].values())}


def test_the_checks_flag_strangers_unlisted_humans_and_deletes(moto: Moto) -> None:
    seed_trail(moto)
    seed_logs(moto)
    observations, _, connector = run(moto)
    churn = verdicts(observations[("data.access", "churn-training")], connector)
    assert churn["data.access_logged"].result is Outcome.PASS
    # the denied analytics role did not get in: not a stranger's access; bob and alice are not allowed principals
    assert churn["data.access_by_allowed_principals"].result is Outcome.FAIL
    assert sorted(churn["data.access_by_allowed_principals"].details["principals"]) == sorted(
        [
            f"arn:aws:iam::{ACCOUNT}:user/alice",
            f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_DataScientist_0123456789abcdef",
        ]
    )
    humans = churn["data.no_unlisted_human_reads"]
    assert humans.result is Outcome.FAIL and "AWSReservedSSO_DataScientist" in humans.message
    assert "alice" not in humans.message  # listed as a human reader
    assert churn["data.no_deletes"].result is Outcome.FAIL and "feature-pipeline" in churn["data.no_deletes"].message
    features = verdicts(observations[("data.access", "customer-features")], connector)
    # the feature pipeline wrote records but only training and model-* roles are allowed
    assert features["data.access_by_allowed_principals"].result is Outcome.FAIL
    assert features["data.no_unlisted_human_reads"].result is Outcome.PASS
    assert features["data.no_deletes"].result is Outcome.PASS


def test_a_dataset_the_trail_does_not_log_is_an_error_never_a_pass(moto: Moto) -> None:
    reads_only = [
        {
            "Name": "reads of another prefix",
            "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Data"]},
                {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                {"Field": "resources.ARN", "StartsWith": [f"arn:aws:s3:::{DATA_BUCKET}/marketing/"]},
            ],
        }
    ]
    seed_trail(moto, reads_only)
    moto.put_log(10, [feature_store_event("GetRecord", "customers", TRAINING, at(8))])
    observations, _, connector = run(moto, datasets=[settings(moto)["datasets"][0]])
    results = verdicts(observations[("data.access", "churn-training")], connector)
    for check_id, result in results.items():
        assert result.result is Outcome.ERROR, check_id
        assert result.message.startswith("not logged"), result.message
    assert "s3://ml-training-data/churn/ (reads and writes)" in results["data.access_logged"].message
    review = verdicts(observations[("access.review", "churn-training")], connector)
    assert review["access.no_unused_access"].result is Outcome.ERROR


def test_a_trail_that_stopped_logging_is_not_logging(moto: Moto) -> None:
    seed_trail(moto, logging=False)
    seed_logs(moto)
    observations, _, connector = run(moto)
    result = verdicts(observations[("data.access", "churn-training")], connector)["data.access_logged"]
    assert result.result is Outcome.ERROR and "is not logging" in result.message


def test_basic_event_selectors_count_by_read_write_type(moto: Moto) -> None:
    seed_trail(moto, [])
    moto.client("cloudtrail").put_event_selectors(
        TrailName="org-trail",
        EventSelectors=[
            {
                "ReadWriteType": "WriteOnly",
                "IncludeManagementEvents": True,
                "DataResources": [{"Type": "AWS::S3::Object", "Values": [f"arn:aws:s3:::{DATA_BUCKET}/"]}],
            }
        ],
    )
    seed_logs(moto)
    observations, _, connector = run(moto)
    churn = observations[("data.access", "churn-training")]
    assert churn.payload["logging"][f"s3://{DATA_BUCKET}/churn/"] == {
        "reads": False,
        "writes": True,
        "selectors": ["EventSelectors[0]"],
    }
    result = verdicts(churn, connector)["data.access_logged"]
    assert result.result is Outcome.ERROR and "(reads)" in result.message


def test_truncated_and_corrupt_log_files_are_problems_and_no_check_passes(moto: Moto) -> None:
    seed_trail(moto)
    good = log_file([s3_data_event("GetObject", DATA_BUCKET, "churn/a.parquet", TRAINING, at(5))])
    truncated = moto.put_log(10, [], body=good[: len(good) // 2])
    moto.put_log(20, [], body=b"\x1f\x8b not really gzip")
    moto.put_log(30, [], body=log_file([]).replace(b"", b"") if False else _gzip_json({"records": []}))
    observations, ctx, connector = run(moto)
    reasons = {problem.source.rsplit("/", 1)[-1]: problem.reason for problem in ctx.problems}
    assert "not a complete gzip file" in reasons[truncated.rsplit("/", 1)[-1]]
    assert sum("gzip" in r for r in reasons.values()) == 2
    assert any('no "Records" list' in r for r in reasons.values())
    churn = observations[("data.access", "churn-training")]
    assert churn.payload["log_files"]["unreadable"] == 3
    for check_id, result in verdicts(churn, connector).items():
        if check_id != "data.access_logged":
            assert result.result is Outcome.ERROR, (check_id, result.message)
            assert "could not be read" in result.message or "no CloudTrail log file" in result.message


def _gzip_json(document: Any) -> bytes:
    import gzip

    return gzip.compress(json.dumps(document).encode())


def test_the_cursor_reads_each_log_file_once_and_an_empty_window_is_never_a_pass(moto: Moto) -> None:
    seed_trail(moto)
    seed_logs(moto)
    _, first, _ = run(moto)
    observations, second, connector = run(moto, cursor=first.new_cursor, now=NOW + timedelta(hours=1))
    churn = observations[("data.access", "churn-training")]
    assert churn.payload["log_files"]["read"] == 0 and churn.payload["events"] == 0
    assert any("no new CloudTrail log files" in p.reason for p in second.problems)
    results = verdicts(churn, connector, NOW + timedelta(hours=1))
    assert results["data.access_logged"].result is Outcome.ERROR
    assert results["data.no_deletes"].result is Outcome.ERROR
    # a new file after the cursor is read, and only it
    moto.put_log(130, [s3_data_event("GetObject", DATA_BUCKET, "churn/b.parquet", TRAINING, at(125))])
    # as is a region seen for the first time, from the window's start only
    old = log_file_key(delivered(-60 * 24 * 3), TRAIL_PREFIX, region="eu-west-1")
    new = log_file_key(delivered(200), TRAIL_PREFIX, region="eu-west-1")
    for key in (old, new):
        moto.client("s3").put_object(
            Bucket=TRAIL_BUCKET,
            Key=key,
            Body=log_file([s3_data_event("PutObject", DATA_BUCKET, "churn/c.parquet", PIPELINE, at(126))]),
        )
    observations, _, _ = run(moto, cursor=second.new_cursor, now=NOW + timedelta(hours=2))
    churn = observations[("data.access", "churn-training")].payload
    assert churn["log_files"]["read"] == 2 and churn["counts"]["read"] == 1 and churn["counts"]["write"] == 1


def test_organisation_trails_are_read_and_max_files_per_run_leaves_the_rest_for_the_next_run(moto: Moto) -> None:
    seed_trail(moto)
    s3 = moto.client("s3")
    for minutes in (10, 20, 30):
        key = log_file_key(delivered(minutes), f"{TRAIL_PREFIX}/AWSLogs/o-exampleorgid")
        key = key.replace("/AWSLogs/o-exampleorgid/AWSLogs/", "/AWSLogs/o-exampleorgid/")
        record = s3_data_event("GetObject", DATA_BUCKET, "churn/a", TRAINING, at(minutes - 2))
        s3.put_object(Bucket=TRAIL_BUCKET, Key=key, Body=log_file([record]))
    observations, ctx, connector = run(moto, max_files_per_run=2)
    churn = observations[("data.access", "churn-training")]
    assert churn.payload["log_files"]["read"] == 2 and churn.payload["log_files"]["not_read"] == 1
    assert any("left for the next run" in p.reason for p in ctx.problems)
    result = verdicts(churn, connector)["data.no_deletes"]
    assert result.result is Outcome.ERROR and "left for the next run" in result.message
    observations, _, _ = run(moto, cursor=ctx.new_cursor, max_files_per_run=2)
    assert observations[("data.access", "churn-training")].payload["log_files"]["read"] == 1


def test_future_events_unknown_services_and_unreadable_records_are_problems(moto: Moto) -> None:
    seed_trail(moto)
    future = s3_data_event("GetObject", DATA_BUCKET, "churn/a.parquet", TRAINING, "2027-06-01T00:00:00Z")
    glue = s3_data_event("GetObject", DATA_BUCKET, "churn/a.parquet", TRAINING, at(3))
    glue["eventSource"] = "glue.amazonaws.com"
    glue["eventName"] = "GetTable"
    glue["requestParameters"] = {}
    timeless = s3_data_event("GetObject", DATA_BUCKET, "churn/a.parquet", TRAINING, "yesterday")
    moto.put_log(10, [future, glue, timeless, "not a record"])  # type: ignore[list-item]
    observations, ctx, connector = run(moto)
    churn = observations[("data.access", "churn-training")]
    assert churn.payload["future_events"] == 1 and churn.payload["unknown_service_events"] == 1
    assert churn.payload["counts"]["other"] == 1  # glue's GetTable: not judged as a read or a write
    assert churn.payload["unreadable_records"] == 2
    training = by_principal(churn)[f"arn:aws:iam::{ACCOUNT}:role/training"]
    assert training["last"] == at(3)  # the future time is not the last use
    reasons = " | ".join(p.reason for p in ctx.problems)
    assert "dated after the collection time" in reasons
    assert "from a service this connector does not classify" in reasons
    assert "without a readable eventTime" in reasons
    assert churn.observed_at == NOW
    results = verdicts(churn, connector)
    assert results["data.no_deletes"].result is Outcome.ERROR  # two records could not be judged


def test_management_events_come_from_lookup_events_each_counted_once(moto: Moto) -> None:
    seed_trail(moto)
    seed_logs(moto)
    delete = management_event(
        "sagemaker.amazonaws.com",
        "DeleteFeatureGroup",
        role_session("feature-admin", "cli"),
        at(50),
        {"featureGroupName": "customers"},
    )
    describe = management_event(
        "sagemaker.amazonaws.com", "DescribeFeatureGroup", TRAINING, at(51), {"featureGroupName": "customers"}
    )
    session = StubbedSession()
    session.lookups[REGION] = [delete, describe]
    observations, ctx, connector = run(moto, session=session)
    features = observations[("data.access", "customer-features")]
    assert features.payload["counts"] == {"read": 1, "write": 1, "delete": 1, "metadata": 1, "other": 0}
    assert [p["LookupAttributes"][0]["AttributeValue"] for p in session.lookup_params] == [
        DATA_BUCKET,
        "customers",
    ]
    assert session.lookup_params[0]["StartTime"] == NOW - timedelta(days=1, minutes=15)
    assert verdicts(features, connector)["data.no_deletes"].result is Outcome.FAIL
    # the same events, still visible to the next lookup (its window overlaps by 15 minutes), are not counted again
    later = NOW + timedelta(minutes=5)
    session = StubbedSession()
    session.lookups[REGION] = [delete]
    observations, _, _ = run(moto, session=session, cursor=ctx.new_cursor, now=later)
    assert ctx.new_cursor["lookup_ids"] == {}  # both older than now - 15 min
    again = observations[("data.access", "customer-features")].payload
    assert again["counts"]["delete"] == 1  # outside the overlap: the stub replays it, a real lookup would not


def test_a_denied_lookup_is_an_error_not_zero_management_events(moto: Moto) -> None:
    seed_trail(moto)
    seed_logs(moto)
    session = StubbedSession()
    session.lookup_error = "AccessDeniedException"
    observations, _, connector = run(moto, session=session)
    churn = observations[("data.access", "churn-training")]
    assert "AccessDeniedException" in churn.payload["management_events"]["error"]
    result = verdicts(churn, connector)["data.access_by_allowed_principals"]
    assert result.result is Outcome.FAIL  # the strangers seen still fail
    features = verdicts(observations[("data.access", "customer-features")], connector)
    assert features["data.no_deletes"].result is Outcome.ERROR
    assert "management events could not be looked up" in features["data.no_deletes"].message


def test_access_review_names_allowed_principals_that_went_unused(moto: Moto) -> None:
    seed_trail(moto)
    seed_logs(moto)
    observations, ctx, connector = run(moto)
    review = observations[("access.review", "customer-features")]
    rows = {row["entry"]: row for row in review.payload["allowed"]}
    assert rows[f"arn:aws:iam::{ACCOUNT}:role/training"]["used_by"] == [f"arn:aws:iam::{ACCOUNT}:role/training"]
    assert rows[f"arn:aws:iam::{ACCOUNT}:role/model-*"]["used_by"] == []
    seen = {row["principal"]: row["allowed"] for row in review.payload["seen"]}
    assert seen[f"arn:aws:iam::{ACCOUNT}:role/feature-pipeline"] is False
    # one day of history is too little to call a principal unused in a 90-day review
    result = verdicts(review, connector)["access.no_unused_access"]
    assert result.result is Outcome.NOT_APPLICABLE and "covers only 1 of the 90 days" in result.message
    # 95 days on, the cursor still remembers the training role's last use (day 0 is outside 90 days now)
    cursor = dict(ctx.new_cursor, history_since=(NOW - timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    later = NOW + timedelta(days=30)
    moto.put_log(
        60 * 24 * 30,
        [
            feature_store_event(
                "GetRecord", "customers", TRAINING, (later - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        ],
    )
    observations, _, connector = run(moto, cursor=cursor, now=later)
    result = verdicts(observations[("access.review", "customer-features")], connector, later)["access.no_unused_access"]
    assert result.result is Outcome.FAIL and result.details["unused"] == [f"arn:aws:iam::{ACCOUNT}:role/model-*"]


def test_every_call_is_granted_by_the_shipped_policy(moto: Moto) -> None:
    seed_trail(moto)
    seed_logs(moto)
    session = StubbedSession()
    run(moto, session=session)
    granted = [
        action
        for statement in json.loads(POLICY_FILE.read_text())["Statement"]
        if statement["Sid"].startswith("DataAccess")
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]
    assert sorted(session.called) == [
        "cloudtrail:GetEventSelectors",
        "cloudtrail:GetTrailStatus",
        "cloudtrail:LookupEvents",
        "s3:GetObject",
        "s3:ListObjectsV2",
    ]
    # the IAM action behind ListObjectsV2 is s3:ListBucket
    needed = {a.replace("s3:ListObjectsV2", "s3:ListBucket") for a in session.called}
    assert sorted(a for a in needed if not any(fnmatchcase(a, p) for p in granted)) == []
    assert sorted(set(granted) - needed) == []  # and nothing granted goes unused


def test_loaded_through_its_entry_point() -> None:
    assert load_connector("data_access") is DataAccessConnector


def test_the_dedupe_memory_is_bounded_by_the_horizon_not_the_window() -> None:
    dataset = DataAccessSettings.model_validate(settings(Moto("http://unused"))).datasets[0]
    summariser = Summariser(
        [dataset],
        now=NOW,
        skew=timedelta(minutes=5),
        key_depth=1,
        keys_per_principal=5,
        dedupe_horizon=timedelta(hours=1),
    )
    start = NOW - timedelta(days=1)
    base = s3_data_event("GetObject", DATA_BUCKET, "churn/0/x", TRAINING, at(0))
    for i in range(140_000):
        when = (start + timedelta(seconds=i * 0.4)).strftime("%Y-%m-%dT%H:%M:%SZ")
        params = {"bucketName": DATA_BUCKET, "key": f"churn/{i % 7}/x"}
        summariser.add({**base, "eventID": f"e{i}", "eventTime": when, "requestParameters": params})
    # one event every 0.4 s over a 1 h horizon: 9,000 ids are needed; pruning starts at 50,000
    assert len(summariser._seen) <= 50_001
    principal = summariser.datasets["churn-training"].principals[f"arn:aws:iam::{ACCOUNT}:role/training"]
    assert principal.counts["read"] == 140_000
    assert sorted(principal.keys) == ["0/", "1/", "2/", "3/", "4/"]
    assert principal.keys_not_listed == 40_000  # the events under 5/ and 6/


# ------------------------------------------------------------------------------------------- conformance


class TestDataAccessConformance(ConnectorConformance):
    connector_cls = DataAccessConnector
    now = NOW
    invalid_settings = [
        {"trail": {"name": "t", "region": "nowhere", "bucket": TRAIL_BUCKET}, "datasets": []},
        {
            "trail": {"name": "t", "region": REGION, "bucket": TRAIL_BUCKET},
            "datasets": [{"name": "d", "allowed_principals": ["training"]}],
        },
    ]

    @pytest.fixture(autouse=True)
    def _seeded(self, moto: Moto) -> None:
        seed_trail(moto)
        seed_logs(moto)
        self.moto = moto

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        # moto answers LookupEvents with HTTP 500; the stubbed lookups are tested above
        return settings(self.moto, management_events=False, max_attempts=1)
