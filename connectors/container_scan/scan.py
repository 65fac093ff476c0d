"""What one scanned artifact says, independent of the report format, and how it becomes evidence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector.model import Subject

__all__ = [
    "SEVERITIES",
    "SEVERITY_RANK",
    "Artifact",
    "Finding",
    "ScannedArtifact",
    "count_by_severity",
    "deduplicate",
    "normalise_severity",
    "to_payload",
]

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
SEVERITY_RANK = {"UNKNOWN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
_SEVERITY_ALIASES = {"NEGLIGIBLE": "LOW", "INFORMATIONAL": "LOW"}  # grype, ECR basic scanning


def normalise_severity(value: object) -> str:
    """Map any scanner's severity word onto ours; a missing or unrecognised one is UNKNOWN."""
    if not isinstance(value, str):
        return "UNKNOWN"
    word = value.strip().upper()
    word = _SEVERITY_ALIASES.get(word, word)
    return word if word in SEVERITY_RANK else "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Finding:
    """One vulnerability in one installed package. ``fixable`` is ``None`` when the report cannot tell."""

    id: str
    package: str | None
    installed_version: str | None
    fixed_version: str | None
    severity: str
    fixable: bool | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.id, self.package or "", self.installed_version or "")


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    type: str
    digest: str | None = None
    image_id: str | None = None
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScannedArtifact:
    """One artifact's scan, as read from one report (a report may hold several, e.g. SARIF runs)."""

    format: str
    scanner_name: str
    scanner_version: str | None
    subject: Subject
    artifact: Artifact
    scanned_at: datetime | None
    findings: list[Finding] = field(default_factory=list)
    fix_state_known: bool = True
    scan_errors: tuple[str, ...] = ()
    """The scanner's own words for why the scan did not complete (a failed run, a broken database)."""
    scanned_nothing: str | None = None
    """Why the report covers no target at all (SARIF ``runs: []``, legacy Trivy ``null``, no Results)."""
    time_error: str | None = None
    """The report's scan time is present but unreadable: which field, which value."""


def _merge(a: Finding, b: Finding) -> Finding:
    """The same (id, package, version) reported twice: keep the worse severity and any known fix."""
    severity = max(a.severity, b.severity, key=SEVERITY_RANK.__getitem__)
    fixed = sorted(v for v in (a.fixed_version, b.fixed_version) if v)
    known = [f for f in (a.fixable, b.fixable) if f is not None]
    fixable = any(known) if known else None
    return Finding(a.id, a.package, a.installed_version, fixed[0] if fixed else None, severity, fixable)


def deduplicate(findings: Iterable[Finding]) -> list[Finding]:
    merged: dict[tuple[str, str, str], Finding] = {}
    for finding in findings:
        seen = merged.get(finding.key)
        merged[finding.key] = finding if seen is None else _merge(seen, finding)
    return [merged[key] for key in sorted(merged)]


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings have each severity, every severity present (0 when none)."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        counts[finding.severity] += 1
    return counts


def to_payload(scan: ScannedArtifact, *, observed_at_source: str) -> dict[str, Any]:
    """The stored evidence: deterministic (sorted lists, fixed keys), counted from the deduplicated list."""
    findings = deduplicate(scan.findings)
    fix_state_known = scan.fix_state_known and all(f.fixable is not None for f in findings)
    artifact = scan.artifact
    return {
        "format": scan.format,
        "scanner": {"name": scan.scanner_name, "version": scan.scanner_version},
        "artifact": {
            "name": artifact.name,
            "type": artifact.type,
            "digest": artifact.digest,
            "image_id": artifact.image_id,
            "repo_tags": sorted(artifact.repo_tags),
            "repo_digests": sorted(artifact.repo_digests),
        },
        "observed_at_source": observed_at_source,
        "time_error": scan.time_error,
        "scan_errors": list(scan.scan_errors),
        "scanned_nothing": scan.scanned_nothing,
        "fix_state_known": fix_state_known,
        "severity_counts": count_by_severity(findings),
        "fixable_counts": count_by_severity(f for f in findings if f.fixable) if fix_state_known else None,
        "vulnerability_count": len(findings),
        "vulnerabilities": [
            {
                "id": f.id,
                "package": f.package,
                "installed_version": f.installed_version,
                "fixed_version": f.fixed_version,
                "severity": f.severity,
                "fixable": f.fixable,
            }
            for f in findings
        ],
    }
