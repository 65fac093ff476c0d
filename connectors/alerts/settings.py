"""Settings of the ``alerts`` connector."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, model_validator

from collector.sdk import DEFAULT_CLOCK_SKEW_TOLERANCE, ConnectorSettings, Duration

__all__ = ["MAX_POINTS", "AlertsSettings"]

MAX_POINTS = 11_000
"""Prometheus refuses a range query with more points per series than this."""


class AlertsSettings(ConnectorSettings):
    prometheus_url: str = Field(pattern=r"^https?://")
    """Where the ``ALERTS`` series are queried (``/api/v1/query_range``)."""
    alertmanager_url: str | None = Field(default=None, pattern=r"^https?://")
    """Where silences and alert states are read (``/api/v2/silences``, ``/api/v2/alerts``). Without it no alert
    can be shown acknowledged."""
    bearer_token: SecretStr | None = None
    bearer_token_env: str | None = None
    """Sent to both servers when set."""
    query: str = Field(default='ALERTS{alertstate="firing"}', min_length=1)
    window: Duration = timedelta(hours=24)
    step: Duration = timedelta(minutes=1)
    """Resolution of the alert history: an episode's start and end are known to within one step."""
    model_label: str = Field(default="model", min_length=1)
    models: list[str] = Field(default_factory=list)
    """The monitored models the check is about; empty: every alert that carries ``model_label``."""
    max_unacknowledged: Duration = timedelta(minutes=30)
    """How long an alert on a monitored model may fire before someone silences (acknowledges) it."""
    max_episodes: int = Field(default=500, ge=1, le=10_000)
    """Episodes listed in the evidence (the longest first); the count and the check cover all of them."""
    timeout: Duration = timedelta(seconds=30)
    attempts: int = Field(default=3, ge=1, le=10)
    tls_verify: bool = True
    clock_skew_tolerance: Duration = DEFAULT_CLOCK_SKEW_TOLERANCE

    @model_validator(mode="after")
    def _shape(self) -> AlertsSettings:
        if self.bearer_token is not None and self.bearer_token_env is not None:
            raise ValueError("give bearer_token or bearer_token_env, not both")
        if self.step <= timedelta(0) or self.window <= timedelta(0):
            raise ValueError("window and step must be positive")
        if self.step > self.window:
            raise ValueError(f"step {self.step} is longer than window {self.window}")
        if self.window / self.step > MAX_POINTS:
            raise ValueError(f"window / step is more than {MAX_POINTS} points: use a longer step")
        if self.max_unacknowledged <= timedelta(0):
            raise ValueError("max_unacknowledged must be positive")
        return self
