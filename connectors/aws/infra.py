"""Infrastructure reads for the ML platform: logging, encryption, exposure, backup, network, secrets, threat
detection. Each reader returns one payload (as AWS said it, datetimes in UTC); judging is in ``infra_checks``.

Values that may be secret never leave this module: Lambda and SageMaker environment variables are reduced to
their names here, before anything is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from .shapes import aws_json, error_code, error_message, is_access_denied

if TYPE_CHECKING:
    from .settings import InfrastructureSettings

__all__ = [
    "ACCOUNT_READERS",
    "CLOUDTRAIL_KIND",
    "CONFIG_KIND",
    "EC2_KIND",
    "ENVIRONMENT_KIND",
    "GUARDDUTY_KIND",
    "INFRA_KINDS",
    "KMS_KIND",
    "LOGS_KIND",
    "RDS_KIND",
    "REGION_READERS",
    "S3_KIND",
    "SAGEMAKER_KIND",
    "SECRETS_KIND",
    "Reader",
    "Scope",
]

CLOUDTRAIL_KIND = "aws.cloudtrail.trails"
S3_KIND = "aws.s3.buckets"
EC2_KIND = "aws.ec2.network"
KMS_KIND = "aws.kms.keys"
RDS_KIND = "aws.rds.databases"
SECRETS_KIND = "aws.secretsmanager.secrets"
GUARDDUTY_KIND = "aws.guardduty.detectors"
CONFIG_KIND = "aws.config.recorders"
LOGS_KIND = "aws.logs.sagemaker_log_groups"
SAGEMAKER_KIND = "aws.sagemaker.resources"
ENVIRONMENT_KIND = "aws.compute.environment_names"


@dataclass(frozen=True)
class Scope:
    """The account and region being read, and a client for a service there."""

    account_id: str
    region: str
    client: Callable[[str], Any]


@dataclass(frozen=True)
class Reader:
    kind: str
    service: str
    """The IAM service prefix of its calls, for naming a denied permission."""
    read: Callable[[Scope, InfrastructureSettings], dict[str, Any]]


def _pages(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    found: list[Any] = []
    for page in client.get_paginator(operation).paginate(**params):
        found.extend(page.get(key) or [])
    return found


def _optional(call: Callable[[], Any], *absent: str) -> Any:
    """The answer, or ``None`` when AWS says the thing is not configured (its ``NoSuch...`` code)."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in absent:
            return None
        raise


def _denied_as_error(service: str, call: Callable[[], Any]) -> Any:
    """For reads inside another service's evidence (a trail's bucket): denied is recorded, not raised."""
    try:
        return call()
    except ClientError as exc:
        if not is_access_denied(exc) and error_code(exc) != "NoSuchBucket":
            raise
        return {"error": {"code": error_code(exc), "permission": f"{service}:{exc.operation_name}",
                          "message": error_message(exc)}}  # fmt: skip


# ------------------------------------------------------------------------------------------- S3


_PUBLIC_GRANTEES = ("http://acs.amazonaws.com/groups/global/AllUsers",
                    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")  # fmt: skip


def _bucket(s3: Any, name: str) -> dict[str, Any]:
    """Encryption, versioning, Object Lock, Block Public Access, policy and public ACL grants of one bucket."""
    encryption = _optional(
        lambda: s3.get_bucket_encryption(Bucket=name), "ServerSideEncryptionConfigurationNotFoundError"
    )
    versioning = s3.get_bucket_versioning(Bucket=name)
    lock = _optional(lambda: s3.get_object_lock_configuration(Bucket=name), "ObjectLockConfigurationNotFoundError")
    block = _optional(lambda: s3.get_public_access_block(Bucket=name), "NoSuchPublicAccessBlockConfiguration")
    policy = _optional(lambda: s3.get_bucket_policy(Bucket=name), "NoSuchBucketPolicy")
    acl = s3.get_bucket_acl(Bucket=name)
    public_grants = sorted(
        {str(g.get("Grantee", {}).get("URI")) + ":" + str(g.get("Permission"))
         for g in acl.get("Grants") or [] if g.get("Grantee", {}).get("URI") in _PUBLIC_GRANTEES}
    )  # fmt: skip
    return {
        "name": name,
        "encryption": aws_json((encryption or {}).get("ServerSideEncryptionConfiguration")),
        "versioning": versioning.get("Status") or "Never enabled",
        "mfa_delete": versioning.get("MFADelete") or "Disabled",
        "object_lock": aws_json((lock or {}).get("ObjectLockConfiguration")),
        "public_access_block": aws_json((block or {}).get("PublicAccessBlockConfiguration")),
        "policy": json.loads(policy["Policy"]) if policy else None,
        "public_acl_grants": public_grants,
    }


def _designated(name: str, tags: Mapping[str, str], settings: InfrastructureSettings) -> bool:
    if settings.scope == "all":
        return True
    if any(fnmatchcase(name, pattern) for pattern in settings.buckets):
        return True
    return any(key in tags and fnmatchcase(tags[key], value) for key, value in settings.scope_tags.items())


def _bucket_tags(s3: Any, name: str) -> dict[str, str]:
    tagging = _optional(lambda: s3.get_bucket_tagging(Bucket=name), "NoSuchTagSet")
    return {str(t["Key"]): str(t["Value"]) for t in (tagging or {}).get("TagSet") or []}


def designated_buckets(s3: Any, settings: InfrastructureSettings) -> list[str]:
    names = sorted(str(b["Name"]) for b in s3.list_buckets().get("Buckets") or [])
    if settings.scope == "all":
        return names
    by_name = [n for n in names if any(fnmatchcase(n, p) for p in settings.buckets)]
    if not settings.scope_tags:
        return by_name
    return [n for n in names if n in by_name or _designated(n, _bucket_tags(s3, n), settings)]


def read_s3(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    s3 = scope.client("s3")
    account_block = _optional(
        lambda: scope.client("s3control").get_public_access_block(AccountId=scope.account_id),
        "NoSuchPublicAccessBlockConfiguration",
    )
    names = designated_buckets(s3, settings)
    return {
        "scope": settings.scope,
        "account_public_access_block": aws_json((account_block or {}).get("PublicAccessBlockConfiguration")),
        "buckets": [_bucket(s3, name) for name in names],
    }


# ------------------------------------------------------------------------------------------- CloudTrail


def _log_bucket(s3: Any, name: str) -> Any:
    """The trail's bucket, often in a log-archive account this role cannot read: denied is recorded, not raised."""
    return _denied_as_error("s3", lambda: _bucket(s3, name))


def read_cloudtrail(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    cloudtrail = scope.client("cloudtrail")
    s3 = scope.client("s3")
    trails = []
    for trail in cloudtrail.describe_trails(includeShadowTrails=False).get("trailList") or []:
        arn = trail["TrailARN"]
        status = cloudtrail.get_trail_status(Name=arn)
        selectors = cloudtrail.get_event_selectors(TrailName=arn)
        bucket = trail.get("S3BucketName")
        trails.append({
            **aws_json(trail),
            "IsLogging": bool(status.get("IsLogging")),
            "LatestDeliveryError": status.get("LatestDeliveryError"),
            "EventSelectors": aws_json(selectors.get("EventSelectors") or []),
            "AdvancedEventSelectors": aws_json(selectors.get("AdvancedEventSelectors") or []),
            "log_bucket": _log_bucket(s3, bucket) if bucket else None,
        })  # fmt: skip
    return {"trails": trails, "designated_buckets": designated_buckets(s3, settings)}


# ------------------------------------------------------------------------------------------- EC2 and VPC


def read_ec2(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    ec2 = scope.client("ec2")
    groups = _pages(ec2, "describe_security_groups", "SecurityGroups")
    vpcs = _pages(ec2, "describe_vpcs", "Vpcs")
    flow_logs = _pages(ec2, "describe_flow_logs", "FlowLogs")
    images = ec2.describe_images(Owners=["self"]).get("Images") or []
    public_snapshots = []
    for snapshot in _pages(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"]):
        if snapshot.get("OwnerId") != scope.account_id:
            continue
        permissions = ec2.describe_snapshot_attribute(
            SnapshotId=snapshot["SnapshotId"], Attribute="createVolumePermission"
        )
        if any(p.get("Group") == "all" for p in permissions.get("CreateVolumePermissions") or []):
            public_snapshots.append(str(snapshot["SnapshotId"]))
    return {
        "ebs_encryption_by_default": bool(ec2.get_ebs_encryption_by_default().get("EbsEncryptionByDefault")),
        "security_groups": [
            {"GroupId": g["GroupId"], "GroupName": g.get("GroupName"), "VpcId": g.get("VpcId"),
             "IpPermissions": aws_json(g.get("IpPermissions") or [])}
            for g in groups
        ],
        "vpcs": [{"VpcId": v["VpcId"], "IsDefault": bool(v.get("IsDefault")), "Tags": aws_json(v.get("Tags") or [])}
                 for v in vpcs],
        "flow_logs": [{"FlowLogId": f.get("FlowLogId"), "ResourceId": f.get("ResourceId"),
                       "FlowLogStatus": f.get("FlowLogStatus")} for f in flow_logs],
        "public_images": sorted(str(i["ImageId"]) for i in images if i.get("Public")),
        "public_snapshots": sorted(public_snapshots),
    }  # fmt: skip


# ------------------------------------------------------------------------------------------- KMS


def read_kms(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    kms = scope.client("kms")
    keys = []
    for key in _pages(kms, "list_keys", "Keys"):
        metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        if metadata.get("KeyManager") != "CUSTOMER" or metadata.get("KeyState") != "Enabled":
            continue
        symmetric = metadata.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
        external = metadata.get("Origin") != "AWS_KMS"
        rotation = None
        if symmetric and not external:
            rotation = bool(kms.get_key_rotation_status(KeyId=key["KeyId"]).get("KeyRotationEnabled"))
        keys.append({"KeyId": key["KeyId"], "Arn": metadata.get("Arn"), "KeySpec": metadata.get("KeySpec"),
                     "Origin": metadata.get("Origin"), "rotation_enabled": rotation})  # fmt: skip
    return {"keys": keys}


# ------------------------------------------------------------------------------------------- RDS


def read_rds(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    rds = scope.client("rds")
    instances = _pages(rds, "describe_db_instances", "DBInstances")
    snapshots = _pages(rds, "describe_db_snapshots", "DBSnapshots", SnapshotType="manual")
    public = []
    for snapshot in snapshots:
        attributes = rds.describe_db_snapshot_attributes(DBSnapshotIdentifier=snapshot["DBSnapshotIdentifier"])
        for attribute in attributes["DBSnapshotAttributesResult"].get("DBSnapshotAttributes") or []:
            if attribute.get("AttributeName") == "restore" and "all" in (attribute.get("AttributeValues") or []):
                public.append(snapshot["DBSnapshotIdentifier"])
    return {
        "instances": [
            {"DBInstanceIdentifier": i["DBInstanceIdentifier"], "Engine": i.get("Engine"),
             "StorageEncrypted": bool(i.get("StorageEncrypted")), "KmsKeyId": i.get("KmsKeyId"),
             "BackupRetentionPeriod": i.get("BackupRetentionPeriod"),
             "PubliclyAccessible": bool(i.get("PubliclyAccessible"))}
            for i in instances
        ],
        "public_snapshots": sorted(public),
    }  # fmt: skip


# ------------------------------------------------------------------------------------------- Secrets Manager


def read_secrets(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    secrets = _pages(scope.client("secretsmanager"), "list_secrets", "SecretList")
    keep = ("ARN", "Name", "RotationEnabled", "RotationRules", "LastRotatedDate", "LastChangedDate", "CreatedDate")
    return {"secrets": [aws_json({k: s[k] for k in keep if k in s}) for s in secrets]}


# ------------------------------------------------------------------------------------------- GuardDuty


def read_guardduty(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    guardduty = scope.client("guardduty")
    detectors = []
    for detector_id in _pages(guardduty, "list_detectors", "DetectorIds"):
        detector = guardduty.get_detector(DetectorId=detector_id)
        criteria = {"Criterion": {"severity": {"Gte": 7}, "service.archived": {"Eq": ["false"]}}}
        ids = _pages(guardduty, "list_findings", "FindingIds", DetectorId=detector_id, FindingCriteria=criteria)
        findings = []
        for start in range(0, len(ids), 50):
            found = guardduty.get_findings(DetectorId=detector_id, FindingIds=ids[start : start + 50])
            findings += [{"Id": f.get("Id"), "Type": f.get("Type"), "Severity": f.get("Severity"),
                          "CreatedAt": f.get("CreatedAt"), "Archived": (f.get("Service") or {}).get("Archived")}
                         for f in found.get("Findings") or []]  # fmt: skip
        detectors.append({"DetectorId": detector_id, "Status": detector.get("Status"), "high_findings": findings})
    return {"detectors": detectors}


# ------------------------------------------------------------------------------------------- AWS Config


def read_config(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    config = scope.client("config")
    recorders = config.describe_configuration_recorders().get("ConfigurationRecorders") or []
    statuses = config.describe_configuration_recorder_status().get("ConfigurationRecordersStatus") or []
    channels = config.describe_delivery_channels().get("DeliveryChannels") or []
    return {
        "recorders": aws_json(recorders),
        "statuses": aws_json(statuses),
        "delivery_channels": [{"name": c.get("name"), "s3BucketName": c.get("s3BucketName")} for c in channels],
    }


# ------------------------------------------------------------------------------------------- CloudWatch Logs


def read_logs(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    groups = _pages(scope.client("logs"), "describe_log_groups", "logGroups", logGroupNamePrefix="/aws/sagemaker/")
    return {
        "log_groups": [
            {
                "logGroupName": g["logGroupName"],
                "retentionInDays": g.get("retentionInDays"),
                "kmsKeyId": g.get("kmsKeyId"),
            }
            for g in groups
        ]
    }


# ------------------------------------------------------------------------------------------- SageMaker


def read_sagemaker(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    sagemaker = scope.client("sagemaker")
    notebooks = []
    for summary in _pages(sagemaker, "list_notebook_instances", "NotebookInstances"):
        n = sagemaker.describe_notebook_instance(NotebookInstanceName=summary["NotebookInstanceName"])
        notebooks.append({"NotebookInstanceName": n["NotebookInstanceName"], "KmsKeyId": n.get("KmsKeyId"),
                          "DirectInternetAccess": n.get("DirectInternetAccess"), "RootAccess": n.get("RootAccess"),
                          "SubnetId": n.get("SubnetId")})  # fmt: skip
    jobs = []
    for summary in _pages(sagemaker, "list_training_jobs", "TrainingJobSummaries")[: settings.max_training_jobs]:
        j = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        jobs.append({
            "TrainingJobName": j["TrainingJobName"],
            "VolumeKmsKeyId": (j.get("ResourceConfig") or {}).get("VolumeKmsKeyId"),
            "OutputKmsKeyId": (j.get("OutputDataConfig") or {}).get("KmsKeyId"),
            "EnableNetworkIsolation": bool(j.get("EnableNetworkIsolation")),
            "InVpc": bool((j.get("VpcConfig") or {}).get("Subnets")),
            "environment_names": sorted(j.get("Environment") or {}),
        })  # fmt: skip
    endpoint_configs = []
    for summary in _pages(sagemaker, "list_endpoint_configs", "EndpointConfigs"):
        c = sagemaker.describe_endpoint_config(EndpointConfigName=summary["EndpointConfigName"])
        endpoint_configs.append({"EndpointConfigName": c["EndpointConfigName"], "KmsKeyId": c.get("KmsKeyId")})
    return {"notebooks": notebooks, "training_jobs": jobs, "endpoint_configs": endpoint_configs}


# ------------------------------------------------------------------------------------------- environment names


def read_environment(scope: Scope, settings: InfrastructureSettings) -> dict[str, Any]:
    """Names of Lambda environment variables (never their values)."""
    functions = _pages(scope.client("lambda"), "list_functions", "Functions")
    return {
        "functions": [
            {"FunctionName": f["FunctionName"],
             "environment_names": sorted(((f.get("Environment") or {}).get("Variables") or {}).keys())}
            for f in functions
        ]
    }  # fmt: skip


ACCOUNT_READERS = (Reader(CLOUDTRAIL_KIND, "cloudtrail", read_cloudtrail), Reader(S3_KIND, "s3", read_s3))
"""Read once per account (in the first region): CloudTrail lists trails of every region, S3 buckets are global."""
REGION_READERS = (
    Reader(EC2_KIND, "ec2", read_ec2),
    Reader(KMS_KIND, "kms", read_kms),
    Reader(RDS_KIND, "rds", read_rds),
    Reader(SECRETS_KIND, "secretsmanager", read_secrets),
    Reader(GUARDDUTY_KIND, "guardduty", read_guardduty),
    Reader(CONFIG_KIND, "config", read_config),
    Reader(LOGS_KIND, "logs", read_logs),
    Reader(SAGEMAKER_KIND, "sagemaker", read_sagemaker),
    Reader(ENVIRONMENT_KIND, "lambda", read_environment),
)
INFRA_KINDS = frozenset(r.kind for r in ACCOUNT_READERS + REGION_READERS)


def readers(settings: InfrastructureSettings) -> Iterator[Reader]:
    for reader in ACCOUNT_READERS + REGION_READERS:
        if reader.kind not in settings.skip_kinds:
            yield reader
