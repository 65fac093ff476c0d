"""ECR: repositories -> selected images -> scan findings (basic and enhanced) as ``container.scan`` evidence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from botocore.exceptions import ClientError

from collector.sdk import SkippableError, Subject, UnreadableTimestamp, read_timestamp
from collector.sdk.vulnerability_scan import Artifact, Finding, ScannedArtifact, normalise_severity

from .settings import EcrSettings
from .shapes import error_code

__all__ = ["EcrImage", "image_scan", "repositories", "selected_images", "to_scanned_artifact"]

_FINISHED = frozenset({"COMPLETE", "ACTIVE"})
"""Basic scans end in COMPLETE; enhanced (Inspector) scanning stays ACTIVE while it keeps watching the image."""
_UNDER_WAY = frozenset({"IN_PROGRESS", "PENDING"})
"""A scan not finished yet: skipped this run (the image's earlier evidence stands). Every other unfinished
status (FAILED, UNSUPPORTED_IMAGE, FINDINGS_UNAVAILABLE, SCAN_ELIGIBILITY_EXPIRED, LIMIT_EXCEEDED, ...) says the
scan did not complete and is recorded as such."""
_NO_FIX = "NotAvailable"
_OPEN_FINDING = frozenset({"ACTIVE"})
"""Enhanced findings that are SUPPRESSED or CLOSED are not open vulnerabilities."""


@dataclass(frozen=True, slots=True)
class EcrImage:
    repository_uri: str
    repository_name: str
    registry_id: str
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime | None

    @property
    def reference(self) -> str:
        return f"{self.repository_uri}@{self.digest}"


def repositories(ecr: Any) -> Iterator[dict[str, Any]]:
    for page in ecr.get_paginator("describe_repositories").paginate():
        yield from page.get("repositories") or []


def _wanted(image: EcrImage, settings: EcrSettings, now: datetime) -> bool:
    """Tagged as configured OR pushed recently enough; neither filter set means every image."""
    if not settings.tags and settings.pushed_within is None:
        return True
    if any(fnmatchcase(tag, pattern) for tag in image.tags for pattern in settings.tags):
        return True
    return bool(
        settings.pushed_within is not None and image.pushed_at and now - image.pushed_at <= settings.pushed_within
    )


def selected_images(ecr: Any, repository: dict[str, Any], settings: EcrSettings, now: datetime) -> Iterator[EcrImage]:
    name, registry = repository["repositoryName"], repository["registryId"]
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=name, registryId=registry):
        for detail in page.get("imageDetails") or []:
            image = EcrImage(
                repository_uri=repository["repositoryUri"],
                repository_name=name,
                registry_id=registry,
                digest=detail["imageDigest"],
                tags=tuple(sorted(detail.get("imageTags") or ())),
                pushed_at=detail.get("imagePushedAt"),
            )
            if _wanted(image, settings, now):
                yield image


def image_scan(ecr: Any, image: EcrImage) -> dict[str, Any]:
    """Every page of the image's findings merged into one ``imageScanFindings``; an image without a
    finished scan is a :class:`SkippableError` naming its state."""
    merged: dict[str, Any] = {"findings": [], "enhancedFindings": []}
    status: dict[str, Any] = {}
    pages = ecr.get_paginator("describe_image_scan_findings").paginate(
        repositoryName=image.repository_name, registryId=image.registry_id, imageId={"imageDigest": image.digest}
    )
    try:
        for page in pages:
            status = page.get("imageScanStatus") or status
            findings = page.get("imageScanFindings") or {}
            for key, value in findings.items():
                if key in merged:
                    merged[key].extend(value or [])
                else:
                    merged[key] = value
    except ClientError as exc:
        if error_code(exc) == "ScanNotFoundException":
            raise SkippableError(image.reference, "never scanned (ScanNotFoundException)") from None
        raise
    state = status.get("status")
    if state in _UNDER_WAY or not state:
        described = f": {status['description']}" if status.get("description") else ""
        raise SkippableError(image.reference, f"no usable scan, status {state or 'unknown'}{described}")
    merged["imageScanStatus"] = status
    return merged


def _scan_errors(findings: dict[str, Any]) -> tuple[str, ...]:
    """ECR's own word that the scan did not complete: its status and description."""
    status = findings.get("imageScanStatus") or {}
    state = status.get("status")
    if not state or state in _FINISHED:
        return ()
    described = f": {status['description']}" if status.get("description") else ""
    return (f"ECR image scan status {state}{described}",)


def _attributes(finding: dict[str, Any]) -> dict[str, str]:
    return {a.get("key", ""): a.get("value", "") for a in finding.get("attributes") or []}


def _basic(finding: dict[str, Any]) -> Finding:
    attributes = _attributes(finding)
    return Finding(
        id=str(finding.get("name") or finding.get("uri") or "unnamed"),
        package=attributes.get("package_name") or None,
        installed_version=attributes.get("package_version") or None,
        fixed_version=None,
        severity=normalise_severity(finding.get("severity")),
        fixable=None,
    )


def _fixable(fixed_version: str | None, fix_available: object) -> bool | None:
    if fixed_version:
        return True
    if fix_available == "YES":
        return True
    if fix_available in ("NO", "PARTIAL"):
        return False
    return None


def _enhanced(finding: dict[str, Any]) -> list[Finding]:
    details = finding.get("packageVulnerabilityDetails") or {}
    vulnerability = str(details.get("vulnerabilityId") or finding.get("title") or finding.get("findingArn"))
    severity = normalise_severity(finding.get("severity"))
    out = []
    for package in details.get("vulnerablePackages") or [{}]:
        fixed = package.get("fixedInVersion")
        fixed = fixed if fixed and fixed != _NO_FIX else None
        out.append(
            Finding(
                id=vulnerability,
                package=package.get("name"),
                installed_version=package.get("version"),
                fixed_version=fixed,
                severity=severity,
                fixable=_fixable(fixed, finding.get("fixAvailable")),
            )
        )
    return out


def _scan_time(findings: dict[str, Any]) -> tuple[datetime | None, str | None]:
    """The scan's completion time, else the latest time Inspector observed a finding; or why it is unreadable."""
    try:
        completed = read_timestamp(findings.get("imageScanCompletedAt"), "imageScanCompletedAt")
        if completed is not None:
            return completed, None
        observed = [
            read_timestamp(f.get("lastObservedAt"), f"enhancedFindings[{i}].lastObservedAt")
            for i, f in enumerate(findings.get("enhancedFindings") or [])
        ]
    except UnreadableTimestamp as exc:
        return None, str(exc)
    return max((t for t in observed if t is not None), default=None), None


def to_scanned_artifact(image: EcrImage, findings: dict[str, Any]) -> ScannedArtifact:
    """The same shape the container_scan connector builds from a Trivy or Grype report of this image."""
    all_enhanced = findings.get("enhancedFindings") or []
    enhanced = [f for f in all_enhanced if f.get("status", "ACTIVE") in _OPEN_FINDING]
    basic = findings.get("findings") or []
    is_enhanced = bool(all_enhanced) or (findings.get("imageScanStatus") or {}).get("status") == "ACTIVE"
    scanned_at, time_error = _scan_time(findings)
    scan_errors = _scan_errors(findings)
    if scanned_at is None and time_error is None and not scan_errors:
        raise SkippableError(image.reference, "the scan has no completion time")
    name = f"{image.repository_uri}:{image.tags[0]}" if image.tags else image.reference
    return ScannedArtifact(
        format="ecr",
        scanner_name="amazon-inspector" if is_enhanced else "ecr-basic",
        scanner_version=None,
        subject=Subject("container_image", image.reference),
        artifact=Artifact(
            name=name,
            type="container_image",
            digest=image.digest,
            repo_tags=tuple(f"{image.repository_uri}:{tag}" for tag in image.tags),
            repo_digests=(image.reference,),
        ),
        scanned_at=scanned_at,
        findings=[_basic(f) for f in basic] + [g for f in enhanced for g in _enhanced(f)],
        fix_state_known=is_enhanced and not basic,
        scan_errors=scan_errors,
        time_error=time_error,
    )
