"""Pure judgements over ``github.*`` observations."""

from __future__ import annotations

from datetime import datetime, timedelta

from collector.sdk import Check, CheckResult, Observation, Outcome, format_duration, in_the_future, parse_timestamp

from .settings import GitHubSettings

__all__ = [
    "BRANCH_KIND",
    "BRANCH_PROTECTED",
    "CHECKS",
    "DEPLOYMENT_APPROVED",
    "DEPLOYMENT_KIND",
    "ENVIRONMENT_KIND",
    "ENVIRONMENT_REVIEWERS",
    "SCAN_KIND",
    "SECURITY_SCAN_RECENT",
]

BRANCH_KIND = "github.branch_protection"
ENVIRONMENT_KIND = "github.environment"
DEPLOYMENT_KIND = "github.deployment"
SCAN_KIND = "github.security_scan"


def branch_protected(observation: Observation, settings: GitHubSettings, now: datetime) -> CheckResult:
    check_id = "github.branch_protected"
    p = observation.payload
    name = f"{p['repository']}@{p['branch']}"
    effective = p["effective"]
    if effective is None:
        reasons = [s["reason"] for s in (p["classic"], p["rulesets"]) if not s.get("readable")]
        return CheckResult(check_id, Outcome.ERROR, f"{name}: protection unreadable: {'; '.join(reasons)}")
    if not effective["protected"]:
        return CheckResult(check_id, Outcome.FAIL, f"{name}: no branch protection and no ruleset")
    gaps = []
    if effective["required_approving_reviews"] < settings.required_approving_reviews:
        gaps.append(
            f"{effective['required_approving_reviews']} required review(s), below {settings.required_approving_reviews}"
        )
    if settings.require_code_owner_review and not effective["code_owner_review"]:
        gaps.append("code-owner review not required")
    missing = sorted(set(settings.required_status_checks) - set(effective["status_checks"]))
    if missing:
        gaps.append(f"status checks not required: {', '.join(missing)}")
    if not effective["force_push_blocked"]:
        gaps.append("force pushes allowed")
    if not effective["deletion_blocked"]:
        gaps.append("deletion allowed")
    if settings.require_admins_included:
        if effective["admins_included"] is None:
            return CheckResult(
                check_id,
                Outcome.ERROR,
                f"{name}: whether admins may bypass the rulesets is unreadable (bypass_actors is shown only to "
                "tokens that may edit the ruleset)" + (f"; also {'; '.join(gaps)}" if gaps else ""),
            )
        if not effective["admins_included"]:
            gaps.append("administrators can bypass")
    if gaps:
        return CheckResult(check_id, Outcome.FAIL, f"{name}: {'; '.join(gaps)}", {"gaps": gaps})
    checks = ", ".join(effective["status_checks"]) or "none"
    return CheckResult(
        check_id,
        Outcome.PASS,
        f"{name}: {effective['required_approving_reviews']} review(s), checks {checks}, no force push or deletion",
    )


def environment_reviewers(observation: Observation, settings: GitHubSettings, now: datetime) -> CheckResult:
    check_id = "github.environment_reviewers"
    p = observation.payload
    name = f"{p['repository']} environment {p['environment']}"
    if not p["readable"]:
        return CheckResult(check_id, Outcome.ERROR, f"{name}: unreadable: {p['reason']}")
    if not p["exists"]:
        return CheckResult(check_id, Outcome.FAIL, f"{name} does not exist: nothing gates its deployments")
    if not p["required_reviewers"]:
        return CheckResult(check_id, Outcome.FAIL, f"{name}: no required reviewers")
    if p.get("prevent_self_review") is not True:
        return CheckResult(check_id, Outcome.FAIL, f"{name}: the deployer may approve their own deployment")
    return CheckResult(
        check_id, Outcome.PASS, f"{name}: reviewers {', '.join(p['required_reviewers'])}, no self-review"
    )


def deployment_approved(observation: Observation, settings: GitHubSettings, now: datetime) -> CheckResult:
    check_id = "github.deployment_approved"
    p = observation.payload
    name = f"{p['repository']} deployment {p['id']} to {p['environment']}"
    run = p["run"]
    if run is None:
        return CheckResult(check_id, Outcome.FAIL, f"{name}: no workflow run linked, so no approval is recorded")
    if not run["readable"]:
        what = f"run {run['id']}" if run["id"] is not None else "deployment"
        return CheckResult(check_id, Outcome.ERROR, f"{name}: {what} unreadable: {run['reason']}")
    authors = {a for a in (p["creator"], run["actor"], run["triggering_actor"]) if a}
    reviews = [a for a in p["approvals"] or [] if p["environment"] in a["environments"]]
    if any(r["state"] == "rejected" for r in reviews):
        return CheckResult(check_id, Outcome.FAIL, f"{name}: a reviewer rejected it")
    approvers = sorted({str(r["user"]) for r in reviews if r["state"] == "approved" and r["user"]})
    others = [a for a in approvers if a not in authors]
    if not others:
        who = ", ".join(approvers) or "nobody"
        return CheckResult(
            check_id,
            Outcome.FAIL,
            f"{name}: approved by {who}; no approval by someone other than its author(s) {', '.join(sorted(authors))}",
        )
    if not p["environment_requires_reviewers"]:
        return CheckResult(
            check_id,
            Outcome.FAIL,
            f"{name}: approved by {', '.join(others)}, but the environment does not require reviewers, so nothing "
            "held the deployment until then",
        )
    return CheckResult(
        check_id, Outcome.PASS, f"{name}: approved by {', '.join(others)} (author {', '.join(sorted(authors))})"
    )


def security_scan_recent(observation: Observation, settings: GitHubSettings, now: datetime) -> CheckResult:
    check_id = "github.security_scan_recent"
    p = observation.payload
    name = f"{p['repository']} {p['workflow']} on {p['branch']}"
    if not p["readable"]:
        return CheckResult(check_id, Outcome.ERROR, f"{name}: {p['reason']}")
    latest = p["latest"]
    if latest is None:
        return CheckResult(check_id, Outcome.FAIL, f"{name}: never completed")
    at = parse_timestamp(latest["updated_at"])
    if at is None:
        return CheckResult(check_id, Outcome.ERROR, f"{name}: run {latest['id']} updated_at is not a readable time")
    if (future := in_the_future(at, now, settings.clock_skew_tolerance)) is not None:
        return CheckResult(check_id, Outcome.FAIL, f"{name}: run {latest['id']} finished {future}")
    if latest["conclusion"] != "success":
        return CheckResult(
            check_id, Outcome.FAIL, f"{name}: latest run {latest['id']} concluded {latest['conclusion']}"
        )
    age = max(now - at, timedelta(0))
    message = f"{name}: succeeded {format_duration(age)} ago (max {format_duration(settings.scan_max_age)})"
    return CheckResult(check_id, Outcome.PASS if age <= settings.scan_max_age else Outcome.FAIL, message)


BRANCH_PROTECTED: Check[GitHubSettings] = Check(
    "github.branch_protected",
    BRANCH_KIND,
    "The default branch requires reviews and checks, no force push",
    branch_protected,
)
ENVIRONMENT_REVIEWERS: Check[GitHubSettings] = Check(
    "github.environment_reviewers",
    ENVIRONMENT_KIND,
    "Deployments to the environment need another's approval",
    environment_reviewers,
)
DEPLOYMENT_APPROVED: Check[GitHubSettings] = Check(
    "github.deployment_approved",
    DEPLOYMENT_KIND,
    "The deployment was approved by someone other than its author",
    deployment_approved,
)
SECURITY_SCAN_RECENT: Check[GitHubSettings] = Check(
    "github.security_scan_recent",
    SCAN_KIND,
    "The security scan ran recently and succeeded on the default branch",
    security_scan_recent,
)
CHECKS = (BRANCH_PROTECTED, ENVIRONMENT_REVIEWERS, DEPLOYMENT_APPROVED, SECURITY_SCAN_RECENT)
