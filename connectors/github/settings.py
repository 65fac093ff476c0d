"""Settings of the ``github`` connector (github.com or GitHub Enterprise Server)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, field_validator, model_validator

from collector.sdk import DEFAULT_CLOCK_SKEW_TOLERANCE, ConnectorSettings, Duration

__all__ = ["GitHubSettings"]


class GitHubSettings(ConnectorSettings):
    token: SecretStr
    """A fine-grained token (Administration, Actions, Deployments, Environments: read) or a classic token with
    ``repo``; branch protection needs admin rights on the repository."""
    api_url: str = Field(default="https://api.github.com", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    """GitHub Enterprise Server: ``https://ghe.example.com/api/v3``."""
    repositories: list[str] = Field(min_length=1)
    """``owner/name`` of the repositories holding model code, training pipelines and deployment manifests."""
    required_approving_reviews: int = Field(default=1, ge=1)
    require_code_owner_review: bool = True
    require_admins_included: bool = True
    required_status_checks: list[str] = []
    """Status-check contexts the default branch must require, e.g. the security scan (``CodeQL``, ``trivy``)."""
    environments: list[str] = ["production"]
    """Environments whose deployments need reviewers and are judged for four eyes."""
    security_workflows: list[str] = []
    """Workflow file names (``codeql.yml``) whose runs on the default branch must be recent and successful."""
    scan_max_age: Duration = timedelta(days=7)
    window: Duration = timedelta(days=30)
    """Deployments created in this window are collected."""
    max_deployments: int = Field(default=1000, gt=0)
    max_rate_limit_wait: Duration = timedelta(seconds=60)
    """A rate-limit wait up to this long is slept through; a longer one fails the run as transient."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    clock_skew_tolerance: Duration = DEFAULT_CLOCK_SKEW_TOLERANCE

    @field_validator("repositories")
    @classmethod
    def _owner_name(cls, value: list[str]) -> list[str]:
        for repo in value:
            owner, sep, name = repo.partition("/")
            if not sep or not owner or not name or "/" in name or " " in repo:
                raise ValueError(f"repository {repo!r} must be owner/name")
        if len(set(value)) != len(value):
            raise ValueError("a repository is listed twice")
        return value

    @model_validator(mode="after")
    def _positive(self) -> GitHubSettings:
        if self.window <= timedelta(0) or self.scan_max_age <= timedelta(0):
            raise ValueError("window and scan_max_age must be positive")
        return self
