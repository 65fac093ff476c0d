"""Pure judgements over one IAM observation; ECR scans reuse the shared container.scan checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

from collector.sdk import (
    Check,
    CheckResult,
    Observation,
    Outcome,
    finite_number,
    format_duration,
    in_the_future,
    non_finite_paths,
    parse_timestamp,
)
from collector.sdk.vulnerability_scan import CHECKS as SCAN_CHECKS
from collector.sdk.vulnerability_scan import ScanThresholds

from .escalation import escalations
from .iam import AUTHORIZATION_DETAILS_KIND, CREDENTIAL_REPORT_KIND, PASSWORD_POLICY_KIND, ROOT_USER
from .settings import AwsSettings

__all__ = [
    "ACCESS_KEYS_ROTATED",
    "CHECKS",
    "CONSOLE_USERS_MFA",
    "CONTAINER_SCAN_CHECKS",
    "IAM_CHECKS",
    "NO_PRIVILEGE_ESCALATION",
    "NO_ROOT_ACCESS_KEYS",
    "NO_WILDCARD_ADMIN",
    "PASSWORD_POLICY",
    "ROOT_MFA",
    "UNUSED_CREDENTIALS_DISABLED",
    "allows_everything",
]

_LISTED = 10
"""Principals named in a message; details carry them all."""
_KEY_SLOTS = (1, 2)
_ADMINISTRATOR_ACCESS = ":iam::aws:policy/AdministratorAccess"
"""Recognised by name when its document was not collected (AWS-managed policies can be filtered out)."""

Evaluate = Callable[[Observation, AwsSettings, datetime], CheckResult]


def _guarded(check_id: str, evaluate: Evaluate) -> Evaluate:
    """Evidence that could not be collected is an error result naming the missing permission, never a pass; so is
    a payload holding NaN or ±Inf, which no IAM API returns."""

    def run(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
        error = observation.payload.get("error")
        if error:
            message = f"no evidence: {error.get('permission')} failed with {error.get('code')}: {error.get('message')}"
            return CheckResult(check_id, Outcome.ERROR, message, {"error": dict(error)})
        if where := non_finite_paths(observation.payload):
            listed = ", ".join(where[:_LISTED])
            return CheckResult(check_id, Outcome.ERROR, f"not evidence: non-finite numbers at {listed}")
        return evaluate(observation, settings, now)

    return run


class _ImpossibleTime(ValueError):
    """A time in the credential report that cannot be judged: unreadable (``error``) or in the future (``fail``)."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def _dated(check_id: str, evaluate: Evaluate) -> Evaluate:
    """A credential report generated in the future, or holding a time that is unreadable or in the future, is
    never judged a pass: ages computed from it mean nothing."""

    def run(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
        future = _in_the_future(observation.observed_at, now, settings)
        if future and observation.kind == CREDENTIAL_REPORT_KIND:
            return CheckResult(check_id, Outcome.FAIL, f"the credential report is generated at {future}")
        try:
            return evaluate(observation, settings, now)
        except _ImpossibleTime as exc:
            return CheckResult(check_id, exc.outcome, str(exc))

    return run


def _check(check_id: str, kind: str, title: str, evaluate: Evaluate) -> Check[AwsSettings]:
    return Check(id=check_id, kind=kind, title=title, evaluate=_guarded(check_id, _dated(check_id, evaluate)))


def _names(items: Iterable[Mapping[str, Any]], key: str = "user") -> str:
    listed = [str(item[key]) for item in items]
    shown = ", ".join(listed[:_LISTED])
    return shown + (f" and {len(listed) - _LISTED} more" if len(listed) > _LISTED else "")


def _days(value: timedelta) -> int:
    return int(value.total_seconds() // 86400)


def _in_the_future(at: datetime, now: datetime, settings: AwsSettings) -> str | None:
    return in_the_future(at, now, settings.clock_skew_tolerance)


def _when(principal: Mapping[str, Any], column: str, now: datetime, settings: AwsSettings) -> datetime | None:
    """A timestamp cell of the report; markers (``N/A``, ``no_information``, ``not_supported``) are ``None``.
    An unreadable cell or one in the future raises :class:`_ImpossibleTime` naming the user and the column."""
    value = principal.get(column)
    if value is None or value in ("no_information", "not_supported"):
        return None
    where = f"{principal.get('user') or principal.get('arn') or '?'}: {column}"
    parsed = parse_timestamp(value)
    if parsed is None:
        raise _ImpossibleTime(Outcome.ERROR, f"{where} = {value!r} is not a timestamp, so its age is unknown")
    if future := _in_the_future(parsed, now, settings):
        raise _ImpossibleTime(Outcome.FAIL, f"{where} is {future}")
    return parsed


# ------------------------------------------------------------------------------------------- credential report


def _principals(observation: Observation) -> list[Mapping[str, Any]]:
    return list(observation.payload["principals"])


def _users(observation: Observation) -> list[Mapping[str, Any]]:
    return [p for p in _principals(observation) if p.get("user") != ROOT_USER]


def _root(observation: Observation) -> Mapping[str, Any] | None:
    return next((p for p in _principals(observation) if p.get("user") == ROOT_USER), None)


def _account(observation: Observation) -> str:
    return str(observation.payload.get("account_id") or observation.subject.id)


def root_mfa(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
    root = _root(observation)
    if root is None:
        return ROOT_MFA.result(
            Outcome.NOT_APPLICABLE, f"the credential report of {_account(observation)} has no root row"
        )
    if root.get("mfa_active") is True:
        return ROOT_MFA.result(Outcome.PASS, f"root user of {_account(observation)} has MFA", failing=[])
    return ROOT_MFA.result(Outcome.FAIL, f"root user {root.get('arn')} has no MFA", failing=[root.get("arn")])


def no_root_access_keys(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
    root = _root(observation)
    if root is None:
        message = f"the credential report of {_account(observation)} has no root row"
        return NO_ROOT_ACCESS_KEYS.result(Outcome.NOT_APPLICABLE, message)
    active = [slot for slot in _KEY_SLOTS if root.get(f"access_key_{slot}_active") is True]
    if active:
        message = f"root user {root.get('arn')} has active access key(s) {', '.join(map(str, active))}"
        return NO_ROOT_ACCESS_KEYS.result(Outcome.FAIL, message, failing=[root.get("arn")], key_slots=active)
    return NO_ROOT_ACCESS_KEYS.result(Outcome.PASS, f"root user of {_account(observation)} has no active access keys")


def console_users_mfa(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
    console = [u for u in _users(observation) if u.get("password_enabled") is True]
    if not console:
        return CONSOLE_USERS_MFA.result(Outcome.NOT_APPLICABLE, "no IAM user has a console password")
    failing = [{"user": u.get("user"), "arn": u.get("arn")} for u in console if u.get("mfa_active") is not True]
    if failing:
        message = f"{len(failing)} of {len(console)} console users have no MFA: {_names(failing)}"
        return CONSOLE_USERS_MFA.result(Outcome.FAIL, message, failing=failing)
    return CONSOLE_USERS_MFA.result(Outcome.PASS, f"all {len(console)} console users have MFA", failing=[])


def access_keys_rotated(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
    limit = settings.max_key_age
    active = 0
    failures: list[dict[str, Any]] = []
    for principal in _principals(observation):
        for slot in _KEY_SLOTS:
            if principal.get(f"access_key_{slot}_active") is not True:
                continue
            active += 1
            rotated = _when(principal, f"access_key_{slot}_last_rotated", now, settings)
            age_days = None if rotated is None else _days(now - rotated)
            if rotated is None or now - rotated > limit:
                failures.append(
                    {"user": principal.get("user"), "arn": principal.get("arn"), "key": slot, "age_days": age_days}
                )
    details = {"max_key_age_days": _days(limit), "failing": failures}
    if not active:
        return ACCESS_KEYS_ROTATED.result(Outcome.NOT_APPLICABLE, "no active access keys", **details)
    if failures:
        listed = ", ".join(
            f"{f['user']} key {f['key']} ({'rotation unknown' if f['age_days'] is None else str(f['age_days']) + 'd'})"
            for f in failures[:_LISTED]
        )
        more = f" and {len(failures) - _LISTED} more" if len(failures) > _LISTED else ""
        message = f"{len(failures)} of {active} active keys older than {format_duration(limit)}: {listed}{more}"
        return ACCESS_KEYS_ROTATED.result(Outcome.FAIL, message, **details)
    return ACCESS_KEYS_ROTATED.result(
        Outcome.PASS, f"all {active} active keys rotated within {format_duration(limit)}", **details
    )


def _unused(principal: Mapping[str, Any], now: datetime, settings: AwsSettings) -> list[str]:
    """Why each enabled credential of one user counts as unused; a never-used one ages from its creation."""
    limit = settings.max_unused
    reasons = []

    def when(column: str) -> datetime | None:
        return _when(principal, column, now, settings)

    if principal.get("password_enabled") is True:
        last = when("password_last_used")
        since = last or when("password_last_changed") or when("user_creation_time")
        if since is None or now - since > limit:
            reasons.append(f"password {'unused' if last else 'never used'} for {_days(now - since) if since else '?'}d")
    for slot in _KEY_SLOTS:
        if principal.get(f"access_key_{slot}_active") is not True:
            continue
        last = when(f"access_key_{slot}_last_used_date")
        since = last or when(f"access_key_{slot}_last_rotated")
        if since is None or now - since > limit:
            reasons.append(
                f"key {slot} {'unused' if last else 'never used'} for {_days(now - since) if since else '?'}d"
            )
    return reasons


def unused_credentials_disabled(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
    limit = settings.max_unused
    enabled = [
        u
        for u in _users(observation)
        if u.get("password_enabled") is True or any(u.get(f"access_key_{s}_active") is True for s in _KEY_SLOTS)
    ]
    if not enabled:
        return UNUSED_CREDENTIALS_DISABLED.result(Outcome.NOT_APPLICABLE, "no IAM user has an enabled credential")
    failing: list[dict[str, Any]] = []
    for user in enabled:
        reasons = _unused(user, now, settings)
        if reasons:
            failing.append({"user": user.get("user"), "arn": user.get("arn"), "reasons": reasons})
    details = {"max_unused_days": _days(limit), "failing": failing}
    if failing:
        listed = "; ".join(f"{f['user']} ({', '.join(f['reasons'])})" for f in failing[:_LISTED])
        more = f" and {len(failing) - _LISTED} more" if len(failing) > _LISTED else ""
        message = f"{len(failing)} of {len(enabled)} users keep credentials unused over {format_duration(limit)}: "
        return UNUSED_CREDENTIALS_DISABLED.result(Outcome.FAIL, message + listed + more, **details)
    message = f"every enabled credential of {len(enabled)} users was used within {format_duration(limit)}"
    return UNUSED_CREDENTIALS_DISABLED.result(Outcome.PASS, message, **details)


# ------------------------------------------------------------------------------------------- authorization details


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _document(value: Any) -> Mapping[str, Any]:
    """botocore decodes policy documents; raw API output has them URL-encoded."""
    if isinstance(value, str):
        decoded = json.loads(unquote(value))
        return decoded if isinstance(decoded, dict) else {}
    return value if isinstance(value, Mapping) else {}


def allows_everything(document: Any) -> bool:
    """An ``Allow`` statement with action ``*`` (or ``*:*``) on resource ``*``; conditions do not exempt it."""
    for statement in _as_list(_document(document).get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        actions = {str(a) for a in _as_list(statement.get("Action"))}
        if actions & {"*", "*:*"} and "*" in _as_list(statement.get("Resource")):
            return True
    return False


def _admin_policies(payload: Mapping[str, Any]) -> set[str]:
    admin = set()
    for policy in payload.get("Policies") or []:
        version = policy.get("DefaultVersion") or {}
        if allows_everything(version.get("Document")):
            admin.add(str(policy.get("Arn")))
    return admin


def _grants(entity: Mapping[str, Any], inline_key: str, admin: set[str]) -> list[str]:
    found = [
        str(p.get("PolicyArn"))
        for p in entity.get("AttachedManagedPolicies") or []
        if p.get("PolicyArn") in admin or str(p.get("PolicyArn")).endswith(_ADMINISTRATOR_ACCESS)
    ]
    found += [
        f"inline:{p.get('PolicyName')}"
        for p in entity.get(inline_key) or []
        if allows_everything(p.get("PolicyDocument"))
    ]
    return sorted(found)


_ENTITIES = (
    ("user", "UserDetailList", "UserPolicyList"),
    ("group", "GroupDetailList", "GroupPolicyList"),
    ("role", "RoleDetailList", "RolePolicyList"),
)


def no_wildcard_admin(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    admin = _admin_policies(payload)
    holders: list[dict[str, Any]] = []
    for entity_type, list_key, inline_key in _ENTITIES:
        for entity in payload.get(list_key) or []:
            policies = _grants(entity, inline_key, admin)
            if policies:
                holders.append({"arn": str(entity.get("Arn")), "type": entity_type, "policies": policies})
    allowed = [h for h in holders if any(fnmatchcase(h["arn"], pattern) for pattern in settings.admin_allowlist)]
    failing = [h for h in holders if h not in allowed]
    members = {
        group: sorted(
            str(u.get("UserName")) for u in payload.get("UserDetailList") or [] if group in (u.get("GroupList") or [])
        )
        for group in (h["arn"].rsplit("/", 1)[-1] for h in failing if h["type"] == "group")
    }
    details = {"failing": failing, "allowlisted": [h["arn"] for h in allowed], "group_members": members}
    if failing:
        noun = "principal" if len(failing) == 1 else "principals"
        message = f"{len(failing)} {noun} outside the allowlist may do anything (* on *): {_names(failing, 'arn')}"
        return NO_WILDCARD_ADMIN.result(Outcome.FAIL, message, **details)
    message = f"no principal outside the allowlist holds a policy allowing * on * ({len(allowed)} allowlisted)"
    return NO_WILDCARD_ADMIN.result(Outcome.PASS, message, **details)


def no_privilege_escalation(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
    found, errors = escalations(observation.payload)
    allowed = [f for f in found if any(fnmatchcase(f["arn"], pattern) for pattern in settings.admin_allowlist)]
    failing = [f for f in found if f not in allowed]
    details = {"failing": failing, "allowlisted": [f["arn"] for f in allowed], "errors": errors}
    if errors:
        listed = "; ".join(f"{e['arn']}: {e['error']}" for e in errors[:_LISTED])
        message = f"{len(errors)} principal(s) could not be evaluated ({listed})"
        if failing:
            message += f"; {len(failing)} others can escalate: {_names(failing, 'arn')}"
        return NO_PRIVILEGE_ESCALATION.result(Outcome.ERROR, message, **details)
    if failing:
        listed = "; ".join(f"{f['arn']} via {', '.join(p['path'] for p in f['paths'])}" for f in failing[:_LISTED])
        more = f" and {len(failing) - _LISTED} more" if len(failing) > _LISTED else ""
        message = f"{len(failing)} principal(s) outside the allowlist can escalate privileges: {listed}{more}"
        return NO_PRIVILEGE_ESCALATION.result(Outcome.FAIL, message, **details)
    message = f"no principal outside the allowlist has a known escalation path ({len(allowed)} allowlisted)"
    return NO_PRIVILEGE_ESCALATION.result(Outcome.PASS, message, **details)


# ------------------------------------------------------------------------------------------- password policy


def _count(policy: Mapping[str, Any], key: str) -> float | None:
    """A numeric field of the policy (absent is 0); ``None`` when it is not a finite number."""
    value = policy.get(key)
    return 0.0 if value is None else finite_number(value)


def _unmet(policy: Mapping[str, Any], settings: AwsSettings) -> list[str]:
    wanted = settings.password_policy
    unmet = []
    for key, what, needed in (
        ("MinimumPasswordLength", "minimum length", wanted.min_length),
        ("PasswordReusePrevention", "reuse prevention", wanted.reuse_prevention),
    ):
        number = _count(policy, key)
        if number is None:
            unmet.append(f"{key} {policy.get(key)!r} is not a finite number")
        elif number < needed:
            unmet.append(f"{what} {policy.get(key) or 0} < {needed}")
    for field, key in (
        ("require_symbols", "RequireSymbols"),
        ("require_numbers", "RequireNumbers"),
        ("require_uppercase", "RequireUppercaseCharacters"),
        ("require_lowercase", "RequireLowercaseCharacters"),
    ):
        if getattr(wanted, field) and policy.get(key) is not True:
            unmet.append(f"{key} is not set")
    if wanted.max_age is not None:
        max_days = policy.get("MaxPasswordAge") if policy.get("ExpirePasswords") else None
        if max_days is not None and finite_number(max_days) is None:
            unmet.append(f"MaxPasswordAge {max_days!r} is not a finite number")
        elif max_days is None or max_days > _days(wanted.max_age):
            unmet.append(f"passwords expire after {max_days or 'never'} days, more than {_days(wanted.max_age)}")
    return unmet


def password_policy(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
    account = _account(observation)
    if not observation.payload.get("present"):
        return PASSWORD_POLICY.result(Outcome.FAIL, f"account {account} has no password policy", unmet=["no policy"])
    unmet = _unmet(observation.payload["policy"], settings)
    if unmet:
        return PASSWORD_POLICY.result(Outcome.FAIL, f"password policy of {account}: {'; '.join(unmet)}", unmet=unmet)
    return PASSWORD_POLICY.result(Outcome.PASS, f"password policy of {account} meets the requirements", unmet=[])


# ------------------------------------------------------------------------------------------- ECR scans


def _scan_settings(settings: AwsSettings) -> ScanThresholds:
    return ScanThresholds(max_age=settings.ecr.max_age, fail_on_severity=settings.ecr.fail_on_severity)


def _container_check(check: Check[ScanThresholds]) -> Check[AwsSettings]:
    """The shared ``container.scan`` check itself, fed its thresholds from ``ecr:``; same id, same mapping."""

    def evaluate(observation: Observation, settings: AwsSettings, now: datetime) -> CheckResult:
        return check.evaluate(observation, _scan_settings(settings), now)

    return Check(id=check.id, kind=check.kind, title=check.title, evaluate=evaluate)


ROOT_MFA = _check("aws.iam.root_mfa", CREDENTIAL_REPORT_KIND, "Root user has MFA", root_mfa)
NO_ROOT_ACCESS_KEYS = _check(
    "aws.iam.no_root_access_keys", CREDENTIAL_REPORT_KIND, "Root user has no active access keys", no_root_access_keys
)
CONSOLE_USERS_MFA = _check(
    "aws.iam.console_users_mfa", CREDENTIAL_REPORT_KIND, "Every console user has MFA", console_users_mfa
)
ACCESS_KEYS_ROTATED = _check(
    "aws.iam.access_keys_rotated", CREDENTIAL_REPORT_KIND, "Active access keys are rotated", access_keys_rotated
)
UNUSED_CREDENTIALS_DISABLED = _check(
    "aws.iam.unused_credentials_disabled",
    CREDENTIAL_REPORT_KIND,
    "Unused passwords and access keys are disabled",
    unused_credentials_disabled,
)
NO_WILDCARD_ADMIN = _check(
    "aws.iam.no_wildcard_admin",
    AUTHORIZATION_DETAILS_KIND,
    "Only allowlisted principals may do anything on anything",
    no_wildcard_admin,
)
NO_PRIVILEGE_ESCALATION = _check(
    "aws.iam.no_privilege_escalation",
    AUTHORIZATION_DETAILS_KIND,
    "No principal outside the allowlist has a known privilege-escalation path",
    no_privilege_escalation,
)
PASSWORD_POLICY = _check(
    "aws.iam.password_policy",
    PASSWORD_POLICY_KIND,
    "The account password policy meets the requirements",
    password_policy,
)

IAM_CHECKS = (
    ROOT_MFA,
    NO_ROOT_ACCESS_KEYS,
    CONSOLE_USERS_MFA,
    ACCESS_KEYS_ROTATED,
    UNUSED_CREDENTIALS_DISABLED,
    NO_WILDCARD_ADMIN,
    NO_PRIVILEGE_ESCALATION,
    PASSWORD_POLICY,
)
CONTAINER_SCAN_CHECKS = tuple(_container_check(c) for c in SCAN_CHECKS)
CHECKS = IAM_CHECKS + CONTAINER_SCAN_CHECKS
