"""OSCAL Assessment Results: one observation and one finding per control, linking to the bundle's evidence.

Identifiers are UUIDv5 derived from the scope and window, and timestamps come from the window, so the same
store exported for the same window gives the same document.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from collector.export.matrix import ControlSummary, Window
from collector.freshness import Freshness

__all__ = ["OSCAL_VERSION", "PROPERTY_NS", "assessment_results", "oscal_control_id"]

OSCAL_VERSION = "1.2.1"
PROPERTY_NS = "https://evidence-collector.dev/ns/oscal"
_NAMESPACE = uuid.UUID("6f0c2f4e-2d55-5b8e-9a57-1c0d8f2e7a10")
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_.\-]+")


def oscal_control_id(control: str) -> str:
    """An OSCAL token: lower case as in NIST catalogs, other characters as ``-`` (``MEASURE 2.7`` → ``measure-2.7``)."""
    token = _NOT_TOKEN.sub("-", control.strip()).strip("-").lower()
    return token if token[:1].isalpha() or token[:1] == "_" else f"_{token}"


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


def _iso(value: datetime) -> str:
    return value.isoformat()


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": name, "ns": PROPERTY_NS, "value": value}


def _observation(summary: ControlSummary, window: Window, key: str) -> dict[str, Any]:
    fresh = summary.coverage.freshness
    described = f"{summary.records} evidence records tagged {summary.ref}"
    if fresh.newest_observed_at is not None:
        described += f"; newest observed {_iso(fresh.newest_observed_at)}"
    observation: dict[str, Any] = {
        "uuid": _uuid(key, str(summary.ref), "observation"),
        "title": f"Evidence for {summary.ref}",
        "description": f"{described}. Freshness at {_iso(window.as_of)}: {summary.status.value}.",
        "props": [_prop("evidence-status", summary.status.value), _prop("evidence-records", str(summary.records))],
        "methods": ["TEST"] if summary.outcomes else ["EXAMINE"],
        "types": ["control-objective"],
        "collected": _iso(fresh.newest_observed_at or window.as_of),
    }
    if fresh.expires_at is not None:
        observation["expires"] = _iso(fresh.expires_at)
    if summary.records_file is not None:
        observation["relevant-evidence"] = [
            {
                "href": summary.records_file,
                "description": f"{summary.records} evidence records (JSON Lines) with content and chain hashes",
            }
        ]
    return observation


def _finding_text(summary: ControlSummary, window: Window) -> str:
    lines = [f"Evidence freshness at {_iso(window.as_of)}: {summary.status.value}."]
    if summary.outcomes:
        lines.append(f"Check outcomes on the latest evidence per subject: {summary.outcomes_text()}.")
    share = summary.coverage.covered_share
    if share is not None:
        gaps = summary.coverage.gaps
        lines.append(f"Covered {share:.2%} of the observation period with {len(gaps)} gap(s).")
        lines.extend(f"Gap ({g.reason}): {_iso(g.start)} to {_iso(g.end)}." for g in gaps)
    return " ".join(lines)


def _finding(summary: ControlSummary, window: Window, key: str, observation_uuid: str) -> dict[str, Any]:
    control_id = oscal_control_id(summary.ref.control)
    state = "satisfied" if summary.satisfied else "not-satisfied"
    reason = "pass" if summary.satisfied else ("other" if summary.status is Freshness.MISSING else "fail")
    return {
        "uuid": _uuid(key, str(summary.ref), "finding"),
        "title": f"{summary.ref} {summary.title}",
        "description": _finding_text(summary, window),
        "props": [_prop("covered-share", f"{summary.coverage.covered_share or 0:.4f}")]
        if summary.coverage.period is not None
        else None,
        "target": {
            "type": "objective-id",
            "target-id": f"{control_id}_obj",
            "title": summary.title,
            "status": {"state": state, "reason": reason},
        },
        "related-observations": [{"observation-uuid": observation_uuid}],
    }


def assessment_results(
    framework: str, framework_name: str, window: Window, summaries: list[ControlSummary], generator_version: str
) -> bytes:
    key = "|".join([framework, *(str(s.ref) for s in summaries), json.dumps(window.as_json(), sort_keys=True)])
    start = window.period.start if window.period is not None else window.as_of
    observations = [_observation(s, window, key) for s in summaries]
    findings = []
    for summary, observation in zip(summaries, observations, strict=True):
        finding = _finding(summary, window, key, observation["uuid"])
        findings.append({k: v for k, v in finding.items() if v is not None})
    document = {
        "assessment-results": {
            "uuid": _uuid(key, "assessment-results"),
            "metadata": {
                "title": f"Evidence assessment results: {framework_name}, {window.describe()}",
                "last-modified": _iso(window.as_of),
                "version": generator_version,
                "oscal-version": OSCAL_VERSION,
            },
            "import-ap": {"href": f"urn:evidence-collector:assessment-plan:{framework}"},
            "results": [
                {
                    "uuid": _uuid(key, "result"),
                    "title": f"Automated evidence collection for {framework_name}",
                    "description": "Machine-collected evidence, freshness per control and check outcomes. "
                    "A control is satisfied when its evidence is fresh at the end of the window, no check "
                    "fails on the latest evidence, and (for a period) its evidence never went stale or missing.",
                    "start": _iso(start),
                    "end": _iso(window.as_of),
                    "reviewed-controls": {
                        "control-selections": [
                            {"include-controls": [{"control-id": oscal_control_id(s.ref.control)} for s in summaries]}
                        ]
                    },
                    "observations": observations,
                    "findings": findings,
                }
            ],
        }
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
