"""Settings of the ``mlflow`` connector: a config with only ``tracking_uri`` does the right thing."""

from __future__ import annotations

import math
from datetime import timedelta
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.sdk import DEFAULT_CLOCK_SKEW_TOLERANCE, ConnectorSettings, Duration

__all__ = ["DEFAULT_FAIRNESS_BOUNDS", "ApprovalTags", "Bounds", "MlflowSettings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApprovalTags(_Strict):
    """Model-version tag names that record who approved a promotion and when."""

    by: str = Field(default="approved_by", min_length=1)
    at: str = Field(default="approved_at", min_length=1)


class Bounds(_Strict):
    """An inclusive range a metric must fall in; either end may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some_and_ordered(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("a bound needs min, max or both")
        if any(side is not None and not math.isfinite(side) for side in (self.min, self.max)):
            raise ValueError("bound limits must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def describe(self) -> str:
        if self.min is None:
            return f"<= {self.max:g}"
        if self.max is None:
            return f">= {self.min:g}"
        return f"in [{self.min:g}, {self.max:g}]"

    def holds(self, value: float) -> bool:
        """NaN and ±Inf never hold: they are not measurements."""
        if not math.isfinite(value):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


DEFAULT_FAIRNESS_BOUNDS = {
    "demographic_parity_difference": Bounds(max=0.1),
    "equalized_odds_difference": Bounds(max=0.1),
    "disparate_impact": Bounds(min=0.8, max=1.25),
}


class MlflowSettings(ConnectorSettings):
    tracking_uri: str
    """``http(s)://host[:port]`` of the MLflow tracking server (also used as the registry URI)."""
    token: SecretStr | None = None
    """Bearer token (``MLFLOW_TRACKING_TOKEN``); leave unset to use the environment."""
    username: str | None = None
    password: SecretStr | None = None
    """Basic auth (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``); a password needs a username,
    a username alone takes the password from the environment."""

    experiments: list[str] = Field(default_factory=list)
    """Experiment names to collect runs from; empty means every active experiment."""
    experiment_tags: dict[str, str] = Field(default_factory=dict)
    """Only experiments carrying all these tags (combined with ``experiments``)."""
    backfill: Duration = timedelta(days=90)
    """How far back a first run (no cursor yet) collects training runs."""
    params: list[str] | None = None
    """Globs of run params to keep (``None`` keeps all)."""
    metrics: list[str] | None = None
    """Globs of final run metrics to keep (``None`` keeps all)."""
    max_value_chars: int = Field(default=1000, ge=16)
    """Longer param and tag values are cut to this length and marked as truncated."""
    list_run_artifacts: bool = False
    """Also list each training run's documentation artifacts (one extra request per run)."""

    deployed_aliases: list[str] = Field(default_factory=lambda: ["production", "champion"])
    """A model version holding one of these aliases, or the legacy Production stage, is deployed."""
    approval_tags: ApprovalTags = Field(default_factory=ApprovalTags)
    deployed_at_tag: str | None = "deployed_at"
    """A version tag recording when it was deployed; when present, the approval must predate it."""
    model_card_paths: list[str] = Field(default_factory=lambda: ["model_card.md", "README.md"])
    """Artifact paths (relative to the source run's artifact root) that count as a model card."""
    evaluation_metrics: list[str] = Field(default_factory=lambda: ["accuracy", "roc_auc", "f1", "rmse"])
    """``mlflow.evaluated`` passes when at least one of these is logged on the source run."""
    fairness_bounds: dict[str, Bounds] = Field(default_factory=lambda: dict(DEFAULT_FAIRNESS_BOUNDS))
    """``mlflow.fairness_within_bounds``: at least one logged, and every logged one within its bounds."""

    clock_skew_tolerance: Duration = DEFAULT_CLOCK_SKEW_TOLERANCE
    """How far past the collection time an approval or deployment time may lie before it counts as "in the
    future" (and fails ``mlflow.approval_recorded``) rather than as a clock a little ahead."""

    request_timeout: Duration = timedelta(seconds=60)
    """Per-request timeout of the MLflow client."""
    http_retries: int = Field(default=2, ge=0, le=10)
    """The MLflow client's own retries per request; the core retries the whole run on top."""

    @field_validator("tracking_uri")
    @classmethod
    def _http_uri(cls, value: str) -> str:
        parsed = urlparse(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"tracking_uri must be an http(s) URL of a tracking server, got {value!r}")
        return value.strip().rstrip("/")

    @field_validator("deployed_aliases", "model_card_paths", "evaluation_metrics", "experiments")
    @classmethod
    def _no_blank_names(cls, value: list[str]) -> list[str]:
        if any(not item.strip() for item in value):
            raise ValueError("names must not be empty")
        return value

    @model_validator(mode="after")
    def _basic_auth_is_a_pair(self) -> MlflowSettings:
        if self.password is not None and not self.username:
            raise ValueError("a password needs a username")
        if self.backfill <= timedelta(0):
            raise ValueError("backfill must be positive")
        return self
