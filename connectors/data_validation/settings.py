"""Settings of the ``data_validation`` connector."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collector.sdk import DEFAULT_CLOCK_SKEW_TOLERANCE, ConnectorSettings, Duration, LocalPath

__all__ = ["DataValidationSettings", "ExpectedAsset"]


class ExpectedAsset(BaseModel):
    """A data asset that must be validated: by every suite named (or by some suite, when none is named)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasource: str = Field(min_length=1)
    asset: str = Field(min_length=1)
    suites: list[str] = []
    max_age: Duration | None = None
    """How old its latest validation may be; ``None``: the connector's ``max_age``."""


class DataValidationSettings(ConnectorSettings):
    directory: LocalPath
    """Searched at any depth for ``*.json`` validation results (a GX file context's
    ``uncommitted/validations``, or where a pipeline writes checkpoint results)."""
    pattern: str = Field(default="**/*.json", min_length=1)
    max_age: Duration = timedelta(days=1)
    """How old the latest validation of an asset may be before ``data_validation.recent`` fails."""
    window: Duration = timedelta(days=7)
    """An expected asset without a validation in this window is reported missing."""
    expected_assets: list[ExpectedAsset] = []
    max_file_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    clock_skew_tolerance: Duration = DEFAULT_CLOCK_SKEW_TOLERANCE

    @model_validator(mode="after")
    def _sane(self) -> DataValidationSettings:
        if not self.directory.strip():
            raise ValueError("directory must not be blank")
        if self.max_age <= timedelta(0) or self.window <= timedelta(0):
            raise ValueError("max_age and window must be positive")
        seen: set[tuple[str, str]] = set()
        for expected in self.expected_assets:
            key = (expected.datasource, expected.asset)
            if key in seen:
                raise ValueError(f"expected asset {expected.datasource}/{expected.asset} is listed twice")
            seen.add(key)
            if expected.max_age is not None and expected.max_age <= timedelta(0):
                raise ValueError(f"max_age of {expected.datasource}/{expected.asset} must be positive")
        return self

    def max_age_of(self, datasource: str | None, asset: str | None) -> timedelta:
        for expected in self.expected_assets:
            if (expected.datasource, expected.asset) == (datasource, asset) and expected.max_age is not None:
                return expected.max_age
        return self.max_age
