"""Pure judgements over one ``mlflow.model_version`` observation, for deployed versions only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from collector.sdk import (
    Check,
    CheckResult,
    Observation,
    Outcome,
    finite_number,
    in_the_future,
    non_finite_paths,
    parse_timestamp,
)

from .payloads import SourceRun
from .settings import MlflowSettings

__all__ = [
    "APPROVAL_RECORDED",
    "CHECKS",
    "DOCUMENTED",
    "EVALUATED",
    "FAIRNESS_WITHIN_BOUNDS",
    "KIND",
    "LINEAGE_COMPLETE",
    "deployed_via",
    "parse_approval_time",
]

KIND = "mlflow.model_version"
LEGACY_PRODUCTION_STAGE = "Production"

Evaluate = Callable[[Observation, MlflowSettings, datetime], CheckResult]


def deployed_via(payload: Mapping[str, Any], settings: MlflowSettings) -> list[str]:
    """What makes the version deployed: ``alias:<name>`` for each configured alias it holds, and
    ``stage:Production`` for the legacy stage. Empty when it is not deployed."""
    wanted = {a.casefold() for a in settings.deployed_aliases}
    reasons = [f"alias:{alias}" for alias in payload["aliases"] if alias.casefold() in wanted]
    if payload.get("stage") == LEGACY_PRODUCTION_STAGE:
        reasons.append(f"stage:{LEGACY_PRODUCTION_STAGE}")
    return reasons


def _for_deployed(check_id: str, judge: Evaluate) -> Evaluate:
    """``not_applicable`` for a version that is not deployed; otherwise the judgement, with the reason attached."""

    def evaluate(observation: Observation, settings: MlflowSettings, now: datetime) -> CheckResult:
        payload = observation.payload
        reasons = deployed_via(payload, settings)
        if not reasons:
            held = ", ".join(payload["aliases"]) or "none"
            message = (
                f"{payload['name']} version {payload['version']} is not deployed "
                f"(aliases: {held}; stage: {payload.get('stage') or 'none'})"
            )
            return CheckResult(check_id, Outcome.NOT_APPLICABLE, message)
        if where := non_finite_paths(payload):
            message = f"not evidence: non-finite numbers at {', '.join(where[:5])} (stored metrics read 'NaN')"
            return CheckResult(check_id, Outcome.ERROR, message, {"deployed_via": reasons})
        if check_id in _RUN_JUDGED and (unfinished := _unfinished_run(payload)) is not None:
            return CheckResult(check_id, unfinished[0], unfinished[1], {"deployed_via": reasons})
        result = judge(observation, settings, now)
        return CheckResult(check_id, result.result, result.message, {**result.details, "deployed_via": reasons})

    return evaluate


def _name(payload: Mapping[str, Any]) -> str:
    return f"{payload['name']} v{payload['version']}"


_ENDED_BADLY = frozenset({"FAILED", "KILLED"})


def _unfinished_run(payload: Mapping[str, Any]) -> tuple[Outcome, str] | None:
    """What the source run logged proves nothing unless the run FINISHED: ``fail`` for a run that ended FAILED or
    KILLED, ``error`` for one still running or of unknown status. ``None`` when it finished (or is not found:
    the checks report a missing run themselves)."""
    source_run = payload["source_run"]
    if source_run["state"] not in (SourceRun.FOUND, SourceRun.DELETED):
        return None
    status = source_run.get("status")
    if status == "FINISHED":
        return None
    run = f"{_name(payload)}: source run {source_run['run_id']}"
    if status in _ENDED_BADLY:
        return Outcome.FAIL, f"{run} ended {status}: what it logged is not evidence of a completed training"
    return Outcome.ERROR, f"{run} has not finished (status {status or 'not recorded'}): nothing to judge yet"


# ------------------------------------------------------------------------------------------- lineage

_LINEAGE_ID = "mlflow.lineage_complete"


def _training_datasets(source_run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Inputs logged for training (context ``training`` or no context) that carry a digest."""
    return [
        d for d in source_run.get("datasets", []) if d.get("digest") and (d.get("context") or "training") == "training"
    ]


def lineage_complete(observation: Observation, settings: MlflowSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    source_run = payload["source_run"]
    state, run_id = source_run["state"], source_run["run_id"]
    if state != SourceRun.FOUND:
        reason = {
            SourceRun.NOT_RECORDED: "records no source run",
            SourceRun.MISSING: f"names source run {run_id}, which the server does not have",
            SourceRun.DELETED: f"names source run {run_id}, which was deleted",
        }[state]
        return CheckResult(_LINEAGE_ID, Outcome.FAIL, f"{_name(payload)} {reason}", {"source_run_state": state})
    datasets = _training_datasets(source_run)
    code_version = source_run.get("code_version")
    missing = []
    if not datasets:
        missing.append("no training dataset input with a digest")
    if not code_version:
        missing.append("no code version (mlflow.source.git.commit or mlflow.databricks.gitRepoCommit)")
    details = {
        "source_run_state": state,
        "training_datasets": [f"{d['name']}@{d['digest']}" for d in datasets],
        "code_version": code_version["commit"] if code_version else None,
    }
    if missing:
        message = f"{_name(payload)}: source run {run_id} has " + " and ".join(missing)
        return CheckResult(_LINEAGE_ID, Outcome.FAIL, message, details)
    message = (
        f"{_name(payload)}: source run {run_id} trained on {', '.join(details['training_datasets'])} "
        f"from commit {details['code_version']}"
    )
    return CheckResult(_LINEAGE_ID, Outcome.PASS, message, details)


# ------------------------------------------------------------------------------------------- approval

_APPROVAL_ID = "mlflow.approval_recorded"


def parse_approval_time(value: str | None) -> datetime | None:
    """ISO 8601 (naive taken as UTC) or epoch seconds / milliseconds; ``None`` when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        number = float(text)
        try:
            return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return parse_timestamp(text)


def _in_the_future(at: datetime, now: datetime, settings: MlflowSettings) -> str | None:
    """A clock or data-entry error, never a record."""
    return in_the_future(at, now, settings.clock_skew_tolerance)


def _approval_order(
    approved_at: datetime, tags: Mapping[str, str], settings: MlflowSettings, now: datetime
) -> tuple[bool | None, str]:
    """Whether the approval predates the deployment, when the deployment time is recorded."""
    tag = settings.deployed_at_tag
    raw = tags.get(tag) if tag else None
    if raw is None:
        return None, "deployment time not recorded, so the order is not checked"
    deployed_at = parse_approval_time(raw)
    if deployed_at is None:
        return False, f"tag {tag}={raw!r} is not a time"
    if future := _in_the_future(deployed_at, now, settings):
        return False, f"deployment time (tag {tag}) {future}"
    if approved_at > deployed_at:
        return False, f"approved at {approved_at.isoformat()}, after deployment at {deployed_at.isoformat()}"
    return True, f"approved before deployment at {deployed_at.isoformat()}"


def _approval_problems(
    approver: str, raw_at: str | None, approved_at: datetime | None, now: datetime, settings: MlflowSettings
) -> list[str]:
    problems = []
    if not approver:
        problems.append("no approver")
    if raw_at is None or not raw_at.strip():
        problems.append("no approval time")
    elif approved_at is None:
        problems.append(f"approval time {raw_at!r} is not a time")
    elif future := _in_the_future(approved_at, now, settings):
        problems.append(f"approval time {future}")
    return problems


def approval_recorded(observation: Observation, settings: MlflowSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    tags: Mapping[str, str] = payload["tags"]
    approver = (tags.get(settings.approval_tags.by) or "").strip()
    raw_at = tags.get(settings.approval_tags.at)
    approved_at = parse_approval_time(raw_at)
    details: dict[str, Any] = {
        "approved_by": approver or None,
        "approved_at": approved_at.isoformat() if approved_at else None,
        "approver_is_registrar": bool(approver) and approver == payload.get("registered_by"),
    }
    problems = _approval_problems(approver, raw_at, approved_at, now, settings)
    if problems or approved_at is None:
        tag_names = f"tags {settings.approval_tags.by}, {settings.approval_tags.at}"
        message = f"{_name(payload)}: {'; '.join(problems)} ({tag_names})"
        return CheckResult(_APPROVAL_ID, Outcome.FAIL, message, details)
    in_order, order_note = _approval_order(approved_at, tags, settings, now)
    details["approval_before_deployment"] = in_order
    if in_order is False:
        return CheckResult(_APPROVAL_ID, Outcome.FAIL, f"{_name(payload)}: {order_note}", details)
    message = f"{_name(payload)} approved by {approver} at {approved_at.isoformat()}; {order_note}"
    return CheckResult(_APPROVAL_ID, Outcome.PASS, message, details)


# ------------------------------------------------------------------------------------------- documentation

_DOCUMENTED_ID = "mlflow.documented"


def documented(observation: Observation, settings: MlflowSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    card = payload["model_card"]
    found: list[str] = card.get("found") or []
    descriptions = {
        "version description": payload.get("description"),
        "registered model description": payload.get("registered_model_description"),
    }
    described = [what for what, text in descriptions.items() if text and text.strip()]
    details = {"model_card": found, "descriptions": described}
    if found:
        return CheckResult(
            _DOCUMENTED_ID, Outcome.PASS, f"{_name(payload)} has a model card: {', '.join(found)}", details
        )
    if described:
        message = f"{_name(payload)} has no model card but a non-empty {' and '.join(described)}"
        return CheckResult(_DOCUMENTED_ID, Outcome.PASS, message, details)
    looked = ", ".join(settings.model_card_paths)
    note = f" (artifacts could not be listed: {card['error']})" if card.get("error") else ""
    message = f"{_name(payload)} has no model card ({looked}) in its source run and no description{note}"
    return CheckResult(_DOCUMENTED_ID, Outcome.FAIL, message, details)


# ------------------------------------------------------------------------------------------- metrics

_EVALUATED_ID = "mlflow.evaluated"
_FAIRNESS_ID = "mlflow.fairness_within_bounds"
_RUN_JUDGED = frozenset({_LINEAGE_ID, _EVALUATED_ID, _FAIRNESS_ID})
"""The checks that judge what the source run logged."""


def _metrics_of(payload: Mapping[str, Any]) -> Mapping[str, float | str] | None:
    source_run = payload["source_run"]
    return source_run.get("metrics", {}) if source_run["state"] in (SourceRun.FOUND, SourceRun.DELETED) else None


def _no_source_run(check_id: str, payload: Mapping[str, Any]) -> CheckResult:
    state = payload["source_run"]["state"]
    message = f"{_name(payload)}: no metrics to judge, its source run is {state.replace('_', ' ')}"
    return CheckResult(check_id, Outcome.FAIL, message, {"source_run_state": state})


def evaluated(observation: Observation, settings: MlflowSettings, now: datetime) -> CheckResult:
    """At least one evaluation metric logged, and none of those logged NaN or ±Inf (an evaluation that produced
    no number is not an evaluation)."""
    payload = observation.payload
    metrics = _metrics_of(payload)
    if metrics is None:
        return _no_source_run(_EVALUATED_ID, payload)
    present = [k for k in settings.evaluation_metrics if k in metrics]
    non_finite = {k: metrics[k] for k in present if finite_number(metrics[k]) is None}
    logged = {k: metrics[k] for k in present if k not in non_finite}
    details = {"logged": logged, "expected_any_of": list(settings.evaluation_metrics), "non_finite": non_finite}
    if non_finite:
        shown = ", ".join(f"{k}={v}" for k, v in non_finite.items())
        message = f"{_name(payload)}: evaluation metrics that are not finite numbers: {shown}"
        return CheckResult(_EVALUATED_ID, Outcome.FAIL, message, details)
    if not logged:
        message = f"{_name(payload)}: none of {', '.join(settings.evaluation_metrics)} logged on the source run"
        return CheckResult(_EVALUATED_ID, Outcome.FAIL, message, details)
    shown = ", ".join(f"{k}={v:g}" for k, v in logged.items() if isinstance(v, float | int))
    return CheckResult(_EVALUATED_ID, Outcome.PASS, f"{_name(payload)} evaluated: {shown}", details)


def fairness_within_bounds(observation: Observation, settings: MlflowSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    metrics = _metrics_of(payload)
    if metrics is None:
        return _no_source_run(_FAIRNESS_ID, payload)
    logged = {k: metrics[k] for k in settings.fairness_bounds if k in metrics}
    if not logged:
        message = f"{_name(payload)}: no fairness metric logged (looked for {', '.join(settings.fairness_bounds)})"
        return CheckResult(_FAIRNESS_ID, Outcome.FAIL, message, {"reason": "not_logged", "logged": {}})
    violations = []
    for key, value in logged.items():
        bounds = settings.fairness_bounds[key]
        number = finite_number(value)
        if number is None:
            violations.append(f"{key}={value} (not a finite number; must be {bounds.describe()})")
        elif not bounds.holds(number):
            violations.append(f"{key}={value} (must be {bounds.describe()})")
    details = {"reason": "out_of_bounds" if violations else "within_bounds", "logged": logged}
    if violations:
        message = f"{_name(payload)}: fairness out of bounds: {'; '.join(violations)}"
        return CheckResult(_FAIRNESS_ID, Outcome.FAIL, message, details)
    shown = ", ".join(f"{k}={v}" for k, v in logged.items())
    return CheckResult(_FAIRNESS_ID, Outcome.PASS, f"{_name(payload)} fairness within bounds: {shown}", details)


def _check(check_id: str, title: str, judge: Evaluate) -> Check[MlflowSettings]:
    return Check(id=check_id, kind=KIND, title=title, evaluate=_for_deployed(check_id, judge))


LINEAGE_COMPLETE = _check(
    _LINEAGE_ID,
    "Deployed model version has a source run with a training dataset digest and code version",
    lineage_complete,
)
APPROVAL_RECORDED = _check(
    _APPROVAL_ID, "Deployed model version records who approved it and when, before deployment", approval_recorded
)
DOCUMENTED = _check(_DOCUMENTED_ID, "Deployed model version has a model card or a description", documented)
EVALUATED = _check(_EVALUATED_ID, "Deployed model version's source run logged evaluation metrics", evaluated)
FAIRNESS_WITHIN_BOUNDS = _check(
    _FAIRNESS_ID, "Deployed model version's fairness metrics are logged and within bounds", fairness_within_bounds
)
CHECKS = (LINEAGE_COMPLETE, APPROVAL_RECORDED, DOCUMENTED, EVALUATED, FAIRNESS_WITHIN_BOUNDS)
