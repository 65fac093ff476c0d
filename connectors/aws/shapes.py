"""Small helpers over botocore values: JSON-able payloads, error codes, the IAM action a call needs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

__all__ = [
    "ACCESS_DENIED_CODES",
    "IAM_ACTIONS",
    "aws_json",
    "error_code",
    "error_message",
    "iam_action",
    "is_access_denied",
    "permission_for",
]

ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess", "NotAuthorized"}
)


def aws_json(value: Any) -> Any:
    """Datetimes as ISO 8601 in UTC (botocore hands back local-zone times for epoch fields); the rest as is."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {key: aws_json(item) for key, item in value.items() if key != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [aws_json(item) for item in value]
    return value


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


_CREDENTIAL_FAILURES = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException"}
)


def is_access_denied(exc: BaseException) -> bool:
    """Denied by policy: the code says so, or a bare 403 (an XML error body on a JSON service) that is
    not a credential failure (those concern every call, not one API)."""
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ACCESS_DENIED_CODES or (status == 403 and code not in _CREDENTIAL_FAILURES)


IAM_ACTIONS = {
    ("s3", "ListBuckets"): "s3:ListAllMyBuckets",
    ("s3", "GetBucketEncryption"): "s3:GetEncryptionConfiguration",
    ("s3", "GetObjectLockConfiguration"): "s3:GetBucketObjectLockConfiguration",
    ("s3", "GetPublicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("s3control", "GetPublicAccessBlock"): "s3:GetAccountPublicAccessBlock",
}
"""API operations whose IAM action has another name (S3's); every other action is ``<prefix>:<operation>``."""


def iam_action(service: str, operation: str, prefix: str | None = None) -> str:
    """The IAM action an API call needs: ``service`` is botocore's service name, ``prefix`` the IAM prefix."""
    return IAM_ACTIONS.get((service, operation)) or f"{prefix or service}:{operation}"


def permission_for(service: str, exc: ClientError) -> str:
    """The IAM action behind a failed call, e.g. ``iam:GetAccountPasswordPolicy``."""
    return iam_action(service, exc.operation_name)
