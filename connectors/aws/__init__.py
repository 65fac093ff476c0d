"""AWS: IAM access evidence (credential report, authorization details, password policy) and ECR image scans."""

from .checks import (
    ACCESS_KEYS_ROTATED,
    CHECKS,
    CONSOLE_USERS_MFA,
    NO_PRIVILEGE_ESCALATION,
    NO_ROOT_ACCESS_KEYS,
    NO_WILDCARD_ADMIN,
    PASSWORD_POLICY,
    ROOT_MFA,
    UNUSED_CREDENTIALS_DISABLED,
)
from .connector import AwsConnector
from .settings import AccountTarget, AwsSettings, EcrSettings, PasswordPolicyRequirements

__all__ = [
    "ACCESS_KEYS_ROTATED",
    "CHECKS",
    "CONSOLE_USERS_MFA",
    "NO_PRIVILEGE_ESCALATION",
    "NO_ROOT_ACCESS_KEYS",
    "NO_WILDCARD_ADMIN",
    "PASSWORD_POLICY",
    "ROOT_MFA",
    "UNUSED_CREDENTIALS_DISABLED",
    "AccountTarget",
    "AwsConnector",
    "AwsSettings",
    "EcrSettings",
    "PasswordPolicyRequirements",
]
