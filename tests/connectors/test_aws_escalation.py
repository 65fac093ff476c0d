"""The IAM policy evaluator and the privilege-escalation check: one case per known path, the negatives that must
not be reported (explicit Deny, permissions boundary, resource-scoped PassRole), and unreadable policies as error.
Pure: the payloads have the shape of ``aws.iam.authorization_details`` (moto's own output is exercised in
test_aws_infra.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.model import Observation, Outcome, Subject
from connectors.aws import NO_PRIVILEGE_ESCALATION, AwsSettings
from connectors.aws.escalation import PATHS
from connectors.aws.policy import Decision, PolicyError, decide, parse_policy

ACCOUNT = "123456789012"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
ARN = f"arn:aws:iam::{ACCOUNT}"


def trust(service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def account(
    *statements: dict[str, Any], boundary: dict[str, Any] | None = None, as_role: bool = False
) -> dict[str, Any]:
    """The principal under test is user ``mallory`` (or role ``mallory`` with ``as_role``), member of group ``ml``
    holding customer-managed policy ``ml-policy``; user ``victim``; roles for each service the paths use."""
    policy = {"Arn": f"{ARN}:policy/ml-policy", "DefaultVersion": {"Document": doc(allow("s3:GetObject"))}}
    policies = [policy]
    subject: dict[str, Any] = {
        "Arn": f"{ARN}:{'role' if as_role else 'user'}/mallory",
        "AttachedManagedPolicies": [{"PolicyName": "ml-policy", "PolicyArn": policy["Arn"]}] if as_role else [],
    }
    inline = [{"PolicyName": "under-test", "PolicyDocument": doc(*statements)}]
    if boundary is not None:
        policies.append({"Arn": f"{ARN}:policy/boundary", "DefaultVersion": {"Document": boundary}})
        subject["PermissionsBoundary"] = {"PermissionsBoundaryArn": f"{ARN}:policy/boundary"}
    roles = [
        {"RoleName": service.split(".")[0], "Arn": f"{ARN}:role/{service.split('.')[0]}-role",
         "AssumeRolePolicyDocument": trust(service), "RolePolicyList": [], "AttachedManagedPolicies": []}
        for service in ("ec2.amazonaws.com", "lambda.amazonaws.com", "sagemaker.amazonaws.com",
                        "glue.amazonaws.com", "cloudformation.amazonaws.com")
    ]  # fmt: skip
    users = [{"UserName": "victim", "Arn": f"{ARN}:user/victim", "GroupList": [], "UserPolicyList": []}]
    if as_role:
        roles.append({"RoleName": "mallory", "AssumeRolePolicyDocument": trust("ec2.amazonaws.com"),
                      "RolePolicyList": inline, **subject})  # fmt: skip
    else:
        users.append({"UserName": "mallory", "GroupList": ["ml"], "UserPolicyList": inline, **subject})
    group = {
        "GroupName": "ml",
        "Arn": f"{ARN}:group/ml",
        "GroupPolicyList": [],
        "AttachedManagedPolicies": [{"PolicyName": "ml-policy", "PolicyArn": policy["Arn"]}],
    }
    return {
        "account_id": ACCOUNT,
        "UserDetailList": users,
        "GroupDetailList": [group],
        "RoleDetailList": roles,
        "Policies": policies,
    }


def judge(payload: dict[str, Any], **given_settings: Any) -> Any:
    observation = Observation(
        kind="aws.iam.authorization_details", subject=Subject("aws_account", ACCOUNT), observed_at=NOW, payload=payload
    )
    return NO_PRIVILEGE_ESCALATION.evaluate(observation, AwsSettings.model_validate(given_settings), NOW)


def mallory_paths(result: Any) -> set[str]:
    return {p["path"] for f in result.details["failing"] if f["arn"].endswith("/mallory") for p in f["paths"]}


PATH_CASES = [
    ("passrole-ec2", [allow("iam:PassRole", f"{ARN}:role/ec2-role"), allow("ec2:RunInstances")], False),
    ("passrole-lambda", [allow("iam:Pass*"), allow("lambda:CreateFunction")], False),
    ("passrole-sagemaker-notebook", [allow(["iam:PassRole", "sagemaker:CreateNotebookInstance"])], False),
    ("passrole-sagemaker-training", [allow(["iam:PassRole", "sagemaker:CreateTrainingJob"])], False),
    ("passrole-glue-dev-endpoint", [allow(["iam:passrole", "glue:CreateDevEndpoint"])], False),
    ("passrole-glue-job", [allow(["iam:PassRole", "glue:Create*"])], False),
    ("passrole-cloudformation", [allow(["iam:PassRole", "cloudformation:CreateStack"])], False),
    ("create-policy-version", [allow("iam:CreatePolicyVersion", f"{ARN}:policy/ml-*")], False),
    ("set-default-policy-version", [allow("iam:SetDefaultPolicyVersion", f"{ARN}:policy/ml-policy")], False),
    ("attach-user-policy", [allow("iam:AttachUserPolicy", f"{ARN}:user/${{aws:username}}")], False),
    ("attach-group-policy", [allow("iam:AttachGroupPolicy", f"{ARN}:group/ml")], False),
    ("attach-role-policy", [allow("iam:AttachRolePolicy", f"{ARN}:role/mallory")], True),
    ("put-user-policy", [allow("iam:PutUserPolicy")], False),
    ("put-group-policy", [allow("iam:Put*Policy", f"{ARN}:group/*")], False),
    ("put-role-policy", [allow("iam:PutRolePolicy")], True),
    ("update-assume-role-policy", [allow(["iam:UpdateAssumeRolePolicy", "sts:AssumeRole"], f"{ARN}:role/glue-*")],
     False),
    ("create-access-key", [allow("iam:CreateAccessKey", f"{ARN}:user/victim")], False),
    ("create-login-profile", [allow("iam:CreateLoginProfile")], False),
    ("update-login-profile", [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}], False),
    ("add-user-to-group", [allow("iam:AddUserToGroup", f"{ARN}:group/ml")], False),
]  # fmt: skip


@pytest.mark.parametrize(("path", "statements", "as_role"), PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_each_known_path_is_found_and_named(path: str, statements: list[dict[str, Any]], as_role: bool) -> None:
    result = judge(account(*statements, as_role=as_role))
    assert result.result is Outcome.FAIL, result.message
    assert path in mallory_paths(result)
    assert "mallory" in result.message and path in result.message


def test_every_path_has_a_case() -> None:
    assert {p.id for p in PATHS} == {c[0] for c in PATH_CASES}


def test_passrole_names_the_role_and_the_statements() -> None:
    result = judge(account(allow("iam:PassRole", f"{ARN}:role/lambda-*", Sid="Pass"), allow("lambda:*")))
    (found,) = result.details["failing"]
    (path,) = found["paths"]
    assert path["path"] == "passrole-lambda"
    assert path["steps"][0]["resource"] == f"{ARN}:role/lambda-role"
    assert path["steps"][0]["statements"] == [f"{ARN}:user/mallory inline under-test statement 0 (Pass)"]


NEGATIVE_CASES = [
    ("nothing granted", [allow("s3:GetObject")], None),
    ("explicit deny", [allow("iam:*"), allow("ec2:*"), allow("lambda:*"), deny("iam:*")], None),
    ("deny via NotAction", [allow("*"), {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}], None),
    ("boundary allows no IAM", [allow("*")], doc(allow(["s3:*", "ec2:*", "lambda:*", "sagemaker:*"]))),
    ("boundary denies PassRole", [allow("*")], doc(allow("*"), deny(["iam:*", "sts:*"]))),
    ("PassRole scoped to a role no service trusts",
     [allow("iam:PassRole", f"{ARN}:role/nobody"), allow(["ec2:RunInstances", "lambda:CreateFunction"])], None),
    ("PassRole without a compute action", [allow("iam:PassRole")], None),
    ("CreateAccessKey only on oneself", [allow("iam:CreateAccessKey", f"{ARN}:user/${{aws:username}}")], None),
    ("NotResource excluding every user",
     [{"Effect": "Allow", "Action": "iam:CreateAccessKey", "NotResource": f"{ARN}:user/*"}], None),
    ("policy version rights on someone else's policy",
     [allow(["iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion"], f"{ARN}:policy/other")], None),
]  # fmt: skip


@pytest.mark.parametrize(("why", "statements", "boundary"), NEGATIVE_CASES, ids=[c[0] for c in NEGATIVE_CASES])
def test_no_path_is_reported_where_none_exists(
    why: str, statements: list[dict[str, Any]], boundary: dict[str, Any] | None
) -> None:
    result = judge(account(*statements, boundary=boundary))
    assert result.result is Outcome.PASS, (why, result.message)
    assert result.details["failing"] == []


def test_a_conditional_allow_counts_and_a_conditional_deny_is_not_relied_on() -> None:
    condition = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    result = judge(account(allow("iam:PutUserPolicy", Condition=condition)))
    assert mallory_paths(result) == {"put-user-policy"}
    assert result.details["failing"][0]["paths"][0]["steps"][0]["conditional"] is True
    result = judge(account(allow("iam:PutUserPolicy"), deny("iam:*", Condition=condition)))
    assert mallory_paths(result) == {"put-user-policy"}


def test_the_allowlist_exempts_a_principal_but_keeps_it_in_details() -> None:
    result = judge(account(allow("iam:PutUserPolicy")), admin_allowlist=[f"{ARN}:user/mall*"])
    assert result.result is Outcome.PASS
    assert result.details["allowlisted"] == [f"{ARN}:user/mallory"]


def test_an_attached_policy_whose_document_is_missing_is_an_error_naming_it() -> None:
    payload = account(allow("s3:GetObject"))
    payload["Policies"] = []
    result = judge(payload)
    assert result.result is Outcome.ERROR
    assert f"{ARN}:policy/ml-policy: its document was not collected" in result.message


def test_a_finding_elsewhere_does_not_hide_an_unreadable_principal() -> None:
    payload = account(allow("iam:PutUserPolicy"))
    payload["UserDetailList"][0]["UserPolicyList"] = [
        {"PolicyName": "odd", "PolicyDocument": doc({"Effect": "Permit"})}
    ]
    result = judge(payload)
    assert result.result is Outcome.ERROR
    assert "victim inline odd statement 0: Effect is 'Permit'" in result.message
    assert [f["arn"] for f in result.details["failing"]] == [f"{ARN}:user/mallory"]


def test_decide_on_wildcards_case_and_question_marks() -> None:
    statements = parse_policy(doc(allow("IAM:pass?ole", f"{ARN}:role/a?c")), "p")
    assert decide(statements, None, "iam:PassRole", f"{ARN}:role/abc").decision is Decision.ALLOW
    assert decide(statements, None, "iam:PassRole", f"{ARN}:role/abbc").decision is Decision.IMPLICIT_DENY
    assert decide(statements, None, "iam:PassRole", f"{ARN}:role/ABC").decision is Decision.IMPLICIT_DENY
    brackets = parse_policy(doc(allow("iam:PassRole", f"{ARN}:role/[ab]")), "p")
    assert decide(brackets, None, "iam:PassRole", f"{ARN}:role/a").decision is Decision.IMPLICIT_DENY


def test_an_url_encoded_document_is_read() -> None:
    from urllib.parse import quote

    statements = parse_policy(quote(json.dumps(doc(deny("iam:*")))), "p")
    assert decide(statements, None, "iam:PutUserPolicy", None).decision is Decision.EXPLICIT_DENY


# ------------------------------------------------------------------------------------------- unreadable policies

_JUNK = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.just(""), st.just([]),
    st.lists(st.integers(), min_size=1, max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip
_BROKEN_STATEMENT = st.one_of(
    st.builds(lambda v: {**allow("iam:PutUserPolicy"), "Effect": v}, _JUNK | st.sampled_from(["allow", "DENY", "x"])),
    st.builds(lambda v: {**allow("iam:PutUserPolicy"), "Action": v}, _JUNK | st.sampled_from(["PutUserPolicy", "iam"])),
    st.builds(lambda v: {**allow("iam:PutUserPolicy"), "Resource": v}, _JUNK),
    st.builds(lambda v: {**allow("iam:PutUserPolicy"), "Condition": v}, st.integers() | st.text(min_size=1)),
    st.builds(lambda: {"Effect": "Allow", "Action": "iam:PutUserPolicy"}),
    st.builds(lambda: {**allow("iam:PutUserPolicy"), "NotAction": "s3:*"}),
    st.builds(lambda v: {**allow("iam:PutUserPolicy"), "Principal": v}, _JUNK),
    _JUNK,
)


@settings(max_examples=200, deadline=None)
@given(broken=_BROKEN_STATEMENT, position=st.integers(min_value=0, max_value=2))
def test_a_policy_the_evaluator_cannot_read_is_an_error_naming_the_statement(broken: Any, position: int) -> None:
    statements: list[Any] = [allow("s3:GetObject"), allow("iam:GetUser")]
    statements.insert(position, broken)
    payload = account(*statements)
    result = judge(payload)
    assert result.result is Outcome.ERROR, result.message
    assert f"{ARN}:user/mallory inline under-test statement {position}" in result.message
    with pytest.raises(PolicyError):
        parse_policy(doc(*statements), "p")


@settings(max_examples=50, deadline=None)
@given(document=st.one_of(_JUNK, st.text(max_size=20), st.builds(lambda s: {"Statement": s}, _JUNK)))
def test_a_document_that_is_not_a_policy_is_an_error(document: Any) -> None:
    payload = account(allow("s3:GetObject"))
    payload["Policies"][0]["DefaultVersion"]["Document"] = document
    result = judge(payload)
    assert result.result is Outcome.ERROR, result.message
    assert f"{ARN}:policy/ml-policy" in result.message
