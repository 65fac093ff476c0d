"""Read Trivy, Grype and SARIF vulnerability reports into :class:`ScannedArtifact` values.

One function per format; :func:`parse_report` picks the format from the document's shape.
A malformed report raises :class:`ReportError` with a reason fit for ``ctx.problem``: every field a check reads
is validated (:mod:`.records`; Trivy's in the SDK), and a missing, renamed, ``null`` or mistyped one is named by
its JSON path, so that a damaged report is never read as one with no findings.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import PurePath
from typing import Any

from collector.sdk import Subject, UnreadableTimestamp, read_timestamp
from collector.sdk.vulnerability_scan import (
    SEVERITY_RANK,
    Artifact,
    Finding,
    ReportError,
    ScannedArtifact,
    normalise_severity,
    trivy_findings,
)
from collector.sdk.vulnerability_scan.records import Malformed as _Malformed
from collector.sdk.vulnerability_scan.records import json_items as _items
from collector.sdk.vulnerability_scan.records import json_object as _required_obj
from collector.sdk.vulnerability_scan.records import json_type, read_record, renamed_field
from collector.sdk.vulnerability_scan.records import nonblank as _text
from collector.sdk.vulnerability_scan.records import reject_renamed as _renamed

from .records import GRYPE_MATCH_FIELDS, GrypeMatch, SarifResult, security_severity

__all__ = [
    "detect_format",
    "parse_grype",
    "parse_report",
    "parse_sarif",
    "parse_trivy",
    "parse_trivy_legacy",
]


def _obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{where} is a JSON {json_type(value)}, expected an object")
    return value


def _array(container: dict[str, Any], key: str, where: str) -> list[Any] | None:
    """``container[key]`` as an array, ``None`` when the key is absent; ``null`` is an error, not "none"."""
    if key not in container:
        return None
    value = container[key]
    if not isinstance(value, list):
        raise _Malformed(f"{where} is a JSON {json_type(value)}, expected an array")
    return value


def _holding(container: dict[str, Any], key: str, markers: frozenset[str], known: frozenset[str]) -> str | None:
    """The other key of ``container`` that holds what belongs under ``key``: an unknown near namesake of it, or
    any key whose array holds objects with one of the ``markers`` (fields only ``key``'s items have)."""
    renamed = renamed_field(container, (key,), known)
    if renamed is not None:
        return renamed[0]
    for name, value in container.items():
        if name == key:
            continue
        if isinstance(value, list) and any(_marked(item, markers) for item in value):
            return name
        if name not in known and _holds_marked(value, markers, depth=4):
            return name
    return None


def _marked(item: Any, markers: frozenset[str]) -> bool:
    return isinstance(item, dict) and not markers.isdisjoint(item)


def _holds_marked(value: Any, markers: frozenset[str], depth: int) -> bool:
    """Whether a marked object sits anywhere in ``value`` within ``depth`` levels (an unknown key's nesting)."""
    if _marked(value, markers):
        return True
    if depth == 0:
        return False
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(_holds_marked(child, markers, depth - 1) for child in children)


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(item for item in value if _text(item)) if isinstance(value, list) else ()


def _digest_of(repo_digests: tuple[str, ...]) -> str | None:
    """``repo@sha256:…`` -> ``sha256:…``"""
    for ref in repo_digests:
        _, at, digest = ref.rpartition("@")
        if at and digest:
            return digest
    return None


def _subject(artifact: Artifact, *, name_from_report: bool, source: str) -> Subject:
    """Images by digest (repo digest, then manifest digest, then image ID), else by name.

    When the report names nothing, the report's path stands in: two reports that both fall back
    must not collapse into one subject just because their file names match.
    """
    name = artifact.name if name_from_report else source
    if artifact.type == "container_image":
        ref = next(iter(artifact.repo_digests), None) or artifact.digest or artifact.image_id
        return Subject("container_image", ref or name)
    return Subject("scan_target", name)


def _scan_time(value: Any, field: str) -> tuple[datetime | None, str | None]:
    """The scan time and ``None``, or ``None`` and why the time the report holds cannot be read."""
    try:
        return read_timestamp(value, field), None
    except UnreadableTimestamp as exc:
        return None, str(exc)


# ---------------------------------------------------------------------------------------------- dispatch


def parse_report(document: Any, source: str) -> list[ScannedArtifact]:
    """Detect the format of a decoded JSON document and parse it; ``source`` is the report's path."""
    label = detect_format(document)
    try:
        if label == "trivy-legacy":
            return [parse_trivy_legacy(document, source)]
        if label == "trivy":
            return [parse_trivy(document, source)]
        if label == "grype":
            return [parse_grype(document, source)]
        return parse_sarif(document, source)
    except _Malformed as exc:
        raise ReportError(f"malformed {label} report: {exc}") from None


def detect_format(document: Any) -> str:
    """``trivy``, ``trivy-legacy``, ``grype`` or ``sarif`` by the document's shape, else :class:`ReportError`."""
    if document is None or isinstance(document, list):
        return "trivy-legacy"
    if not isinstance(document, dict):
        raise ReportError(f"unknown report format: top-level JSON {json_type(document)}")
    if "SchemaVersion" in document:
        return "trivy"
    if "matches" in document:
        return "grype"
    if "runs" in document:
        return "sarif"
    raise ReportError(_unknown_format(document))


def _unknown_format(document: dict[str, Any]) -> str:
    if "ClusterName" in document:
        return "unknown report format: a `trivy k8s` cluster report (ClusterName) is not supported"
    if not document:
        return "unknown report format: empty JSON object"
    keys = sorted(document)
    shown = ", ".join(keys[:10]) + (f" (+{len(keys) - 10} more)" if len(keys) > 10 else "")
    return f"unknown report format: top-level keys {shown}"


# ---------------------------------------------------------------------------------------------- Trivy


_TRIVY_RESULT_KEYS = frozenset(
    {
        "Target",
        "Class",
        "Type",
        "Packages",
        "Vulnerabilities",
        "Misconfigurations",
        "MisconfSummary",
        "Secrets",
        "Licenses",
        "CustomResources",
        "ModifiedFindings",
    }
)
_TRIVY_REPORT_KEYS = frozenset(
    {
        "SchemaVersion",
        "Trivy",
        "ReportID",
        "CreatedAt",
        "ArtifactID",
        "ArtifactName",
        "ArtifactType",
        "Metadata",
        "Results",
    }
)
_VULNERABILITY_MARKERS = frozenset({"VulnerabilityID", "PkgName", "InstalledVersion", "FixedVersion"})
"""Fields of a Trivy vulnerability record that no other Trivy array's items (packages, misconfigurations,
secrets, licenses) carry."""
_RESULT_MARKERS = frozenset({"Target", "Class", "Type", "Vulnerabilities"})


def _trivy_findings(results: list[Any], where: str) -> list[Finding]:
    """Every result's findings. A result without ``Vulnerabilities`` (or with ``null``) is clean, as Trivy writes
    it, unless another key of it is a near namesake or holds vulnerability records: then the key was renamed."""
    for i, raw in enumerate(results):
        here = f"{where}[{i}]"
        result = _required_obj(raw, here)
        if not isinstance(result.get("Target"), str):
            state = f"a JSON {json_type(result['Target'])}" if "Target" in result else "missing"
            raise _Malformed(f"{here}.Target is {state}, expected a string")
        for key in ("Class", "Type"):
            if key in result and not isinstance(result[key], str):
                raise _Malformed(f"{here}.{key} is a JSON {json_type(result[key])}, expected a string")
    status_expected = any(
        isinstance(record, dict) and "Status" in record
        for result in results
        if isinstance(result.get("Vulnerabilities"), list)
        for record in result["Vulnerabilities"]
    )
    findings = []
    for i, result in enumerate(results):
        here = f"{where}[{i}]"
        vulnerabilities = _items(result.get("Vulnerabilities"), f"{here}.Vulnerabilities")
        if not vulnerabilities:
            misplaced = _holding(result, "Vulnerabilities", _VULNERABILITY_MARKERS, _TRIVY_RESULT_KEYS)
            if misplaced is not None:
                state = "empty" if "Vulnerabilities" in result else "missing"
                raise _Malformed(f"{here}.Vulnerabilities is {state}; found `{misplaced}`")
            continue
        findings += trivy_findings(vulnerabilities, f"{here}.Vulnerabilities", status_expected=status_expected)
    return findings


def parse_trivy(document: dict[str, Any], source: str) -> ScannedArtifact:
    """``trivy -f json`` since v0.20 (SchemaVersion 2): one artifact, findings summed over ``Results``."""
    schema = document.get("SchemaVersion")
    if schema != 2:
        raise ReportError(f"unsupported trivy report: SchemaVersion {schema!r} (this connector reads 2)")
    metadata = _obj(document.get("Metadata"), "Metadata")
    repo_digests = _texts(metadata.get("RepoDigests"))
    image_id = _text(metadata.get("ImageID"))
    name = _text(document.get("ArtifactName"))
    kind = _text(document.get("ArtifactType")) or ("container_image" if image_id or repo_digests else "unknown")
    artifact = Artifact(
        name=name or PurePath(source).name,
        type=kind,
        digest=_digest_of(repo_digests),
        image_id=image_id,
        repo_tags=_texts(metadata.get("RepoTags")),
        repo_digests=repo_digests,
    )
    results = _array(document, "Results", "Results")
    if results is None:
        misplaced = _holding(document, "Results", _RESULT_MARKERS, _TRIVY_REPORT_KEYS)
        if misplaced is not None:
            raise _Malformed(f"Results is missing; found `{misplaced}`")
        results = []
    findings = _trivy_findings(results, "Results")
    scanned_at, time_error = _scan_time(document.get("CreatedAt"), "CreatedAt")
    return ScannedArtifact(
        format="trivy",
        scanner_name="trivy",
        scanner_version=_text(_obj(document.get("Trivy"), "Trivy").get("Version")),
        subject=_subject(artifact, name_from_report=name is not None, source=source),
        artifact=artifact,
        scanned_at=scanned_at,
        findings=findings,
        scanned_nothing=None if findings else _trivy_scanned_nothing(results),
        time_error=time_error,
    )


_NOT_PACKAGE_CLASSES = frozenset({"config", "secret", "license", "license-file"})
"""Result classes that hold no package scan (misconfigurations, secrets, licenses)."""


def _trivy_scanned_nothing(results: list[Any]) -> str | None:
    """Why a Trivy report holds no vulnerability scan of any target, else ``None``."""
    if not results:
        return "the report lists no scanned targets (no Results): trivy detected no OS or language packages"
    classes = {r.get("Class") for r in results if isinstance(r, dict)}
    if classes and classes <= _NOT_PACKAGE_CLASSES:
        shown = ", ".join(sorted(str(c) for c in classes))
        return f"the report holds only {shown} results: no package was scanned for vulnerabilities"
    return None


_OS_TARGET = re.compile(r"^(?P<name>.+?) \([^()]+\)$")
"""Legacy Trivy names the OS-package result ``<image> (<os> <version>)``."""


def parse_trivy_legacy(document: list[Any] | None, source: str) -> ScannedArtifact:
    """Trivy before v0.20: a top-level array of results, or literal ``null`` for a clean scan."""
    results = document or []
    if document is None:
        nothing: str | None = "the report is JSON null: trivy before v0.20 writes it without naming what it scanned"
    elif not document:
        nothing = "the report is an empty array: no scanned target is named"
    else:
        nothing = None
    if not all(isinstance(r, dict) and "Target" in r for r in results):
        raise ReportError("unknown report format: a JSON array whose items are not Trivy results (no Target)")
    name = None
    for result in results:
        match = _OS_TARGET.match(_text(result.get("Target")) or "")
        if match and result.get("Class") in (None, "os-pkgs"):
            name = match["name"]
            break
    artifact = Artifact(name=name or PurePath(source).name, type="container_image" if name else "unknown")
    return ScannedArtifact(
        format="trivy-legacy",
        scanner_name="trivy",
        scanner_version=None,
        subject=_subject(artifact, name_from_report=name is not None, source=source),
        artifact=artifact,
        scanned_at=None,
        findings=_trivy_findings(results, "results"),
        scanned_nothing=nothing,
    )


# ---------------------------------------------------------------------------------------------- Grype


def _grype_artifact(source_block: dict[str, Any], source: str) -> tuple[Artifact, bool]:
    kind = _text(source_block.get("type")) or "unknown"
    target = source_block.get("target")
    if isinstance(target, dict):
        repo_digests = _texts(target.get("repoDigests"))
        name = _text(target.get("userInput")) or _text(target.get("path"))
        artifact = Artifact(
            name=name or PurePath(source).name,
            type="container_image" if kind == "image" else kind,
            digest=_text(target.get("manifestDigest")) or _digest_of(repo_digests),
            image_id=_text(target.get("imageID")),
            repo_tags=_texts(target.get("tags")),
            repo_digests=repo_digests,
        )
        return artifact, name is not None
    name = _text(target) if kind != "unknown" else None
    return Artifact(name=name or PurePath(source).name, type=kind), name is not None


_GRYPE_FIX_STATES: dict[Any, bool] = {"fixed": True, "not-fixed": False, "wont-fix": False}
"""Grype's ``fix.state``; ``unknown``, ``""`` or anything else is an unknown fix state, never "no fix"."""

_GRYPE_KNOWN_KEYS: dict[tuple[str, ...], frozenset[str]] = {
    (): frozenset({"relatedVulnerabilities", "matchDetails"}),
    ("vulnerability",): frozenset(
        {
            "dataSource",
            "namespace",
            "urls",
            "links",
            "description",
            "cvss",
            "cvssV2",
            "cvssV3",
            "epss",
            "knownExploited",
            "advisories",
            "risk",
        }
    ),
    ("vulnerability", "fix"): frozenset({"available"}),
    ("artifact",): frozenset(
        {"id", "type", "locations", "language", "licenses", "cpes", "purl", "upstreams", "metadata", "metadataType"}
    ),
}
"""Other fields grype writes beside the ones the checks read (none a misspelling of those)."""


def _grype_renamed(match: dict[str, Any], where: str) -> None:
    for path, expected in GRYPE_MATCH_FIELDS.items():
        node: Any = match
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            _renamed(node, expected, _GRYPE_KNOWN_KEYS[path], "".join((where, *(f".{key}" for key in path))))


def _grype_finding(raw: Any, where: str) -> Finding:
    match = _required_obj(raw, where)
    _grype_renamed(match, where)
    parsed = read_record(GrypeMatch, match, where)
    vulnerability = parsed.vulnerability
    fix = vulnerability.fix
    fixed_in = _text(vulnerability.fixed_in_version)
    fixable: bool | None
    if fix is not None:
        versions = [version for version in fix.versions or () if version.strip()]
        fixable = True if versions else _GRYPE_FIX_STATES.get(fix.state)
        fixed_version = ", ".join(versions) or None
    elif fixed_in is not None:  # grype before 0.13 names the fix in `fixedInVersion`
        fixable, fixed_version = True, fixed_in
    else:  # no fix block and no `fixedInVersion`: say unknown, not "no fix"
        fixable, fixed_version = None, None
    package = parsed.artifact
    return Finding(
        id=vulnerability.id,
        package=_text(package.name) if package else None,
        installed_version=_text(package.version) if package else None,
        fixed_version=fixed_version,
        severity=normalise_severity(vulnerability.severity),
        fixable=fixable,
    )


def parse_grype(document: dict[str, Any], source: str) -> ScannedArtifact:
    """``grype -o json``: ``source.target`` is an object for images, a string for directories."""
    artifact, name_known = _grype_artifact(_obj(document.get("source"), "source"), source)
    descriptor = _obj(document.get("descriptor"), "descriptor")
    matches = _array(document, "matches", "matches") or []
    scanned_at, time_error = _scan_time(descriptor.get("timestamp"), "descriptor.timestamp")
    nothing = None
    if not matches and not name_known and artifact.type == "unknown":
        nothing = "the report names no scanned source (source.type unknown) and lists no matches"
    return ScannedArtifact(
        format="grype",
        scanner_name="grype",
        scanner_version=_text(descriptor.get("version")),
        subject=_subject(artifact, name_from_report=name_known, source=source),
        artifact=artifact,
        scanned_at=scanned_at,
        findings=[_grype_finding(m, f"matches[{i}]") for i, m in enumerate(matches)],
        scan_errors=_grype_database_errors(_obj(descriptor.get("db"), "descriptor.db")),
        scanned_nothing=nothing,
        time_error=time_error,
    )


def _grype_database_errors(db: dict[str, Any]) -> tuple[str, ...]:
    """Grype's own word that its vulnerability database did not load.

    Since v0.88 ``db.status`` is ``{valid, error}``; before, ``db`` itself carried ``error``: ``null`` when
    fine, and a Go error value (often serialised as ``{}``, its text lost) when not."""
    status = db.get("status")
    if isinstance(status, dict):
        error = _text(status.get("error"))
        if error is not None or status.get("valid") is False:
            return (f"vulnerability database not valid: {error or 'grype gave no reason'}",)
        return ()
    if db.get("error") is not None:
        error = _text(db.get("error"))
        return (f"vulnerability database error: {error or 'grype did not serialise its message'}",)
    return ()


# ---------------------------------------------------------------------------------------------- SARIF

_VULNERABILITY_LINE = re.compile(r"^Vulnerability (\S+)", re.MULTILINE)
_SEVERITY_LINE = re.compile(r"^Severity:\s*(\S+)", re.MULTILINE)
_PACKAGE_LINE = re.compile(r"^Package:\s*(.+?)\s*$", re.MULTILINE)
_VERSION_LINE = re.compile(r"^(?:Installed )?Version:\s*(.+?)\s*$", re.MULTILINE)
_GRYPE_PACKAGE = re.compile(r"package: (?P<package>.+?), version (?P<version>\S+) was found")
_GRYPE_IMAGE = re.compile(r" was found in image (?P<image>\S+) at: ")
_LEGACY_RULE_ID = re.compile(r"^\[(?P<severity>[A-Za-z]+)\]\s*(?P<id>\S+)$")
_NOT_VULNERABILITIES = {"misconfiguration", "secret", "license"}
"""Trivy puts misconfigurations, secrets and licenses in the same SARIF run; only vulnerabilities count."""


def _scanner_of(driver: dict[str, Any], where: str) -> str:
    name = _text(driver.get("name")) or ""
    lowered = name.lower()
    if "trivy" in lowered:
        return "trivy"
    if "grype" in lowered or "anchore" in lowered:
        return "grype"
    raise ReportError(f"unsupported SARIF: {where} is from {name or 'an unnamed tool'!r}, not Trivy or Grype")


def _message(value: Any) -> str:
    return _text(_obj(value, "message").get("text")) or ""


def _sarif_severity(result: SarifResult, rule: dict[str, Any], rule_help: str, message: str) -> str:
    """Severity word first (Trivy tags, legacy ``[LOW] CVE-…`` ids, ``Severity:`` lines), then level.

    ``security-severity`` alone is the CVSS score, which can disagree with the scanner's own severity
    (grype's fixture: a "low" vulnerability with 8.2), so it only splits ``error`` into CRITICAL/HIGH.
    A score that is not a number in [0, 10] (``NaN``, ``-1``, ``11``) is no score: UNKNOWN without a level.
    """
    properties = _obj(rule.get("properties"), "rule properties")
    for tag in _texts(properties.get("tags")):
        if tag in SEVERITY_RANK:
            return tag
    legacy = _LEGACY_RULE_ID.match(_text(result.rule_id) or "")
    if legacy:
        return normalise_severity(legacy["severity"])
    for text in (message, rule_help):
        line = _SEVERITY_LINE.search(text)
        if line:
            return normalise_severity(line[1])
    level = result.level or _text(_obj(rule.get("defaultConfiguration"), "rule").get("level"))
    score = security_severity(properties.get("security-severity"))
    if level == "error":
        return "CRITICAL" if score is not None and score >= 9.0 else "HIGH"
    if level == "warning":
        return "MEDIUM"
    if level == "note":
        return "LOW"
    if score is None or score <= 0:
        return "UNKNOWN"
    return "CRITICAL" if score >= 9.0 else "HIGH" if score >= 7.0 else "MEDIUM" if score >= 4.0 else "LOW"


def _sarif_package(message: str, rule_help: str) -> tuple[str | None, str | None]:
    for text in (message, rule_help):
        package = _PACKAGE_LINE.search(text)
        if package:
            version = _VERSION_LINE.search(text)
            return package[1], version[1] if version else None
        grype = _GRYPE_PACKAGE.search(text)
        if grype:
            return grype["package"], grype["version"]
    return None, None


def _rule_for(result: SarifResult, rules: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rule_id = _text(result.rule_id)
    index = result.rule_index
    if index is not None and 0 <= index < len(rules) and rules[index].get("id") == rule_id:
        return rules[index]
    return {} if rule_id is None else by_id.get(rule_id, {})


def _is_vulnerability(rule: dict[str, Any]) -> bool:
    tags = {tag.lower() for tag in _texts(_obj(rule.get("properties"), "rule properties").get("tags"))}
    name = (_text(rule.get("name")) or "").lower()
    return not (tags & _NOT_VULNERABILITIES or name in _NOT_VULNERABILITIES)


def _sarif_findings(results: list[Any], rules: list[dict[str, Any]], where: str) -> list[Finding]:
    by_id: dict[str, dict[str, Any]] = {}
    for j, rule in enumerate(rules):
        rule_id = rule.get("id")
        if not isinstance(rule_id, str) or not rule_id:
            state = f"a JSON {json_type(rule_id)}" if "id" in rule else "missing"
            raise _Malformed(f"{where}.tool.driver.rules[{j}].id is {state}, expected a non-empty string")
        by_id.setdefault(rule_id, rule)
    findings = []
    for i, raw in enumerate(results):
        raw_result = _required_obj(raw, f"{where}.results[{i}]")
        result = read_record(SarifResult, raw_result, f"{where}.results[{i}]")
        rule = _rule_for(result, rules, by_id)
        if not _is_vulnerability(rule):
            continue
        message = _message(raw_result.get("message"))
        rule_help = _message(rule.get("help"))
        named = _VULNERABILITY_LINE.search(message) or _VULNERABILITY_LINE.search(rule_help)
        rule_id = _text(result.rule_id)
        legacy = _LEGACY_RULE_ID.match(rule_id or "")
        vulnerability_id = named[1] if named else legacy["id"] if legacy else rule_id
        if vulnerability_id is None:
            raise _Malformed(f"{where}.results[{i}] has no ruleId")
        package, installed_version = _sarif_package(message, rule_help)
        findings.append(
            Finding(
                id=vulnerability_id,
                package=package,
                installed_version=installed_version,
                fixed_version=None,
                severity=_sarif_severity(result, rule, rule_help, message),
                fixable=None,
            )
        )
    return findings


def _sarif_artifact(run: dict[str, Any], results: list[Any], source: str) -> tuple[Artifact, bool]:
    """Trivy writes the image into the run's properties; grype only names it in each result's message."""
    properties = _obj(run.get("properties"), "run properties")
    name = _text(properties.get("imageName"))
    image_id = _text(properties.get("imageID"))
    repo_digests = _texts(properties.get("repoDigests"))
    if name or image_id or repo_digests:
        artifact = Artifact(
            name=name or PurePath(source).name,
            type="container_image",
            digest=_digest_of(repo_digests),
            image_id=image_id,
            repo_tags=_texts(properties.get("repoTags")),
            repo_digests=repo_digests,
        )
        return artifact, name is not None
    for result in results:
        image = _GRYPE_IMAGE.search(_message(result.get("message")) if isinstance(result, dict) else "")
        if image:
            return Artifact(name=image["image"], type="container_image"), True
    return Artifact(name=PurePath(source).name, type="unknown"), False


def _sarif_time(run: dict[str, Any], where: str) -> tuple[datetime | None, str | None]:
    """The latest end (else start) time over the run's invocations, or why one of them cannot be read."""
    times = []
    for i, raw in enumerate(_items(run.get("invocations"), f"{where}.invocations")):
        invocation = _obj(raw, f"{where}.invocations[{i}]")
        for key in ("endTimeUtc", "startTimeUtc"):
            parsed, error = _scan_time(invocation.get(key), f"{where}.invocations[{i}].{key}")
            if error is not None:
                return None, error
            if parsed is not None:
                times.append(parsed)
                break
    return max(times, default=None), None


def _notification_text(notification: dict[str, Any]) -> str:
    descriptor = _obj(notification.get("descriptor"), "notification descriptor")
    return _message(notification.get("message")) or _text(descriptor.get("id")) or "an error without a message"


def _exit_text(invocation: dict[str, Any]) -> str:
    parts = [f"exit code {invocation['exitCode']}"] if isinstance(invocation.get("exitCode"), int) else []
    parts += [t for t in (_text(invocation.get(k)) for k in ("exitCodeDescription", "exitSignalName")) if t]
    return "executionSuccessful is false" + (f" ({', '.join(parts)})" if parts else "")


def _sarif_errors(run: dict[str, Any], where: str) -> tuple[str, ...]:
    """What the tool said went wrong: a run whose invocation did not succeed, or an error-level notification
    (SARIF: "the analysis was halted or its results are incorrect or incomplete")."""
    errors: list[str] = []
    for i, raw in enumerate(_items(run.get("invocations"), f"{where}.invocations")):
        invocation = _obj(raw, f"{where}.invocations[{i}]")
        notes = [
            _notification_text(_obj(note, f"{where}.invocations[{i}].{key}[{j}]"))
            for key in ("toolExecutionNotifications", "toolConfigurationNotifications")
            for j, note in enumerate(_items(invocation.get(key), f"{where}.invocations[{i}].{key}"))
            if isinstance(note, dict) and note.get("level") == "error"
        ]
        errors += notes
        if invocation.get("executionSuccessful") is False and not notes:
            errors.append(_exit_text(invocation))
    return tuple(dict.fromkeys(errors))


def _sarif_target(run: dict[str, Any]) -> str | None:
    """What the run says it analysed when it names no image: its automation id, else its root path."""
    automation = _text(_obj(run.get("automationDetails"), "automationDetails").get("id"))
    bases = _obj(run.get("originalUriBaseIds"), "originalUriBaseIds")
    root = _text(_obj(bases.get("ROOTPATH"), "originalUriBaseIds.ROOTPATH").get("uri"))
    return automation or root


def _judged_together(scans: list[ScannedArtifact]) -> list[ScannedArtifact]:
    """Runs of one file about the same subject become one scan: the latest is not allowed to hide the others."""
    by_subject: dict[Subject, list[ScannedArtifact]] = {}
    for scan in scans:
        by_subject.setdefault(scan.subject, []).append(scan)
    merged = []
    for group in by_subject.values():
        if len(group) == 1:
            merged.append(group[0])
            continue
        scanners = sorted({scan.scanner_name for scan in group})
        versions = {scan.scanner_version for scan in group}
        merged.append(
            replace(
                group[0],
                scanner_name="+".join(scanners),
                scanner_version=versions.pop() if len(versions) == 1 else None,
                scanned_at=max((s.scanned_at for s in group if s.scanned_at), default=None),
                findings=[finding for scan in group for finding in scan.findings],
                fix_state_known=all(scan.fix_state_known for scan in group),
                scan_errors=tuple(dict.fromkeys(e for scan in group for e in scan.scan_errors)),
                scanned_nothing=None,
                time_error="; ".join(s.time_error for s in group if s.time_error) or None,
            )
        )
    return merged


def parse_sarif(document: dict[str, Any], source: str) -> list[ScannedArtifact]:
    """SARIF 2.1.0 from Trivy or Grype: one artifact per run. No fix state survives in SARIF.

    A run that names no image is named by the report's path; when the file holds several runs, by the path,
    the run's index, its tool and what it analysed, so that no run's findings hide behind another's."""
    version = document.get("version")
    if version != "2.1.0":
        raise ReportError(f"unsupported SARIF version {version!r} (this connector reads 2.1.0)")
    runs = _items(document.get("runs"), "runs")
    if not runs:
        artifact = Artifact(name=PurePath(source).name, type="unknown")
        nothing = "the SARIF file holds no runs (runs: []): no tool run is recorded in it"
        return [
            ScannedArtifact(
                format="sarif",
                scanner_name="unknown",
                scanner_version=None,
                subject=_subject(artifact, name_from_report=False, source=source),
                artifact=artifact,
                scanned_at=None,
                fix_state_known=False,
                scanned_nothing=nothing,
            )
        ]
    scans = []
    for r, raw_run in enumerate(runs):
        where = f"runs[{r}]"
        run = _obj(raw_run, where)
        driver = _obj(_obj(run.get("tool"), f"{where}.tool").get("driver"), f"{where}.tool.driver")
        scanner = _scanner_of(driver, where)
        rules = [_obj(rule, f"{where}.tool.driver.rules[]") for rule in _items(driver.get("rules"), "rules")]
        results = _items(run.get("results"), f"{where}.results")
        no_results: tuple[str, ...] = ()
        if run.get("results") is None:
            state = "null" if "results" in run else "missing"
            no_results = (f"{where}.results is {state}: in SARIF that means the tool produced no results",)
        artifact, name_known = _sarif_artifact(run, results, source)
        fallback = source
        if len(runs) > 1:
            target = _sarif_target(run)
            fallback = f"{source}#{where} {scanner}" + (f" {target}" if target else "")
        scanned_at, time_error = _sarif_time(run, where)
        scans.append(
            ScannedArtifact(
                format="sarif",
                scanner_name=scanner,
                scanner_version=_text(driver.get("version")),
                subject=_subject(artifact, name_from_report=name_known, source=fallback),
                artifact=artifact,
                scanned_at=scanned_at,
                findings=_sarif_findings(results, rules, where),
                fix_state_known=False,
                scan_errors=_sarif_errors(run, where) + no_results,
                time_error=time_error,
            )
        )
    return _judged_together(scans)
