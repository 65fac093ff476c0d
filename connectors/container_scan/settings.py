"""Settings of the ``container_scan`` connector."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from collector.connector import ConnectorSettings, LocalPath
from collector.durations import Duration

__all__ = ["DEFAULT_CLOCK_SKEW_TOLERANCE", "ContainerScanSettings", "Threshold"]

Threshold = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]
DEFAULT_CLOCK_SKEW_TOLERANCE = timedelta(minutes=5)
"""How far a scan time may lie after the collection time before it counts as "in the future"."""


class ContainerScanSettings(ConnectorSettings):
    paths: list[LocalPath] = Field(min_length=1)
    """Globs of report files; ``**`` matches any depth."""
    max_age: Duration = timedelta(days=7)
    """A scan older than this fails ``container.scan_recent``."""
    fail_on_severity: Threshold = "HIGH"
    """The lowest severity at which a fixable vulnerability fails ``container.no_fixable_vulns``."""
    clock_skew_tolerance: Duration = DEFAULT_CLOCK_SKEW_TOLERANCE
    """A scan dated later than the collection time by more than this fails ``container.scan_recent``."""
    max_file_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    """Larger report files are not read: each is a problem naming its size. Reading a report peaks at about 2.4
    times its size in memory (bench/scan_memory.py), so the default keeps a collection under 300 MB."""

    @field_validator("paths")
    @classmethod
    def _no_blank_globs(cls, value: list[str]) -> list[str]:
        if any(not pattern.strip() for pattern in value):
            raise ValueError("paths must not contain an empty glob")
        return value

    @field_validator("fail_on_severity", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value
