"""Settings of the ``data_access`` connector: where the trail's log files are, and the designated datasets."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from collector.sdk import DEFAULT_CLOCK_SKEW_TOLERANCE, ConnectorSettings, Duration, region_names

__all__ = ["DataAccessSettings", "Dataset", "S3Location", "TrailSettings"]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_FEATURE_GROUP = re.compile(r"^[a-zA-Z0-9]([_-]*[a-zA-Z0-9]){0,63}$")
_SERVICE = re.compile(r"^service:[a-z0-9.*-]+$")
_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9*-]+:[a-z0-9*-]*:[0-9*]*:.+$")


def _bucket_name(value: str) -> str:
    if not _BUCKET.match(value):
        raise ValueError(f"{value!r} is not an S3 bucket name")
    return value


class S3Location(ConnectorSettings):
    """A bucket, or the objects under a prefix of it (``prefix: training/``)."""

    bucket: str
    prefix: str = ""

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        return _bucket_name(value)

    @field_validator("prefix")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/"):
            raise ValueError(f"prefix {value!r} must not start with '/' (S3 keys do not)")
        return value


class Dataset(ConnectorSettings):
    """A designated dataset: training data, features or model artifacts, and who may use it."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[\w.-]+$")
    s3: list[S3Location] = Field(default_factory=list)
    feature_groups: list[str] = Field(default_factory=list)
    """SageMaker Feature Store feature group names (their GetRecord/PutRecord data events and management events)."""
    allowed_principals: list[str] = Field(default_factory=list)
    """ARNs (globs allowed, e.g. ``arn:aws:sts::123456789012:assumed-role/training-*/*``) that may use it.
    Assumed roles are matched by the session ARN and by the role ARN, so a role ARN allows all its sessions; an AWS
    service acting for a principal is ``service:<host>`` (e.g. ``service:athena.amazonaws.com``)."""
    human_readers: list[str] = Field(default_factory=list)
    """Humans (IAM users, SSO sessions, the root user) allowed to read it, as ARNs or globs; others fail
    ``data.no_unlisted_human_reads``."""

    @field_validator("feature_groups")
    @classmethod
    def _feature_group_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _FEATURE_GROUP.match(name)]
        if bad:
            raise ValueError(f"not feature group names: {bad}")
        return value

    @field_validator("allowed_principals", "human_readers")
    @classmethod
    def _arns(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if item != "*" and not _ARN_PATTERN.match(item) and not _SERVICE.match(item)]
        if bad:
            raise ValueError(
                f"not ARNs, ARN globs or service:<host>: {bad} (like arn:aws:iam::123456789012:role/training)"
            )
        return value

    @model_validator(mode="after")
    def _something_designated(self) -> Dataset:
        if not self.s3 and not self.feature_groups:
            raise ValueError(f"dataset {self.name!r} names neither s3 locations nor feature_groups")
        return self


class TrailSettings(ConnectorSettings):
    """The CloudTrail trail whose log files are read."""

    name: str = Field(min_length=1)
    """Trail name or ARN: its event selectors say whether a dataset's data events are logged."""
    region: str
    """The trail's home region (GetEventSelectors and GetTrailStatus are asked there)."""
    bucket: str
    """The bucket the trail delivers log files to."""
    prefix: str = ""
    """The trail's S3 key prefix (the part before ``AWSLogs/``), if any."""

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        return _bucket_name(value)

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str) -> str:
        return region_names([value])[0]

    @field_validator("prefix")
    @classmethod
    def _no_slashes_around(cls, value: str) -> str:
        return value.strip("/")


class DataAccessSettings(ConnectorSettings):
    trail: TrailSettings
    datasets: list[Dataset] = Field(min_length=1)
    management_events: bool = True
    """Read the datasets' management events (bucket policy changes, feature group deletion) with LookupEvents."""
    lookup_regions: list[str] = Field(default_factory=list)
    """Regions whose management events (LookupEvents) on the datasets' buckets and feature groups are read;
    empty: the trail's region."""
    key_depth: int = Field(default=1, ge=0, le=8)
    """Object keys are recorded only down to this many path segments below the dataset's prefix
    (0: none at all)."""
    keys_per_principal: int = Field(default=20, ge=0, le=1000)
    """At most this many distinct (depth-cut) key prefixes are kept per principal; the rest are counted."""
    first_window: Duration = timedelta(days=1)
    """On a first run (no cursor), log files and management events this far back are read."""
    max_files_per_run: int = Field(default=20_000, ge=1)
    """A run reads at most this many log files; the rest are read by the next run (a problem says so)."""
    review_period: Duration = timedelta(days=90)
    """``access.review``: an allowed principal not seen using the dataset for this long is unused access."""
    dedupe_horizon: Duration = timedelta(hours=1)
    """Events delivered twice are counted once when the copies' event times lie within this of the newest event
    seen (memory stays bounded by the event rate times this horizon, not by the window)."""
    retry_mode: Literal["adaptive", "standard"] = "adaptive"
    max_attempts: int = Field(default=10, ge=1, le=20)
    endpoint_url: str | None = None
    """For tests against moto; otherwise leave unset (boto3 honours ``AWS_ENDPOINT_URL`` itself)."""
    clock_skew_tolerance: Duration = DEFAULT_CLOCK_SKEW_TOLERANCE

    @field_validator("lookup_regions")
    @classmethod
    def _region_names(cls, value: list[str]) -> list[str]:
        return region_names(value)

    @field_validator("datasets")
    @classmethod
    def _names_once(cls, value: list[Dataset]) -> list[Dataset]:
        names = [d.name for d in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"datasets named more than once: {twice}")
        return value
