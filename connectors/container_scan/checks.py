"""Pure judgements over one ``container.scan`` observation."""

from __future__ import annotations

from datetime import datetime, timedelta

from collector.connector import Check
from collector.durations import format_duration
from collector.model import CheckResult, Observation, Outcome

from .scan import SEVERITY_RANK
from .settings import ContainerScanSettings

__all__ = ["CHECKS", "KIND", "NO_FIXABLE_VULNS", "SCAN_RECENT"]

KIND = "container.scan"
FUTURE_TOLERANCE = timedelta(hours=1)
"""A scan time further ahead of ``now`` than this is a clock or time-zone error, never "recent"."""

_NO_FIXABLE_VULNS_ID = "container.no_fixable_vulns"
_SCAN_RECENT_ID = "container.scan_recent"


def _at_or_above(threshold: str) -> list[str]:
    return [s for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW") if SEVERITY_RANK[s] >= SEVERITY_RANK[threshold]]


def _listing(counts: dict[str, int]) -> str:
    return ", ".join(f"{severity} {count}" for severity, count in counts.items())


def _plural(count: int) -> str:
    return f"{count} vulnerability" if count == 1 else f"{count} vulnerabilities"


def no_fixable_vulns(observation: Observation, settings: ContainerScanSettings, now: datetime) -> CheckResult:
    """FAIL on any fixable vulnerability at or above the threshold; an unknown fix state counts as fixable."""
    payload = observation.payload
    threshold = settings.fail_on_severity
    severities = _at_or_above(threshold)
    fix_state_known = bool(payload["fix_state_known"])
    source = payload["fixable_counts"] if fix_state_known else payload["severity_counts"]
    counts = {severity: int(source[severity]) for severity in severities}
    total = sum(counts.values())
    details = {"threshold": threshold, "fix_state_known": fix_state_known, "counts": counts}
    if fix_state_known:
        if total:
            message = f"{_plural(total)} with a fix at or above {threshold}: {_listing(counts)}"
            return CheckResult(_NO_FIXABLE_VULNS_ID, Outcome.FAIL, message, details)
        message = f"no fixable vulnerabilities at or above {threshold}"
        return CheckResult(_NO_FIXABLE_VULNS_ID, Outcome.PASS, message, details)
    if total:
        message = (
            f"fix state unknown ({payload['format']} report carries none): "
            f"{_plural(total)} at or above {threshold} may be fixable: {_listing(counts)}"
        )
        return CheckResult(_NO_FIXABLE_VULNS_ID, Outcome.FAIL, message, details)
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
    """PASS while the scan is no older than ``max_age``."""
    age = now - observation.observed_at
    from_mtime = observation.payload.get("observed_at_source") == "file_mtime"
    note = " (time from the file's mtime: the report has none)" if from_mtime else ""
    details = {
        "age_seconds": int(age.total_seconds()),
        "max_age_seconds": int(settings.max_age.total_seconds()),
        "observed_at_source": "file_mtime" if from_mtime else "report",
    }
    limit = format_duration(settings.max_age)
    if age < -FUTURE_TOLERANCE:
        message = f"scan time {observation.observed_at.isoformat()} is {_age(age)} in the future{note}"
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
