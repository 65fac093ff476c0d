"""Settings of the ``attestations`` connector."""

from __future__ import annotations

from pydantic import Field, model_validator

from collector.attestation import SIDECAR_SUFFIX
from collector.sdk import ConnectorSettings, LocalPath

__all__ = ["AttestationsSettings"]


class AttestationsSettings(ConnectorSettings):
    directory: LocalPath | None = None
    """A directory searched at any depth for sidecars (``<document>.attestation.yaml``)."""
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_region: str | None = None
    s3_endpoint_url: str | None = None
    """Only for S3-compatible stores; credentials come from the usual AWS chain (environment, profile, role)."""
    sidecar_suffix: str = Field(default=SIDECAR_SUFFIX, pattern=r"^\.[A-Za-z0-9._-]+$")
    max_sidecar_bytes: int = Field(default=64 * 1024, gt=0)

    @model_validator(mode="after")
    def _a_source(self) -> AttestationsSettings:
        if self.directory is None and self.s3_bucket is None:
            raise ValueError("give a directory, an s3_bucket, or both")
        if self.directory is not None and not self.directory.strip():
            raise ValueError("directory must not be blank")
        return self
