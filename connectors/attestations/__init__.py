"""Attested documents (policies, reviews, assessments) with a sidecar YAML, as ``attestation.document`` evidence."""

from .connector import AttestationsConnector
from .settings import AttestationsSettings

__all__ = ["AttestationsConnector", "AttestationsSettings"]
