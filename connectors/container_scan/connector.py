"""The ``container_scan`` connector: vulnerability reports on disk -> one observation per scanned artifact."""

from __future__ import annotations

import codecs
import glob
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from collector.sdk import CollectContext, Connector, Observation
from collector.sdk.vulnerability_scan import CHECKS, KIND, ReportError, ScannedArtifact, to_payload

from .parsers import parse_report
from .settings import ContainerScanSettings

__all__ = ["ContainerScanConnector", "read_report"]

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _matching_files(patterns: list[str], ctx: CollectContext) -> list[str]:
    """Every file any glob matches, each once (by real path), in sorted order."""
    found: dict[str, str] = {}
    for pattern in patterns:
        matches = glob.glob(os.path.expanduser(pattern), recursive=True)
        files = [path for path in matches if os.path.isfile(path)]
        if not files:
            ctx.problem(pattern, "no files match" + (" (only directories)" if matches else ""))
        for path in files:
            real = os.path.realpath(path)
            found[real] = min(path, found.get(real, path))
    return sorted(found.values())


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith(_UTF16_BOMS):  # PowerShell's `>` writes UTF-16
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ReportError(f"not UTF-16 despite its byte-order mark: {exc.reason} at byte {exc.start}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None


_UNREAD_FIELDS = frozenset(
    {
        "CVSS",
        "CweIDs",
        "DataSource",
        "Description",
        "DiffIDs",
        "Fingerprint",
        "ImageConfig",
        "LastModifiedDate",
        "Layer",
        "Layers",
        "Licenses",
        "Misconfigurations",
        "Packages",
        "PkgIdentifier",
        "PrimaryURL",
        "PublishedDate",
        "References",
        "Secrets",
        "Title",
        "VendorSeverity",
        "CustomResources",
        "advisories",
        "cpes",
        "cvss",
        "description",
        "epss",
        "knownExploited",
        "licenses",
        "matchDetails",
        "metadata",
        "relatedVulnerabilities",
        "upstreams",
        "urls",
        "configuration",
        "layers",
        "fullDescription",
        "shortDescription",
        "markdown",
        "locations",
        "partialFingerprints",
        "helpUri",
    }
)
"""Fields no parser reads (Trivy's, Grype's, SARIF's): dropped as each object is decoded, so that a large report
is never held whole in memory."""


def _without_unread_fields(obj: dict[str, Any]) -> dict[str, Any]:
    for key in _UNREAD_FIELDS.intersection(obj):
        del obj[key]
    return obj


def _read_at_most(fh: BinaryIO, limit: int, size_hint: int) -> bytes:
    """Up to ``limit + 1`` bytes (the one more tells a file over the limit), without allocating ``limit`` up
    front; ``size_hint`` (the size ``fstat`` saw) is only a hint: the file may have grown since."""
    data = fh.read(min(size_hint, limit) + 1)
    while len(data) <= limit:
        more = fh.read(min(limit + 1 - len(data), 1 << 20))
        if not more:
            break
        data += more
    return data


def read_report(path: str, max_bytes: int) -> tuple[Any, datetime]:
    """The decoded JSON document and the file's mtime (UTC); :class:`ReportError` says why not."""
    try:
        with open(path, "rb") as fh:
            status = os.fstat(fh.fileno())
            if status.st_size > max_bytes:
                raise ReportError(f"file too large: {status.st_size} bytes, max_file_bytes is {max_bytes}")
            data = _read_at_most(fh, max_bytes, status.st_size)
    except OSError as exc:
        raise ReportError(f"unreadable: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ReportError(f"file too large: more than {max_bytes} bytes (max_file_bytes)")
    if not data or data.isspace():
        raise ReportError("empty file" if not data else "empty file (whitespace only)")
    text = _decode(data)
    del data
    try:
        document = json.loads(text, object_hook=_without_unread_fields)
    except json.JSONDecodeError as exc:
        raise ReportError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ReportError("not valid JSON: nested too deeply") from None
    return document, datetime.fromtimestamp(status.st_mtime, UTC)


def _observation(scan: ScannedArtifact, path: str, mtime: datetime) -> Observation:
    observed_at, time_source = (scan.scanned_at, "report") if scan.scanned_at else (mtime, "file_mtime")
    return Observation(
        kind=KIND,
        subject=scan.subject,
        observed_at=observed_at,
        payload=to_payload(scan, observed_at_source=time_source),
        source=path,
    )


class ContainerScanConnector(Connector[ContainerScanSettings]):
    """Reads Trivy (JSON, legacy JSON), Grype (JSON) and Trivy/Grype SARIF reports from files."""

    type = "container_scan"
    version = "0.1.0"
    Settings = ContainerScanSettings
    kinds = frozenset({KIND})
    checks = CHECKS

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        for path in _matching_files(self.settings.paths, ctx):
            ctx.raise_if_cancelled()
            yield from self._observations(path, ctx)

    def _observations(self, path: str, ctx: CollectContext) -> list[Observation]:
        """All of one file's observations, or none and a problem: a file is never half-read."""
        try:
            document, mtime = read_report(path, self.settings.max_file_bytes)
            scans = parse_report(document, path)
            observations = [_observation(scan, path, mtime) for scan in scans]
        except ReportError as exc:
            ctx.problem(path, str(exc))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a shape the parsers did not foresee
            ctx.problem(path, f"unreadable report: {type(exc).__name__}: {exc}")
        else:
            for scan in scans:
                if scan.time_error:
                    ctx.problem(path, f"{scan.time_error}: recorded with the file's mtime, recency is an error")
            return observations
        return []
