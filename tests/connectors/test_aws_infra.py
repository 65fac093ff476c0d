"""Infrastructure evidence of the aws connector against a real moto server: a seeded ML account with one good and
one bad resource of each sort, judged by every infrastructure check; the shipped policy grants every call.
GuardDuty's ListFindings/GetFindings are missing from moto: the moto run records that part as an error (never a
pass), and the findings logic is tested with botocore's Stubber (shapes from botocore's guardduty model)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import pytest
from botocore.session import get_session
from botocore.stub import Stubber

from collector.model import Observation, Outcome, Subject
from connectors.aws import NO_PRIVILEGE_ESCALATION, AwsSettings
from connectors.aws.infra import Scope, read_guardduty
from connectors.aws.infra_checks import INFRA_CHECKS
from connectors.aws.shapes import iam_action
from tests.connectors import test_aws
from tests.connectors.test_aws import ACCOUNT, POLICY_FILE, REGION, Moto, collect

pytestmark = pytest.mark.slow

moto_url = test_aws.moto_url
moto = test_aws.moto

NOW = datetime.now(UTC)


def seed_infrastructure(moto: Moto) -> None:
    """Designated buckets: ml-training-data (encrypted, versioned, TLS-only, blocked) and ml-artifacts (tagged
    designation, public-read ACL, nothing else); an unrelated bucket; a multi-region trail with validation, KMS and
    data events for ml-training-data only, into a locked log bucket; one group open on 22, one on 443; a public and a
    private EBS snapshot; KMS keys with and without rotation; RDS instances encrypted/public; secrets; SageMaker."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="ml-training-data")
    s3.put_bucket_encryption(
        Bucket="ml-training-data",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    )
    s3.put_bucket_versioning(Bucket="ml-training-data", VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket="ml-training-data",
        PublicAccessBlockConfiguration=dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        ),
    )  # fmt: skip
    tls_only = {"Version": "2012-10-17", "Statement": [{
        "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::ml-training-data", "arn:aws:s3:::ml-training-data/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}  # fmt: skip
    s3.put_bucket_policy(Bucket="ml-training-data", Policy=json.dumps(tls_only))
    s3.create_bucket(Bucket="model-store")
    s3.put_bucket_tagging(Bucket="model-store", Tagging={"TagSet": [{"Key": "ai.evidence/scope", "Value": "models"}]})
    s3.put_bucket_acl(Bucket="model-store", ACL="public-read")
    s3.create_bucket(Bucket="marketing-site")
    s3.create_bucket(Bucket="trail-logs", ObjectLockEnabledForBucket=True)
    kms = moto.client("kms")
    rotated = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=rotated)
    kms.create_key()
    cloudtrail = moto.client("cloudtrail")
    cloudtrail.create_trail(Name="org", S3BucketName="trail-logs", IsMultiRegionTrail=True,
                            EnableLogFileValidation=True, KmsKeyId=rotated)  # fmt: skip
    cloudtrail.put_event_selectors(TrailName="org", EventSelectors=[{
        "ReadWriteType": "All", "IncludeManagementEvents": True,
        "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::ml-training-data/"]}]}])  # fmt: skip
    cloudtrail.start_logging(Name="org")
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    ssh = ec2.create_security_group(GroupName="ssh-world", Description="x", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=ssh, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 20, "ToPort": 23, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])  # fmt: skip
    https = ec2.create_security_group(GroupName="https-world", Description="x", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=https, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])  # fmt: skip
    ec2.create_flow_logs(ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL", LogDestinationType="s3",
                         LogDestination="arn:aws:s3:::trail-logs")  # fmt: skip
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    public = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    ec2.modify_snapshot_attribute(SnapshotId=public, Attribute="createVolumePermission", OperationType="add",
                                  GroupNames=["all"])  # fmt: skip
    ec2.create_snapshot(VolumeId=volume)
    rds = moto.client("rds")
    rds.create_db_instance(DBInstanceIdentifier="features", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="u", MasterUserPassword="password1", StorageEncrypted=True,
                           BackupRetentionPeriod=14, PubliclyAccessible=False)  # fmt: skip
    rds.create_db_instance(DBInstanceIdentifier="scratch", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="u", MasterUserPassword="password1", BackupRetentionPeriod=1,
                           PubliclyAccessible=True)  # fmt: skip
    rds.create_db_snapshot(DBInstanceIdentifier="scratch", DBSnapshotIdentifier="scratch-copy")
    rds.modify_db_snapshot_attribute(DBSnapshotIdentifier="scratch-copy", AttributeName="restore", ValuesToAdd=["all"])
    secrets = moto.client("secretsmanager")
    secrets.create_secret(Name="hf-token", SecretString="not-in-evidence")
    logs = moto.client("logs")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    logs.put_retention_policy(logGroupName="/aws/sagemaker/TrainingJobs", retentionInDays=30)
    logs.create_log_group(
        logGroupName="/aws/sagemaker/Endpoints/prod", kmsKeyId=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{rotated}"
    )
    sagemaker = moto.client("sagemaker")
    sagemaker.create_notebook_instance(NotebookInstanceName="open-nb", InstanceType="ml.t3.medium",
                                       RoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm")  # fmt: skip
    sagemaker.create_notebook_instance(NotebookInstanceName="closed-nb", InstanceType="ml.t3.medium",
                                       RoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm", DirectInternetAccess="Disabled",
                                       RootAccess="Disabled", KmsKeyId=rotated, SubnetId="subnet-1",
                                       SecurityGroupIds=[https])  # fmt: skip
    sagemaker.create_training_job(
        TrainingJobName="finetune", RoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
        AlgorithmSpecification={"TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/t:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://ml-training-data/out", "KmsKeyId": rotated},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10,
                        "VolumeKmsKeyId": rotated},
        StoppingCondition={"MaxRuntimeInSeconds": 60}, Environment={"HF_TOKEN": "hf_not-in-evidence", "EPOCHS": "3"},
    )  # fmt: skip
    sagemaker.create_model(ModelName="ranker", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
                           PrimaryContainer={"Image": "123.dkr.ecr.us-east-1.amazonaws.com/r:1"})  # fmt: skip
    sagemaker.create_endpoint_config(EndpointConfigName="ranker", ProductionVariants=[
        {"VariantName": "all", "ModelName": "ranker", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large"}])  # fmt: skip
    config = moto.client("config")
    config.put_configuration_recorder(ConfigurationRecorder={"name": "default",
                                                             "roleARN": f"arn:aws:iam::{ACCOUNT}:role/config",
                                                             "recordingGroup": {"allSupported": True}})  # fmt: skip
    config.put_delivery_channel(DeliveryChannel={"name": "default", "s3BucketName": "trail-logs"})
    config.start_configuration_recorder(ConfigurationRecorderName="default")
    moto.client("guardduty").create_detector(Enable=True)


INFRA = {"enabled": True, "buckets": ["ml-*"]}


def infra_collect(moto: Moto, **given: Any) -> tuple[dict[str, list[Observation]], Any]:
    return collect(moto, regions=[REGION], ecr={"enabled": False}, infrastructure={**INFRA, **given})


def judge(check_id: str, observation: Observation, **given: Any) -> Any:
    check = next(c for c in INFRA_CHECKS if c.id == check_id)
    settings = AwsSettings.model_validate({"infrastructure": {**INFRA, **given}})
    return check.evaluate(observation, settings, NOW)


EXPECTED = {
    "aws.cloudtrail.multi_region_logging": (Outcome.PASS, []),
    "aws.cloudtrail.log_integrity": (Outcome.PASS, []),
    "aws.cloudtrail.log_bucket_protected": (Outcome.PASS, []),
    "aws.cloudtrail.designated_data_events": (Outcome.FAIL, ["model-store"]),
    "aws.s3.default_encryption": (Outcome.FAIL, ["model-store"]),
    "aws.s3.secure_transport": (Outcome.FAIL, ["model-store"]),
    "aws.s3.block_public_access": (Outcome.FAIL, ["model-store"]),
    "aws.s3.not_public": (Outcome.FAIL, ["model-store"]),
    "aws.s3.versioning": (Outcome.FAIL, ["model-store"]),
    "aws.ec2.no_open_admin_ports": (Outcome.FAIL, ["ssh-world"]),
    "aws.ec2.ebs_default_encryption": (Outcome.FAIL, [f"{ACCOUNT}/{REGION}"]),
    "aws.ec2.vpc_flow_logs": (Outcome.FAIL, ["default VPC"]),
    "aws.ec2.no_public_images_snapshots": (Outcome.FAIL, ["one snapshot"]),
    "aws.kms.key_rotation": (Outcome.FAIL, ["one key"]),
    "aws.rds.storage_encrypted": (Outcome.FAIL, ["scratch"]),
    "aws.rds.backup_retention": (Outcome.FAIL, ["scratch"]),
    "aws.rds.not_public": (Outcome.FAIL, ["scratch", "scratch-copy"]),
    "aws.secretsmanager.rotation": (Outcome.FAIL, ["hf-token"]),
    "aws.guardduty.enabled_no_old_high_findings": (Outcome.ERROR, []),
    "aws.config.recorder_on": (Outcome.PASS, []),
    "aws.logs.sagemaker_retention_encryption": (Outcome.FAIL, ["/aws/sagemaker/TrainingJobs"]),
    "aws.sagemaker.notebooks_restricted": (Outcome.FAIL, ["open-nb"]),
    "aws.sagemaker.kms_encrypted": (Outcome.FAIL, ["notebook/open-nb"]),
    # moto's DescribeTrainingJob leaves Environment out, so the names are judged on a payload below
    "aws.sagemaker.no_secret_like_environment": (Outcome.PASS, []),
    "aws.lambda.no_secret_like_environment": (Outcome.NOT_APPLICABLE, []),
}


def _resource(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("name") or item.get("resource"))
    return str(item)


def test_a_seeded_ml_account_is_judged_by_every_infrastructure_check(moto: Moto) -> None:
    seed_infrastructure(moto)
    found, ctx = infra_collect(moto)
    assert {c.id for c in INFRA_CHECKS} == set(EXPECTED)
    results = {c.id: c.evaluate(found[c.kind][0], AwsSettings.model_validate({"infrastructure": INFRA}), NOW)
               for c in INFRA_CHECKS}  # fmt: skip
    outcomes = {check_id: r.result for check_id, r in results.items()}
    assert outcomes == {check_id: expected[0] for check_id, expected in EXPECTED.items()}
    failing = {check_id: sorted(_resource(f) for f in r.details.get("failing", [])) for check_id, r in results.items()}
    assert failing["aws.s3.not_public"] == ["model-store"]  # designated by tag, public by ACL
    assert failing["aws.s3.default_encryption"] == ["model-store"]
    assert failing["aws.cloudtrail.designated_data_events"] == ["model-store"]
    (open_group,) = results["aws.ec2.no_open_admin_ports"].details["failing"]
    assert (open_group["name"], open_group["ports"]) == ("ssh-world", [22])  # 443 to ::/0 is not an admin port
    assert len(failing["aws.ec2.no_public_images_snapshots"]) == 1
    assert len(failing["aws.kms.key_rotation"]) == 1
    assert failing["aws.rds.storage_encrypted"] == ["scratch"]
    assert failing["aws.rds.not_public"] == ["scratch", "scratch-copy"]
    # the training job uses the key for volume and artifacts
    assert failing["aws.sagemaker.kms_encrypted"] == ["endpoint-config/ranker", "notebook/open-nb"]
    assert failing["aws.secretsmanager.rotation"] == ["hf-token"]
    assert failing["aws.logs.sagemaker_retention_encryption"] == ["/aws/sagemaker/TrainingJobs"]
    assert failing["aws.sagemaker.notebooks_restricted"] == ["open-nb"]
    buckets = [b["name"] for b in found["aws.s3.buckets"][0].payload["buckets"]]
    assert buckets == ["ml-training-data", "model-store"]  # marketing-site and trail-logs are not designated
    assert "not-in-evidence" not in json.dumps([o.payload for kind in found for o in found[kind]])
    (guardduty,) = found["aws.guardduty.detectors"]
    assert guardduty.payload["error"]["permission"] == "guardduty:ListFindings"
    assert [p.source for p in ctx.problems] == [f"aws://{ACCOUNT}/{REGION}/aws.guardduty.detectors"]


def test_scope_all_reads_every_bucket(moto: Moto) -> None:
    seed_infrastructure(moto)
    found, _ = infra_collect(moto, scope="all", skip_kinds=["aws.guardduty.detectors"])
    names = [b["name"] for b in found["aws.s3.buckets"][0].payload["buckets"]]
    assert names == ["marketing-site", "ml-training-data", "model-store", "trail-logs"]
    assert "aws.guardduty.detectors" not in found


def test_an_unconfigured_account_is_never_a_pass(moto: Moto) -> None:
    found, _ = infra_collect(moto, skip_kinds=["aws.guardduty.detectors"])
    results = {c.id: c.evaluate(found[c.kind][0], AwsSettings(), NOW).result
               for c in INFRA_CHECKS if c.kind in found}  # fmt: skip
    passed = sorted(check_id for check_id, r in results.items() if r is Outcome.PASS)
    # moto's default VPC has a default group with no ingress; no snapshot, image or RDS instance is public
    assert passed == ["aws.ec2.no_open_admin_ports", "aws.ec2.no_public_images_snapshots", "aws.rds.not_public"]
    assert results["aws.cloudtrail.multi_region_logging"] is Outcome.FAIL
    assert results["aws.config.recorder_on"] is Outcome.FAIL
    assert results["aws.s3.default_encryption"] is Outcome.NOT_APPLICABLE


def test_every_infrastructure_call_is_granted_by_the_shipped_policy(moto: Moto) -> None:
    seed_infrastructure(moto)
    called: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        called.add(iam_action(model.service_model.service_name, model.name, model.service_model.signing_name))

    session = get_session()
    session.register("before-call", record)
    collect(moto, session=session, regions=[REGION], ecr={"enabled": False}, infrastructure=INFRA)
    granted = [
        action
        for statement in json.loads(POLICY_FILE.read_text())["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]
    ungranted = sorted(a for a in called if not any(fnmatchcase(a, pattern) for pattern in granted))
    assert ungranted == [], f"calls deploy/aws/iam-policy.json does not grant: {ungranted}"
    infrastructure = next(
        s for s in json.loads(POLICY_FILE.read_text())["Statement"] if s["Sid"] == "MlPlatformInfrastructure"
    )
    # moto has no GuardDuty ListFindings (the call fails), so GetFindings is never reached; the Stubber test has it
    assert sorted(set(infrastructure["Action"]) - called) == ["guardduty:GetFindings"]


def test_the_shipped_policy_is_read_only() -> None:
    document = json.loads(POLICY_FILE.read_text())
    writes = ("Create", "Put", "Delete", "Update", "Attach", "Modify", "Start", "Stop", "Enable", "Disable")
    actions = [
        a for s in document["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert [a for a in actions if a.split(":")[1].startswith(writes)] == []


# ------------------------------------------------------------------------------------------- GuardDuty (Stubber)


def _stubbed_guardduty(findings: list[dict[str, Any]]) -> Any:
    client = get_session().create_client(
        "guardduty", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.add_response("list_detectors", {"DetectorIds": ["d1"]})
    stubber.add_response("get_detector", {"Status": "ENABLED", "ServiceRole": "r"}, {"DetectorId": "d1"})
    stubber.add_response("list_findings", {"FindingIds": [f["Id"] for f in findings]})
    if findings:
        stubber.add_response("get_findings", {"Findings": findings})
    stubber.activate()
    return client


def _finding(finding_id: str, age: timedelta, archived: bool = False) -> dict[str, Any]:
    created = (NOW - age).isoformat().replace("+00:00", "Z")
    return {
        "AccountId": ACCOUNT, "Arn": f"arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/d1/finding/{finding_id}",
        "CreatedAt": created, "Id": finding_id, "Region": REGION, "Resource": {}, "SchemaVersion": "2.0",
        "Severity": 8.0, "Type": "CryptoCurrency:EC2/BitcoinTool.B!DNS", "UpdatedAt": created,
        "Service": {"Archived": archived},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("findings", "expected"),
    [
        ([], Outcome.PASS),
        ([_finding("fresh", timedelta(days=1))], Outcome.PASS),
        ([_finding("old", timedelta(days=30))], Outcome.FAIL),
        ([_finding("odd", timedelta(days=1)) | {"CreatedAt": "yesterday"}], Outcome.ERROR),
    ],
    ids=["none", "recent", "old", "unreadable-time"],
)
def test_guardduty_high_findings_older_than_the_limit_fail(findings: list[dict[str, Any]], expected: Outcome) -> None:
    client = _stubbed_guardduty(findings)
    payload = read_guardduty(Scope(ACCOUNT, REGION, lambda _: client), AwsSettings().infrastructure)
    subject = Subject("aws_region", f"{ACCOUNT}/{REGION}")
    observation = Observation(kind="aws.guardduty.detectors", subject=subject, observed_at=NOW, payload=payload)
    result = judge("aws.guardduty.enabled_no_old_high_findings", observation)
    assert result.result is expected, result.message
    if expected is Outcome.FAIL:
        assert [f["resource"] for f in result.details["failing"]] == ["old"]


def test_environment_variable_names_that_look_like_secrets_fail_by_name_only() -> None:
    payload = {"training_jobs": [{"TrainingJobName": "finetune", "environment_names": ["EPOCHS", "HF_TOKEN"]}],
               "functions": [{"FunctionName": "ingest", "environment_names": ["db_password", "REGION"]}]}  # fmt: skip
    subject = Subject("aws_region", f"{ACCOUNT}/{REGION}")
    for check_id, kind, resource, name in (
        ("aws.sagemaker.no_secret_like_environment", "aws.sagemaker.resources", "training-job/finetune", "HF_TOKEN"),
        ("aws.lambda.no_secret_like_environment", "aws.compute.environment_names", "ingest", "db_password"),
    ):
        result = judge(check_id, Observation(kind=kind, subject=subject, observed_at=NOW, payload=payload))
        assert result.result is Outcome.FAIL
        assert result.details["failing"] == [{"resource": resource, "variables": [name]}]
        assert judge(check_id, Observation(kind=kind, subject=subject, observed_at=NOW, payload=payload),
                     secret_name_patterns=["*APIKEY*"]).result is Outcome.PASS  # fmt: skip


def test_privilege_escalation_is_judged_on_what_moto_returns(moto: Moto) -> None:
    """seed_iam: alice (group admins, * on *), bob (* on *), role break-glass (* on *, allowlisted), role reader
    (s3:GetObject); plus ci-deployer who may pass a Lambda-trusted role and create functions."""
    test_aws.seed_iam(moto)
    iam = moto.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}  # fmt: skip
    iam.create_role(RoleName="fn-exec", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_user(UserName="ci-deployer")
    deploy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/fn-*"},
        {"Effect": "Allow", "Action": "lambda:CreateFunction", "Resource": "*"}]}  # fmt: skip
    iam.put_user_policy(UserName="ci-deployer", PolicyName="deploy", PolicyDocument=json.dumps(deploy))
    found, _ = collect(moto, ecr={"enabled": False})
    (details,) = found["aws.iam.authorization_details"]
    settings = AwsSettings.model_validate({"admin_allowlist": ["arn:aws:iam::*:role/break-glass"]})
    result = NO_PRIVILEGE_ESCALATION.evaluate(details, settings, NOW)
    assert result.result is Outcome.FAIL, result.message
    failing = {f["arn"].rsplit("/", 1)[-1]: {p["path"] for p in f["paths"]} for f in result.details["failing"]}
    assert set(failing) == {"alice", "bob", "ci-deployer"}
    assert failing["ci-deployer"] == {"passrole-lambda"}
    assert {"put-user-policy", "attach-group-policy", "passrole-ec2"} <= failing["alice"]
    assert "passrole-ec2" in failing["bob"]  # break-glass and reader trust ec2; no role trusts sagemaker
    assert "passrole-sagemaker-training" not in failing["bob"]
    assert result.details["allowlisted"] == [f"arn:aws:iam::{ACCOUNT}:role/break-glass"]
