"""The aws connector against a real moto server: IAM evidence, ECR scans, accounts, permissions."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.session import Session, get_session

from collector.connector import CollectContext, load_connector
from collector.model import Observation, Outcome, Subject
from collector.sdk.testing import ConnectorConformance
from connectors.aws import CHECKS, AwsConnector, AwsSettings
from connectors.aws.infra import INFRA_KINDS
from connectors.container_scan import NO_FIXABLE_VULNS
from tests.helpers import running_moto_server

ROOT = Path(__file__).parents[2]
POLICY_FILE = ROOT / "deploy" / "aws" / "iam-policy.json"
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
REGION = "us-east-1"
ADMIN_DOCUMENT = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 7,
        "digest": "sha256:" + "c" * 64,
    },
    "layers": [],
}

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with running_moto_server() as url:
        yield url


@dataclass
class Moto:
    url: str

    def client(self, service: str, **credentials: str) -> Any:
        credentials = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **credentials)  # type: ignore[call-overload]

    def assume(self, account: str, role: str = "evidence-collector-read") -> dict[str, str]:
        creds = self.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="seed")
        c = creds["Credentials"]
        return {
            "aws_access_key_id": c["AccessKeyId"],
            "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"],
        }

    def enforce_iam(self, enforced: bool) -> None:
        requests.post(
            f"{self.url}/moto-api/reset-auth", data=b"0" if enforced else b"inf", timeout=5
        ).raise_for_status()


@pytest.fixture
def moto(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Moto]:
    """A clean moto account and a default credential chain that finds only the env keys."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=5).raise_for_status()
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    moto = Moto(moto_url)
    yield moto
    moto.enforce_iam(False)


# ------------------------------------------------------------------------------------------- seeding


def seed_iam(moto: Moto, **credentials: str) -> dict[str, str]:
    """alice: console + MFA, in group admins (wildcard); bob: console, no MFA, wildcard admin; carol: one key;
    ci-bot: two keys; role break-glass: wildcard (allowlisted); role reader: read-only. Weak password policy."""
    iam = moto.client("iam", **credentials)
    admin = iam.create_policy(PolicyName="Admin", PolicyDocument=json.dumps(ADMIN_DOCUMENT))["Policy"]["Arn"]
    for user in ("alice", "bob", "carol", "ci-bot"):
        iam.create_user(UserName=user)
    for user in ("alice", "bob"):
        iam.create_login_profile(UserName=user, Password="Correct-Horse-9!")
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice")["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName="alice", SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )
    iam.create_group(GroupName="admins")
    iam.add_user_to_group(GroupName="admins", UserName="alice")
    iam.attach_group_policy(GroupName="admins", PolicyArn=admin)
    iam.attach_user_policy(UserName="bob", PolicyArn=admin)
    keys = {"carol": iam.create_access_key(UserName="carol")["AccessKey"]["AccessKeyId"]}
    for _ in range(2):
        keys.setdefault("ci-bot", iam.create_access_key(UserName="ci-bot")["AccessKey"]["AccessKeyId"])
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    iam.create_role(RoleName="break-glass", AssumeRolePolicyDocument=trust)
    iam.attach_role_policy(RoleName="break-glass", PolicyArn=admin)
    iam.create_role(RoleName="reader", AssumeRolePolicyDocument=trust)
    iam.put_role_policy(
        RoleName="reader",
        PolicyName="read-models",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
        ),
    )
    iam.update_account_password_policy(MinimumPasswordLength=8, RequireNumbers=True)
    return keys


def push_image(ecr: Any, repository: str, tag: str, marker: str) -> str:
    manifest = {**MANIFEST, "config": {**MANIFEST["config"], "digest": "sha256:" + marker * 64}}
    return str(
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)["image"]["imageId"][
            "imageDigest"
        ]
    )


def seed_ecr(moto: Moto, shared_fixtures: Path) -> dict[str, str]:
    """model-server:1.0 basic scan (moto's HIGH finding); feature-store:2.3.0 enhanced scan with a real Inspector
    finding; notebook:dev pushed but never scanned."""
    ecr = moto.client("ecr")
    for repository in ("model-server", "feature-store", "notebook"):
        ecr.create_repository(repositoryName=repository)
    digests = {
        "model-server": push_image(ecr, "model-server", "1.0", "a"),
        "feature-store": push_image(ecr, "feature-store", "2.3.0", "b"),
        "notebook": push_image(ecr, "notebook", "dev", "d"),
    }
    findings = json.loads((shared_fixtures / "aws-ecr" / "inspector2-ecr-image-one-finding.json").read_text())[
        "findings"
    ]
    enhanced = {
        "registryId": ACCOUNT,
        "repositoryName": "feature-store",
        "imageId": {"imageTag": "2.3.0"},
        "imageScanStatus": {"status": "ACTIVE", "description": "Continuous scan is selected for image."},
        "imageScanFindings": {
            "imageScanCompletedAt": time.time() - 3600,
            "findingSeverityCounts": {"MEDIUM": 1},
            "enhancedFindings": findings,
        },
    }
    requests.post(
        f"{moto.url}/moto-api/static/ecr/scan-finding-results",
        json={"results": [enhanced], "region": REGION},
        timeout=5,
    ).raise_for_status()
    for repository, tag in (("model-server", "1.0"), ("feature-store", "2.3.0")):
        ecr.start_image_scan(repositoryName=repository, imageId={"imageTag": tag})
    return digests


def collect(
    moto: Moto, session: Session | None = None, now: datetime | None = None, **given: Any
) -> tuple[dict[str, list[Observation]], CollectContext]:
    settings = AwsSettings.model_validate({"endpoint_url": moto.url, "credential_report_poll": "0.05s", **given})
    connector = AwsConnector(settings, session=session)
    ctx = CollectContext(instance="aws", run_id="r1", now=now or datetime.now(UTC))
    found: dict[str, list[Observation]] = {}
    for observation in connector.collect(ctx):
        found.setdefault(observation.kind, []).append(observation)
    return found, ctx


def outcome(check_id: str, observation: Observation, now: datetime | None = None, **given: Any) -> Any:
    check = next(c for c in CHECKS if c.id == check_id)
    return check.run(observation, AwsSettings.model_validate(given), now or datetime.now(UTC))


# ------------------------------------------------------------------------------------------- IAM


def test_iam_evidence_of_a_seeded_account_and_each_check(moto: Moto) -> None:
    seed_iam(moto)
    found, ctx = collect(moto, ecr={"enabled": False})
    assert ctx.problems == []
    (report,) = found["aws.iam.credential_report"]
    (details,) = found["aws.iam.authorization_details"]
    (policy,) = found["aws.iam.password_policy"]
    assert report.subject == details.subject == policy.subject == Subject("aws_account", ACCOUNT)
    users = {p["user"]: p for p in report.payload["principals"]}
    assert set(users) == {"alice", "bob", "carol", "ci-bot"}
    assert (users["alice"]["mfa_active"], users["bob"]["mfa_active"]) == (True, False)
    assert users["ci-bot"]["access_key_2_active"] is True
    assert report.observed_at == datetime.fromisoformat(report.payload["generated_at"])  # the report's GeneratedTime

    assert outcome("aws.iam.root_mfa", report).result is Outcome.NOT_APPLICABLE  # moto writes no root row
    mfa = outcome("aws.iam.console_users_mfa", report)
    assert (mfa.result, mfa.message) == (Outcome.FAIL, "1 of 2 console users have no MFA: bob")
    assert outcome("aws.iam.access_keys_rotated", report).result is Outcome.PASS
    later = datetime.now(UTC) + timedelta(days=91)
    rotated = outcome("aws.iam.access_keys_rotated", report, now=later)
    assert rotated.result is Outcome.FAIL
    assert {(f["user"], f["key"]) for f in rotated.details["failing"]} == {("carol", 1), ("ci-bot", 1), ("ci-bot", 2)}
    assert outcome("aws.iam.unused_credentials_disabled", report).result is Outcome.PASS
    unused = outcome("aws.iam.unused_credentials_disabled", report, now=datetime.now(UTC) + timedelta(days=46))
    assert unused.result is Outcome.FAIL
    assert [f["user"] for f in unused.details["failing"]] == ["alice", "bob", "carol", "ci-bot"]

    admins = outcome("aws.iam.no_wildcard_admin", details, admin_allowlist=[f"arn:aws:iam::{ACCOUNT}:role/break-glass"])
    assert admins.result is Outcome.FAIL
    assert [f["arn"] for f in admins.details["failing"]] == [
        f"arn:aws:iam::{ACCOUNT}:user/bob",
        f"arn:aws:iam::{ACCOUNT}:group/admins",
    ]
    assert admins.details["group_members"] == {"admins": ["alice"]}
    assert admins.details["allowlisted"] == [f"arn:aws:iam::{ACCOUNT}:role/break-glass"]
    everyone = [f"arn:aws:iam::{ACCOUNT}:{p}" for p in ("user/bob", "group/admins", "role/break-glass")]
    assert outcome("aws.iam.no_wildcard_admin", details, admin_allowlist=everyone).result is Outcome.PASS

    assert policy.payload["policy"]["MinimumPasswordLength"] == 8
    weak = outcome("aws.iam.password_policy", policy)
    assert weak.result is Outcome.FAIL
    assert "minimum length 8 < 14" in weak.message


def test_missing_password_policy_is_a_finding_not_a_crash(moto: Moto) -> None:
    found, ctx = collect(moto, ecr={"enabled": False})
    assert ctx.problems == []
    (policy,) = found["aws.iam.password_policy"]
    assert policy.payload == {"account_id": ACCOUNT, "present": False, "policy": None}
    assert outcome("aws.iam.password_policy", policy).result is Outcome.FAIL


def test_a_strong_password_policy_passes(moto: Moto) -> None:
    moto.client("iam").update_account_password_policy(MinimumPasswordLength=16, PasswordReusePrevention=24)
    found, _ = collect(moto, ecr={"enabled": False})
    assert outcome("aws.iam.password_policy", found["aws.iam.password_policy"][0]).result is Outcome.PASS


# ------------------------------------------------------------------------------------------- ECR


def test_ecr_scans_become_container_scan_evidence_judged_by_the_same_checks(moto: Moto, shared_fixtures: Path) -> None:
    digests = seed_ecr(moto, shared_fixtures)
    found, ctx = collect(moto)
    scans = {o.subject.id.split("/")[-1].split("@")[0]: o for o in found["container.scan"]}
    assert set(scans) == {"model-server", "feature-store"}
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    assert [(p.source, p.reason) for p in ctx.problems] == [
        (f"{uri}/notebook@{digests['notebook']}", "never scanned (ScanNotFoundException)")
    ]

    basic = scans["model-server"]
    assert basic.subject == Subject("container_image", f"{uri}/model-server@{digests['model-server']}")
    assert basic.payload["scanner"] == {"name": "ecr-basic", "version": None}
    assert basic.payload["artifact"]["repo_tags"] == [f"{uri}/model-server:1.0"]
    assert basic.payload["vulnerabilities"] == [
        {
            "id": "CVE-9999-9999",
            "package": "moto_fake",
            "installed_version": "9.9.9",
            "fixed_version": None,
            "severity": "HIGH",
            "fixable": None,
        }
    ]
    result = NO_FIXABLE_VULNS.run(basic, _scan_settings(), datetime.now(UTC))
    assert result.result is Outcome.FAIL  # basic scans carry no fix state: never a pass with a HIGH finding

    enhanced = scans["feature-store"]
    assert enhanced.payload["scanner"]["name"] == "amazon-inspector"
    assert enhanced.payload["fix_state_known"] is True
    assert enhanced.payload["vulnerabilities"] == [
        {
            "id": "CVE-2021-3744",
            "package": "linux",
            "installed_version": "4.19.118",
            "fixed_version": "0:4.19.232-1",
            "severity": "MEDIUM",
            "fixable": True,
        }
    ]
    assert abs((datetime.now(UTC) - timedelta(hours=1) - enhanced.observed_at).total_seconds()) < 120
    assert outcome("container.no_fixable_vulns", enhanced).result is Outcome.PASS
    strict = outcome("container.no_fixable_vulns", enhanced, ecr={"fail_on_severity": "medium"})
    assert (strict.result, strict.details["counts"]["MEDIUM"]) == (Outcome.FAIL, 1)
    assert outcome("container.scan_recent", enhanced).result is Outcome.PASS
    assert outcome("container.scan_recent", enhanced, ecr={"max_age": "30m"}).result is Outcome.FAIL


LOCAL_FIXTURES = Path(__file__).parents[1] / "fixtures"


def seed_one_scan(moto: Moto, status: dict[str, str], completed_at: float) -> str:
    """feature-store:2.3.0 with the real Inspector finding, its scan status and completion time as given."""
    ecr = moto.client("ecr")
    ecr.create_repository(repositoryName="feature-store")
    digest = push_image(ecr, "feature-store", "2.3.0", "b")
    findings = json.loads((LOCAL_FIXTURES / "aws-ecr" / "inspector2-ecr-image-one-finding.json").read_text())
    result = {
        "registryId": ACCOUNT,
        "repositoryName": "feature-store",
        "imageId": {"imageTag": "2.3.0"},
        "imageScanStatus": status,
        "imageScanFindings": {"imageScanCompletedAt": completed_at, "enhancedFindings": findings["findings"]},
    }
    requests.post(
        f"{moto.url}/moto-api/static/ecr/scan-finding-results",
        json={"results": [result], "region": REGION},
        timeout=5,
    ).raise_for_status()
    ecr.start_image_scan(repositoryName="feature-store", imageId={"imageTag": "2.3.0"})
    return digest


@pytest.mark.parametrize("state", ["FAILED", "UNSUPPORTED_IMAGE", "FINDINGS_UNAVAILABLE"])
def test_an_ecr_scan_that_did_not_complete_is_recorded_as_an_error_with_ecrs_words(moto: Moto, state: str) -> None:
    description = "UnsupportedImageError: The operating system and/or package manager are not supported."
    seed_one_scan(moto, {"status": state, "description": description}, time.time() - 3600)
    found, _ = collect(moto)
    [scan] = found["container.scan"]
    assert scan.payload["scan_errors"] == [f"ECR image scan status {state}: {description}"]
    for check_id in ("container.no_fixable_vulns", "container.scan_recent"):
        result = outcome(check_id, scan)
        assert result.result is Outcome.ERROR
        assert description in result.message


def test_an_ecr_scan_still_in_progress_is_skipped_with_a_problem(moto: Moto) -> None:
    seed_one_scan(moto, {"status": "IN_PROGRESS", "description": "scanning"}, time.time())
    found, ctx = collect(moto)
    assert "container.scan" not in found
    assert [p.reason for p in ctx.problems] == ["no usable scan, status IN_PROGRESS: scanning"]


def test_an_ecr_scan_dated_after_collection_is_in_the_future(moto: Moto) -> None:
    seed_one_scan(moto, {"status": "ACTIVE", "description": "Continuous scan"}, time.time() + 30 * 60)
    found, _ = collect(moto)
    [scan] = found["container.scan"]
    result = outcome("container.scan_recent", scan)
    assert result.result is Outcome.FAIL
    assert "in the future" in result.message


def _scan_settings() -> Any:
    from connectors.container_scan import ContainerScanSettings

    return ContainerScanSettings(paths=["x"])


def test_images_are_selected_by_tag_glob_or_push_age(moto: Moto, shared_fixtures: Path) -> None:
    seed_ecr(moto, shared_fixtures)
    future = datetime.now(UTC) + timedelta(days=40)
    none_recent, _ = collect(moto, now=future, ecr={"pushed_within": "30d"})
    assert "container.scan" not in none_recent
    tagged, ctx = collect(moto, now=future, ecr={"pushed_within": "30d", "tags": ["2.*"]})
    assert [o.payload["artifact"]["name"].rsplit("/", 1)[-1] for o in tagged["container.scan"]] == [
        "feature-store:2.3.0"
    ]
    assert ctx.problems == []


# ------------------------------------------------------------------------------------------- accounts, permissions


def test_every_call_is_granted_by_the_shipped_policy_and_every_grant_is_used(moto: Moto, shared_fixtures: Path) -> None:
    seed_iam(moto)
    seed_ecr(moto, shared_fixtures)
    called: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        called.add(f"{model.service_model.signing_name}:{model.name}")

    session = get_session()
    session.register("before-call", record)
    collect(
        moto,
        session=session,
        accounts=[{"id": ACCOUNT, "role_arn": f"arn:aws:iam::{ACCOUNT}:role/evidence-collector-read"}],
    )
    collect(moto, session=session)
    granted = [
        action
        for statement in json.loads(POLICY_FILE.read_text())["Statement"]
        if not statement["Sid"].startswith("DataAccess")  # the data_access connector's grants, tested there
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]
    ungranted = sorted(a for a in called if not any(fnmatchcase(a, pattern) for pattern in granted))
    assert ungranted == [], f"the connector calls actions deploy/aws/iam-policy.json does not grant: {ungranted}"
    # inspector2:ListFindings is what ECR checks on the caller's behalf for enhanced findings; nothing else unused
    # (the infrastructure grants are used by test_aws_infra.py, with infrastructure evidence enabled)
    statements = json.loads(POLICY_FILE.read_text())["Statement"]
    infrastructure = next(s["Action"] for s in statements if s["Sid"] == "MlPlatformInfrastructure")
    assert sorted(set(granted) - called - set(infrastructure)) == ["inspector2:ListFindings"]


def _create_collector_user(moto: Moto, document: dict[str, Any]) -> dict[str, str]:
    iam = moto.client("iam")
    iam.create_user(UserName="evidence-collector")
    iam.put_user_policy(UserName="evidence-collector", PolicyName="read", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName="evidence-collector")["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def test_with_iam_enforced_the_shipped_policy_is_enough(
    moto: Moto, shared_fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_iam(moto)
    seed_ecr(moto, shared_fixtures)
    for name, value in _create_collector_user(moto, json.loads(POLICY_FILE.read_text())).items():
        monkeypatch.setenv(name, value)
    moto.enforce_iam(True)
    found, ctx = collect(moto)
    assert [p.reason for p in ctx.problems] == ["never scanned (ScanNotFoundException)"]
    assert all("error" not in o.payload for kind in found for o in found[kind])
    assert len(found["container.scan"]) == 2


def test_access_denied_on_one_api_marks_that_part_error_and_the_rest_proceeds(
    moto: Moto, shared_fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_iam(moto)
    seed_ecr(moto, shared_fixtures)
    document = json.loads(POLICY_FILE.read_text())
    for statement in document["Statement"]:
        if isinstance(statement["Action"], list):
            statement["Action"] = [
                a
                for a in statement["Action"]
                if a not in ("iam:GetAccountPasswordPolicy", "ecr:DescribeImageScanFindings")
            ]
    for name, value in _create_collector_user(moto, document).items():
        monkeypatch.setenv(name, value)
    moto.enforce_iam(True)
    found, ctx = collect(moto)
    (policy,) = found["aws.iam.password_policy"]
    assert policy.payload["error"]["permission"] == "iam:GetAccountPasswordPolicy"
    assert policy.payload["error"]["code"] == "AccessDenied"
    assert outcome("aws.iam.password_policy", policy).result is Outcome.ERROR
    assert "error" not in found["aws.iam.credential_report"][0].payload
    assert "error" not in found["aws.iam.authorization_details"][0].payload
    assert "container.scan" not in found
    reasons = [p.reason for p in ctx.problems]
    assert any(r.startswith("iam:GetAccountPasswordPolicy: AccessDenied") for r in reasons), reasons
    assert any(r.startswith("ecr:DescribeImageScanFindings denied") for r in reasons), reasons


def test_each_account_is_reached_by_assume_role_and_a_failing_one_fails_alone(
    moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_policy = json.loads(POLICY_FILE.read_text())
    seed_iam(moto)
    other = moto.assume(OTHER_ACCOUNT)
    iam_other = moto.client("iam", **other)
    iam_other.create_user(UserName="dana")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam_other.create_role(RoleName="evidence-collector-read", AssumeRolePolicyDocument=json.dumps(trust))
    iam_other.put_role_policy(
        RoleName="evidence-collector-read", PolicyName="read", PolicyDocument=json.dumps(read_policy)
    )
    for name, value in _create_collector_user(moto, read_policy).items():
        monkeypatch.setenv(name, value)
    moto.enforce_iam(True)
    accounts = [
        {"id": "333333333333", "role_arn": "arn:aws:iam::333333333333:role/admin", "external_id": "not-ours"},
        {
            "id": OTHER_ACCOUNT,
            "role_arn": f"arn:aws:iam::{OTHER_ACCOUNT}:role/evidence-collector-read",
            "external_id": "ext-1234",
        },
    ]
    found, ctx = collect(moto, accounts=accounts, ecr={"enabled": False})
    assert [p.source for p in ctx.problems] == ["aws://333333333333"]
    assert "sts:AssumeRole on arn:aws:iam::333333333333:role/admin failed (AccessDenied)" in ctx.problems[0].reason
    (report,) = found["aws.iam.credential_report"]
    assert report.subject == Subject("aws_account", OTHER_ACCOUNT)
    assert [p["user"] for p in report.payload["principals"]] == ["dana"]
    assert {o.subject.id for kind in found for o in found[kind]} == {OTHER_ACCOUNT}


def test_no_credentials_is_a_configuration_error_saying_where_boto3_looked(
    moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector.errors import ConfigurationError

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigurationError, match="default chain"):
        collect(moto, ecr={"enabled": False})


# ------------------------------------------------------------------------------------------- settings, plugin


def test_connector_is_registered_and_declares_container_scan() -> None:
    cls = load_connector("aws")
    assert cls is AwsConnector
    assert cls.kinds == frozenset(
        {"aws.iam.credential_report", "aws.iam.authorization_details", "aws.iam.password_policy", "container.scan"}
    ) | INFRA_KINDS
    assert [c.id for c in cls.checks][-2:] == ["container.no_fixable_vulns", "container.scan_recent"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"accounts": [{"id": "123", "role_arn": "arn:aws:iam::123:role/x"}]}, "must be 12 digits"),
        (
            {"accounts": [{"id": "111111111111", "role_arn": "arn:aws:iam::222222222222:role/x"}]},
            "is in account 222222222222",
        ),
        ({"accounts": [{"id": "111111111111", "role_arn": "arn:aws:iam::111111111111:user/x"}]}, "not an IAM role ARN"),
        ({"regions": ["Ireland"]}, "not region names"),
        ({"retry_mode": "legacy"}, "adaptive"),
        ({"max_key_age": "soon"}, "not a duration"),
    ],
)
def test_bad_settings_say_what_to_fix(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AwsSettings.model_validate(raw)


class TestAwsConformance(ConnectorConformance):
    connector_cls = AwsConnector
    invalid_settings = [
        {"accounts": [{"id": "1", "role_arn": "x"}]},
        {"ecr": {"fail_on_severity": "severe"}},
        {"max_attempts": 0},
    ]
    @pytest.fixture(autouse=True)
    def _seeded(self, moto: Moto, shared_fixtures: Path) -> None:
        seed_iam(moto)
        seed_ecr(moto, shared_fixtures)
        self.url = moto.url

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "endpoint_url": self.url,
            "regions": [REGION],
            "admin_allowlist": ["*"],
            "credential_report_poll": "0.05s",
        }


def test_ecr_without_any_region_is_a_configuration_error(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    from collector.errors import ConfigurationError

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(ConfigurationError, match="no AWS region"):
        collect(moto)
    found, ctx = collect(moto, ecr={"enabled": False})  # IAM is global: it needs none
    assert ctx.problems == []
    assert set(found) == {"aws.iam.credential_report", "aws.iam.authorization_details", "aws.iam.password_policy"}
