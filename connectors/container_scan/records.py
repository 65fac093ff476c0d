"""The Grype and SARIF fields the checks rely on (Trivy's are shared: :mod:`collector.sdk.vulnerability_scan`)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from collector.sdk.vulnerability_scan.records import Identifier, Record

__all__ = ["GRYPE_MATCH_FIELDS", "GrypeMatch", "SarifResult", "security_severity"]


class GrypeFix(Record):
    state: str | None = None
    versions: list[str] | None = None


class GrypeVulnerability(Record):
    id: Identifier
    severity: str | None = None
    """Optional: real grype reports (0.96) leave it out; absent is an unknown severity."""
    fix: GrypeFix | None = None
    fixed_in_version: str | None = Field(default=None, validation_alias="fixedInVersion")


class GrypeArtifact(Record):
    name: str | None = None
    version: str | None = None


class GrypeMatch(Record):
    vulnerability: GrypeVulnerability
    artifact: GrypeArtifact | None = None


GRYPE_MATCH_FIELDS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): ("vulnerability", "artifact"),
    ("vulnerability",): ("id", "severity", "fix", "fixedInVersion"),
    ("vulnerability", "fix"): ("state", "versions"),
    ("artifact",): ("name", "version"),
}
"""Where in a grype match the checks read, and which keys: a near namesake of one of these is a rename."""


class SarifResult(Record):
    rule_id: str | None = Field(default=None, validation_alias="ruleId")
    rule_index: int | None = Field(default=None, validation_alias="ruleIndex")
    level: Literal["none", "note", "warning", "error"] | None = None
    """SARIF's four levels; anything else is not SARIF."""


def security_severity(value: Any) -> float | None:
    """A SARIF ``security-severity`` as a score in [0, 10]; anything else (``NaN``, ``-1``, ``11``) is ``None``."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        score = float(value)
    except ValueError:
        return None
    return score if math.isfinite(score) and 0.0 <= score <= 10.0 else None
