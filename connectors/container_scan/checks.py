"""Pure judgements over one ``container.scan`` observation."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from collector.connector import Check
from collector.durations import format_duration
from collector.model import CheckResult, Observation, Outcome

from .scan import SEVERITY_RANK
from .settings import ContainerScanSettings

__all__ = ["CHECKS", "KIND", "NO_FIXABLE_VULNS", "SCAN_RECENT"]

KIND = "container.scan"
_SCAN_TIME_SOURCES = frozenset({"report", "file_mtime"})
"""Where a judgeable scan time comes from: the report itself, else (said so) the report file's mtime."""

_NO_FIXABLE_VULNS_ID = "container.no_fixable_vulns"
_SCAN_RECENT_ID = "container.scan_recent"


def _at_or_above(threshold: str) -> list[str]:
    """The severities that count at ``threshold``: an unknown severity is never taken to be below it."""
    known = [s for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW") if SEVERITY_RANK[s] >= SEVERITY_RANK[threshold]]
    return [*known, "UNKNOWN"]


def _listing(counts: dict[str, int]) -> str:
    """``CRITICAL 2, HIGH 0``; UNKNOWN only when there is one, and then said to count."""
    listed = ", ".join(f"{s} {count}" for s, count in counts.items() if count or s != "UNKNOWN")
    return listed + (" (an unknown severity counts as at or above the threshold)" if counts.get("UNKNOWN") else "")


def _plural(count: int) -> str:
    return f"{count} vulnerability" if count == 1 else f"{count} vulnerabilities"


def _did_not_complete(check_id: str, payload: Mapping[str, Any]) -> CheckResult | None:
    """ERROR when the scanner said the scan did not complete, with its own words."""
    errors = [str(e) for e in payload.get("scan_errors") or ()]
    if not errors:
        return None
    listed = int(payload.get("vulnerability_count") or 0)
    partial = f" (the partial report still lists {_plural(listed)})" if listed else ""
    message = f"the scan did not complete: {'; '.join(errors)}{partial}"
    return CheckResult(check_id, Outcome.ERROR, message, {"scan_errors": errors, "vulnerability_count": listed})


def _scanned_nothing(check_id: str, payload: Mapping[str, Any]) -> CheckResult | None:
    reason = payload.get("scanned_nothing")
    if not reason:
        return None
    message = f"the report scanned nothing, so it shows nothing to judge: {reason}"
    return CheckResult(check_id, Outcome.NOT_APPLICABLE, message, {"scanned_nothing": reason})


def no_fixable_vulns(observation: Observation, settings: ContainerScanSettings, now: datetime) -> CheckResult:
    """FAIL on any fixable vulnerability at or above the threshold; an unknown fix state counts as fixable and
    an unknown severity as at or above the threshold.

    ERROR when the scan did not complete; NOT_APPLICABLE when the report scanned nothing."""
    payload = observation.payload
    early = _did_not_complete(_NO_FIXABLE_VULNS_ID, payload) or _scanned_nothing(_NO_FIXABLE_VULNS_ID, payload)
    if early is not None:
        return early
    threshold = settings.fail_on_severity
    severities = _at_or_above(threshold)
    fix_state_known = bool(payload["fix_state_known"])
    if fix_state_known:
        source = payload["fixable_counts"]
        counts = {severity: int(source[severity]) for severity in severities}
        total = sum(counts.values())
        details: dict[str, Any] = {"threshold": threshold, "fix_state_known": True, "counts": counts}
        if total:
            message = f"{_plural(total)} with a fix at or above {threshold}: {_listing(counts)}"
            return CheckResult(_NO_FIXABLE_VULNS_ID, Outcome.FAIL, message, details)
        message = f"no fixable vulnerabilities at or above {threshold}"
        return CheckResult(_NO_FIXABLE_VULNS_ID, Outcome.PASS, message, details)
    relevant = [v for v in payload["vulnerabilities"] if v["severity"] in severities]
    with_fix = [v for v in relevant if v["fixable"] is True]
    unknown = [v for v in relevant if v["fixable"] is None]
    counts = {severity: sum(1 for v in with_fix + unknown if v["severity"] == severity) for severity in severities}
    total = len(with_fix) + len(unknown)
    details = {
        "threshold": threshold,
        "fix_state_known": False,
        "counts": counts,
        "with_fix": len(with_fix),
        "fix_state_unknown": len(unknown),
    }
    if total and not with_fix:
        message = (
            f"fix state unknown ({payload['format']} report carries none): "
            f"{_plural(total)} at or above {threshold} may be fixable: {_listing(counts)}"
        )
        return CheckResult(_NO_FIXABLE_VULNS_ID, Outcome.FAIL, message, details)
    if total:
        message = (
            f"{_plural(total)} at or above {threshold} with a fix ({len(with_fix)}) "
            f"or an unknown fix state ({len(unknown)}): {_listing(counts)}"
        )
        return CheckResult(_NO_FIXABLE_VULNS_ID, Outcome.FAIL, message, details)
    if relevant:
        message = f"no fixable vulnerabilities at or above {threshold}"
    else:
        message = f"no vulnerabilities at or above {threshold} (fix state unknown, none needed)"
    return CheckResult(_NO_FIXABLE_VULNS_ID, Outcome.PASS, message, details)


def _age(value: timedelta) -> str:
    """The two largest units: ``3d 4h``, ``5h 12m``, ``42s``."""
    seconds = abs(int(value.total_seconds()))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def scan_recent(observation: Observation, settings: ContainerScanSettings, now: datetime) -> CheckResult:
    """PASS while the scan is no older than ``max_age``; ``now`` is the collection time.

    ERROR when the scan did not complete or its time cannot be read (or the report holds none and no file
    time stands in); FAIL when it is dated later than ``now`` plus ``clock_skew_tolerance``;
    NOT_APPLICABLE when the report scanned nothing."""
    payload = observation.payload
    early = _did_not_complete(_SCAN_RECENT_ID, payload)
    if early is not None:
        return early
    time_source = payload.get("observed_at_source")
    time_error = payload.get("time_error")
    if time_error:
        message = f"scan time unreadable, recency cannot be judged: {time_error}"
        return CheckResult(_SCAN_RECENT_ID, Outcome.ERROR, message, {"time_error": time_error})
    nothing = _scanned_nothing(_SCAN_RECENT_ID, payload)
    if nothing is not None:
        return nothing
    if time_source not in _SCAN_TIME_SOURCES:
        message = f"the report carries no scan time (observed_at is the {time_source or 'unknown'} time)"
        return CheckResult(_SCAN_RECENT_ID, Outcome.ERROR, message, {"observed_at_source": time_source})
    age = now - observation.observed_at
    from_mtime = time_source == "file_mtime"
    note = " (time from the file's mtime: the report has none)" if from_mtime else ""
    tolerance = settings.clock_skew_tolerance
    details = {
        "age_seconds": int(age.total_seconds()),
        "max_age_seconds": int(settings.max_age.total_seconds()),
        "clock_skew_tolerance_seconds": int(tolerance.total_seconds()),
        "observed_at_source": time_source,
    }
    limit = format_duration(settings.max_age)
    if age < -tolerance:
        message = (
            f"scan time {observation.observed_at.isoformat()} is {_age(age)} in the future "
            f"(more than the {format_duration(tolerance)} clock-skew tolerance after collection){note}"
        )
        return CheckResult(_SCAN_RECENT_ID, Outcome.FAIL, message, details)
    if age <= settings.max_age:
        message = f"scan is {_age(max(age, timedelta(0)))} old (max_age {limit}){note}"
        return CheckResult(_SCAN_RECENT_ID, Outcome.PASS, message, details)
    message = f"scan is {_age(age)} old, older than max_age {limit}{note}"
    return CheckResult(_SCAN_RECENT_ID, Outcome.FAIL, message, details)


NO_FIXABLE_VULNS: Check[ContainerScanSettings] = Check(
    id=_NO_FIXABLE_VULNS_ID,
    kind=KIND,
    title="No fixable vulnerabilities at or above the configured severity",
    evaluate=no_fixable_vulns,
)
SCAN_RECENT: Check[ContainerScanSettings] = Check(
    id=_SCAN_RECENT_ID,
    kind=KIND,
    title="Scan report is recent",
    evaluate=scan_recent,
)
CHECKS = (NO_FIXABLE_VULNS, SCAN_RECENT)
