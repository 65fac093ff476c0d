"""Trivy Operator ``VulnerabilityReport`` objects as ``container.scan`` evidence, one per image digest.

The payload is built by ``collector.sdk.vulnerability_scan.to_payload`` (the same shape and severity words as
file reports), counted from the listed vulnerabilities; the report's own ``summary`` is kept beside it because
the two can disagree. Reports are per workload container and their names change with every rollout, so
reports of the same image are grouped by the image's identity (digest, else tag) into one observation: the
latest report's time and scanner, the findings of all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from collector.sdk import Subject, UnreadableTimestamp, read_timestamp
from collector.sdk.vulnerability_scan import (
    SEVERITIES,
    Artifact,
    Finding,
    ReportError,
    ScannedArtifact,
    TrivyKeys,
    count_by_severity,
    deduplicate,
    to_payload,
    trivy_findings,
)

__all__ = ["ImageScan", "VulnerabilityReport", "image_scans", "read_report"]

FORMAT = "trivy-operator"
_DOCKER_HUB = ("index.docker.io", "docker.io", "registry-1.docker.io")
_NEVER = datetime.min.replace(tzinfo=UTC)
_SUMMARY_KEYS = {
    "CRITICAL": "criticalCount",
    "HIGH": "highCount",
    "MEDIUM": "mediumCount",
    "LOW": "lowCount",
    "UNKNOWN": "unknownCount",
}
_OPERATOR_KEYS = TrivyKeys("vulnerabilityID", "resource", "installedVersion", "fixedVersion", "severity")


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True, slots=True)
class VulnerabilityReport:
    """One report as read: the scan in the shared shape, the workload container it was made for, its summary."""

    scan: ScannedArtifact
    workload: dict[str, Any]
    summary_counts: dict[str, int | None]


@dataclass(frozen=True, slots=True)
class ImageScan:
    """One image's evidence: the payload, the scan time (``None`` if no report said) and where it came from."""

    subject: Subject
    scanned_at: datetime | None
    payload: dict[str, Any]
    source: str


def _repository(report: Mapping[str, Any]) -> str:
    """``ghcr.io/org/model-server``; Docker Hub images as Docker prints them (``nginx``, ``bitnami/redis``)."""
    server = _text(_obj(report.get("registry")).get("server"))
    repository = _text(_obj(report.get("artifact")).get("repository")) or "unknown"
    if server is None or server in _DOCKER_HUB:
        return repository.removeprefix("library/")
    return f"{server}/{repository}"


def _findings(vulnerabilities: Any, where: str) -> list[Finding]:
    """Trivy's vulnerability records as the operator spells them, read by ``container_scan``'s Trivy reader."""
    try:
        return trivy_findings(vulnerabilities, "report.vulnerabilities", _OPERATOR_KEYS)
    except ReportError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _summary(report: Mapping[str, Any]) -> dict[str, int | None]:
    summary = _obj(report.get("summary"))
    counts: dict[str, int | None] = {}
    for severity in SEVERITIES:
        value = summary.get(_SUMMARY_KEYS[severity])
        counts[severity] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return counts


def _report_time(report: Mapping[str, Any], metadata: Mapping[str, Any]) -> tuple[datetime | None, str | None]:
    """``report.updateTimestamp``, else the object's ``metadata.creationTimestamp``; an unreadable one is named,
    and the other (if readable) still dates the evidence."""
    times: list[datetime | None] = []
    errors: list[str] = []
    for value, field in (
        (report.get("updateTimestamp"), "report.updateTimestamp"),
        (metadata.get("creationTimestamp"), "metadata.creationTimestamp"),
    ):
        try:
            times.append(read_timestamp(value, field))
        except UnreadableTimestamp as exc:
            times.append(None)
            errors.append(str(exc))
    scanned_at = next((t for t in times if t is not None), None)
    if times[0] is None and errors:
        return scanned_at, "; ".join(errors)
    return scanned_at, None


def read_report(obj: Mapping[str, Any], where: str) -> VulnerabilityReport:
    """One VulnerabilityReport object; ``ValueError`` names what is wrong with it."""
    metadata = _obj(obj.get("metadata"))
    report = _obj(obj.get("report"))
    if not report:
        raise ValueError(f"{where}: no report section")
    artifact = _obj(report.get("artifact"))
    repository = _repository(report)
    digest = _text(artifact.get("digest"))
    tag = _text(artifact.get("tag"))
    scanner = _obj(report.get("scanner"))
    labels = _obj(metadata.get("labels"))
    subject_id = f"{repository}@{digest}" if digest else f"{repository}:{tag or 'latest'}"
    scanned_at, time_error = _report_time(report, metadata)
    scan = ScannedArtifact(
        format=FORMAT,
        scanner_name=(_text(scanner.get("name")) or "trivy").lower(),
        scanner_version=_text(scanner.get("version")),
        subject=Subject("container_image", subject_id),
        artifact=Artifact(
            name=f"{repository}:{tag}" if tag else subject_id,
            type="container_image",
            digest=digest,
            repo_tags=(f"{repository}:{tag}",) if tag else (),
            repo_digests=(f"{repository}@{digest}",) if digest else (),
        ),
        scanned_at=scanned_at,
        findings=_findings(report.get("vulnerabilities"), where),
        fix_state_known=True,
        time_error=time_error,
    )
    workload = {
        "report": f"{metadata.get('namespace')}/{metadata.get('name')}",
        "namespace": labels.get("trivy-operator.resource.namespace") or metadata.get("namespace"),
        "kind": labels.get("trivy-operator.resource.kind"),
        "name": labels.get("trivy-operator.resource.name"),
        "container": labels.get("trivy-operator.container.name"),
    }
    return VulnerabilityReport(scan, workload, _summary(report))


def _report_entry(report: VulnerabilityReport) -> dict[str, Any]:
    """One report as listed in the payload: its workload container, its own summary and what it lists."""
    listed = count_by_severity(deduplicate(report.scan.findings))
    summary = report.summary_counts
    return {
        **report.workload,
        "updated_at": report.scan.scanned_at.isoformat() if report.scan.scanned_at else None,
        "summary_counts": summary,
        "listed_counts": listed,
        "summary_matches_listed": all(summary[s] in (None, listed[s]) for s in SEVERITIES),
    }


def _payload(merged: VulnerabilityReport, reports: list[VulnerabilityReport]) -> dict[str, Any]:
    """``container_scan``'s payload, counted from the listed vulnerabilities, plus each report's own summary."""
    payload = to_payload(merged.scan, observed_at_source="report" if merged.scan.scanned_at else "collected")
    entries = sorted((_report_entry(r) for r in reports), key=lambda e: str(e["report"]))
    payload["trivy_operator"] = {
        "keyed_by": "digest" if merged.scan.artifact.digest else "tag",
        "summary_matches_listed": all(e["summary_matches_listed"] for e in entries),
        "reports": entries,
    }
    return payload


def _merged(reports: list[VulnerabilityReport]) -> VulnerabilityReport:
    """The latest report, carrying the findings of every report of the image (deduplicated by ``to_payload``)."""
    latest = max(reports, key=lambda r: (r.scan.scanned_at or _NEVER, str(r.workload["report"])))
    findings = [finding for report in reports for finding in report.scan.findings]
    time_errors = [f"{r.workload['report']}: {r.scan.time_error}" for r in reports if r.scan.time_error]
    time_error = "; ".join(time_errors) or None
    return replace(latest, scan=replace(latest.scan, findings=findings, time_error=time_error))


def image_scans(reports: Iterable[VulnerabilityReport]) -> list[ImageScan]:
    """One scan per image: the latest report's metadata and time, the findings of all reports of that image."""
    by_image: dict[str, list[VulnerabilityReport]] = {}
    for report in reports:
        by_image.setdefault(report.scan.subject.id, []).append(report)
    scans = []
    for group in (by_image[key] for key in sorted(by_image)):
        merged = _merged(group)
        source = f"vulnerabilityreports/{merged.workload['report']}"
        scans.append(ImageScan(merged.scan.subject, merged.scan.scanned_at, _payload(merged, group), source))
    return scans
