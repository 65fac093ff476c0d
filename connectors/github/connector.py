"""The ``github`` connector: default-branch protection, environments, deployments with their approvals and
security-scan workflow runs of configured repositories, from the REST API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

from collector.sdk import (
    CollectContext,
    Connector,
    Observation,
    Subject,
    UnreadableTimestamp,
    read_timestamp,
    redact_url,
)

from .api import Forbidden, GitHubClient, NotFound
from .checks import BRANCH_KIND, CHECKS, DEPLOYMENT_KIND, ENVIRONMENT_KIND, SCAN_KIND
from .settings import GitHubSettings

__all__ = ["GitHubConnector"]

_RUN_URL = re.compile(r"/actions/runs/(\d+)")


def _login(user: object) -> str | None:
    return user.get("login") if isinstance(user, dict) and isinstance(user.get("login"), str) else None


def _time(value: object, field: str) -> datetime | None:
    try:
        return read_timestamp(value, field)
    except UnreadableTimestamp:
        return None


class GitHubConnector(Connector[GitHubSettings]):
    type = "github"
    version = "0.1.0"
    Settings = GitHubSettings
    kinds = frozenset({BRANCH_KIND, ENVIRONMENT_KIND, DEPLOYMENT_KIND, SCAN_KIND})
    checks = CHECKS

    def produced_kinds(self) -> frozenset[str]:
        kinds = {BRANCH_KIND}
        if self.settings.environments:
            kinds |= {ENVIRONMENT_KIND, DEPLOYMENT_KIND}
        if self.settings.security_workflows:
            kinds.add(SCAN_KIND)
        return frozenset(kinds)

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        client = GitHubClient(self.settings)
        try:
            for repo in self.settings.repositories:
                ctx.raise_if_cancelled()
                yield from self._repository(client, repo, ctx)
        finally:
            client.close()

    def _repository(self, client: GitHubClient, repo: str, ctx: CollectContext) -> Iterator[Observation]:
        source = redact_url(f"{client.base}/repos/{repo}")
        try:
            branch = client.get(f"/repos/{repo}")["default_branch"]
        except NotFound:
            ctx.problem(repo, f"{repo}: repository not found, or the token may not see it (HTTP 404)")
            return
        except Forbidden as exc:
            ctx.problem(repo, str(exc))
            return

        def observe(kind: str, subject: str, payload: dict[str, Any], at: datetime | None = None) -> Observation:
            return Observation(kind, Subject(kind.replace(".", "_"), subject), at or ctx.now, payload, source)

        protection = {"repository": repo, "branch": branch, **self._protection(client, repo, branch)}
        yield observe(BRANCH_KIND, f"{repo}@{branch}", protection)
        environments = self._environments(client, repo)
        for name in self.settings.environments:
            env = {"repository": repo, "environment": name, **environments.get(name, self._absent(environments))}
            yield observe(ENVIRONMENT_KIND, f"{repo}/{name}", env)
            for deployment in self._deployments(client, repo, name, ctx):
                deployment["environment_requires_reviewers"] = bool(env.get("required_reviewers"))
                at = _time(deployment["created_at"], "created_at")
                yield observe(DEPLOYMENT_KIND, f"{repo}/deployments/{deployment['id']}", deployment, at)
        for workflow in self.settings.security_workflows:
            scan = self._scan(client, repo, branch, workflow)
            at = _time((scan.get("latest") or {}).get("updated_at"), "updated_at")
            yield observe(SCAN_KIND, f"{repo}/{workflow}", scan, at)

    # ---------------------------------------------------------------------------------- branch protection

    def _protection(self, client: GitHubClient, repo: str, branch: str) -> dict[str, Any]:
        ref = quote(branch, safe="")
        classic: dict[str, Any]
        try:
            classic = _classic(client.get(f"/repos/{repo}/branches/{ref}/protection"))
        except NotFound as exc:
            if "not protected" not in exc.message.lower():
                classic = {"readable": False, "reason": f"HTTP 404: {exc.message}"}
            else:
                classic = {"readable": True, "protected": False}
        except Forbidden as exc:
            classic = {"readable": False, "reason": str(exc)}
        try:
            rules = client.pages(f"/repos/{repo}/rules/branches/{ref}")
            rulesets = _rulesets(client, repo, rules)
        except (NotFound, Forbidden) as exc:
            rulesets = {"readable": False, "reason": str(exc)}
        return {"classic": classic, "rulesets": rulesets, "effective": _effective(classic, rulesets)}

    # ---------------------------------------------------------------------------------- environments

    def _environments(self, client: GitHubClient, repo: str) -> dict[str, dict[str, Any]]:
        try:
            listed = client.pages(f"/repos/{repo}/environments", key="environments")
        except NotFound:
            return {}
        except Forbidden as exc:
            return {"": {"readable": False, "reason": str(exc)}}
        out = {}
        for env in listed:
            reviewers: list[str] = []
            prevent_self_review = None
            wait_timer = 0
            for rule in env.get("protection_rules") or []:
                if rule.get("type") == "required_reviewers":
                    prevent_self_review = rule.get("prevent_self_review")
                    for entry in rule.get("reviewers") or []:
                        who = entry.get("reviewer") or {}
                        reviewers.append(f"{entry.get('type', '').lower()}:{who.get('login') or who.get('slug')}")
                elif rule.get("type") == "wait_timer":
                    wait_timer = rule.get("wait_timer") or 0
            out[env["name"]] = {
                "readable": True,
                "exists": True,
                "required_reviewers": sorted(reviewers),
                "prevent_self_review": prevent_self_review,
                "wait_timer_minutes": wait_timer,
                "deployment_branch_policy": env.get("deployment_branch_policy"),
            }
        return out

    @staticmethod
    def _absent(environments: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if "" in environments:
            return environments[""]
        return {"readable": True, "exists": False, "required_reviewers": []}

    # ---------------------------------------------------------------------------------- deployments

    def _deployments(
        self, client: GitHubClient, repo: str, environment: str, ctx: CollectContext
    ) -> Iterator[dict[str, Any]]:
        start = ctx.now - self.settings.window

        def older(page: list[Any]) -> bool:
            last = _time(page[-1].get("created_at"), "created_at") if page else None
            return last is not None and last < start

        try:
            listed = client.pages(f"/repos/{repo}/deployments", environment=environment, stop=older)
        except (NotFound, Forbidden) as exc:
            ctx.problem(f"{repo}/deployments", str(exc))
            return
        for deployment in listed[: self.settings.max_deployments]:
            created = _time(deployment.get("created_at"), "created_at")
            if created is None:
                ctx.problem(f"{repo}/deployments/{deployment.get('id')}", "created_at is not a readable time")
                continue
            if created < start:
                continue
            yield self._deployment(client, repo, environment, deployment)

    def _deployment(self, client: GitHubClient, repo: str, environment: str, d: dict[str, Any]) -> dict[str, Any]:
        try:
            statuses = client.pages(f"/repos/{repo}/deployments/{d['id']}/statuses")
        except (NotFound, Forbidden) as exc:
            unread = {"id": None, "readable": False, "reason": f"statuses unreadable: {exc}"}
            return {**self._deployment_fields(repo, environment, d), "statuses": [], "run": unread, "approvals": None}
        run_id = next(
            (
                int(m.group(1))
                for s in statuses
                for url in (s.get("log_url"), s.get("target_url"))
                if isinstance(url, str) and (m := _RUN_URL.search(url))
            ),
            None,
        )
        payload: dict[str, Any] = {
            **self._deployment_fields(repo, environment, d),
            "statuses": sorted(
                (
                    {"state": s.get("state"), "created_at": s.get("created_at"), "creator": _login(s.get("creator"))}
                    for s in statuses
                ),
                key=lambda s: str(s["created_at"]),
            ),
            "run": None,
            "approvals": None,
        }
        if run_id is None:
            return payload
        try:
            run = client.get(f"/repos/{repo}/actions/runs/{run_id}")
            reviews = client.get(f"/repos/{repo}/actions/runs/{run_id}/approvals")
        except (NotFound, Forbidden) as exc:
            payload["run"] = {"id": run_id, "readable": False, "reason": str(exc)}
            return payload
        payload["run"] = {
            "id": run_id,
            "readable": True,
            "actor": _login(run.get("actor")),
            "triggering_actor": _login(run.get("triggering_actor")),
            "run_started_at": run.get("run_started_at"),
            "head_sha": run.get("head_sha"),
        }
        payload["approvals"] = [
            {
                "state": review.get("state"),
                "user": _login(review.get("user")),
                "environments": sorted(e.get("name") for e in review.get("environments") or [] if e.get("name")),
            }
            for review in reviews
        ]
        return payload

    @staticmethod
    def _deployment_fields(repo: str, environment: str, d: dict[str, Any]) -> dict[str, Any]:
        return {
            "repository": repo,
            "environment": environment,
            "id": d["id"],
            "sha": d.get("sha"),
            "ref": d.get("ref"),
            "created_at": d["created_at"],
            "creator": _login(d.get("creator")),
        }

    # ---------------------------------------------------------------------------------- security scans

    def _scan(self, client: GitHubClient, repo: str, branch: str, workflow: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"repository": repo, "workflow": workflow, "branch": branch}
        try:
            answer = client.get(
                f"/repos/{repo}/actions/workflows/{quote(workflow, safe='')}/runs",
                branch=branch,
                status="completed",
                per_page=1,
            )
        except NotFound as exc:
            return {**payload, "readable": False, "reason": f"no workflow {workflow} (HTTP 404: {exc.message})"}
        except Forbidden as exc:
            return {**payload, "readable": False, "reason": str(exc)}
        runs = answer.get("workflow_runs") or []
        latest = runs[0] if runs else None
        payload["readable"] = True
        payload["latest"] = (
            None
            if latest is None
            else {
                "id": latest.get("id"),
                "conclusion": latest.get("conclusion"),
                "status": latest.get("status"),
                "event": latest.get("event"),
                "head_sha": latest.get("head_sha"),
                "run_started_at": latest.get("run_started_at"),
                "updated_at": latest.get("updated_at"),
            }
        )
        return payload


def _classic(p: dict[str, Any]) -> dict[str, Any]:
    reviews = p.get("required_pull_request_reviews") or {}
    checks = p.get("required_status_checks") or {}
    contexts = set(checks.get("contexts") or []) | {c.get("context") for c in checks.get("checks") or []}
    return {
        "readable": True,
        "protected": True,
        "required_approving_reviews": reviews.get("required_approving_review_count", 0) if reviews else 0,
        "dismiss_stale_reviews": bool(reviews.get("dismiss_stale_reviews")),
        "code_owner_review": bool(reviews.get("require_code_owner_reviews")),
        "status_checks": sorted(c for c in contexts if c),
        "enforce_admins": bool((p.get("enforce_admins") or {}).get("enabled")),
        "allow_force_pushes": bool((p.get("allow_force_pushes") or {}).get("enabled")),
        "allow_deletions": bool((p.get("allow_deletions") or {}).get("enabled")),
    }


def _rulesets(client: GitHubClient, repo: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "readable": True,
        "ruleset_ids": sorted({r["ruleset_id"] for r in rules if isinstance(r.get("ruleset_id"), int)}),
        "required_approving_reviews": 0,
        "code_owner_review": False,
        "dismiss_stale_reviews": False,
        "status_checks": [],
        "non_fast_forward": False,
        "deletion": False,
    }
    checks: set[str] = set()
    for rule in rules:
        params = rule.get("parameters") or {}
        kind = rule.get("type")
        if kind == "pull_request":
            out["required_approving_reviews"] = max(
                out["required_approving_reviews"], params.get("required_approving_review_count") or 0
            )
            out["code_owner_review"] |= bool(params.get("require_code_owner_review"))
            out["dismiss_stale_reviews"] |= bool(params.get("dismiss_stale_reviews_on_push"))
        elif kind == "required_status_checks":
            checks |= {c.get("context") for c in params.get("required_status_checks") or [] if c.get("context")}
        elif kind in ("non_fast_forward", "deletion"):
            out[kind] = True
    out["status_checks"] = sorted(checks)
    bypass: list[str] = []
    bypass_known = True
    for ruleset_id in out["ruleset_ids"]:
        try:
            detail = client.get(f"/repos/{repo}/rulesets/{ruleset_id}")
        except (NotFound, Forbidden):
            bypass_known = False
            continue
        if "bypass_actors" not in detail:  # only shown to those who may edit the ruleset
            bypass_known = False
            continue
        bypass += [f"{a.get('actor_type')}:{a.get('actor_id')}:{a.get('bypass_mode')}" for a in detail["bypass_actors"]]
    out["bypass_actors"] = sorted(bypass) if bypass_known else None
    return out


def _effective(classic: dict[str, Any], rulesets: dict[str, Any]) -> dict[str, Any] | None:
    """What applies to the branch, the stricter of classic protection and rulesets; ``None`` when either could
    not be read (the check is then an error, never a pass on half the rules)."""
    if not classic.get("readable") or not rulesets.get("readable"):
        return None
    protected = bool(classic.get("protected"))
    has_rules = bool(rulesets["ruleset_ids"])
    admins: bool | None = protected and classic["enforce_admins"]
    if has_rules and not admins:
        admins = None if rulesets["bypass_actors"] is None else not rulesets["bypass_actors"]
    return {
        "protected": protected or has_rules,
        "required_approving_reviews": max(
            classic.get("required_approving_reviews", 0), rulesets["required_approving_reviews"]
        ),
        "code_owner_review": bool(classic.get("code_owner_review")) or rulesets["code_owner_review"],
        "dismiss_stale_reviews": bool(classic.get("dismiss_stale_reviews")) or rulesets["dismiss_stale_reviews"],
        "status_checks": sorted(set(classic.get("status_checks", [])) | set(rulesets["status_checks"])),
        "force_push_blocked": (protected and not classic["allow_force_pushes"]) or rulesets["non_fast_forward"],
        "deletion_blocked": (protected and not classic["allow_deletions"]) or rulesets["deletion"],
        "admins_included": admins,
    }
