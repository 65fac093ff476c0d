"""Known IAM privilege-escalation paths, evaluated per user and role over ``aws.iam.authorization_details``.

A path holds for a principal when its identity policies (its own, and a user's groups'), within its permissions
boundary, allow every step on some target the account holds: e.g. ``iam:PassRole`` on a role that
``lambda.amazonaws.com`` may assume, plus ``lambda:CreateFunction``. Targets come from the collected details
(users, groups, roles, customer-managed policies), so resource-scoped grants are judged on real ARNs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from .policy import PolicyError, Statement, decide, parse_policy

__all__ = ["PATHS", "EscalationPath", "Step", "escalations"]

Target = Literal["any", "self", "own_groups", "own_policies", "other_users", "any_group", "any_role", "passable_role"]


@dataclass(frozen=True)
class Step:
    actions: tuple[str, ...]
    """All allowed on one and the same target."""
    target: Target = "any"
    service: str = ""
    """For ``passable_role``: the service principal the role must trust, e.g. ``lambda.amazonaws.com``."""


@dataclass(frozen=True)
class EscalationPath:
    id: str
    title: str
    steps: tuple[Step, ...]
    principals: frozenset[str] = field(default_factory=lambda: frozenset({"user", "role"}))


def _pass_role(id_: str, service: str, *actions: str, title: str) -> EscalationPath:
    return EscalationPath(
        id_, title, (Step(("iam:PassRole",), "passable_role", service), *(Step((a,)) for a in actions))
    )


PATHS: tuple[EscalationPath, ...] = (
    _pass_role("passrole-ec2", "ec2.amazonaws.com", "ec2:RunInstances", title="launch an instance with a role"),
    _pass_role(
        "passrole-lambda", "lambda.amazonaws.com", "lambda:CreateFunction", title="create a function with a role"
    ),
    _pass_role(
        "passrole-sagemaker-notebook",
        "sagemaker.amazonaws.com",
        "sagemaker:CreateNotebookInstance",
        title="create a notebook instance with a role",
    ),
    _pass_role(
        "passrole-sagemaker-training",
        "sagemaker.amazonaws.com",
        "sagemaker:CreateTrainingJob",
        title="run a training job with a role",
    ),
    _pass_role("passrole-glue-dev-endpoint", "glue.amazonaws.com", "glue:CreateDevEndpoint", title="Glue dev endpoint"),
    _pass_role("passrole-glue-job", "glue.amazonaws.com", "glue:CreateJob", title="Glue job with a role"),
    _pass_role(
        "passrole-cloudformation",
        "cloudformation.amazonaws.com",
        "cloudformation:CreateStack",
        title="create a stack with a role",
    ),
    EscalationPath(
        "create-policy-version",
        "write a new default version of a policy attached to oneself",
        (Step(("iam:CreatePolicyVersion",), "own_policies"),),
    ),
    EscalationPath(
        "set-default-policy-version",
        "make another version of a policy attached to oneself the default",
        (Step(("iam:SetDefaultPolicyVersion",), "own_policies"),),
    ),
    EscalationPath(
        "attach-user-policy",
        "attach any managed policy to oneself",
        (Step(("iam:AttachUserPolicy",), "self"),),
        frozenset({"user"}),
    ),
    EscalationPath(
        "attach-group-policy",
        "attach any managed policy to one's group",
        (Step(("iam:AttachGroupPolicy",), "own_groups"),),
        frozenset({"user"}),
    ),
    EscalationPath(
        "attach-role-policy",
        "attach any managed policy to oneself",
        (Step(("iam:AttachRolePolicy",), "self"),),
        frozenset({"role"}),
    ),
    EscalationPath(
        "put-user-policy",
        "write an inline policy on oneself",
        (Step(("iam:PutUserPolicy",), "self"),),
        frozenset({"user"}),
    ),
    EscalationPath(
        "put-group-policy",
        "write an inline policy on one's group",
        (Step(("iam:PutGroupPolicy",), "own_groups"),),
        frozenset({"user"}),
    ),
    EscalationPath(
        "put-role-policy",
        "write an inline policy on oneself",
        (Step(("iam:PutRolePolicy",), "self"),),
        frozenset({"role"}),
    ),
    EscalationPath(
        "update-assume-role-policy",
        "rewrite a role's trust policy and assume it",
        (Step(("iam:UpdateAssumeRolePolicy", "sts:AssumeRole"), "any_role"),),
    ),
    EscalationPath(
        "create-access-key", "create an access key for another user", (Step(("iam:CreateAccessKey",), "other_users"),)
    ),
    EscalationPath(
        "create-login-profile",
        "set a console password for another user",
        (Step(("iam:CreateLoginProfile",), "other_users"),),
    ),
    EscalationPath(
        "update-login-profile",
        "change another user's console password",
        (Step(("iam:UpdateLoginProfile",), "other_users"),),
    ),
    EscalationPath(
        "add-user-to-group",
        "add a user (oneself) to any group",
        (Step(("iam:AddUserToGroup",), "any_group"),),
        frozenset({"user"}),
    ),
)


@dataclass
class _Principal:
    arn: str
    type: str
    name: str
    identity: tuple[Statement, ...]
    boundary: tuple[Statement, ...] | None
    groups: list[str]
    """Group ARNs."""
    policies: list[str]
    """Customer-managed policy ARNs attached to it (directly or through its groups)."""
    variables: dict[str, str]
    """Policy variables known for it (``aws:username`` of a user)."""


class _Account:
    """The targets the paths are judged on, and the policy documents by ARN."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.users: list[Mapping[str, Any]] = list(payload.get("UserDetailList") or [])
        self.roles: list[Mapping[str, Any]] = list(payload.get("RoleDetailList") or [])
        groups: list[Mapping[str, Any]] = list(payload.get("GroupDetailList") or [])
        self.groups = {str(g.get("GroupName")): g for g in groups}
        self.policies = {str(p.get("Arn")): p for p in payload.get("Policies") or []}
        self._trusted: dict[str, list[str]] = {}

    def managed(self, arn: str) -> tuple[Statement, ...]:
        policy = self.policies.get(arn)
        version = (policy or {}).get("DefaultVersion") or {}
        if policy is None or "Document" not in version:
            raise PolicyError(f"{arn}: its document was not collected, so what it allows is unknown")
        return parse_policy(version["Document"], arn)

    def trusted_roles(self, service: str) -> list[str]:
        """Roles whose trust policy lets ``service`` assume them; an unreadable trust policy counts (conservative)."""
        if service not in self._trusted:
            self._trusted[service] = [str(r.get("Arn")) for r in self.roles if _trusts(r, service)]
        return self._trusted[service]


def _trusts(role: Mapping[str, Any], service: str) -> bool:
    try:
        document = role.get("AssumeRolePolicyDocument")
        parsed: Any = json.loads(unquote(document)) if isinstance(document, str) else document
        statements = parsed["Statement"]
        for statement in statements if isinstance(statements, list) else [statements]:
            if statement.get("Effect") != "Allow":
                continue
            principal = statement.get("Principal")
            if principal == "*":
                return True
            services = principal.get("Service", []) if isinstance(principal, Mapping) else []
            if service in ([services] if isinstance(services, str) else services):
                return True
        return False
    except (AttributeError, KeyError, TypeError, ValueError):
        return True


def _principal(entity: Mapping[str, Any], type_: str, account: _Account) -> _Principal:
    name = str(entity.get("UserName") or entity.get("RoleName") or "")
    arn = str(entity.get("Arn"))
    inline_key = "UserPolicyList" if type_ == "user" else "RolePolicyList"
    statements: list[Statement] = []
    policies: list[str] = []

    def add(holder: Mapping[str, Any], key: str, owner: str) -> None:
        for inline in holder.get(key) or []:
            statements.extend(parse_policy(inline.get("PolicyDocument"), f"{owner} inline {inline.get('PolicyName')}"))
        for attached in holder.get("AttachedManagedPolicies") or []:
            policy_arn = str(attached.get("PolicyArn"))
            statements.extend(account.managed(policy_arn))
            if ":iam::aws:policy/" not in policy_arn:
                policies.append(policy_arn)

    add(entity, inline_key, arn)
    groups: list[str] = []
    for group_name in entity.get("GroupList") or [] if type_ == "user" else []:
        group = account.groups.get(str(group_name))
        if group is None:
            raise PolicyError(f"{arn}: its group {group_name} is not among the collected groups")
        groups.append(str(group.get("Arn")))
        add(group, "GroupPolicyList", str(group.get("Arn")))
    boundary_ref = entity.get("PermissionsBoundary") or {}
    boundary_arn = boundary_ref.get("PermissionsBoundaryArn")
    boundary = account.managed(str(boundary_arn)) if boundary_arn else None
    variables = {"aws:username": name} if type_ == "user" else {}
    return _Principal(arn, type_, name, tuple(statements), boundary, groups, sorted(set(policies)), variables)


def _targets(step: Step, principal: _Principal, account: _Account) -> Sequence[str | None]:
    if step.target == "any":
        return [None]
    if step.target == "self":
        return [principal.arn]
    if step.target == "own_groups":
        return principal.groups
    if step.target == "own_policies":
        return principal.policies
    if step.target == "other_users":
        return [str(u.get("Arn")) for u in account.users if str(u.get("Arn")) != principal.arn]
    if step.target == "any_group":
        return [str(g.get("Arn")) for g in account.groups.values()]
    if step.target == "any_role":
        return [str(r.get("Arn")) for r in account.roles]
    return account.trusted_roles(step.service)


def _step(step: Step, principal: _Principal, account: _Account) -> dict[str, Any] | None:
    """How the principal takes this step: the target, and the statements allowing each action; ``None`` if it can't."""
    for target in _targets(step, principal, account):
        verdicts = [
            decide(principal.identity, principal.boundary, action, target, principal.variables)
            for action in step.actions
        ]
        if all(v.allowed for v in verdicts):
            return {
                "actions": list(step.actions),
                "resource": target or "*",
                "statements": sorted({w for v in verdicts for w in v.by}),
                "conditional": any(v.conditional for v in verdicts),
            }
    return None


def _paths(principal: _Principal, account: _Account) -> Iterator[dict[str, Any]]:
    for path in PATHS:
        if principal.type not in path.principals:
            continue
        steps = []
        for step in path.steps:
            taken = _step(step, principal, account)
            if taken is None:
                break
            steps.append(taken)
        else:
            yield {"path": path.id, "title": path.title, "steps": steps}


def escalations(payload: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Principals with at least one path (``{arn, type, paths}``), and principals whose policies could not be
    evaluated (``{arn, type, error}``, the error naming the policy and statement)."""
    account = _Account(payload)
    found: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for type_, entities in (("user", account.users), ("role", account.roles)):
        for entity in entities:
            try:
                principal = _principal(entity, type_, account)
            except PolicyError as exc:
                errors.append({"arn": str(entity.get("Arn")), "type": type_, "error": str(exc)})
                continue
            paths = list(_paths(principal, account))
            if paths:
                found.append({"arn": principal.arn, "type": type_, "paths": paths})
    return found, errors
