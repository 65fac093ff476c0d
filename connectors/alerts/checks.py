"""Pure judgement over the alert log."""

from __future__ import annotations

from datetime import datetime

from collector.sdk import Check, CheckResult, Observation, Outcome, format_duration

from .settings import AlertsSettings

__all__ = ["ACKNOWLEDGED_IN_TIME", "CHECKS", "KINDS", "KIND_ALERT_LOG"]

KIND_ALERT_LOG = "alert.log"
KINDS = frozenset({KIND_ALERT_LOG})
_LISTED = 5


def acknowledged_in_time(obs: Observation, settings: AlertsSettings, now: datetime) -> CheckResult:
    """Fail when an alert on a monitored model fired longer than ``max_unacknowledged`` with no silence in force;
    an unreadable source is an error, never a pass."""
    p = obs.payload
    if p.get("status") != "ok":
        return ACKNOWLEDGED_IN_TIME.result(Outcome.ERROR, f"alert log incomplete: {p.get('error', 'unknown error')}")
    limit = settings.max_unacknowledged.total_seconds()
    late = [e for e in p["monitored_episodes"] if e["unacknowledged_seconds"] > limit]
    allowed = format_duration(settings.max_unacknowledged)
    details = {
        "monitored_episodes": p["monitored_episode_count"],
        "late": len(late),
        "allowed_seconds": int(limit),
    }
    if late:
        shown = ", ".join(
            f"{e['labels'].get('alertname', '?')} on {e['model']} from {e['start']} "
            f"({e['unacknowledged_seconds'] / 60:.0f} min unacknowledged)"
            for e in late[:_LISTED]
        )
        more = f" and {len(late) - _LISTED} more" if len(late) > _LISTED else ""
        why = "" if p.get("alertmanager_url") else " (no Alertmanager configured: no silence can be seen)"
        return ACKNOWLEDGED_IN_TIME.result(
            Outcome.FAIL,
            f"{len(late)} alert(s) fired longer than {allowed} unacknowledged{why}: {shown}{more}",
            **details,
        )
    if p["monitored_episode_count"] == 0:
        return ACKNOWLEDGED_IN_TIME.result(
            Outcome.PASS, f"no alert on a monitored model fired in the window ({p['window']['duration']})", **details
        )
    return ACKNOWLEDGED_IN_TIME.result(
        Outcome.PASS,
        f"all {p['monitored_episode_count']} alert episode(s) on monitored models were acknowledged or ended "
        f"within {allowed}",
        **details,
    )


ACKNOWLEDGED_IN_TIME: Check[AlertsSettings] = Check(
    "alerts.acknowledged_in_time",
    KIND_ALERT_LOG,
    "Alerts on monitored models are acknowledged in time",
    acknowledged_in_time,
)
CHECKS = (ACKNOWLEDGED_IN_TIME,)
