"""Settings of the ``model_monitor`` connector."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from collector.sdk import DEFAULT_CLOCK_SKEW_TOLERANCE, ConnectorSettings, Duration, LocalPath

__all__ = [
    "AwsSettings",
    "Bound",
    "ModelMonitorSettings",
    "Monitor",
    "PrometheusSettings",
    "ReportSource",
    "SageMakerSchedules",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


class Bound(ConnectorSettings):
    """``{min: x}`` (value ≥ x), ``{max: y}`` (value ≤ y) or both (between, inclusive)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_side_at_least(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a bound needs min, max or both")
        for side in (self.min, self.max):
            if side is not None and not math.isfinite(side):
                raise ValueError("bound limits must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"bound min {self.min} is above max {self.max}")
        return self

    def contains(self, value: float) -> bool:
        """NaN and ±Inf are never within bounds: they are not measurements."""
        if not math.isfinite(value):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def margin(self, value: float) -> float:
        """How far inside the bound a value is (negative: outside); NaN and ±Inf rank below everything."""
        if not math.isfinite(value):
            return -math.inf
        sides = [value - self.min if self.min is not None else math.inf]
        sides.append(self.max - value if self.max is not None else math.inf)
        return min(sides)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"between {self.min:g} and {self.max:g}"
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


class PrometheusSettings(ConnectorSettings):
    url: str = Field(pattern=r"^https?://")
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    bearer_token: SecretStr | None = None
    bearer_token_env: str | None = None
    tls_verify: bool = True
    ca_file: LocalPath | None = None
    """A CA bundle to verify the server with (implies tls_verify)."""
    timeout: Duration = timedelta(seconds=30)
    attempts: int = Field(default=3, ge=1, le=10)
    """Tries per request on connection errors, timeouts and 5xx responses."""

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> PrometheusSettings:
        if self.password is not None and self.password_env is not None:
            raise ValueError("give password or password_env, not both")
        if self.bearer_token is not None and self.bearer_token_env is not None:
            raise ValueError("give bearer_token or bearer_token_env, not both")
        has_password = self.password is not None or self.password_env is not None
        if has_password != (self.username is not None):
            raise ValueError("basic auth needs both username and password (or password_env)")
        if has_password and (self.bearer_token is not None or self.bearer_token_env is not None):
            raise ValueError("use basic auth or a bearer token, not both")
        return self


class Monitor(ConnectorSettings):
    name: str = Field(pattern=_NAME)
    model: str | None = None
    """The model the monitor watches; defaults to the monitor's name as the evidence subject."""
    query: str = Field(min_length=1)
    bound: Bound
    window: Duration = timedelta(hours=1)
    step: Duration = timedelta(minutes=1)
    min_coverage: float = Field(default=1.0, ge=0.0, le=1.0)
    """The share of evaluation steps in the window that must have data within bounds."""

    @model_validator(mode="after")
    def _step_within_window(self) -> Monitor:
        if self.step <= timedelta(0) or self.window <= timedelta(0):
            raise ValueError("window and step must be positive")
        if self.step > self.window:
            raise ValueError(f"step {self.step} is longer than window {self.window}")
        return self


class ReportSource(ConnectorSettings):
    path: LocalPath | None = None
    """A glob of report files (``**`` matches any depth) or an ``s3://bucket/prefix``."""
    s3: str | None = Field(default=None, pattern=r"^s3://[^/]+(/.*)?$")
    format: Literal["auto", "evidently", "sagemaker", "clarify"] = "auto"
    model: str | None = None
    """The model these reports are about; without it each report is its own subject."""

    @model_validator(mode="after")
    def _exactly_one_location(self) -> ReportSource:
        if (self.path is None) == (self.s3 is None):
            raise ValueError("a report source needs exactly one of path or s3")
        if self.path is not None and not self.path.strip():
            raise ValueError("path must not be empty")
        return self

    @property
    def location(self) -> str:
        return self.s3 or self.path or ""

    @property
    def s3_uri(self) -> str | None:
        if self.s3 is not None:
            return self.s3
        return self.path if self.path is not None and self.path.startswith("s3://") else None


class SageMakerSchedules(ConnectorSettings):
    enabled: bool = False
    regions: list[str] = Field(default_factory=list)
    endpoint_names: list[str] = Field(default_factory=list)
    """Only schedules of these endpoints (all when empty)."""
    grace: Duration = timedelta(hours=1)
    """How late past its period the last execution may be before the schedule is unhealthy."""
    default_period: Duration = timedelta(days=1)
    """The period assumed for a schedule expression this connector cannot read."""
    max_file_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """Larger violations reports are not read."""

    @model_validator(mode="after")
    def _regions_when_enabled(self) -> SageMakerSchedules:
        if self.enabled and not self.regions:
            raise ValueError("sagemaker_schedules needs at least one region when enabled")
        return self


class AwsSettings(ConnectorSettings):
    region: str | None = None
    endpoint_url: str | None = None
    """For S3-compatible stores and local test servers."""
    profile: str | None = None


def _default_bias_bounds() -> dict[str, Bound]:
    return {
        "DI": Bound(min=0.8, max=1.25),
        "DPL": Bound(min=-0.1, max=0.1),
        "DPPL": Bound(min=-0.1, max=0.1),
    }


class ModelMonitorSettings(ConnectorSettings):
    prometheus: PrometheusSettings | None = None
    monitors: list[Monitor] = Field(default_factory=list)
    reports: list[ReportSource] = Field(default_factory=list)
    sagemaker_schedules: SageMakerSchedules = Field(default_factory=SageMakerSchedules)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    bias_bounds: dict[str, Bound] = Field(default_factory=_default_bias_bounds)
    """Clarify metric name -> the bound its value must stay within (DI four-fifths rule, |DPL| <= 0.1 ...)."""
    drift_fail_on: Literal["dataset", "any_column"] = "dataset"
    """``dataset``: Evidently's own dataset-drift verdict decides; ``any_column``: any drifted column fails."""
    max_file_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    clock_skew_tolerance: Duration = DEFAULT_CLOCK_SKEW_TOLERANCE
    """How far past the collection time a report or execution may be dated before it counts as "in the future"
    (and fails its check) rather than as a clock a little ahead."""

    @field_validator("monitors")
    @classmethod
    def _unique_names(cls, value: list[Monitor]) -> list[Monitor]:
        names = [m.name for m in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"monitor names must be unique: {', '.join(twice)} used more than once")
        return value

    @model_validator(mode="after")
    def _something_to_collect(self) -> ModelMonitorSettings:
        if self.clock_skew_tolerance < timedelta(0):
            raise ValueError("clock_skew_tolerance must not be negative")
        if self.monitors and self.prometheus is None:
            raise ValueError("monitors need a prometheus: {url: ...} section")
        if not (self.monitors or self.reports or self.sagemaker_schedules.enabled):
            raise ValueError("configure monitors, reports or sagemaker_schedules")
        return self
