"""What is never a pass, for every check of every installed connector (present and future).

Each check is judged over observations that the connector's own code builds from real sample data (see
tests/fixtures/SOURCES.md and tests/data/), starting from a passing one, then over mutations drawn by hypothesis:

- a number becomes NaN, +Inf or -Inf: anywhere in the evidence (always ``error``, naming the path), or in the
  source document as a float or, where the source writes numbers as text (Prometheus, MLflow), as that text;
- a time becomes unreadable or lies beyond the clock-skew tolerance in the future: the evidence's ``observed_at``
  (always ``fail``), a time in the evidence, a time in the source document;
- the source says that it failed (a table per source below: SARIF ``executionSuccessful: false``, a grype DB
  error, a failed or errored Evidently test, a failed SageMaker execution or schedule, Prometheus warnings or an
  error envelope, AccessDenied, a forbidden Kubernetes list, an MLflow run that FAILED).

None of these may come out ``pass``. A mutated field counts where it reaches a judgement: a check reads it when
setting it to another valid value (another finite number, another past time) changes the check's result, and a
check reads ``observed_at`` when moving it changes the result. A field no check reads (a SARIF line number, a
user's creation time under ``root_mfa``) may carry anything.

A check without a sample, or whose samples never pass, fails the suite: a new check cannot escape the net.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from collector.connector import CollectContext, Connector, available_connectors, load_connector
from collector.model import Observation, Outcome, Subject
from collector.skew import DEFAULT_CLOCK_SKEW_TOLERANCE as CLOCK_SKEW_TOLERANCE
from collector.timestamps import parse_timestamp
from connectors.alerts import AlertsConnector, AlertsSettings
from connectors.aws import AwsConnector, AwsSettings
from connectors.aws.connector import _Account
from connectors.aws.ecr import EcrImage
from connectors.aws.iam import (
    AUTHORIZATION_DETAILS_KIND,
    PASSWORD_POLICY_KIND,
    fetch_authorization_details,
    fetch_password_policy,
)
from connectors.aws.infra import ACCOUNT_READERS, REGION_READERS, Scope
from connectors.container_scan import ContainerScanConnector, ContainerScanSettings
from connectors.data_access import DataAccessConnector, DataAccessSettings, Summariser
from connectors.data_access.connector import LogFiles, TrailState
from connectors.data_validation import DataValidationConnector, DataValidationSettings
from connectors.github import GitHubConnector, GitHubSettings
from connectors.github.api import NotFound as GitHubNotFound
from connectors.kubernetes import KubernetesConnector, KubernetesSettings
from connectors.kubernetes.api import KubernetesApi, PermissionMissing, ResourceType
from connectors.mlflow import VERSION_KIND, MlflowSettings
from connectors.mlflow.facts import RegisteredModelFacts, run_from_json, versions_from_json
from connectors.mlflow.payloads import version_payload
from connectors.model_monitor import ModelMonitorConnector, ModelMonitorSettings
from connectors.model_monitor.prometheus import PrometheusClient, read_envelope, window_for
from connectors.vault import VaultConnector, VaultSettings
from connectors.vault.api import Denied as VaultDenied
from connectors.vault.api import NotFound as VaultNotFound

NOW = datetime.now(UTC).replace(microsecond=0)
"""The wall clock, not a fixed date: a connector that falls back to a file's mtime must not look "recent" by luck."""
RECENT = NOW - timedelta(hours=1)
TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
DATA = TESTS / "data"
EXAMPLES = 40

UNREADABLE_TIMES = ("not-a-date", "2024-13-45T99:99:99Z", "yesterday")
FUTURE_OFFSETS = (CLOCK_SKEW_TOLERANCE + timedelta(minutes=5), timedelta(days=30), timedelta(days=365 * 50))
NON_FINITE_FLOATS = (math.nan, math.inf, -math.inf)
NON_FINITE_STRINGS = ("NaN", "+Inf", "-Inf")
"""As Prometheus writes them (Go's strconv.FormatFloat)."""

# ------------------------------------------------------------------------------------------- known defects


KNOWN_DEFECTS: dict[tuple[str, str, str], str] = {}
"""(connector, check id or sample name, family) -> the defect that still lets a mutation pass. Strict: once fixed,
the case fails until its entry is removed here."""

SOURCES_WITHOUT_A_FAILURE_FLAG = {"container_scan: trivy json"}
"""Trivy's JSON has no field saying the scan failed (it exits non-zero and writes no report)."""


# ------------------------------------------------------------------------------------------- walking JSON

Path_ = tuple[str | int, ...]


def leaves(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def replaced(document: Any, path: Path_, value: Any) -> Any:
    return replaced_all(document, {path: value})


def replaced_all(document: Any, values: Mapping[Path_, Any]) -> Any:
    out = copy.deepcopy(document)
    for path, value in values.items():
        target = out
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return out


def dotted(path: Path_) -> str:
    return shown(path).removeprefix("$").removeprefix(".")


def shown(path: Path_) -> str:
    return "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


_TIME_KEY = re.compile(r"(time|timestamp|_at|date|_ms)$", re.IGNORECASE)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_epoch(path: Path_, value: Any) -> bool:
    """A number in a time field: epoch seconds or milliseconds (Prometheus sample times, MLflow millis)."""
    named = any(isinstance(step, str) and _TIME_KEY.search(step) for step in path[-2:])
    return is_number(value) and value > 1e8 and named


def is_time_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) >= 10 and parse_timestamp(value) is not None


def number_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def shift_times(document: Any, latest: datetime) -> Any:
    """The document with every ISO time moved by one offset so that the latest is ``latest`` (order kept)."""
    times = [(path, parse_timestamp(value)) for path, value in leaves(document) if is_time_text(value)]
    found = [t for _, t in times if t is not None]
    if not found:
        return document
    offset = latest - max(found)
    out = document
    for path, when in times:
        assert when is not None
        out = replaced(out, path, (when + offset).isoformat().replace("+00:00", "Z"))
    return out


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- samples


@dataclass(frozen=True, eq=False)
class Sample:
    """Real data of one source, the connector's own code that turns it into observations, and the ways the
    source says that it failed."""

    connector: str
    name: str
    raw: Any
    build: Callable[[Any], list[Observation]]
    settings: Any
    failures: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    """How the source says it failed: name -> the raw document saying so."""
    failure_scope: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Evidence kinds or check ids a failure concerns, when not all (a stopped schedule, not its last report)."""
    numbers_as_text: Callable[[Path_], bool] = lambda path: False
    """Where the source writes numbers as strings (Prometheus sample values)."""
    not_times: Callable[[Path_], bool] = lambda path: False
    """Time-looking leaves that are not the time of anything judged (a version string, a legitimate future date)."""

    def __str__(self) -> str:
        return f"{self.connector}:{self.name}"


def context() -> CollectContext:
    return CollectContext(instance="property", run_id="property", now=NOW)


def collected(connector: Connector[Any]) -> list[Observation]:
    return list(connector.collect(context()))


# -- container_scan: report files on disk ---------------------------------------------------------------------

_SCAN_SETTINGS = ContainerScanSettings(paths=["<report file>"])


@cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="never-a-pass-"))


def scan_file(raw: Any, name: str = "report.json") -> list[Observation]:
    path = _scratch() / name
    path.write_text(json.dumps(raw), encoding="utf-8")
    return collected(ContainerScanConnector(ContainerScanSettings(paths=[str(path)])))


def sarif_failed(raw: Any) -> Any:
    out = copy.deepcopy(raw)
    for run in out["runs"]:
        run["invocations"] = [
            {
                "executionSuccessful": False,
                "toolExecutionNotifications": [
                    {"level": "error", "message": {"text": "failed to load vulnerability db"}}
                ],
            }
        ]
    return out


def grype_db_error(raw: Any) -> Any:
    out = copy.deepcopy(raw)
    out["descriptor"]["db"].update(valid=False, error="failed to load vulnerability db")
    return out


def container_scan_samples() -> list[Sample]:
    trivy = shift_times(load_json(DATA / "scans" / "trivy-model-server.json"), RECENT)
    grype = shift_times(load_json(DATA / "scans" / "grype-feature-store-clean.json"), RECENT)
    sarif = load_json(DATA / "scans" / "trivy-inference-gateway.sarif.json")
    clean_sarif = copy.deepcopy(sarif)
    clean_sarif["runs"][0]["results"] = []
    sarif_failures = {"executionSuccessful false": sarif_failed, "no runs": lambda raw: {**raw, "runs": []}}
    return [
        Sample("container_scan", "trivy json", trivy, scan_file, _SCAN_SETTINGS),
        Sample(
            "container_scan",
            "grype json",
            grype,
            scan_file,
            _SCAN_SETTINGS,
            failures={"db error": grype_db_error},
            not_times=lambda path: "db" in path,
        ),
        Sample("container_scan", "trivy sarif", sarif, scan_file, _SCAN_SETTINGS, failures=sarif_failures),
        Sample("container_scan", "clean sarif", clean_sarif, scan_file, _SCAN_SETTINGS, failures=sarif_failures),
    ]


# -- aws: the connector's own reads over recorded API responses -----------------------------------------------

ACCOUNT = _Account("012345678901")


def access_denied(operation: str) -> ClientError:
    error = {"Error": {"Code": "AccessDenied", "Message": f"User is not authorized to perform: iam:{operation}"}}
    return ClientError(error, operation)  # type: ignore[arg-type]


class FakeIam:
    """Answers the few IAM calls the connector makes from a recorded document; ``denied`` names calls that fail."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def _answer(self, operation: str) -> Any:
        if operation in self.raw.get("denied", ()):
            raise access_denied(operation)
        return copy.deepcopy(self.raw[operation])

    def generate_credential_report(self) -> Any:
        return self._answer("GenerateCredentialReport")

    def get_credential_report(self) -> Any:
        answer = self._answer("GetCredentialReport")
        rows = answer.pop("Rows")
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        generated = answer["GeneratedTime"]
        return {**answer, "Content": text.getvalue().encode(), "GeneratedTime": datetime.fromisoformat(generated)}

    def get_account_password_policy(self) -> Any:
        return self._answer("GetAccountPasswordPolicy")

    def get_paginator(self, operation: str) -> Any:
        pages = self._answer("GetAccountAuthorizationDetails")

        class Paginator:
            def paginate(self) -> Any:
                return iter(pages)

        assert operation == "get_account_authorization_details"
        return Paginator()


def aws_iam(kind: str) -> Callable[[Any], list[Observation]]:
    def build(raw: Any) -> list[Observation]:
        connector = AwsConnector(AwsSettings())
        iam, ctx = FakeIam(raw), context()
        subject = Subject("aws_account", ACCOUNT.id)
        reads: dict[str, Callable[[], tuple[dict[str, Any], datetime]]] = {
            "aws.iam.credential_report": lambda: connector._credential_report(iam, ACCOUNT, ctx),
            AUTHORIZATION_DETAILS_KIND: lambda: (
                {"account_id": ACCOUNT.id, **fetch_authorization_details(iam)},
                ctx.now,
            ),
            PASSWORD_POLICY_KIND: lambda: ({"account_id": ACCOUNT.id, **fetch_password_policy(iam)}, ctx.now),
        }
        return [connector._part(ctx, subject, kind, reads[kind])]

    return build


def denied(operation: str) -> Callable[[Any], Any]:
    return lambda raw: {**raw, "denied": [operation]}


class FakeEcr:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def get_paginator(self, operation: str) -> Any:
        raw = self.raw

        class Paginator:
            def paginate(self, **_: Any) -> Any:
                page = copy.deepcopy(raw["page"])
                completed = page["imageScanFindings"].get("imageScanCompletedAt")
                if isinstance(completed, str) and parse_timestamp(completed):
                    page["imageScanFindings"]["imageScanCompletedAt"] = parse_timestamp(completed)
                return iter([page])

        assert operation == "describe_image_scan_findings"
        return Paginator()


def ecr_scan(raw: Any) -> list[Observation]:
    image = EcrImage(
        repository_uri="012345678901.dkr.ecr.us-east-1.amazonaws.com/my-awesome-docker-image",
        repository_name="my-awesome-docker-image",
        registry_id="012345678901",
        digest="sha256:c667ad018b538adadb5bd1db75836c8561b23bc7d31d9cd8941fa74f5df93802",
        tags=("2.3.0",),
        pushed_at=None,
    )
    observation = AwsConnector(AwsSettings())._image_scan(FakeEcr(raw), image, context())
    return [] if observation is None else [observation]


def ecr_failed(raw: Any) -> Any:
    out = copy.deepcopy(raw)
    out["page"]["imageScanStatus"] = {"status": "FAILED", "description": "scan failed: unsupported image"}
    return out


# ------------------------------------------------------------------------------------------- aws infrastructure

_INFRA_SETTINGS = AwsSettings.model_validate({"infrastructure": {"enabled": True, "buckets": ["ml-*"]}})
_ALL_BLOCKED = dict.fromkeys(
    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
)
_TLS_ONLY = json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
                                       "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})  # fmt: skip
_BUCKET = {
    "s3.list_buckets": {"Buckets": [{"Name": "ml-data"}]},
    "s3.get_bucket_tagging": {"TagSet": []},
    "s3.get_bucket_encryption": {"ServerSideEncryptionConfiguration": {
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]}},
    "s3.get_bucket_versioning": {"Status": "Enabled"},
    "s3.get_object_lock_configuration": {"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}},
    "s3.get_public_access_block": {"PublicAccessBlockConfiguration": _ALL_BLOCKED},
    "s3.get_bucket_policy": {"Policy": _TLS_ONLY},
    "s3.get_bucket_acl": {"Grants": []},
}  # fmt: skip
_INFRA_RAW: dict[str, dict[str, Any]] = {
    "aws.cloudtrail.trails": {
        **_BUCKET,
        "cloudtrail.describe_trails": {"trailList": [{
            "Name": "org", "TrailARN": "arn:aws:cloudtrail:us-east-1:012345678901:trail/org", "S3BucketName": "logs",
            "IsMultiRegionTrail": True, "IncludeGlobalServiceEvents": True, "LogFileValidationEnabled": True,
            "KmsKeyId": "arn:aws:kms:us-east-1:012345678901:key/k"}]},
        "cloudtrail.get_trail_status": {"IsLogging": True},
        "cloudtrail.get_event_selectors": {"EventSelectors": [
            {"ReadWriteType": "All", "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}]},
    },
    "aws.s3.buckets": {**_BUCKET,
                       "s3control.get_public_access_block": {"PublicAccessBlockConfiguration": _ALL_BLOCKED}},
    "aws.ec2.network": {
        "ec2.describe_security_groups": {"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}]},
        "ec2.describe_vpcs": {"Vpcs": [{"VpcId": "vpc-1"}]},
        "ec2.describe_flow_logs": {"FlowLogs": [
            {"FlowLogId": "fl-1", "ResourceId": "vpc-1", "FlowLogStatus": "ACTIVE"}]},
        "ec2.describe_images": {"Images": []},
        "ec2.describe_snapshots": {"Snapshots": []},
        "ec2.get_ebs_encryption_by_default": {"EbsEncryptionByDefault": True},
    },
    "aws.kms.keys": {
        "kms.list_keys": {"Keys": [{"KeyId": "k1"}]},
        "kms.describe_key": {"KeyMetadata": {"KeyManager": "CUSTOMER", "KeyState": "Enabled", "Arn": "arn:k1",
                                             "KeySpec": "SYMMETRIC_DEFAULT", "Origin": "AWS_KMS"}},
        "kms.get_key_rotation_status": {"KeyRotationEnabled": True},
    },
    "aws.rds.databases": {
        "rds.describe_db_instances": {"DBInstances": [{"DBInstanceIdentifier": "db", "StorageEncrypted": True,
                                                       "BackupRetentionPeriod": 14, "PubliclyAccessible": False}]},
        "rds.describe_db_snapshots": {"DBSnapshots": []},
    },
    "aws.secretsmanager.secrets": {"secretsmanager.list_secrets": {"SecretList": [
        {"Name": "hf-token", "RotationEnabled": True, "LastRotatedDate": RECENT}]}},
    "aws.guardduty.detectors": {
        "guardduty.list_detectors": {"DetectorIds": ["d1"]},
        "guardduty.get_detector": {"Status": "ENABLED"},
        "guardduty.list_findings": {"FindingIds": ["f1"]},
        "guardduty.get_findings": {"Findings": [{"Id": "f1", "Type": "Recon:EC2/PortProbeUnprotectedPort",
                                                 "Severity": 8.0, "CreatedAt": RECENT.isoformat(),
                                                 "Service": {"Archived": False}}]},
    },
    "aws.config.recorders": {
        "config.describe_configuration_recorders": {"ConfigurationRecorders": [{"name": "default"}]},
        "config.describe_configuration_recorder_status": {"ConfigurationRecordersStatus": [
            {"name": "default", "recording": True, "lastStatus": "SUCCESS"}]},
        "config.describe_delivery_channels": {"DeliveryChannels": [{"name": "default", "s3BucketName": "b"}]},
    },
    "aws.logs.sagemaker_log_groups": {"logs.describe_log_groups": {"logGroups": [
        {"logGroupName": "/aws/sagemaker/TrainingJobs", "retentionInDays": 400, "kmsKeyId": "arn:k"}]}},
    "aws.sagemaker.resources": {
        "sagemaker.list_notebook_instances": {"NotebookInstances": [{"NotebookInstanceName": "nb"}]},
        "sagemaker.describe_notebook_instance": {"NotebookInstanceName": "nb", "KmsKeyId": "k",
                                                 "DirectInternetAccess": "Disabled", "RootAccess": "Disabled"},
        "sagemaker.list_training_jobs": {"TrainingJobSummaries": [{"TrainingJobName": "j"}]},
        "sagemaker.describe_training_job": {"TrainingJobName": "j", "ResourceConfig": {"VolumeKmsKeyId": "k"},
                                            "OutputDataConfig": {"KmsKeyId": "k"}, "Environment": {"EPOCHS": "3"}},
        "sagemaker.list_endpoint_configs": {"EndpointConfigs": [{"EndpointConfigName": "e"}]},
        "sagemaker.describe_endpoint_config": {"EndpointConfigName": "e", "KmsKeyId": "k"},
    },
    "aws.compute.environment_names": {"lambda.list_functions": {"Functions": [
        {"FunctionName": "ingest", "Environment": {"Variables": {"REGION": "eu-west-1"}}}]}},
}  # fmt: skip


class FakeAws:
    """Canned answers by ``service.operation``; operations listed under ``denied`` fail with AccessDenied."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def client(self, service: str) -> Any:
        raw = self.raw

        def answer(operation: str) -> Any:
            if operation in raw.get("denied", []):
                error = {"Error": {"Code": "AccessDenied", "Message": "denied"}}
                raise ClientError(error, operation)  # type: ignore[arg-type]
            return copy.deepcopy(raw[f"{service}.{operation}"])

        class Client:
            def __getattr__(self, operation: str) -> Any:
                return lambda **_: answer(operation)

            def get_paginator(self, operation: str) -> Any:
                class Paginator:
                    def paginate(self, **_: Any) -> Any:
                        return iter([answer(operation)])

                return Paginator()

        return Client()


def aws_infra(kind: str) -> Callable[[Any], list[Observation]]:
    reader = next(r for r in ACCOUNT_READERS + REGION_READERS if r.kind == kind)
    regional = reader in REGION_READERS

    def build(raw: Any) -> list[Observation]:
        subject = Subject("aws_region", f"{ACCOUNT.id}/us-east-1") if regional else Subject("aws_account", ACCOUNT.id)
        scope = Scope(ACCOUNT.id, "us-east-1", FakeAws(raw).client)
        return [AwsConnector(_INFRA_SETTINGS)._infrastructure_part(context(), subject, reader, scope)]

    return build


def aws_infra_samples() -> list[Sample]:
    return [
        Sample("aws", kind, raw, aws_infra(kind), _INFRA_SETTINGS,
               failures={"AccessDenied": denied(next(iter(raw)).split(".", 1)[1])})
        for kind, raw in _INFRA_RAW.items()
    ]  # fmt: skip


def aws_samples() -> list[Sample]:
    rows = list(csv.DictReader(io.StringIO((DATA / "aws" / "credential-report-mixed.csv").read_text())))
    root, ana = ({**row} for row in rows[:2])
    root.update(mfa_active="true", access_key_1_active="false")
    clean_rows = shift_times([root, ana], RECENT)
    authz = load_json(FIXTURES / "aws-iam" / "authz-details-small-cloudsplaining.json")
    authz_no_admin = copy.deepcopy(authz)
    for group in authz_no_admin["GroupDetailList"]:
        group["AttachedManagedPolicies"] = []
    snapshot = load_json(FIXTURES / "aws-iam" / "localstack-password-policy.snapshot.json")
    policy = next(
        v["recorded-content"]["password-policy-custom"] for k, v in snapshot.items() if k.endswith("custom_values")
    )
    inspector = shift_times(load_json(FIXTURES / "aws-ecr" / "inspector2-ecr-image-one-finding.json"), RECENT)
    ecr = {
        "page": {
            "imageScanStatus": {"status": "ACTIVE"},
            "imageScanFindings": {"enhancedFindings": inspector["findings"]},
        }
    }
    lenient = AwsSettings(password_policy={"min_length": 6, "reuse_prevention": 0})
    return [
        *(
            Sample(
                "aws",
                name,
                {
                    "GenerateCredentialReport": {"State": "COMPLETE"},
                    "GetCredentialReport": {"Rows": report_rows, "GeneratedTime": NOW.isoformat()},
                },
                aws_iam("aws.iam.credential_report"),
                AwsSettings(),
                failures={"AccessDenied": denied("GetCredentialReport")},
                not_times=lambda path: "password_next_rotation" in path,
            )
            for name, report_rows in (("credential report", rows), ("credential report, root secured", clean_rows))
        ),
        *(
            Sample(
                "aws",
                name,
                {"GetAccountAuthorizationDetails": [document]},
                aws_iam(AUTHORIZATION_DETAILS_KIND),
                AwsSettings(),
                failures={"AccessDenied": denied("GetAccountAuthorizationDetails")},
            )
            for name, document in (
                ("authorization details", authz),
                ("authorization details, no admin", authz_no_admin),
            )
        ),
        Sample(
            "aws",
            "password policy",
            {"GetAccountPasswordPolicy": policy},
            aws_iam(PASSWORD_POLICY_KIND),
            lenient,
            failures={"AccessDenied": denied("GetAccountPasswordPolicy")},
        ),
        Sample(
            "aws",
            "ecr enhanced scan",
            ecr,
            ecr_scan,
            AwsSettings(),
            failures={"scan FAILED": ecr_failed},
        ),
    ]


# -- kubernetes: the connector over recorded List responses ---------------------------------------------------

_K8S_SETTINGS = KubernetesSettings(
    host="http://kubernetes.invalid", cluster_name="test", namespaces=["model-serving", "feature-store"]
)


def kubernetes_collect(raw: Any) -> list[Observation]:
    def page(
        api: KubernetesApi, resource: ResourceType, namespace: str | None, selector: str | None, token: str | None
    ) -> tuple[list[dict[str, Any]], None]:
        if resource.plural in raw.get("denied", ()):
            raise PermissionMissing(resource, namespace, f"{resource.name} is forbidden")
        items = copy.deepcopy(raw.get(resource.plural, {}).get("items", []))
        return [i for i in items if namespace is None or i["metadata"].get("namespace") == namespace], None

    with mock.patch.object(KubernetesApi, "_page", page):
        return collected(KubernetesConnector(_K8S_SETTINGS))


ACCESS = frozenset({"k8s.namespace_access"})


def kubernetes_samples() -> list[Sample]:
    folder = DATA / "kubernetes"
    raw = {path.stem: load_json(path) for path in sorted(folder.glob("*.json"))}
    raw["vulnerabilityreports"] = shift_times(raw["vulnerabilityreports"], RECENT)
    control_plane_only = copy.deepcopy(raw)
    control_plane_only["rolebindings"]["items"] = []
    control_plane_only["clusterrolebindings"]["items"] = [
        b for b in raw["clusterrolebindings"]["items"] if b["metadata"]["name"] == "cluster-admin"
    ]
    scopes = {
        "roles": ACCESS,
        "rolebindings": ACCESS,
        "clusterroles": ACCESS,
        "clusterrolebindings": ACCESS,
        "networkpolicies": frozenset({"k8s.network_policy_present"}),
        "vulnerabilityreports": frozenset({"container.scan"}),
    }
    failures = {f"{name} forbidden": forbidden(name) for name in scopes}
    failure_scope = {f"{name} forbidden": scope for name, scope in scopes.items()}
    return [
        Sample(
            "kubernetes",
            name,
            cluster,
            kubernetes_collect,
            _K8S_SETTINGS,
            failures=failures,
            failure_scope=failure_scope,
            not_times=lambda path: path[0] != "vulnerabilityreports",
        )
        for name, cluster in (
            ("recorded cluster", raw),
            ("recorded cluster, control-plane bindings only", control_plane_only),
        )
    ]


def forbidden(resource: str) -> Callable[[Any], Any]:
    return lambda raw: {**raw, "denied": [resource]}


# -- mlflow: the connector's facts and payloads over recorded REST bodies -------------------------------------

_MLFLOW_SETTINGS = MlflowSettings(tracking_uri="http://mlflow.invalid:5000")


def mlflow_versions(raw: Any) -> list[Observation]:
    runs = {run.run_id: run for run in (run_from_json(r) for r in raw["runs"])}
    out = []
    for version in versions_from_json(raw["versions"]):
        run = runs.get(version.run_id) if version.run_id else None
        model = RegisteredModelFacts(version.name, None, {})
        payload = version_payload(version, model, run, raw["card"], _MLFLOW_SETTINGS)
        subject = Subject("model_version", f"{version.name}/{version.version}")
        out.append(Observation(VERSION_KIND, subject, NOW, payload, source="mlflow"))
    return out


def mlflow_run_failed(raw: Any) -> Any:
    out = copy.deepcopy(raw)
    for run in out["runs"]:
        run["info"]["status"] = "FAILED"
    return out


RUN_JUDGED = frozenset({"mlflow.lineage_complete", "mlflow.evaluated", "mlflow.fairness_within_bounds"})
"""The checks that judge what the source run logged."""


def mlflow_samples() -> list[Sample]:
    folder = DATA / "mlflow"
    raw = {
        "runs": load_json(folder / "runs-search-databricks.json")["runs"],
        "versions": load_json(folder / "model-versions-search.json"),
        "card": {"listed": True, "found": ["model_card.md"], "error": None},
    }
    fair = copy.deepcopy(raw)
    for metric in fair["runs"][0]["data"]["metrics"]:
        if metric["key"] == "equalized_odds_difference":
            metric["value"] = 0.05
    return [
        Sample(
            "mlflow",
            name,
            document,
            mlflow_versions,
            _MLFLOW_SETTINGS,
            failures={"source run FAILED": mlflow_run_failed},
            failure_scope={"source run FAILED": RUN_JUDGED},
            numbers_as_text=lambda path: "metrics" in path and path[-1] == "value",
        )
        for name, document in (("databricks run and versions", raw), ("same, fairness metric logged", fair))
    ]


# -- model_monitor: Prometheus answers, report files, SageMaker schedules ------------------------------------

_MONITOR = {"name": "fraud-recall", "query": "recall", "bound": {"min": 0}, "window": "10m", "step": "1m"}
_MONITOR_SETTINGS = ModelMonitorSettings.model_validate(
    {"prometheus": {"url": "http://prometheus.invalid:9090"}, "monitors": [_MONITOR]}
)


def no_aws(service: str, region: str | None) -> Any:
    raise AssertionError(f"no {service} client is needed here")


def prometheus_monitor(raw: Any) -> list[Observation]:
    def post(client: PrometheusClient, path: str, form: dict[str, str]) -> tuple[Any, list[str]]:
        return read_envelope(raw["status"], copy.deepcopy(raw["body"]))

    with mock.patch.object(PrometheusClient, "_post", post):
        return collected(ModelMonitorConnector(_MONITOR_SETTINGS, clients=no_aws))


def prometheus_body() -> dict[str, Any]:
    """The recorded range answer, its samples moved onto the steps of the monitor's window ending now."""
    body = load_json(FIXTURES / "prometheus" / "range-two-series-fractional-ts.json")
    window = window_for(_MONITOR_SETTINGS.monitors[0], NOW)
    start, step = window.start.timestamp(), window.step_seconds
    for series in body["data"]["result"]:
        values = [value for _, value in series["values"]]
        series["values"] = [[start + i * step, values[i % len(values)]] for i in range(window.steps)]
    return body


def prometheus_failures() -> dict[str, Callable[[Any], Any]]:
    def warned(raw: Any) -> Any:
        out = copy.deepcopy(raw)
        out["body"]["warnings"] = ["PromQL info: metric might not be a counter"]
        return out

    def errored(raw: Any) -> Any:
        body = {"status": "error", "errorType": "execution", "error": "query processing would load too many samples"}
        return {"status": 422, "body": body}

    return {"warnings": warned, "error envelope": errored}


def report_files(raw: Any) -> list[Observation]:
    """Each raw entry is a file below one scratch directory, read through a ``reports`` source."""
    root = _scratch() / "reports"
    shutil.rmtree(root, ignore_errors=True)
    for relative, document in raw.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document), encoding="utf-8")
    settings = ModelMonitorSettings.model_validate({"reports": [{"path": f"{root}/**/*.json"}]})
    return collected(ModelMonitorConnector(settings, clients=no_aws))


_REPORT_SETTINGS = ModelMonitorSettings.model_validate({"reports": [{"path": "<reports>"}]})


def evidently_failed(status: str) -> Callable[[Any], Any]:
    def mutate(raw: Any) -> Any:
        out = copy.deepcopy(raw)
        for document in out.values():
            for test in document["tests"]:
                test["status"] = status
        return out

    return mutate


def clarify_not_computed(raw: Any) -> Any:
    out = copy.deepcopy(raw)
    for path, value in list(leaves(out)):
        if path[-1] == "value" and is_number(value):
            out = replaced(out, path, None)
    return out


def sagemaker_violations(raw: Any) -> Any:
    out = copy.deepcopy(raw)
    directory = next(iter(out)).rsplit("/", 1)[0]
    out[f"{directory}/constraint_violations.json"] = {
        "violations": [
            {"feature_name": "amount", "constraint_check_type": "data_type_check", "description": "Data type mismatch"}
        ]
    }
    return out


class FakeSageMaker:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def get_paginator(self, operation: str) -> Any:
        name = self.raw["MonitoringScheduleName"]

        class Paginator:
            def paginate(self, **_: Any) -> Any:
                return iter([{"MonitoringScheduleSummaries": [{"MonitoringScheduleName": name}]}])

        return Paginator()

    def describe_monitoring_schedule(self, MonitoringScheduleName: str) -> Any:
        described = copy.deepcopy(dict(self.raw))
        for path, value in list(leaves(described)):
            if isinstance(path[-1], str) and path[-1].endswith("Time") and (when := parse_timestamp(value)):
                described = replaced(described, path, when)
        return described


def sagemaker_schedule(raw: Any) -> list[Observation]:
    settings = ModelMonitorSettings.model_validate({"sagemaker_schedules": {"enabled": True, "regions": ["us-east-1"]}})
    connector = ModelMonitorConnector(settings, clients=lambda service, region: FakeSageMaker(raw))
    return collected(connector)


def described_schedule() -> dict[str, Any]:
    """``DescribeMonitoringSchedule`` as botocore returns it (the shape test_model_monitor_aws stubs and botocore
    validates), with a completed hourly execution ten minutes ago."""
    name, arn = "fraud-data-quality", "arn:aws:sagemaker:us-east-1:111122223333:monitoring-schedule/fraud-data-quality"
    scheduled = NOW - timedelta(minutes=10)
    return {
        "MonitoringScheduleArn": arn,
        "MonitoringScheduleName": name,
        "MonitoringScheduleStatus": "Scheduled",
        "MonitoringType": "DataQuality",
        "CreationTime": (NOW - timedelta(days=30)).isoformat(),
        "LastModifiedTime": (NOW - timedelta(days=1)).isoformat(),
        "EndpointName": "fraud-endpoint",
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinitionName": f"{name}-definition",
            "MonitoringType": "DataQuality",
        },
        "LastMonitoringExecutionSummary": {
            "MonitoringScheduleName": name,
            "ScheduledTime": scheduled.isoformat(),
            "CreationTime": scheduled.isoformat(),
            "LastModifiedTime": (scheduled + timedelta(minutes=5)).isoformat(),
            "MonitoringExecutionStatus": "Completed",
            "EndpointName": "fraud-endpoint",
            "MonitoringType": "DataQuality",
        },
    }


def schedule_failed(status: str, where: str) -> Callable[[Any], Any]:
    def mutate(raw: Any) -> Any:
        out = copy.deepcopy(raw)
        target = out["LastMonitoringExecutionSummary"] if where == "execution" else out
        target["MonitoringExecutionStatus" if where == "execution" else "MonitoringScheduleStatus"] = status
        target["FailureReason"] = "AlgorithmError: see job logs"
        return out

    return mutate


def model_monitor_samples() -> list[Sample]:
    reports = DATA / "model_monitor" / "reports"
    evidently = shift_times({"evidently/test_suite.json": load_json(reports / "evidently" / "test_suite.json")}, RECENT)
    clarify = {"clarify/analysis.json": load_json(reports / "clarify" / "analysis.json")}
    statistics = "sagemaker/fraud-endpoint/2024/03/01/11/statistics.json"
    sagemaker = {statistics: load_json(reports / statistics)}
    return [
        Sample(
            "model_monitor",
            "prometheus range answer",
            {"status": 200, "body": prometheus_body()},
            prometheus_monitor,
            _MONITOR_SETTINGS,
            failures=prometheus_failures(),
            numbers_as_text=lambda path: "values" in path,
        ),
        Sample(
            "model_monitor",
            "evidently test suite",
            evidently,
            report_files,
            _REPORT_SETTINGS,
            failures={"a test FAIL": evidently_failed("FAIL"), "a test ERROR": evidently_failed("ERROR")},
            not_times=lambda path: "version" in path,
        ),
        Sample(
            "model_monitor",
            "clarify analysis",
            clarify,
            report_files,
            _REPORT_SETTINGS,
            failures={"metrics not computed": clarify_not_computed},
        ),
        Sample(
            "model_monitor",
            "sagemaker execution statistics",
            sagemaker,
            report_files,
            _REPORT_SETTINGS,
            failures={"violations": sagemaker_violations},
        ),
        Sample(
            "model_monitor",
            "sagemaker schedule",
            described_schedule(),
            sagemaker_schedule,
            _REPORT_SETTINGS,
            failures={
                "execution Failed": schedule_failed("Failed", "execution"),
                "schedule Failed": schedule_failed("Failed", "schedule"),
                "schedule Stopped": schedule_failed("Stopped", "schedule"),
            },
            failure_scope={
                "schedule Failed": frozenset({"monitor.schedule"}),
                "schedule Stopped": frozenset({"monitor.schedule"}),
            },
        ),
    ]


# -- data_validation: Great Expectations results on disk (a real GX 1.x checkpoint's output) --------------------

_GX_DIRECTORY = _scratch() / "gx"
_GX_SETTINGS = DataValidationSettings(
    directory=str(_GX_DIRECTORY),
    expected_assets=[{"datasource": "warehouse", "asset": "training_features"}],
)


def gx_results(raw: Any) -> list[Observation]:
    shutil.rmtree(_GX_DIRECTORY, ignore_errors=True)
    _GX_DIRECTORY.mkdir(parents=True)
    (_GX_DIRECTORY / "checkpoint.json").write_text(json.dumps(raw), encoding="utf-8")
    return collected(DataValidationConnector(_GX_SETTINGS))


def gx_failed(raised: bool) -> Callable[[Any], Any]:
    """Every suite says it failed: its first expectation unmet (or raising, as GX records an exception)."""

    def mutate(raw: Any) -> Any:
        out = copy.deepcopy(raw)
        for result in out["run_results"].values():
            result["success"] = False
            first = result["results"][0]
            if first["success"]:
                first["success"] = False
                stats = result["statistics"]
                stats["successful_expectations"] -= 1
                stats["unsuccessful_expectations"] += 1
            if raised:
                first["exception_info"] = {
                    "raised_exception": True,
                    "exception_message": "column not found",
                    "exception_traceback": "Traceback ...",
                }
        return out

    return mutate


def data_validation_samples() -> list[Sample]:
    raw = shift_times(load_json(DATA / "data_validation" / "gx-1-checkpoint-result.json"), RECENT)
    return [
        Sample(
            "data_validation",
            "gx checkpoint result",
            raw,
            gx_results,
            _GX_SETTINGS,
            failures={"an expectation failed": gx_failed(False), "an expectation raised": gx_failed(True)},
            failure_scope={
                "an expectation failed": frozenset({"data_validation.latest_succeeded"}),
                "an expectation raised": frozenset({"data_validation.latest_succeeded"}),
            },
            not_times=lambda path: "great_expectations_version" in path,
        )
    ]


# -- vault: OpenBao answers recorded from `bao server -dev` (tests/data/vault) ---------------------------------

_VAULT_SETTINGS = VaultSettings(address="http://127.0.0.1:8200", token="recorded")
_DENIED = "permission denied"


class FakeVault:
    """The connector's client over recorded answers; a key absent is a 404, the text ``permission denied`` a 403."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = answers

    def login(self) -> None:
        return None

    def close(self) -> None:
        return None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def list(self, path: str) -> list[str]:
        try:
            return list(self.call("LIST", path)["data"]["keys"])
        except VaultNotFound:
            return []

    def call(self, method: str, path: str, body: Any = None, *, authenticated: bool = True) -> Any:
        key = f"{method} {path}" + (f" {body['accessor']}" if isinstance(body, dict) and "accessor" in body else "")
        if key not in self.answers:
            raise VaultNotFound(path)
        if self.answers[key] == _DENIED:
            raise VaultDenied(method, path)
        return copy.deepcopy(self.answers[key])


def vault_server(raw: Any) -> list[Observation]:
    with mock.patch("connectors.vault.connector.VaultClient", return_value=FakeVault(raw)):
        return collected(VaultConnector(_VAULT_SETTINGS))


def without_root_token(answers: dict[str, Any]) -> dict[str, Any]:
    """The recorded server with its dev root token revoked, as on a well-run server (the passing start)."""
    out = copy.deepcopy(answers)
    root = [
        k for k, v in out.items() if k.startswith("POST auth/token/lookup-accessor") and "root" in v["data"]["policies"]
    ]
    for key in root:
        del out[key]
        keys = out["LIST auth/token/accessors"]["data"]["keys"]
        keys.remove(key.rsplit(" ", 1)[1])
    return out


def vault_denied(*keys: str) -> Callable[[Any], Any]:
    return lambda raw: {**raw, **dict.fromkeys(keys, _DENIED)}


def vault_sealed(raw: Any) -> Any:
    out = copy.deepcopy(raw)
    out["GET sys/seal-status"]["sealed"] = True
    return out


def vault_samples() -> list[Sample]:
    raw = without_root_token(load_json(DATA / "vault" / "openbao-answers.json"))
    return [
        Sample(
            "vault",
            "openbao dev server",
            raw,
            vault_server,
            _VAULT_SETTINGS,
            failures={
                "sealed": vault_sealed,
                "audit devices denied": vault_denied("GET sys/audit"),
                "token accessors denied": vault_denied("LIST auth/token/accessors"),
                "tune denied": vault_denied(*(k for k in raw if k.endswith("/tune"))),
            },
            failure_scope={
                "sealed": frozenset({"vault.server_healthy"}),
                "audit devices denied": frozenset({"vault.audit_enabled"}),
                "token accessors denied": frozenset({"vault.no_root_tokens"}),
                "tune denied": frozenset({"vault.token_ttls_bounded", "vault.lease_ttls_bounded"}),
            },
            not_times=lambda path: "version" in path,
        )
    ]


# -- github: REST answers built from GitHub's OpenAPI examples (tests/data/github) ------------------------------

_GITHUB_SETTINGS = GitHubSettings(
    token="recorded",
    repositories=["ml/model-serving"],
    required_approving_reviews=2,
    required_status_checks=["CodeQL"],
    security_workflows=["codeql.yml"],
)


class FakeGitHub:
    base = "https://api.github.com"

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = answers

    def close(self) -> None:
        return None

    def get(self, path: str, **params: Any) -> Any:
        if path not in self.answers:
            raise GitHubNotFound(path, "Not Found")
        return copy.deepcopy(self.answers[path])

    def pages(self, path: str, *, key: str | None = None, stop: Any = None, **params: Any) -> list[Any]:
        items: list[Any] = []
        for page in (path, f"{path}?page=2"):
            if page in self.answers:
                body = self.get(page)
                items.extend(body[key] if key else body)
        if not items and path not in self.answers:
            raise GitHubNotFound(path, "Not Found")
        return items


def github_repository(raw: Any) -> list[Observation]:
    with mock.patch("connectors.github.connector.GitHubClient", return_value=FakeGitHub(raw)):
        return collected(GitHubConnector(_GITHUB_SETTINGS))


def github_scan_failed(raw: Any) -> Any:
    out = copy.deepcopy(raw)
    out["/repos/ml/model-serving/actions/workflows/codeql.yml/runs"]["workflow_runs"][0]["conclusion"] = "failure"
    return out


def github_rejected(raw: Any) -> Any:
    out = copy.deepcopy(raw)
    for path, body in out.items():
        if path.endswith("/approvals"):
            for review in body:
                review["state"] = "rejected"
    return out


def github_samples() -> list[Sample]:
    raw = shift_times(load_json(DATA / "github" / "answers.json"), RECENT)
    return [
        Sample(
            "github",
            "rest answers",
            raw,
            github_repository,
            _GITHUB_SETTINGS,
            failures={"scan failed": github_scan_failed, "deployment rejected": github_rejected},
            failure_scope={
                "scan failed": frozenset({"github.security_scan_recent"}),
                "deployment rejected": frozenset({"github.deployment_approved"}),
            },
        )
    ]


# -- data_access: CloudTrail records (tests/cloudtrail_records.py) and the trail's status and selectors -----------

_DATA_ACCESS_SETTINGS = DataAccessSettings.model_validate(
    {
        "trail": {"name": "org-trail", "region": "us-east-1", "bucket": "org-cloudtrail-logs"},
        "datasets": [
            {
                "name": "churn-training",
                "s3": [{"bucket": "ml-training-data", "prefix": "churn/"}],
                "feature_groups": ["customers"],
                "allowed_principals": ["arn:aws:iam::123456789012:role/training"],
            }
        ],
    }
)


def data_access_observations(raw: Any) -> list[Observation]:
    """The connector's own summary and payload code over the records of one window (no S3 or CloudTrail call)."""
    settings = _DATA_ACCESS_SETTINGS
    summariser = Summariser(
        settings.datasets,
        now=NOW,
        skew=settings.clock_skew_tolerance,
        key_depth=settings.key_depth,
        keys_per_principal=settings.keys_per_principal,
        dedupe_horizon=settings.dedupe_horizon,
    )
    for record in raw["Records"]:
        summariser.add(record)
    trail = TrailState("org-trail")
    trail.read("GetTrailStatus", raw["GetTrailStatus"])
    trail.read("GetEventSelectors", raw["GetEventSelectors"])
    lookups = {"regions": ["us-east-1"], "error": None, "ids": {}}
    history_since = (NOW - timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    connector = DataAccessConnector(settings)
    return list(connector.window(summariser, trail, LogFiles(read=1), lookups, RECENT, NOW, {}, history_since))


def data_access_samples() -> list[Sample]:
    from tests.cloudtrail_records import feature_store_event, role_session, s3_data_event

    training = role_session("training", "job-1")
    at = RECENT.strftime("%Y-%m-%dT%H:%M:%SZ")
    raw = {
        "GetTrailStatus": {"IsLogging": True},
        "GetEventSelectors": {
            "TrailARN": "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-trail",
            "AdvancedEventSelectors": [
                {
                    "Name": "datasets",
                    "FieldSelectors": [
                        {"Field": "eventCategory", "Equals": ["Data"]},
                        {"Field": "resources.type", "Equals": ["AWS::S3::Object", "AWS::SageMaker::FeatureGroup"]},
                    ],
                }
            ],
        },
        "Records": [
            s3_data_event("GetObject", "ml-training-data", "churn/2026/part-1.parquet", training, at, event_id="e1"),
            feature_store_event("GetRecord", "customers", training, at, event_id="e2"),
        ],
    }

    def stopped(raw: Any) -> Any:
        return {**raw, "GetTrailStatus": {"IsLogging": False}}

    def unselected(raw: Any) -> Any:
        return {**raw, "GetEventSelectors": {**raw["GetEventSelectors"], "AdvancedEventSelectors": []}}

    return [
        Sample(
            "data_access",
            "cloudtrail window",
            raw,
            data_access_observations,
            _DATA_ACCESS_SETTINGS,
            failures={"trail not logging": stopped, "no data event selector": unselected},
            not_times=lambda path: "attributes" in path,
        )
    ]


# -- alerts: Prometheus ALERTS history (query_range) and Alertmanager silences and alerts (API v2 shapes) -------

_ALERTS_SETTINGS = AlertsSettings(
    prometheus_url="http://prometheus.invalid:9090",
    alertmanager_url="http://alertmanager.invalid:9093",
    window=timedelta(hours=6),
    step=timedelta(minutes=1),
    max_unacknowledged=timedelta(minutes=30),
)


class _AlertsHttp:
    """The connector's HTTP client answering from the sample: query_range, silences and alerts by path."""

    raw: Any = None

    def __init__(self, settings: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def get(self, url: str, params: Any = None) -> Any:
        for suffix, key in (
            ("/api/v1/query_range", "range"),
            ("/api/v2/silences", "silences"),
            ("/api/v2/alerts", "alerts"),
        ):
            if url.endswith(suffix):
                return _AlertsHttp.raw[key]
        raise AssertionError(f"unexpected request {url}")


def alerts_log(raw: Any) -> list[Observation]:
    _AlertsHttp.raw = raw
    with mock.patch("connectors.alerts.connector._Http", _AlertsHttp):
        return collected(AlertsConnector(_ALERTS_SETTINGS))


def alerts_samples() -> list[Sample]:
    end = datetime.fromtimestamp(NOW.timestamp() // 60 * 60, UTC)
    fired = end - timedelta(hours=2)
    labels = {"__name__": "ALERTS", "alertname": "ModelAccuracyLow", "alertstate": "firing", "model": "fraud"}
    values = [[(fired + timedelta(minutes=i)).timestamp(), "1"] for i in range(90)]
    silence = {
        "id": "8f1e6c2a-0d4b-4c57-9a0e-2b1f3c4d5e6f",
        "status": {"state": "expired"},
        "matchers": [{"name": "alertname", "value": "ModelAccuracyLow", "isRegex": False, "isEqual": True}],
        "startsAt": (fired + timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
        "endsAt": (fired + timedelta(minutes=100)).isoformat().replace("+00:00", "Z"),
        "updatedAt": (fired + timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
        "createdBy": "oncall@example.com",
        "comment": "retraining scheduled",
    }
    raw = {
        "range": {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": labels, "values": values}]},
        },
        "silences": [silence],
        "alerts": [],
    }

    def unsilenced(raw: Any) -> Any:
        return {**raw, "silences": []}

    def query_failed(raw: Any) -> Any:
        return {**raw, "range": {"status": "error", "errorType": "execution", "error": "query timed out"}}

    return [
        Sample(
            "alerts",
            "alert episodes and silences",
            raw,
            alerts_log,
            _ALERTS_SETTINGS,
            failures={"nobody silenced the alert": unsilenced, "prometheus query failed": query_failed},
            # a silence ends in the future while it is in force, and its updatedAt is not read
            not_times=lambda path: bool(path) and path[-1] in ("endsAt", "updatedAt"),
        )
    ]


SAMPLE_SOURCES: dict[str, Callable[[], list[Sample]]] = {
    "alerts": alerts_samples,
    "data_validation": data_validation_samples,
    "vault": vault_samples,
    "github": github_samples,
    "container_scan": container_scan_samples,
    "aws": lambda: aws_samples() + aws_infra_samples(),
    "kubernetes": kubernetes_samples,
    "mlflow": mlflow_samples,
    "model_monitor": model_monitor_samples,
    "data_access": data_access_samples,
}
"""Connector type -> its samples. ``attestations`` has no checks, so nothing to judge."""


@cache
def samples_of(connector_type: str) -> tuple[tuple[Sample, tuple[Observation, ...]], ...]:
    source = SAMPLE_SOURCES.get(connector_type)
    return tuple((s, tuple(s.build(s.raw))) for s in source()) if source else ()


def every_check() -> list[tuple[str, str]]:
    return [(name, check.id) for name in available_connectors() for check in load_connector(name).checks]


def every_sample() -> list[tuple[str, str]]:
    return [(name, sample.name) for name in available_connectors() for sample, _ in samples_of(name)]


def check_of(connector_type: str, check_id: str) -> Any:
    return next(c for c in load_connector(connector_type).checks if c.id == check_id)


def sample_of(connector_type: str, name: str) -> tuple[Sample, tuple[Observation, ...]]:
    return next(pair for pair in samples_of(connector_type) if pair[0].name == name)


@dataclass(frozen=True)
class Baseline:
    sample: Sample
    observation: Observation
    outcome: Outcome


def baselines(connector_type: str, check_id: str) -> list[Baseline]:
    """The sample observations this check judges, passing ones first."""
    check = check_of(connector_type, check_id)
    found = [
        Baseline(sample, obs, check.run(obs, sample.settings, NOW).result)
        for sample, observations in samples_of(connector_type)
        for obs in observations
        if obs.kind == check.kind
    ]
    return sorted(found, key=lambda b: b.outcome is not Outcome.PASS)


@dataclass(frozen=True)
class Start:
    """A baseline to mutate, with the payload leaves that are numbers and the times its check judges."""

    sample: Sample
    observation: Observation
    numbers: tuple[Path_, ...]
    judged_times: tuple[Path_, ...]


@cache
def starting_points(connector_type: str, check_id: str) -> tuple[Start, ...]:
    found = baselines(connector_type, check_id)
    passing = [b for b in found if b.outcome is Outcome.PASS] or found
    check = check_of(connector_type, check_id)
    return tuple(
        Start(
            b.sample,
            b.observation,
            tuple(path for path, value in leaves(b.observation.payload) if is_number(value)),
            judged_times(check, b.sample, b.observation),
        )
        for b in passing
    )


def judged_times(check: Any, sample: Sample, obs: Observation) -> tuple[Path_, ...]:
    """Times in the payload the check reads: replacing one by another past time changes its result."""
    before = _verdict(check, sample, obs)
    return tuple(
        path
        for path, value in leaves(obs.payload)
        if (is_time_text(value) or is_epoch(path, value))
        and not sample.not_times(path)
        and _verdict(check, sample, _with(obs, payload=replaced(obs.payload, path, long_ago(value)))) != before
    )


@cache
def source_leaves(connector_type: str, sample_name: str) -> tuple[tuple[Path_, ...], tuple[Path_, ...]]:
    """The numbers (and, where the source writes them so, numbers as text) and the times of a sample's source."""
    sample, _ = sample_of(connector_type, sample_name)
    numbers, times = [], []
    for path, value in leaves(sample.raw):
        if is_number(value) or (number_text(value) and sample.numbers_as_text(path)):
            numbers.append(path)
        is_time = is_time_text(value) or is_epoch(path, value) or isinstance(value, datetime)
        if is_time and not sample.not_times(path):
            times.append(path)
    return tuple(numbers), tuple(times)


# ------------------------------------------------------------------------------------------- the net itself


def test_every_check_of_every_connector_has_a_sample() -> None:
    missing = [f"{name}: {check_id}" for name, check_id in every_check() if not baselines(name, check_id)]
    assert not missing, "checks without a sample observation (add one to SAMPLE_SOURCES): " + ", ".join(missing)


def test_every_check_has_a_passing_sample_to_start_from() -> None:
    """Otherwise "never a pass" would hold trivially for that check."""
    never = [
        f"{name}: {check_id}"
        for name, check_id in every_check()
        if not any(b.outcome is Outcome.PASS for b in baselines(name, check_id))
    ]
    assert not never, "checks whose samples never pass: " + ", ".join(never)


def test_every_source_has_a_way_to_say_it_failed() -> None:
    silent = [f"{name}: {sample}" for name, sample in every_sample() if not sample_of(name, sample)[0].failures]
    assert set(silent) == SOURCES_WITHOUT_A_FAILURE_FLAG


def cases(family: str, of: Callable[[], list[tuple[str, str]]]) -> list[Any]:
    out = []
    for connector_type, name in of():
        reason = KNOWN_DEFECTS.get((connector_type, name, family))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(connector_type, name, id=f"{connector_type}-{name}", marks=marks))
    return out


PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def future_time(draw: Any) -> datetime:
    result: datetime = NOW + draw(st.sampled_from(FUTURE_OFFSETS))
    return result


# -- over the evidence: one check at a time ------------------------------------------------------------------


@pytest.mark.parametrize(("connector_type", "check_id"), cases("non_finite_payload", every_check))
@PROPERTY
@given(data=st.data())
def test_a_non_finite_number_in_the_evidence_is_an_error(connector_type: str, check_id: str, data: Any) -> None:
    check = check_of(connector_type, check_id)
    start = data.draw(st.sampled_from(starting_points(connector_type, check_id)), label="sample")
    if not start.numbers:
        return
    paths = data.draw(st.lists(st.sampled_from(start.numbers), min_size=1, max_size=3, unique=True), label="paths")
    payload = replaced_all(start.observation.payload, {p: data.draw(st.sampled_from(NON_FINITE_FLOATS)) for p in paths})
    obs = _with(start.observation, payload=payload)
    result = check.run(obs, start.sample.settings, NOW)
    assert result.result is not Outcome.PASS, result
    if _evaluated(check, start.sample, obs) is Outcome.PASS:
        assert result.result is Outcome.ERROR, result
        assert result.details["path"] in {
            dotted(p) for p, v in leaves(payload) if is_number(v) and not math.isfinite(v)
        }


@pytest.mark.parametrize(("connector_type", "check_id"), cases("future_observed_at", every_check))
@PROPERTY
@given(data=st.data())
def test_evidence_observed_in_the_future_fails(connector_type: str, check_id: str, data: Any) -> None:
    check = check_of(connector_type, check_id)
    start = data.draw(st.sampled_from(starting_points(connector_type, check_id)), label="sample")
    obs = _with(start.observation, observed_at=future_time(data.draw))
    result = check.run(obs, start.sample.settings, NOW)
    assert result.result is not Outcome.PASS, result
    if _evaluated(check, start.sample, obs) is Outcome.PASS:
        assert result.result is Outcome.FAIL, result
        assert "in the future" in result.message


def test_evidence_within_the_clock_skew_tolerance_is_judged_as_usual() -> None:
    for connector_type, check_id in every_check():
        check = check_of(connector_type, check_id)
        for start in starting_points(connector_type, check_id)[:1]:
            obs = _with(start.observation, observed_at=NOW + CLOCK_SKEW_TOLERANCE)
            assert check.run(obs, start.sample.settings, NOW) == check.evaluate(obs, start.sample.settings, NOW)


@pytest.mark.parametrize(("connector_type", "check_id"), cases("time_payload", every_check))
@PROPERTY
@given(data=st.data())
def test_an_unreadable_or_future_time_a_check_judges_is_never_a_pass(
    connector_type: str, check_id: str, data: Any
) -> None:
    """Times the check reads: those whose replacement by another past time changes its result."""
    check = check_of(connector_type, check_id)
    start = data.draw(st.sampled_from(starting_points(connector_type, check_id)), label="sample")
    obs, sample = start.observation, start.sample
    if not start.judged_times:
        return
    path = data.draw(st.sampled_from(start.judged_times), label="path")
    payload = replaced(obs.payload, path, time_mutation(data.draw, _leaf(obs.payload, path)))
    result = check.run(_with(obs, payload=payload), sample.settings, NOW)
    assert result.result is not Outcome.PASS, f"{shown(path)} = {_leaf(payload, path)!r}: {result.message}"


# -- over the source: the connector's own code, every check of the connector --------------------------------


@pytest.mark.parametrize(("connector_type", "sample_name"), cases("non_finite_source", every_sample))
@PROPERTY
@given(data=st.data())
def test_a_non_finite_number_in_the_source_is_never_a_pass(connector_type: str, sample_name: str, data: Any) -> None:
    sample, _ = sample_of(connector_type, sample_name)
    numbers, _ = source_leaves(connector_type, sample_name)
    if not numbers:
        return
    paths = data.draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=3, unique=True), label="paths")
    originals = {path: _leaf(sample.raw, path) for path in paths}
    mutated = {
        path: data.draw(st.sampled_from(NON_FINITE_STRINGS if isinstance(value, str) else NON_FINITE_FLOATS))
        for path, value in originals.items()
    }
    probe = {path: other_number(value) for path, value in originals.items()}
    raw, probe_raw = replaced_all(sample.raw, mutated), replaced_all(sample.raw, probe)
    never_a_pass_where_it_reached(sample, raw, probe_raw, ", ".join(map(shown, paths)))


@pytest.mark.parametrize(("connector_type", "sample_name"), cases("time_source", every_sample))
@PROPERTY
@given(data=st.data())
def test_an_unreadable_or_future_time_in_the_source_is_never_a_pass(
    connector_type: str, sample_name: str, data: Any
) -> None:
    """Where the time dates the evidence (``observed_at`` moves) or a check reads it (another past time there
    changes the check's result)."""
    sample, _ = sample_of(connector_type, sample_name)
    _, times = source_leaves(connector_type, sample_name)
    if not times:
        return
    path = data.draw(st.sampled_from(times), label="path")
    raw = replaced(sample.raw, path, time_mutation(data.draw, _leaf(sample.raw, path)))
    probe = replaced(sample.raw, path, long_ago(_leaf(sample.raw, path)))
    never_a_pass_where_it_reached(sample, raw, probe, shown(path))


@pytest.mark.parametrize(("connector_type", "sample_name"), cases("failure", every_sample))
def test_a_source_that_reports_failure_is_never_a_pass(connector_type: str, sample_name: str) -> None:
    sample, _ = sample_of(connector_type, sample_name)
    passed = []
    for name, failed in sample.failures.items():
        scope = sample.failure_scope.get(name)
        for obs in sample.build(failed(sample.raw)):
            for check in load_connector(connector_type).checks:
                if check.kind == obs.kind and (scope is None or {check.kind, check.id} & scope):
                    result = check.run(obs, sample.settings, NOW)
                    if result.result is Outcome.PASS:
                        passed.append(f"{name}: {check.id} on {obs.subject}: {result.message}")
    assert not passed, "\n".join(passed)


# ------------------------------------------------------------------------------------------- helpers


def _with(observation: Observation, **changes: Any) -> Observation:
    return dataclasses.replace(observation, **changes)


def _leaf(document: Any, path: Path_) -> Any:
    for step in path:
        document = document[step]
    return document


def _written_like(original: Any, when: datetime) -> Any:
    if isinstance(original, datetime):
        return when
    if is_number(original):
        seconds = when.timestamp()
        return int(seconds * 1000) if original > 1e11 else seconds
    return when.isoformat().replace("+00:00", "Z")


def other_number(original: Any) -> Any:
    """Another finite number, written like the original: a check that reads the field notices."""
    value = -(abs(float(original)) + 1) * 7
    if isinstance(original, str):
        return repr(value)
    return int(value) if isinstance(original, int) else value


def long_ago(original: Any) -> Any:
    """Another valid time, in the past, written like the original: a check that reads the field notices."""
    return _written_like(original, NOW - timedelta(days=400))


def time_mutation(draw: Any, original: Any) -> Any:
    """An unreadable time, or a future one written the way the original was (ISO text, epoch s or ms, datetime)."""
    if draw(st.booleans()):
        return draw(st.sampled_from(UNREADABLE_TIMES))
    return _written_like(original, future_time(draw))


def _by_subject(observations: Iterable[Observation]) -> dict[tuple[str, Subject], Observation]:
    return {(o.kind, o.subject): o for o in observations}


def _evaluated(check: Any, sample: Sample, obs: Observation) -> Outcome:
    """What the check itself says, without the core's guard."""
    try:
        outcome: Outcome = check.evaluate(obs, sample.settings, NOW).result
    except Exception:
        return Outcome.ERROR
    return outcome


def _verdict(check: Any, sample: Sample, obs: Observation) -> tuple[Outcome, str]:
    result = check.run(obs, sample.settings, NOW)
    return result.result, result.message


def _reads_observed_at(check: Any, sample: Sample, obs: Observation) -> bool:
    earlier = _with(obs, observed_at=obs.observed_at - timedelta(days=400))
    return _verdict(check, sample, earlier) != _verdict(check, sample, obs)


def never_a_pass_where_it_reached(sample: Sample, raw: Any, probe: Any, what: str) -> None:
    """No check passes an observation the mutation reached. ``probe`` is the source with the same fields set to
    other valid values (another finite number, another past time): a check reads those fields when its result on
    the probe differs from its result on the sample. Reached, for one check: a new observation; one whose payload
    holds a non-finite float; one the check reads the mutated fields of; one dated otherwise (``observed_at``
    moved) when the check reads ``observed_at``. A connector that refuses the document outright stores nothing."""
    try:
        observations = sample.build(raw)
        probed = _by_subject(sample.build(probe))
    except (ValueError, TypeError, KeyError, OverflowError):
        return
    baseline = _by_subject(dict(samples_of(sample.connector))[sample])
    checks = load_connector(sample.connector).checks
    for obs in observations:
        key = (obs.kind, obs.subject)
        before = baseline.get(key)
        for check in (c for c in checks if c.kind == obs.kind):
            if before is None:
                reached = True
            else:
                read = key in probed and _verdict(check, sample, probed[key]) != _verdict(check, sample, before)
                moved = abs(before.observed_at - obs.observed_at) > CLOCK_SKEW_TOLERANCE
                reached = read or (moved and _reads_observed_at(check, sample, before))
            if reached:
                result = check.run(obs, sample.settings, NOW)
                assert result.result is not Outcome.PASS, (
                    f"{sample} with {what} passed {check.id} on {obs.subject}: {result.message}"
                )
