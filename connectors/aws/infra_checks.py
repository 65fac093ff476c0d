"""Pure judgements over the infrastructure evidence; each failing result names the failing resources in
``details.failing``. Nothing to judge (no RDS instance, no designated bucket) is ``not_applicable``, never a pass."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from collector.sdk import Check, CheckResult, Observation, Outcome, format_duration, in_the_future, parse_timestamp

from .checks import _check
from .infra import (
    CLOUDTRAIL_KIND,
    CONFIG_KIND,
    EC2_KIND,
    ENVIRONMENT_KIND,
    GUARDDUTY_KIND,
    KMS_KIND,
    LOGS_KIND,
    RDS_KIND,
    S3_KIND,
    SAGEMAKER_KIND,
    SECRETS_KIND,
)
from .settings import AwsSettings

__all__ = ["INFRA_CHECKS"]

_LISTED = 10
_BPA_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
_OPEN_TO_WORLD = ("0.0.0.0/0", "::/0")

Judge = Callable[[Observation, AwsSettings, datetime], tuple[Outcome, str, list[Any]]]


def _listed(failing: list[Any]) -> str:
    shown = ", ".join(str(f if not isinstance(f, Mapping) else f.get("resource")) for f in failing[:_LISTED])
    return shown + (f" and {len(failing) - _LISTED} more" if len(failing) > _LISTED else "")


def _infra_check(check_id: str, kind: str, title: str, judge: Judge) -> Check[AwsSettings]:
    def evaluate(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
        outcome, message, failing = judge(observation, settings, now)
        return CheckResult(check_id, outcome, message, {"failing": failing})

    return _check(check_id, kind, title, evaluate)


def _verdict(
    items: Iterable[Any], failing: list[Any], noun: str, passed: str, failed: str
) -> tuple[Outcome, str, list[Any]]:
    total = len(list(items))
    if total == 0:
        return Outcome.NOT_APPLICABLE, f"no {noun} to judge", []
    if failing:
        return Outcome.FAIL, f"{len(failing)} of {total} {noun} {failed}: {_listed(failing)}", failing
    return Outcome.PASS, f"all {total} {noun} {passed}", []


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------------------------------- S3 policies


def _statements(policy: Any) -> list[Mapping[str, Any]]:
    if not isinstance(policy, Mapping):
        return []
    return [s for s in _as_list(policy.get("Statement")) if isinstance(s, Mapping)]


def _everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return "*" in _as_list(principal.get("AWS"))
    return False


def public_statements(policy: Any) -> list[str]:
    """Allow statements open to everyone without a Condition (a condition such as a source VPC scopes them)."""
    return [
        str(s.get("Sid") or f"statement {i}")
        for i, s in enumerate(_statements(policy))
        if s.get("Effect") == "Allow" and _everyone(s.get("Principal")) and not s.get("Condition")
    ]


def _insecure_transport_denied(policy: Any) -> bool:
    for statement in _statements(policy):
        if statement.get("Effect") != "Deny" or not _everyone(statement.get("Principal")):
            continue
        if not any(fnmatchcase("s3:getobject", str(a).lower()) for a in _as_list(statement.get("Action"))):
            continue
        condition = statement.get("Condition") or {}
        secure = (condition.get("Bool") or {}).get("aws:SecureTransport") if isinstance(condition, Mapping) else None
        if [str(v).lower() for v in _as_list(secure)] == ["false"]:
            return True
    return False


def _bucket_public(bucket: Mapping[str, Any]) -> list[str]:
    reasons = [f"ACL grant {g}" for g in bucket.get("public_acl_grants") or []]
    reasons += [f"policy {s}" for s in public_statements(bucket.get("policy"))]
    return reasons


# ------------------------------------------------------------------------------------------- CloudTrail


def _logging_multi_region(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        t
        for t in payload.get("trails") or []
        if t.get("IsMultiRegionTrail") and t.get("IsLogging") and t.get("IncludeGlobalServiceEvents", True)
    ]


def cloudtrail_multi_region(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    trails = payload_trails = observation.payload.get("trails") or []
    good = _logging_multi_region(observation.payload)
    if good:
        names = ", ".join(str(t.get("Name")) for t in good)
        return Outcome.PASS, f"multi-region trail(s) logging: {names}", []
    failing = [{"resource": t.get("TrailARN"), "multi_region": bool(t.get("IsMultiRegionTrail")),
                "logging": bool(t.get("IsLogging"))} for t in payload_trails]  # fmt: skip
    return Outcome.FAIL, f"no multi-region trail is logging ({len(trails)} trail(s) found)", failing


def cloudtrail_integrity(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    good = _logging_multi_region(observation.payload)
    if not good:
        return Outcome.FAIL, "no multi-region trail is logging, so no log file is validated or encrypted", []
    failing: list[dict[str, Any]] = []
    for trail in good:
        missing = [what for what, ok in (("log file validation", trail.get("LogFileValidationEnabled")),
                                         ("KMS encryption", trail.get("KmsKeyId"))) if not ok]  # fmt: skip
        if missing:
            failing.append({"resource": trail.get("TrailARN"), "missing": missing})
    if len(failing) == len(good):
        detail = "; ".join(f"{f['resource']} lacks {' and '.join(f['missing'])}" for f in failing)
        return Outcome.FAIL, f"no logging multi-region trail has validated, KMS-encrypted log files: {detail}", failing
    return Outcome.PASS, "a multi-region trail logs with log file validation and KMS encryption", failing


def cloudtrail_log_bucket(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    good = _logging_multi_region(observation.payload)
    if not good:
        return Outcome.FAIL, "no multi-region trail is logging, so no log bucket to judge", []
    failing: list[dict[str, Any]] = []
    errors: list[str] = []
    for trail in good:
        bucket = trail.get("log_bucket") or {}
        name = trail.get("S3BucketName")
        if "error" in bucket:
            error = bucket["error"]
            errors.append(f"{name}: {error.get('permission')} failed with {error.get('code')}")
            continue
        reasons = _bucket_public(bucket)
        if bucket.get("versioning") != "Enabled":
            reasons.append(f"versioning {bucket.get('versioning')}")
        locked = (bucket.get("object_lock") or {}).get("ObjectLockEnabled") == "Enabled"
        if not locked and bucket.get("mfa_delete") != "Enabled":
            reasons.append("neither Object Lock nor MFA delete")
        if reasons:
            failing.append({"resource": name, "reasons": reasons})
    if len(failing) + len(errors) < len(good):
        return Outcome.PASS, "a logging multi-region trail writes to a non-public, versioned, locked bucket", failing
    if errors:
        return Outcome.ERROR, f"log bucket unreadable: {'; '.join(errors)}", failing
    detail = "; ".join(f"{f['resource']}: {', '.join(f['reasons'])}" for f in failing)
    return Outcome.FAIL, f"no trail's log bucket is protected: {detail}", failing


def _s3_data_selectors(trail: Mapping[str, Any]) -> Iterable[tuple[str, list[str]]]:
    """(read/write scope, ARN prefixes) of each S3 object data-event selector; ``[]`` prefixes means all buckets."""
    for selector in trail.get("EventSelectors") or []:
        for resource in selector.get("DataResources") or []:
            if resource.get("Type") == "AWS::S3::Object":
                values = [str(v) for v in resource.get("Values") or []]
                everything = any(v in ("arn:aws:s3", "arn:aws:s3:::") for v in values)
                yield str(selector.get("ReadWriteType", "All")), [] if everything else values
    for selector in trail.get("AdvancedEventSelectors") or []:
        fields = {str(f.get("Field")): f for f in selector.get("FieldSelectors") or []}
        category = (fields.get("eventCategory") or {}).get("Equals") or []
        types = (fields.get("resources.type") or {}).get("Equals") or []
        if "Data" not in category or "AWS::S3::Object" not in types:
            continue
        read_only = (fields.get("readOnly") or {}).get("Equals")
        scope = "All" if not read_only else ("ReadOnly" if read_only == ["true"] else "WriteOnly")
        arn = fields.get("resources.ARN") or {}
        yield scope, [str(v) for v in arn.get("StartsWith") or arn.get("Equals") or []] if arn else []


def _covers(prefixes: list[str], bucket: str) -> bool:
    return not prefixes or any(p.rstrip("/") in (f"arn:aws:s3:::{bucket}",) for p in prefixes)


def cloudtrail_data_events(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    buckets = observation.payload.get("designated_buckets") or []
    if not buckets:
        return Outcome.NOT_APPLICABLE, "no designated bucket (set infrastructure.buckets or tag buckets)", []
    logging = [t for t in observation.payload.get("trails") or [] if t.get("IsLogging")]
    failing = []
    for bucket in buckets:
        scopes = {scope for t in logging for scope, prefixes in _s3_data_selectors(t) if _covers(prefixes, bucket)}
        if "All" not in scopes and not {"ReadOnly", "WriteOnly"} <= scopes:
            failing.append({"resource": bucket, "logged": sorted(scopes)})
    return _verdict(buckets, failing, "designated buckets", "have read and write data events logged",
                    "have no read and write S3 data events in a logging trail")  # fmt: skip


# ------------------------------------------------------------------------------------------- S3 buckets


def _buckets(observation: Observation) -> list[Mapping[str, Any]]:
    return list(observation.payload.get("buckets") or [])


def s3_default_encryption(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    buckets = _buckets(observation)
    failing = []
    for b in buckets:
        rules = (b.get("encryption") or {}).get("Rules") or []
        algorithms = [(r.get("ApplyServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") for r in rules]
        if not any(a in ("AES256", "aws:kms", "aws:kms:dsse") for a in algorithms):
            failing.append(b.get("name"))
    return _verdict(buckets, failing, "designated buckets", "encrypt by default", "have no default encryption")


def s3_secure_transport(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    buckets = _buckets(observation)
    failing = [b.get("name") for b in buckets if not _insecure_transport_denied(b.get("policy"))]
    return _verdict(buckets, failing, "designated buckets", "deny requests without TLS",
                    "have no policy denying aws:SecureTransport=false")  # fmt: skip


def s3_block_public_access(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    account = observation.payload.get("account_public_access_block") or {}
    buckets = _buckets(observation)
    failing = []
    for b in buckets:
        bucket = b.get("public_access_block") or {}
        off = [flag for flag in _BPA_FLAGS if not (account.get(flag) or bucket.get(flag))]
        if off:
            failing.append({"resource": b.get("name"), "off": off})
    if all(account.get(flag) for flag in _BPA_FLAGS):
        return Outcome.PASS, "account-level S3 Block Public Access is fully on", []
    return _verdict(buckets, failing, "designated buckets", "block public access (account or bucket level)",
                    "do not block all public access")  # fmt: skip


def s3_not_public(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    buckets = _buckets(observation)
    failing = [{"resource": b.get("name"), "reasons": r} for b in buckets if (r := _bucket_public(b))]
    return _verdict(buckets, failing, "designated buckets", "grant nothing to everyone",
                    "grant access to everyone")  # fmt: skip


def s3_versioning(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    buckets = _buckets(observation)
    failing = [b.get("name") for b in buckets if b.get("versioning") != "Enabled"]
    return _verdict(buckets, failing, "designated buckets", "keep versions", "do not have versioning enabled")


# ------------------------------------------------------------------------------------------- EC2 and VPC


def _covers_port(permission: Mapping[str, Any], port: int) -> bool:
    if str(permission.get("IpProtocol")) == "-1":
        return True
    low, high = permission.get("FromPort"), permission.get("ToPort")
    if not isinstance(low, int) or not isinstance(high, int):
        return False
    return low <= port <= high


def ec2_open_admin_ports(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    groups = observation.payload.get("security_groups") or []
    ports = settings.infrastructure.admin_ports
    failing = []
    for group in groups:
        open_ports: set[int] = set()
        for permission in group.get("IpPermissions") or []:
            cidrs = [r.get("CidrIp") for r in permission.get("IpRanges") or []]
            cidrs += [r.get("CidrIpv6") for r in permission.get("Ipv6Ranges") or []]
            if any(c in _OPEN_TO_WORLD for c in cidrs):
                open_ports |= {p for p in ports if _covers_port(permission, p)}
        if open_ports:
            failing.append({"resource": group.get("GroupId"), "name": group.get("GroupName"),
                            "ports": sorted(open_ports)})  # fmt: skip
    return _verdict(groups, failing, "security groups", "keep admin/database ports closed to the internet",
                    "open admin/database ports to 0.0.0.0/0 or ::/0")  # fmt: skip


def ec2_ebs_default_encryption(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    if observation.payload.get("ebs_encryption_by_default") is True:
        return Outcome.PASS, f"EBS encryption by default is on in {observation.subject.id}", []
    return Outcome.FAIL, f"EBS encryption by default is off in {observation.subject.id}", [observation.subject.id]


def ec2_flow_logs(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    vpcs = observation.payload.get("vpcs") or []
    active = {
        f.get("ResourceId") for f in observation.payload.get("flow_logs") or [] if f.get("FlowLogStatus") == "ACTIVE"
    }
    failing = [v.get("VpcId") for v in vpcs if v.get("VpcId") not in active]
    return _verdict(vpcs, failing, "VPCs", "have active flow logs", "have no active flow log")


def ec2_no_public_images(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    failing = [{"resource": i, "type": "ami"} for i in observation.payload.get("public_images") or []]
    failing += [{"resource": s, "type": "ebs-snapshot"} for s in observation.payload.get("public_snapshots") or []]
    if failing:
        return Outcome.FAIL, f"{len(failing)} AMI(s)/EBS snapshot(s) are public: {_listed(failing)}", failing
    return Outcome.PASS, "no owned AMI or EBS snapshot is public", []


# ------------------------------------------------------------------------------------------- KMS, RDS


def kms_rotation(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    keys = [k for k in observation.payload.get("keys") or [] if k.get("rotation_enabled") is not None]
    failing = [k.get("Arn") for k in keys if k.get("rotation_enabled") is not True]
    return _verdict(keys, failing, "customer-managed symmetric keys", "rotate yearly", "have rotation off")


def _instances(observation: Observation) -> list[Mapping[str, Any]]:
    return list(observation.payload.get("instances") or [])


def rds_encrypted(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    instances = _instances(observation)
    failing = [i.get("DBInstanceIdentifier") for i in instances if i.get("StorageEncrypted") is not True]
    return _verdict(instances, failing, "RDS instances", "encrypt storage", "have unencrypted storage")


def rds_backups(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    instances = _instances(observation)
    minimum = settings.infrastructure.min_backup_retention_days
    failing = [
        {"resource": i.get("DBInstanceIdentifier"), "retention_days": i.get("BackupRetentionPeriod")}
        for i in instances
        if not isinstance(i.get("BackupRetentionPeriod"), int) or i["BackupRetentionPeriod"] < minimum
    ]
    return _verdict(instances, failing, "RDS instances", f"keep automated backups ≥ {minimum} days",
                    f"keep automated backups < {minimum} days")  # fmt: skip


def rds_not_public(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    failing = [{"resource": i.get("DBInstanceIdentifier"), "type": "instance"}
               for i in _instances(observation) if i.get("PubliclyAccessible")]  # fmt: skip
    failing += [{"resource": s, "type": "snapshot"} for s in observation.payload.get("public_snapshots") or []]
    if failing:
        return Outcome.FAIL, f"{len(failing)} RDS instance(s)/snapshot(s) are public: {_listed(failing)}", failing
    return Outcome.PASS, "no RDS instance is publicly accessible and no manual snapshot is public", []


# ------------------------------------------------------------------------------------------- secrets, detection


def _age_failure(value: Any, now: datetime, limit_days: float, settings: AwsSettings) -> str | None:
    parsed = parse_timestamp(value) if value is not None else None
    if parsed is None:
        return "no readable rotation time"
    if future := in_the_future(parsed, now, settings.clock_skew_tolerance):
        return f"rotation time is {future}"
    age = (now - parsed).total_seconds() / 86400
    return f"last rotated {int(age)}d ago" if age > limit_days else None


def secrets_rotation(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    secrets = observation.payload.get("secrets") or []
    limit = settings.infrastructure.secret_max_rotation_age
    failing = []
    for secret in secrets:
        if secret.get("RotationEnabled") is not True:
            failing.append({"resource": secret.get("Name"), "reason": "rotation off"})
            continue
        reason = _age_failure(secret.get("LastRotatedDate"), now, limit.total_seconds() / 86400, settings)
        if reason:
            failing.append({"resource": secret.get("Name"), "reason": reason})
    return _verdict(secrets, failing, "secrets", f"rotate automatically within {format_duration(limit)}",
                    "are not rotated automatically in time")  # fmt: skip


def guardduty(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    detectors = observation.payload.get("detectors") or []
    enabled = [d for d in detectors if d.get("Status") == "ENABLED"]
    if not enabled:
        return Outcome.FAIL, f"GuardDuty is not enabled in {observation.subject.id}", [observation.subject.id]
    limit = settings.infrastructure.guardduty_max_finding_age
    failing = []
    for detector in enabled:
        for finding in detector.get("high_findings") or []:
            created = parse_timestamp(finding.get("CreatedAt")) if finding.get("CreatedAt") else None
            if created is None:
                return Outcome.ERROR, f"GuardDuty finding {finding.get('Id')} has no readable CreatedAt", []
            if future := in_the_future(created, now, settings.clock_skew_tolerance):
                return Outcome.FAIL, f"GuardDuty finding {finding.get('Id')} is created {future}", [finding.get("Id")]
            if now - created > limit and not finding.get("Archived"):
                failing.append({"resource": finding.get("Id"), "type": finding.get("Type"),
                                "severity": finding.get("Severity"),
                                "created_at": finding.get("CreatedAt")})  # fmt: skip
    if failing:
        message = f"{len(failing)} unarchived high-severity finding(s) older than {format_duration(limit)}"
        return Outcome.FAIL, f"{message}: {_listed(failing)}", failing
    return (
        Outcome.PASS,
        f"GuardDuty enabled; no unarchived high-severity finding older than {format_duration(limit)}",
        [],
    )


def config_recorder(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    statuses = observation.payload.get("statuses") or []
    recording = [s for s in statuses if s.get("recording") and s.get("lastStatus") != "Failure"]
    channels = observation.payload.get("delivery_channels") or []
    if recording and channels:
        return Outcome.PASS, f"AWS Config is recording ({recording[0].get('name')}) and delivering", []
    why = "no recorder is recording" if not recording else "no delivery channel"
    return Outcome.FAIL, f"AWS Config in {observation.subject.id}: {why}", [observation.subject.id]


def logs_sagemaker(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    groups = observation.payload.get("log_groups") or []
    minimum = settings.infrastructure.min_log_retention_days
    failing = []
    for group in groups:
        reasons = []
        retention = group.get("retentionInDays")
        if retention is not None and retention < minimum:
            reasons.append(f"retention {retention}d < {minimum}d")
        if not group.get("kmsKeyId"):
            reasons.append("not KMS-encrypted")
        if reasons:
            failing.append({"resource": group.get("logGroupName"), "reasons": reasons})
    return _verdict(groups, failing, "/aws/sagemaker/ log groups", f"keep ≥ {minimum}d, KMS-encrypted",
                    "keep too briefly or are not KMS-encrypted")  # fmt: skip


def sagemaker_notebooks(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    notebooks = observation.payload.get("notebooks") or []
    failing = []
    for n in notebooks:
        reasons = [r for r, bad in (("direct internet access", n.get("DirectInternetAccess") != "Disabled"),
                                    ("root access", n.get("RootAccess") != "Disabled")) if bad]  # fmt: skip
        if reasons:
            failing.append({"resource": n.get("NotebookInstanceName"), "reasons": reasons})
    return _verdict(notebooks, failing, "notebook instances", "have no direct internet and no root access",
                    "allow direct internet or root access")  # fmt: skip


def sagemaker_kms(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    payload = observation.payload
    resources: list[tuple[str, list[str]]] = []
    for n in payload.get("notebooks") or []:
        resources.append((f"notebook/{n.get('NotebookInstanceName')}", [] if n.get("KmsKeyId") else ["volume"]))
    for j in payload.get("training_jobs") or []:
        missing = [w for w, k in (("volume", j.get("VolumeKmsKeyId")), ("model artifacts", j.get("OutputKmsKeyId")))
                   if not k]  # fmt: skip
        resources.append((f"training-job/{j.get('TrainingJobName')}", missing))
    for c in payload.get("endpoint_configs") or []:
        resources.append((f"endpoint-config/{c.get('EndpointConfigName')}", [] if c.get("KmsKeyId") else ["volume"]))
    failing = [{"resource": name, "unencrypted": missing} for name, missing in resources if missing]
    return _verdict(resources, failing, "SageMaker resources", "use a KMS key", "do not use a KMS key")


def _secret_like(names: Iterable[str], settings: AwsSettings) -> list[str]:
    patterns = [p.upper() for p in settings.infrastructure.secret_name_patterns]
    return sorted(n for n in names if any(fnmatchcase(str(n).upper(), p) for p in patterns))


def _environment(holders: list[tuple[str, list[str]]], settings: AwsSettings) -> Any:
    failing = [
        {"resource": name, "variables": found} for name, names in holders if (found := _secret_like(names, settings))
    ]
    return _verdict(holders, failing, "functions/jobs", "have no secret-looking environment variable names",
                    "have environment variables named like secrets (names only, never values)")  # fmt: skip


def lambda_environment(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    holders = [(str(f.get("FunctionName")), list(f.get("environment_names") or []))
               for f in observation.payload.get("functions") or []]  # fmt: skip
    return _environment(holders, settings)


def sagemaker_environment(observation: Observation, settings: AwsSettings, now: datetime) -> Any:
    holders = [(f"training-job/{j.get('TrainingJobName')}", list(j.get("environment_names") or []))
               for j in observation.payload.get("training_jobs") or []]  # fmt: skip
    return _environment(holders, settings)


INFRA_CHECKS = (
    _infra_check("aws.cloudtrail.multi_region_logging", CLOUDTRAIL_KIND, "A multi-region trail is logging",
                 cloudtrail_multi_region),
    _infra_check("aws.cloudtrail.log_integrity", CLOUDTRAIL_KIND,
                 "Trail log files are validated and KMS-encrypted", cloudtrail_integrity),
    _infra_check("aws.cloudtrail.log_bucket_protected", CLOUDTRAIL_KIND,
                 "The trail's log bucket is not public, versioned, and locked (Object Lock or MFA delete)",
                 cloudtrail_log_bucket),
    _infra_check("aws.cloudtrail.designated_data_events", CLOUDTRAIL_KIND,
                 "S3 data events are logged for the designated buckets", cloudtrail_data_events),
    _infra_check("aws.s3.default_encryption", S3_KIND, "Designated buckets encrypt by default", s3_default_encryption),
    _infra_check("aws.s3.secure_transport", S3_KIND, "Designated buckets deny requests without TLS",
                 s3_secure_transport),
    _infra_check("aws.s3.block_public_access", S3_KIND, "S3 Block Public Access covers the designated buckets",
                 s3_block_public_access),
    _infra_check("aws.s3.not_public", S3_KIND, "Designated buckets grant nothing to everyone", s3_not_public),
    _infra_check("aws.s3.versioning", S3_KIND, "Designated buckets keep object versions", s3_versioning),
    _infra_check("aws.ec2.no_open_admin_ports", EC2_KIND,
                 "No security group opens admin/database ports to the internet", ec2_open_admin_ports),
    _infra_check("aws.ec2.ebs_default_encryption", EC2_KIND, "EBS encryption by default is on",
                 ec2_ebs_default_encryption),
    _infra_check("aws.ec2.vpc_flow_logs", EC2_KIND, "Every VPC has an active flow log", ec2_flow_logs),
    _infra_check("aws.ec2.no_public_images_snapshots", EC2_KIND, "No owned AMI or EBS snapshot is public",
                 ec2_no_public_images),
    _infra_check("aws.kms.key_rotation", KMS_KIND, "Customer-managed keys rotate", kms_rotation),
    _infra_check("aws.rds.storage_encrypted", RDS_KIND, "RDS storage is encrypted", rds_encrypted),
    _infra_check("aws.rds.backup_retention", RDS_KIND, "RDS automated backups are kept long enough", rds_backups),
    _infra_check("aws.rds.not_public", RDS_KIND, "No RDS instance or snapshot is public", rds_not_public),
    _infra_check("aws.secretsmanager.rotation", SECRETS_KIND, "Secrets rotate automatically and recently",
                 secrets_rotation),
    _infra_check("aws.guardduty.enabled_no_old_high_findings", GUARDDUTY_KIND,
                 "GuardDuty is enabled and high-severity findings are handled in time", guardduty),
    _infra_check("aws.config.recorder_on", CONFIG_KIND, "AWS Config is recording and delivering", config_recorder),
    _infra_check("aws.logs.sagemaker_retention_encryption", LOGS_KIND,
                 "SageMaker log groups are retained long enough and KMS-encrypted", logs_sagemaker),
    _infra_check("aws.sagemaker.notebooks_restricted", SAGEMAKER_KIND,
                 "Notebook instances have no direct internet and no root access", sagemaker_notebooks),
    _infra_check("aws.sagemaker.kms_encrypted", SAGEMAKER_KIND,
                 "SageMaker volumes and model artifacts use a KMS key", sagemaker_kms),
    _infra_check("aws.sagemaker.no_secret_like_environment", SAGEMAKER_KIND,
                 "Training jobs have no environment variable named like a secret", sagemaker_environment),
    _infra_check("aws.lambda.no_secret_like_environment", ENVIRONMENT_KIND,
                 "Lambda functions have no environment variable named like a secret", lambda_environment),
)  # fmt: skip
