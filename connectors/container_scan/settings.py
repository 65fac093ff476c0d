"""Settings of the ``container_scan`` connector."""

from __future__ import annotations

from pydantic import Field, field_validator

from collector.sdk import LocalPath
from collector.sdk.vulnerability_scan import ScanThresholds

__all__ = ["ContainerScanSettings"]


class ContainerScanSettings(ScanThresholds):
    paths: list[LocalPath] = Field(min_length=1)
    """Globs of report files; ``**`` matches any depth."""
    max_file_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    """Larger report files are not read: each is a problem naming its size. Reading a report peaks at about 2.4
    times its size in memory (bench/scan_memory.py), so the default keeps a collection under 300 MB."""

    @field_validator("paths")
    @classmethod
    def _no_blank_globs(cls, value: list[str]) -> list[str]:
        if any(not pattern.strip() for pattern in value):
            raise ValueError("paths must not contain an empty glob")
        return value
