"""The aws connector where moto has gaps: botocore Stubber fed with real AWS shapes, and real CSV reports.

moto neither pages GetAccountAuthorizationDetails nor writes a ``<root_account>`` row, and its reports
are always ready at once; these paths run here against recorded responses from tests/fixtures/aws-iam.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber

from collector.connector import CollectContext
from collector.errors import Disposition, TransientError, classify
from collector.model import Observation, Outcome, Subject
from collector.sdk.vulnerability_scan import to_payload
from connectors.aws import (
    ACCESS_KEYS_ROTATED,
    CONSOLE_USERS_MFA,
    NO_ROOT_ACCESS_KEYS,
    NO_WILDCARD_ADMIN,
    PASSWORD_POLICY,
    ROOT_MFA,
    UNUSED_CREDENTIALS_DISABLED,
    AwsConnector,
    AwsSettings,
)
from connectors.aws.checks import CONTAINER_SCAN_CHECKS
from connectors.aws.ecr import EcrImage, to_scanned_artifact
from connectors.aws.iam import (
    CredentialReportError,
    fetch_authorization_details,
    fetch_credential_report,
    parse_credential_report,
)

DATA = Path(__file__).parents[1] / "data" / "aws"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ACCOUNT = "278368863034"


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="stub", aws_secret_access_key="stub")


@pytest.fixture
def iam() -> Iterator[tuple[Any, Stubber]]:
    iam_client = client("iam")
    with Stubber(iam_client) as stubber:
        yield iam_client, stubber
        stubber.assert_no_pending_responses()


def report_observation(content: bytes, account: str = "111122223333") -> Observation:
    principals, problems = parse_credential_report(content)
    assert problems == []
    payload = {"account_id": account, "generated_at": NOW.isoformat(), "principals": principals}
    return Observation("aws.iam.credential_report", Subject("aws_account", account), NOW, payload)


def settings(**given: Any) -> AwsSettings:
    return AwsSettings(**given)


# ------------------------------------------------------------------------------------------- credential report CSV


def test_real_report_is_parsed_per_principal_with_the_root_row_first(shared_fixtures: Path) -> None:
    content = (shared_fixtures / "aws-iam" / "credential-report-real-2022.csv").read_bytes()
    principals, problems = parse_credential_report(content)
    assert problems == []
    assert [p["user"] for p in principals] == [
        "<root_account>",
        "cloudgoat",
        "jake",
        "test_account",
        "test_key_account",
    ]
    root, cloudgoat, jake, test_account, _ = principals
    assert root["password_enabled"] == "not_supported"
    assert root["password_last_used"] == "2022-12-21T16:19:23+00:00"
    assert root["mfa_active"] is False
    assert root["access_key_1_last_rotated"] is None  # N/A
    assert cloudgoat["access_key_1_active"] is True
    assert cloudgoat["access_key_1_last_used_service"] == "rds"
    assert jake["password_enabled"] is True
    assert test_account["password_last_used"] == "no_information"


def test_z_and_offset_timestamps_parse_to_the_same_utc_form() -> None:
    principals, problems = parse_credential_report((DATA / "credential-report-mixed.csv").read_bytes())
    assert problems == []
    by_user = {p["user"]: p for p in principals}
    assert by_user["ana"]["user_creation_time"] == "2025-01-28T17:25:12+00:00"  # written ...Z
    assert by_user["ben"]["user_creation_time"] == "2024-05-01T10:00:00+00:00"  # written ...+00:00
    assert by_user["<root_account>"]["password_enabled"] is True  # the 2025 form of the root row
    assert by_user["<root_account>"]["password_last_changed"] == "not_supported"


def test_malformed_cells_are_named_by_line_and_column_and_kept_verbatim() -> None:
    header = (DATA / "credential-report-mixed.csv").read_text().splitlines()[0]
    rows = [
        "eve,arn:aws:iam::1:user/eve,yesterday,true,N/A,N/A,N/A,maybe,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
        "short,arn:aws:iam::1:user/short,2024-01-01T00:00:00Z",
    ]
    principals, problems = parse_credential_report("\n".join([header, *rows]).encode())
    assert principals[0]["user_creation_time"] == "yesterday"
    assert principals[0]["mfa_active"] == "maybe"
    assert "line 2 (eve): user_creation_time not a timestamp: 'yesterday'" in problems
    assert "line 2 (eve): mfa_active not true/false: 'maybe'" in problems
    assert "line 3: 3 cells for 22 columns" in problems
    assert principals[1]["mfa_active"] is None


def test_a_report_without_user_or_arn_columns_is_refused() -> None:
    with pytest.raises(CredentialReportError, match="header lacks column"):
        parse_credential_report(b"name,when\nx,y")
    with pytest.raises(CredentialReportError, match="not UTF-8"):
        parse_credential_report(b"user,arn\n\xff\xfe,x")


def test_an_unreadable_timestamp_makes_the_check_an_error_not_a_pass() -> None:
    header = (DATA / "credential-report-mixed.csv").read_text().splitlines()[0]
    row = "eve,arn:aws:iam::1:user/eve,2024-01-01T00:00:00Z,false,N/A,N/A,N/A,false,true,soon," + ",".join(
        ["N/A"] * 3 + ["false"] + ["N/A"] * 4 + ["false", "N/A", "false", "N/A"]
    )
    principals, _ = parse_credential_report(f"{header}\n{row}".encode())
    observation = Observation(
        "aws.iam.credential_report", Subject("aws_account", "1"), NOW, {"account_id": "1", "principals": principals}
    )
    assert ACCESS_KEYS_ROTATED.run(observation, settings(), NOW).result is Outcome.ERROR


# ------------------------------------------------------------------------------------------- credential report checks


def test_root_without_mfa_and_with_a_key_fails_both_root_checks() -> None:
    observation = report_observation((DATA / "credential-report-mixed.csv").read_bytes())
    mfa = ROOT_MFA.run(observation, settings(), NOW)
    assert mfa.result is Outcome.FAIL
    assert "arn:aws:iam::111122223333:root" in mfa.message
    keys = NO_ROOT_ACCESS_KEYS.run(observation, settings(), NOW)
    assert keys.result is Outcome.FAIL
    assert keys.details["key_slots"] == [1]


def test_real_report_root_has_no_mfa_and_no_keys(shared_fixtures: Path) -> None:
    observation = report_observation((shared_fixtures / "aws-iam" / "credential-report-real-2022.csv").read_bytes())
    assert ROOT_MFA.run(observation, settings(), NOW).result is Outcome.FAIL
    assert NO_ROOT_ACCESS_KEYS.run(observation, settings(), NOW).result is Outcome.PASS
    console = CONSOLE_USERS_MFA.run(observation, settings(), NOW)
    assert console.result is Outcome.FAIL
    assert [f["user"] for f in console.details["failing"]] == ["jake", "test_account"]


def test_console_users_without_mfa_are_named() -> None:
    observation = report_observation((DATA / "credential-report-mixed.csv").read_bytes())
    result = CONSOLE_USERS_MFA.run(observation, settings(), NOW)
    assert result.result is Outcome.FAIL
    assert result.message == "1 of 2 console users have no MFA: ben"


def test_keys_older_than_max_key_age_are_named_with_their_age() -> None:
    observation = report_observation((DATA / "credential-report-mixed.csv").read_bytes())
    result = ACCESS_KEYS_ROTATED.run(observation, settings(), NOW)
    assert result.result is Outcome.FAIL
    failing = {(f["user"], f["key"]) for f in result.details["failing"]}
    assert failing == {("<root_account>", 1), ("ci-deployer", 1)}
    assert result.message.startswith("2 of 5 active keys older than 90d")
    assert "ci-deployer key 1 (1394d)" in result.message
    assert ACCESS_KEYS_ROTATED.run(observation, settings(max_key_age="60d"), NOW).details["failing"][-1]["user"] == (
        "old-etl"
    )


def test_unused_passwords_and_keys_are_named_never_used_ones_age_from_creation() -> None:
    observation = report_observation((DATA / "credential-report-mixed.csv").read_bytes())
    result = UNUSED_CREDENTIALS_DISABLED.run(observation, settings(), NOW)
    assert result.result is Outcome.FAIL
    reasons = {f["user"]: f["reasons"] for f in result.details["failing"]}
    assert reasons == {"ben": ["password never used for 939d"], "old-etl": ["key 1 unused for 57d"]}
    assert UNUSED_CREDENTIALS_DISABLED.run(observation, settings(max_unused="60d"), NOW).details["failing"] == [
        {"user": "ben", "arn": "arn:aws:iam::111122223333:user/ben", "reasons": ["password never used for 939d"]}
    ]


# ------------------------------------------------------------------------------------------- polling


def test_report_is_polled_through_in_progress_and_404_until_ready(
    iam: tuple[Any, Stubber], shared_fixtures: Path
) -> None:
    client_, stubber = iam
    in_progress = json.loads(
        (shared_fixtures / "aws-iam" / "placebo-get-credential-report-in-progress-404.json").read_text()
    )
    generated = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    stubber.add_response("generate_credential_report", {"State": "STARTED"})
    stubber.add_response("generate_credential_report", {"State": "INPROGRESS"})
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    stubber.add_client_error(
        "get_credential_report",
        service_error_code=in_progress["data"]["Error"]["Code"],
        http_status_code=in_progress["status_code"],
    )
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    stubber.add_response(
        "get_credential_report", {"Content": b"user,arn\n", "ReportFormat": "text/csv", "GeneratedTime": generated}
    )
    waits: list[float] = []
    content, generated_at = fetch_credential_report(client_, timedelta(seconds=3), timedelta(minutes=1), waits.append)
    assert (content, generated_at) == (b"user,arn\n", generated)
    assert waits == [3.0, 3.0, 3.0]


def test_report_not_present_410_triggers_a_new_generation(iam: tuple[Any, Stubber], shared_fixtures: Path) -> None:
    client_, stubber = iam
    snapshot = json.loads((shared_fixtures / "aws-iam" / "localstack-credential-report.snapshot.json").read_text())
    not_present = next(iter(snapshot.values()))["recorded-content"]["get-credential-report-without-generate-error"]
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    stubber.add_client_error(
        "get_credential_report",
        service_error_code=not_present["Error"]["Code"],
        http_status_code=not_present["ResponseMetadata"]["HTTPStatusCode"],
    )
    stubber.add_response("generate_credential_report", {"State": "COMPLETE"})
    stubber.add_response("get_credential_report", {"Content": b"user,arn\n", "GeneratedTime": NOW})
    waits: list[float] = []
    assert fetch_credential_report(client_, timedelta(0), timedelta(minutes=1), waits.append)[1] == NOW
    assert waits == [0.0]


def test_a_report_that_never_finishes_is_a_transient_error(iam: tuple[Any, Stubber]) -> None:
    client_, stubber = iam
    stubber.add_response("generate_credential_report", {"State": "STARTED"})
    with pytest.raises(TransientError, match="still being generated"):
        fetch_credential_report(client_, timedelta(0), timedelta(0), lambda _: None)


# ------------------------------------------------------------------------------------------- authorization details


def wire(document: dict[str, Any]) -> str:
    """Policy documents travel URL-encoded; botocore decodes them (the fixtures hold the decoded form)."""
    return quote(json.dumps(document))


def _pages(shared_fixtures: Path) -> list[dict[str, Any]]:
    small = json.loads((shared_fixtures / "aws-iam" / "authz-details-small-cloudsplaining.json").read_text())
    snapshot = json.loads(
        (shared_fixtures / "aws-iam" / "localstack-account-authorization-details.snapshot.json").read_text()
    )
    aws_managed = next(v for k, v in snapshot.items() if k.endswith("aws_managed_policy"))["recorded-content"]
    managed_policies = aws_managed["aws-managed-policy-result"]["Policies"]
    for policy in managed_policies:
        policy["CreateDate"] = policy["UpdateDate"] = "2026-01-01T00:00:00Z"
        for version in policy["PolicyVersionList"]:
            version["CreateDate"] = "2026-01-01T00:00:00Z"
    entities = [*small["UserDetailList"], *small["GroupDetailList"], *small["RoleDetailList"], *small["Policies"]]
    for entity in [*entities, *managed_policies]:
        for id_field in ("UserId", "GroupId", "RoleId", "PolicyId"):
            if id_field in entity:  # both sources shortened ids below the API's 16 characters
                entity[id_field] = entity[id_field].ljust(16, "X")
    for role in small["RoleDetailList"]:
        role["AssumeRolePolicyDocument"] = wire(role["AssumeRolePolicyDocument"])
        for inline in role["RolePolicyList"]:
            inline["PolicyDocument"] = wire(inline["PolicyDocument"])
    for policy in [*small["Policies"], *managed_policies]:
        for version in policy["PolicyVersionList"]:
            version["Document"] = wire(version["Document"])
    unused = {**copy.deepcopy(managed_policies[0]), "Arn": "arn:aws:iam::aws:policy/Unused", "AttachmentCount": 0}
    return [
        {
            "UserDetailList": small["UserDetailList"],
            "GroupDetailList": small["GroupDetailList"],
            "IsTruncated": True,
            "Marker": "m1",
        },
        {"RoleDetailList": small["RoleDetailList"], "Policies": small["Policies"], "IsTruncated": True, "Marker": "m2"},
        {"Policies": [*managed_policies, unused], "IsTruncated": False},
    ]


def stub_authorization_pages(stubber: Stubber, pages: list[dict[str, Any]]) -> None:
    markers: list[dict[str, Any]] = [{}, {"Marker": "m1"}, {"Marker": "m2"}]
    for page, params in zip(pages, markers, strict=True):
        stubber.add_response("get_account_authorization_details", page, params)


def test_authorization_details_are_read_to_the_last_page(iam: tuple[Any, Stubber], shared_fixtures: Path) -> None:
    client_, stubber = iam
    stub_authorization_pages(stubber, _pages(shared_fixtures))
    details = fetch_authorization_details(client_)
    assert [u["UserName"] for u in details["UserDetailList"]] == ["BlakeBortles"]
    assert [r["RoleName"] for r in details["RoleDetailList"]] == ["GOAT", "MyOtherRole"]
    policies = {p["Arn"]: p for p in details["Policies"]}
    assert len(policies) == 3
    managed = policies["arn:<partition>:iam::aws:policy/<policy-name:1>"]
    assert managed["DefaultVersion"]["VersionId"] == "v2"
    assert "PolicyVersionList" not in managed
    assert details["aws_managed_policies_unused"] == 1


def test_group_with_administrator_access_fails_and_names_its_members(
    iam: tuple[Any, Stubber], shared_fixtures: Path
) -> None:
    client_, stubber = iam
    stub_authorization_pages(stubber, _pages(shared_fixtures))
    payload = {"account_id": "012345678901", **fetch_authorization_details(client_)}
    observation = Observation("aws.iam.authorization_details", Subject("aws_account", "012345678901"), NOW, payload)
    result = NO_WILDCARD_ADMIN.run(observation, settings(), NOW)
    assert result.result is Outcome.FAIL
    assert result.details["failing"] == [
        {
            "arn": "arn:aws:iam::012345678901:group/GOAT",
            "type": "group",
            "policies": ["arn:aws:iam::aws:policy/AdministratorAccess"],
        }
    ]
    assert result.details["group_members"] == {"GOAT": ["BlakeBortles"]}
    allowed = NO_WILDCARD_ADMIN.run(observation, settings(admin_allowlist=["arn:aws:iam::*:group/GOAT"]), NOW)
    assert allowed.result is Outcome.PASS
    assert allowed.details["allowlisted"] == ["arn:aws:iam::012345678901:group/GOAT"]


# ----------------------------------------------------------------------------------- the whole connector, stubbed


class StubbedSession:
    """Stands in for a botocore session: hands out the stubbed client of each service."""

    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients = clients

    def get_config_variable(self, name: str) -> str | None:
        return "us-east-1" if name == "region" else None

    def create_client(self, service: str, **_: Any) -> Any:
        return self.clients[service]


def test_connector_over_real_shapes_root_row_pages_and_a_denied_password_policy(shared_fixtures: Path) -> None:
    sts, iam_client = client("sts"), client("iam")
    csv = (shared_fixtures / "aws-iam" / "credential-report-real-2022.csv").read_bytes()
    generated = datetime(2023, 1, 3, 11, 0, tzinfo=UTC)
    with Stubber(sts) as sts_stub, Stubber(iam_client) as iam_stub:
        sts_stub.add_response(
            "get_caller_identity", {"Account": ACCOUNT, "Arn": "arn:aws:iam::1:user/x", "UserId": "x"}
        )
        iam_stub.add_response("generate_credential_report", {"State": "COMPLETE"})
        iam_stub.add_response("get_credential_report", {"Content": csv, "GeneratedTime": generated})
        stub_authorization_pages(iam_stub, _pages(shared_fixtures))
        iam_stub.add_client_error(
            "get_account_password_policy",
            service_error_code="AccessDenied",
            service_message="User is not authorized to perform: iam:GetAccountPasswordPolicy",
            http_status_code=403,
        )
        connector = AwsConnector(
            AwsSettings(ecr={"enabled": False}), session=StubbedSession({"sts": sts, "iam": iam_client})
        )  # type: ignore[arg-type]
        ctx = CollectContext(instance="aws", run_id="r1", now=NOW)
        observations = {o.kind: o for o in connector.collect(ctx)}
        iam_stub.assert_no_pending_responses()

    report = observations["aws.iam.credential_report"]
    assert report.observed_at == generated
    assert report.subject == Subject("aws_account", ACCOUNT)
    assert report.payload["principals"][0]["user"] == "<root_account>"
    assert ROOT_MFA.run(report, connector.settings, NOW).result is Outcome.FAIL
    assert observations["aws.iam.authorization_details"].payload["RoleDetailList"][0]["RoleName"] == "GOAT"
    denied = observations["aws.iam.password_policy"]
    assert denied.payload["error"]["permission"] == "iam:GetAccountPasswordPolicy"
    result = PASSWORD_POLICY.run(denied, connector.settings, NOW)
    assert result.result is Outcome.ERROR
    assert "iam:GetAccountPasswordPolicy failed with AccessDenied" in result.message
    assert [p.source for p in ctx.problems] == [f"aws://{ACCOUNT}/aws.iam.password_policy"]


# ------------------------------------------------------------------------------------------- password policy, errors


def password_observation(payload: dict[str, Any]) -> Observation:
    return Observation("aws.iam.password_policy", Subject("aws_account", "1"), NOW, {"account_id": "1", **payload})


def test_password_policy_requirements_are_each_named(shared_fixtures: Path) -> None:
    snapshot = json.loads((shared_fixtures / "aws-iam" / "localstack-password-policy.snapshot.json").read_text())
    contents = [v["recorded-content"] for v in snapshot.values()]
    defaults = next(c["password-policy-defaults"] for c in contents if "password-policy-defaults" in c)[
        "PasswordPolicy"
    ]
    custom = next(c["password-policy-custom"] for c in contents if "password-policy-custom" in c)["PasswordPolicy"]
    weak = PASSWORD_POLICY.run(password_observation({"present": True, "policy": defaults}), settings(), NOW)
    assert weak.result is Outcome.FAIL
    assert weak.details["unmet"] == ["minimum length 6 < 14", "reuse prevention 0 < 24"]
    demanding = settings(
        password_policy={"min_length": 10, "reuse_prevention": 3, "require_symbols": True, "max_age": "60d"}
    )
    assert PASSWORD_POLICY.run(password_observation({"present": True, "policy": custom}), demanding, NOW).result is (
        Outcome.PASS
    )
    stricter = settings(password_policy={"min_length": 10, "reuse_prevention": 3, "max_age": "30d"})
    result = PASSWORD_POLICY.run(password_observation({"present": True, "policy": custom}), stricter, NOW)
    assert result.details["unmet"] == ["passwords expire after 60 days, more than 30"]
    absent = PASSWORD_POLICY.run(password_observation({"present": False, "policy": None}), settings(), NOW)
    assert (absent.result, absent.message) == (Outcome.FAIL, "account 1 has no password policy")


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("exc", "disposition"),
    [
        (_client_error("Throttling", 400), Disposition.TRANSIENT),
        (_client_error("ThrottlingException", 400), Disposition.TRANSIENT),
        (_client_error("AccessDenied", 403), Disposition.CONFIGURATION),
        (_client_error("AccessDeniedException", 400), Disposition.CONFIGURATION),
        (_client_error("InternalError", 500), Disposition.TRANSIENT),
        (_client_error("NoSuchEntity", 404), Disposition.SKIPPABLE),
        (_client_error("ValidationError", 400), Disposition.CONFIGURATION),
        (NoCredentialsError(), Disposition.CONFIGURATION),
        (EndpointConnectionError(endpoint_url="https://iam.amazonaws.com"), Disposition.TRANSIENT),
    ],
)
def test_botocore_errors_are_classified_by_code_then_status(exc: BaseException, disposition: Disposition) -> None:
    assert classify(exc) is disposition


def test_an_unreadable_inspector_time_is_named_and_the_scan_is_not_recent() -> None:
    fixture = Path(__file__).parents[1] / "fixtures" / "aws-ecr" / "inspector2-ecr-image-one-finding.json"
    finding = json.loads(fixture.read_text())["findings"][0]
    finding["lastObservedAt"] = "not-a-date"
    image = EcrImage("1.dkr.ecr.us-east-1.amazonaws.com/m", "m", "1", "sha256:" + "c" * 64, ("2.3.0",), None)
    scan = to_scanned_artifact(image, {"imageScanStatus": {"status": "ACTIVE"}, "enhancedFindings": [finding]})
    assert scan.time_error == "enhancedFindings[0].lastObservedAt 'not-a-date' is not a readable timestamp"
    observation = Observation("container.scan", scan.subject, NOW, to_payload(scan, observed_at_source="collected"))
    results = {c.id: c.run(observation, AwsSettings(), NOW).result for c in CONTAINER_SCAN_CHECKS}
    assert results == {"container.no_fixable_vulns": Outcome.PASS, "container.scan_recent": Outcome.ERROR}

# ------------------------------------------------------------------------------------------- never a pass

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws-iam"
REPORT_COLLECTED_AT = datetime(2023, 1, 5, 12, 0, tzinfo=UTC)
"""Two days after the real 2022 report's last activity."""
CREDENTIAL_CHECKS = (ROOT_MFA, NO_ROOT_ACCESS_KEYS, CONSOLE_USERS_MFA, ACCESS_KEYS_ROTATED, UNUSED_CREDENTIALS_DISABLED)
LENIENT = {"max_key_age": "3650d", "max_unused": "3650d"}


def real_report(cell: tuple[str, str, str] | None = None, generated_at: datetime = REPORT_COLLECTED_AT) -> Observation:
    """The real 2022 credential report, with the cell (user, column) set to a new text."""
    lines = (FIXTURES / "credential-report-real-2022.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    if cell is not None:
        user, column, text = cell
        [row] = [r for r in rows if r[0] == user]
        row[header.index(column)] = text
    principals, _ = parse_credential_report("\n".join(",".join(r) for r in [header, *rows]).encode())
    payload = {"account_id": ACCOUNT, "generated_at": generated_at.isoformat(), "principals": principals}
    return Observation("aws.iam.credential_report", Subject("aws_account", ACCOUNT), generated_at, payload)


@pytest.mark.parametrize(
    ("check", "user", "column"),
    [
        (ACCESS_KEYS_ROTATED, "test_key_account", "access_key_1_last_rotated"),
        (UNUSED_CREDENTIALS_DISABLED, "jake", "access_key_1_last_used_date"),
    ],
)
def test_a_credential_time_in_the_future_fails_as_in_the_future(check: Any, user: str, column: str) -> None:
    assert check.run(real_report(), settings(**LENIENT), REPORT_COLLECTED_AT).result is Outcome.PASS
    future = real_report((user, column, "2099-12-19T09:22:23+00:00"))
    result = check.run(future, settings(**LENIENT), REPORT_COLLECTED_AT)
    assert result.result is Outcome.FAIL
    assert result.message == (
        f"{user}: {column} is 2099-12-19T09:22:23+00:00, in the future "
        "(collected at 2023-01-05T12:00:00+00:00, clock_skew_tolerance 5m)"
    )


def test_an_unreadable_credential_time_is_an_error_naming_user_and_column() -> None:
    unreadable = real_report(("test_key_account", "access_key_1_last_rotated", "not-a-date"))
    result = ACCESS_KEYS_ROTATED.run(unreadable, settings(**LENIENT), REPORT_COLLECTED_AT)
    assert (result.result, result.message) == (
        Outcome.ERROR,
        "test_key_account: access_key_1_last_rotated = 'not-a-date' is not a timestamp, so its age is unknown",
    )


def test_a_credential_report_generated_in_the_future_passes_nothing() -> None:
    report = real_report(generated_at=datetime(2099, 1, 1, tzinfo=UTC))
    results = [check.run(report, settings(**LENIENT), REPORT_COLLECTED_AT) for check in CREDENTIAL_CHECKS]
    assert {r.result for r in results} == {Outcome.FAIL}
    assert results[1].message == (
        "the credential report is generated at 2099-01-01T00:00:00+00:00, in the future "
        "(collected at 2023-01-05T12:00:00+00:00, clock_skew_tolerance 5m)"
    )
    within_skew = real_report(generated_at=REPORT_COLLECTED_AT + timedelta(minutes=4))
    assert NO_ROOT_ACCESS_KEYS.run(within_skew, settings(), REPORT_COLLECTED_AT).result is Outcome.PASS


@pytest.mark.parametrize(
    ("field", "value", "outcome", "message"),
    [
        ("MinimumPasswordLength", float("inf"), Outcome.ERROR, "not evidence: non-finite numbers at policy.Minimum"),
        ("MaxPasswordAge", float("nan"), Outcome.ERROR, "not evidence: non-finite numbers at policy.MaxPasswordAge"),
        ("PasswordReusePrevention", "24", Outcome.FAIL, "PasswordReusePrevention '24' is not a finite number"),
        ("MaxPasswordAge", True, Outcome.FAIL, "MaxPasswordAge True is not a finite number"),
    ],
)
def test_a_password_policy_number_that_is_not_a_finite_number_never_passes(
    field: str, value: object, outcome: Outcome, message: str
) -> None:
    snapshot = json.loads((FIXTURES / "localstack-password-policy.snapshot.json").read_text())
    [custom] = [
        v["recorded-content"]["password-policy-custom"]["PasswordPolicy"]
        for v in snapshot.values()
        if "password-policy-custom" in v["recorded-content"]
    ]
    demanding = settings(password_policy={"min_length": 10, "reuse_prevention": 3, "max_age": "60d"})
    observation = password_observation({"present": True, "policy": custom})
    assert PASSWORD_POLICY.run(observation, demanding, NOW).result is Outcome.PASS
    observation = password_observation({"present": True, "policy": {**custom, field: value}})
    result = PASSWORD_POLICY.run(observation, demanding, NOW)
    assert result.result is outcome
    assert message in result.message


def test_a_non_finite_number_in_a_credential_report_is_not_evidence() -> None:
    report = real_report()
    principals = [dict(p) for p in report.payload["principals"]]
    principals[0]["access_key_1_active"] = float("nan")
    tampered = Observation(
        report.kind, report.subject, report.observed_at, {**report.payload, "principals": principals}
    )
    result = NO_ROOT_ACCESS_KEYS.run(tampered, settings(), REPORT_COLLECTED_AT)
    assert (result.result, result.message) == (
        Outcome.ERROR,
        "not evidence: non-finite numbers at principals[0].access_key_1_active",
    )
