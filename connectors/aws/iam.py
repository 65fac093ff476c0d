"""IAM reads: the credential report, the authorization details, the password policy."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from collector.sdk import TransientError

from .shapes import aws_json, error_code

__all__ = [
    "AUTHORIZATION_DETAILS_KIND",
    "CREDENTIAL_REPORT_KIND",
    "PASSWORD_POLICY_KIND",
    "ROOT_USER",
    "CredentialReportError",
    "fetch_authorization_details",
    "fetch_credential_report",
    "fetch_password_policy",
    "parse_credential_report",
]

CREDENTIAL_REPORT_KIND = "aws.iam.credential_report"
AUTHORIZATION_DETAILS_KIND = "aws.iam.authorization_details"
PASSWORD_POLICY_KIND = "aws.iam.password_policy"  # noqa: S105 - an evidence kind, not a password
ROOT_USER = "<root_account>"

_REPORT_NOT_READY = {"ReportInProgress", "ReportNotPresent", "ReportExpired"}
"""404 while generating, 410 when absent or expired: generate (again) and poll."""
_AUTHORIZATION_LISTS = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")
_AWS_MANAGED = ":iam::aws:policy/"

_BOOLEAN_COLUMNS = frozenset(
    {"password_enabled", "mfa_active", "access_key_1_active", "access_key_2_active", "cert_1_active", "cert_2_active"}
)
_TIME_COLUMNS = frozenset(
    {
        "user_creation_time",
        "password_last_used",
        "password_last_changed",
        "password_next_rotation",
        "access_key_1_last_rotated",
        "access_key_1_last_used_date",
        "access_key_2_last_rotated",
        "access_key_2_last_used_date",
        "cert_1_last_rotated",
        "cert_2_last_rotated",
    }
)
_KEPT_MARKERS = frozenset({"not_supported", "no_information"})
"""Markers that mean something (root has no password field; never used since tracking began); ``N/A`` is null."""


class CredentialReportError(ValueError):
    """The credential report cannot be read as a whole; the message says why."""


# ------------------------------------------------------------------------------------------- credential report


def fetch_credential_report(
    iam: Any, poll: timedelta, timeout: timedelta, wait: Callable[[float], None]
) -> tuple[bytes, datetime]:
    """Generate, then poll until the report is there: its CSV bytes and its ``GeneratedTime``."""
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        state = iam.generate_credential_report().get("State")
        if state == "COMPLETE":
            try:
                report = iam.get_credential_report()
            except ClientError as exc:
                if error_code(exc) not in _REPORT_NOT_READY:
                    raise
            else:
                return bytes(report["Content"]), report["GeneratedTime"]
        if time.monotonic() >= deadline:
            raise TransientError(f"the IAM credential report was still being generated after {timeout}")
        wait(poll.total_seconds())


def _time(value: str) -> str:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


def _cell(column: str, value: str | None) -> tuple[Any, str | None]:
    """The normalised value, and a reason when the cell is unreadable (the raw text is then kept)."""
    if value is None:
        return None, None
    text = value.strip()
    if text == "N/A" or text == "":
        return None, None
    if text in _KEPT_MARKERS:
        return text, None
    if column in _BOOLEAN_COLUMNS:
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true", None
        return text, f"not true/false: {text!r}"
    if column in _TIME_COLUMNS:
        try:
            return _time(text), None
        except ValueError:
            return text, f"not a timestamp: {text!r}"
    return text, None


def parse_credential_report(content: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    """One dict per principal (root included), columns by header name; plus a reason per unreadable cell."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CredentialReportError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    reader = csv.reader(io.StringIO(text))
    header = [name.strip().lower() for name in next(reader, [])]
    missing = [name for name in ("user", "arn") if name not in header]
    if missing:
        raise CredentialReportError(f"header lacks column(s) {', '.join(missing)}: {','.join(header)[:200]!r}")
    principals: list[dict[str, Any]] = []
    problems: list[str] = []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(f"line {line}: {len(row)} cells for {len(header)} columns")
        principal: dict[str, Any] = {}
        for index, column in enumerate(header):
            value, reason = _cell(column, row[index] if index < len(row) else None)
            principal[column] = value
            if reason:
                problems.append(f"line {line} ({principal.get('user') or '?'}): {column} {reason}")
        principals.append(principal)
    return principals, problems


# ------------------------------------------------------------------------------------------- authorization details


def _with_default_version(policy: dict[str, Any]) -> dict[str, Any]:
    versions = policy.get("PolicyVersionList") or []
    default = next((v for v in versions if v.get("IsDefaultVersion")), None)
    kept = {key: value for key, value in policy.items() if key != "PolicyVersionList"}
    kept["DefaultVersion"] = default
    return kept


def _in_use(policy: dict[str, Any]) -> bool:
    return bool(policy.get("AttachmentCount") or policy.get("PermissionsBoundaryUsageCount"))


def fetch_authorization_details(iam: Any) -> dict[str, Any]:
    """Every page of ``GetAccountAuthorizationDetails``; managed policies keep only their default version,
    and AWS-managed policies only when something in the account uses them."""
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in _AUTHORIZATION_LISTS}
    for page in iam.get_paginator("get_account_authorization_details").paginate():
        for name in _AUTHORIZATION_LISTS:
            found[name].extend(page.get(name) or [])
    policies = [p for p in found["Policies"] if _AWS_MANAGED not in p.get("Arn", "") or _in_use(p)]
    details = {name: sorted(found[name], key=lambda item: str(item.get("Arn"))) for name in _AUTHORIZATION_LISTS[:3]}
    details["Policies"] = sorted((_with_default_version(p) for p in policies), key=lambda p: str(p.get("Arn")))
    payload: dict[str, Any] = aws_json(details)
    payload["aws_managed_policies_unused"] = len(found["Policies"]) - len(policies)
    return payload


# ------------------------------------------------------------------------------------------- password policy


def fetch_password_policy(iam: Any) -> dict[str, Any]:
    """``{"present": False}`` when the account has none (``NoSuchEntity``): a finding, not a failure."""
    try:
        policy = iam.get_account_password_policy()["PasswordPolicy"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        return {"present": False, "policy": None}
    return {"present": True, "policy": aws_json(policy)}
