"""Settings of the ``aws`` connector."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from collector.sdk import DEFAULT_CLOCK_SKEW_TOLERANCE, ConnectorSettings, Duration, region_names
from collector.sdk.vulnerability_scan import Threshold

__all__ = ["AccountTarget", "AwsSettings", "EcrSettings", "InfrastructureSettings", "PasswordPolicyRequirements"]

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/[\w+=,.@/-]{1,512}$")


class AccountTarget(ConnectorSettings):
    """An account reached with ``sts:AssumeRole``."""

    id: str
    role_arn: str
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    """Not a secret (AWS says so); it guards against the confused-deputy problem."""

    @field_validator("id")
    @classmethod
    def _twelve_digits(cls, value: str) -> str:
        if not _ACCOUNT_ID.match(value):
            raise ValueError(f"account id {value!r} must be 12 digits (quote it in YAML to keep leading zeros)")
        return value

    @model_validator(mode="after")
    def _role_in_account(self) -> AccountTarget:
        match = _ROLE_ARN.match(self.role_arn)
        if match is None:
            raise ValueError(f"role_arn {self.role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        if match["account"] != self.id:
            raise ValueError(f"role_arn {self.role_arn} is in account {match['account']}, not {self.id}")
        return self


class EcrSettings(ConnectorSettings):
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)
    """Image tags (globs, e.g. ``prod-*``) that select an image whatever its age."""
    pushed_within: Duration | None = timedelta(days=30)
    """Images pushed this recently are selected; ``null`` with no ``tags`` selects every image."""
    max_age: Duration = timedelta(days=7)
    """A scan older than this fails ``container.scan_recent`` (as in the container_scan connector)."""
    fail_on_severity: Threshold = "HIGH"
    """The lowest severity at which a fixable finding fails ``container.no_fixable_vulns``."""

    @field_validator("fail_on_severity", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class PasswordPolicyRequirements(ConnectorSettings):
    """What ``aws.iam.password_policy`` demands of the account password policy."""

    min_length: int = Field(default=14, ge=6, le=128)
    reuse_prevention: int = Field(default=24, ge=0, le=24)
    require_symbols: bool = False
    require_numbers: bool = False
    require_uppercase: bool = False
    require_lowercase: bool = False
    max_age: Duration | None = None
    """When set, passwords must expire at least this often."""


_SECRET_LOOKING_NAMES = [
    "*SECRET*", "*PASSWORD*", "*PASSWD*", "*TOKEN*", "*API_KEY*", "*APIKEY*", "*PRIVATE_KEY*", "*ACCESS_KEY*",
    "*CREDENTIAL*",
]  # fmt: skip
_ADMIN_AND_DATABASE_PORTS = [22, 1433, 1521, 3306, 3389, 5432, 5601, 5985, 5986, 6379, 8888, 9200, 27017]


class InfrastructureSettings(ConnectorSettings):
    """Logging, encryption, exposure, backup, network, secrets and threat-detection evidence (opt-in)."""

    enabled: bool = False
    scope: Literal["designated", "all"] = "designated"
    """``designated``: only buckets named in ``buckets`` or tagged as in ``scope_tags``; ``all``: every bucket."""
    buckets: list[str] = Field(default_factory=list)
    """Bucket names or globs (``ml-training-*``) holding training data and model artifacts."""
    scope_tags: dict[str, str] = Field(default_factory=lambda: {"ai.evidence/scope": "*"})
    """Buckets carrying one of these tags (value a glob) are designated too; ``{}`` turns tag lookup off."""
    skip_kinds: list[str] = Field(default_factory=list)
    """Evidence kinds not to read (e.g. a service not used), so no call is made for them."""
    admin_ports: list[int] = Field(default_factory=lambda: list(_ADMIN_AND_DATABASE_PORTS))
    min_backup_retention_days: int = Field(default=7, ge=1, le=35)
    min_log_retention_days: int = Field(default=365, ge=1)
    secret_max_rotation_age: Duration = timedelta(days=90)
    guardduty_max_finding_age: Duration = timedelta(days=7)
    """An unarchived high-severity GuardDuty finding older than this fails."""
    max_training_jobs: int = Field(default=100, ge=0, le=10_000)
    """The most recent training jobs described per region."""
    secret_name_patterns: list[str] = Field(default_factory=lambda: list(_SECRET_LOOKING_NAMES))
    """Environment variable names (globs, case-insensitive) that look like a plaintext secret."""

    @field_validator("admin_ports")
    @classmethod
    def _ports(cls, value: list[int]) -> list[int]:
        bad = [port for port in value if not 0 <= port <= 65535]
        if bad:
            raise ValueError(f"not TCP ports: {bad}")
        return sorted(set(value))

    @field_validator("skip_kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        from .infra import INFRA_KINDS

        unknown = sorted(set(value) - INFRA_KINDS)
        if unknown:
            raise ValueError(f"unknown evidence kinds {unknown}; known: {sorted(INFRA_KINDS)}")
        return value


class AwsSettings(ConnectorSettings):
    regions: list[str] = Field(default_factory=list)
    """Regions for regional services (ECR); empty means the session's region."""
    accounts: list[AccountTarget] = Field(default_factory=list)
    """Accounts reached by AssumeRole; empty means the current credentials' account only."""
    max_key_age: Duration = timedelta(days=90)
    max_unused: Duration = timedelta(days=45)
    admin_allowlist: list[str] = Field(default_factory=list)
    """Principal ARNs (globs allowed) that may hold a policy allowing ``*`` on ``*``."""
    password_policy: PasswordPolicyRequirements = PasswordPolicyRequirements()
    ecr: EcrSettings = EcrSettings()
    infrastructure: InfrastructureSettings = InfrastructureSettings()
    retry_mode: Literal["adaptive", "standard"] = "adaptive"
    max_attempts: int = Field(default=10, ge=1, le=20)
    """botocore's attempts per call (first try included) before the core's own backoff takes over."""
    endpoint_url: str | None = None
    """For tests against moto; otherwise leave unset (boto3 honours ``AWS_ENDPOINT_URL`` itself)."""
    clock_skew_tolerance: Duration = DEFAULT_CLOCK_SKEW_TOLERANCE
    """How far past the collection time the credential report (or a time in it) may be dated before it counts as
    "in the future" and its checks fail, rather than as a clock a little ahead."""
    credential_report_poll: Duration = timedelta(seconds=2)
    credential_report_timeout: Duration = timedelta(minutes=2)

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: list[str]) -> list[str]:
        return region_names(value)

    @field_validator("accounts")
    @classmethod
    def _accounts_once(cls, value: list[AccountTarget]) -> list[AccountTarget]:
        ids = [account.id for account in value]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"accounts listed more than once: {twice}")
        return value

    @model_validator(mode="after")
    def _poll_within_timeout(self) -> AwsSettings:
        if self.credential_report_poll > self.credential_report_timeout:
            raise ValueError("credential_report_poll must not be longer than credential_report_timeout")
        return self
