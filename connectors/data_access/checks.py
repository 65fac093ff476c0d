"""Pure judgements over ``data.access`` and ``access.review`` observations.

A window that could not be read whole (the trail does not log the dataset, a log file was unreadable, a record
had no time, management events could not be looked up) is never a pass: a finding still fails, otherwise the
result is ``error`` naming what is missing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from collector.sdk import Check, CheckResult, Observation, Outcome, parse_timestamp

from .settings import DataAccessSettings

__all__ = [
    "ACCESS_BY_ALLOWED_PRINCIPALS",
    "ACCESS_LOGGED",
    "ACCESS_REVIEW_KIND",
    "CHECKS",
    "DATA_ACCESS_KIND",
    "NO_DELETES",
    "NO_UNLISTED_HUMAN_READS",
    "NO_UNUSED_ACCESS",
    "allowed",
    "incomplete",
]

DATA_ACCESS_KIND = "data.access"
ACCESS_REVIEW_KIND = "access.review"
_LISTED = 10


def allowed(principal: dict[str, Any], patterns: list[str]) -> bool:
    """The principal (a role by its ARN, or every one of its listed sessions) matches an allow-list entry."""
    if any(fnmatchcase(principal["principal"], p) for p in patterns):
        return True
    arns = principal.get("session_arns") or []
    return (
        bool(arns)
        and not principal.get("sessions_not_listed")
        and all(any(fnmatchcase(arn, p) for p in patterns) for arn in arns)
    )


def not_logged(payload: Mapping[str, Any]) -> str | None:
    """Why the trail does not show every data event of the dataset, or ``None`` when it does."""
    trail = payload.get("trail") or {}
    if trail.get("error"):
        return f"not logged: the trail's configuration could not be read ({trail['error']})"
    if trail.get("is_logging") is not True:
        return f"not logged: trail {trail.get('name')} is not logging"
    gaps = []
    for where, coverage in (payload.get("logging") or {}).items():
        missing = [what for what in ("reads", "writes") if not coverage.get(what)]
        if missing:
            gaps.append(f"{where} ({' and '.join(missing)})")
    if gaps:
        return "not logged: no data event selector of the trail covers " + ", ".join(gaps)
    if not payload.get("logging"):
        return "not logged: the dataset names no location"
    return None


def incomplete(payload: Mapping[str, Any]) -> str | None:
    """Why the window's summary may leave accesses out, or ``None`` when it is whole."""
    reason = not_logged(payload)
    if reason:
        return reason
    files = payload.get("log_files") or {}
    if not files.get("read"):
        return "no CloudTrail log file was delivered in the window"
    if files.get("unreadable"):
        return f"{files['unreadable']} log file(s) in the window could not be read"
    if files.get("not_read"):
        return f"{files['not_read']} log file(s) were left for the next run"
    if payload.get("future_events"):
        return f"{payload['future_events']} event(s) dated after the collection time: the clocks disagree"
    if payload.get("unreadable_records"):
        return f"{payload['unreadable_records']} record(s) had no readable eventTime, eventName or eventSource"
    management = payload.get("management_events") or {}
    if management.get("error"):
        return f"management events could not be looked up ({management['error']})"
    return None


Evaluate = Callable[[Observation, DataAccessSettings, datetime], CheckResult]


def _dataset_settings(settings: DataAccessSettings, name: str) -> Any:
    return next((d for d in settings.datasets if d.name == name), None)


def _judge(check_id: str, findings: list[str], what: str, payload: Mapping[str, Any], ok: str) -> CheckResult:
    if findings:
        listed = ", ".join(findings[:_LISTED]) + (
            f" and {len(findings) - _LISTED} more" if len(findings) > _LISTED else ""
        )
        return CheckResult(check_id, Outcome.FAIL, f"{what}: {listed}", {"principals": findings})
    reason = incomplete(payload)
    if reason:
        return CheckResult(check_id, Outcome.ERROR, reason)
    return CheckResult(check_id, Outcome.PASS, ok)


def _logged(observation: Observation, settings: DataAccessSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    reason = not_logged(payload)
    if reason:
        return ACCESS_LOGGED.result(Outcome.ERROR, reason)
    if not (payload.get("log_files") or {}).get("read"):
        return ACCESS_LOGGED.result(Outcome.ERROR, "not logged: no CloudTrail log file was delivered in the window")
    return ACCESS_LOGGED.result(Outcome.PASS, "the trail is logging and its data event selectors cover the dataset")


def _used(principal: dict[str, Any]) -> bool:
    return any(principal["counts"].values())


def _allowed_principals(observation: Observation, settings: DataAccessSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    dataset = _dataset_settings(settings, payload["dataset"])
    patterns = dataset.allowed_principals if dataset else []
    strangers = [p["principal"] for p in payload["principals"] if _used(p) and not allowed(p, patterns)]
    return _judge(
        ACCESS_BY_ALLOWED_PRINCIPALS.id,
        strangers,
        "used by principals not on the allow-list",
        payload,
        f"only allowed principals used the dataset ({len(payload['principals'])} seen)",
    )


def _no_human_reads(observation: Observation, settings: DataAccessSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    dataset = _dataset_settings(settings, payload["dataset"])
    readers = dataset.human_readers if dataset else []
    humans = [
        p["principal"] for p in payload["principals"] if p["human"] and p["counts"]["read"] and not allowed(p, readers)
    ]
    return _judge(
        NO_UNLISTED_HUMAN_READS.id,
        humans,
        "read by people not listed as human readers",
        payload,
        "no unlisted person read the dataset",
    )


def _no_deletes(observation: Observation, settings: DataAccessSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    deleters = [f"{p['principal']} ({p['counts']['delete']})" for p in payload["principals"] if p["counts"]["delete"]]
    return _judge(NO_DELETES.id, deleters, "deleted from the dataset", payload, "nothing was deleted from the dataset")


def _no_unused_access(observation: Observation, settings: DataAccessSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    if payload.get("error"):
        return NO_UNUSED_ACCESS.result(Outcome.ERROR, f"no usage evidence: {payload['error']}")
    unused = [entry["entry"] for entry in payload["allowed"] if not entry["used_by"]]
    since = parse_timestamp(payload.get("history_since"))
    if since is None:
        return NO_UNUSED_ACCESS.result(Outcome.ERROR, f"unreadable history_since {payload.get('history_since')!r}")
    if unused:
        covered_days = (now - since).days
        if covered_days < payload["review_period_days"]:
            return NO_UNUSED_ACCESS.result(
                Outcome.NOT_APPLICABLE,
                f"{len(unused)} allowed principal(s) not seen yet, but usage history covers only {covered_days} of "
                f"the {payload['review_period_days']} days under review",
                unused=unused,
            )
        listed = ", ".join(unused[:_LISTED])
        return NO_UNUSED_ACCESS.result(
            Outcome.FAIL, f"allowed but unused for {payload['review_period_days']} days: {listed}", unused=unused
        )
    if not payload["allowed"]:
        return NO_UNUSED_ACCESS.result(Outcome.NOT_APPLICABLE, "the dataset has no allow-list to review")
    return NO_UNUSED_ACCESS.result(Outcome.PASS, f"every one of {len(payload['allowed'])} allowed entries was used")


ACCESS_LOGGED: Check[DataAccessSettings] = Check(
    "data.access_logged", DATA_ACCESS_KIND, "CloudTrail logs every data event of the dataset", _logged
)
ACCESS_BY_ALLOWED_PRINCIPALS: Check[DataAccessSettings] = Check(
    "data.access_by_allowed_principals",
    DATA_ACCESS_KIND,
    "Only allowed principals used the dataset",
    _allowed_principals,
)
NO_UNLISTED_HUMAN_READS: Check[DataAccessSettings] = Check(
    "data.no_unlisted_human_reads", DATA_ACCESS_KIND, "No person read the dataset unless listed", _no_human_reads
)
NO_DELETES: Check[DataAccessSettings] = Check(
    "data.no_deletes", DATA_ACCESS_KIND, "Nothing was deleted from the dataset", _no_deletes
)
NO_UNUSED_ACCESS: Check[DataAccessSettings] = Check(
    "access.no_unused_access",
    ACCESS_REVIEW_KIND,
    "Every allowed principal used the dataset in the review period",
    _no_unused_access,
)
CHECKS = (ACCESS_LOGGED, ACCESS_BY_ALLOWED_PRINCIPALS, NO_UNLISTED_HUMAN_READS, NO_DELETES, NO_UNUSED_ACCESS)
