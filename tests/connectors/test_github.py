"""The github connector against a loopback stub whose every body is checked against GitHub's OpenAPI description
(tests/connectors/github_stub.py) and built from the description's own examples."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from collector.connector import CollectContext, load_connector
from collector.model import Observation, Outcome
from collector.sdk.testing import ConnectorConformance
from connectors.github import CHECKS, GitHubConnector, GitHubSettings
from connectors.github import api as github_api
from tests.connectors.github_stub import GitHubStub, OpenApi, Reply, load_openapi, running_stub, spec_path

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
TOKEN = "ghp_stubtoken000000000000000000000000000"


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def openapi() -> OpenApi:
    return load_openapi(str(spec_path()))


@pytest.fixture
def stub(openapi: OpenApi) -> Iterator[GitHubStub]:
    yield from running_stub(openapi)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(github_api, "sleep", recorded.append)
    return recorded


def user(api: OpenApi, login: str) -> dict[str, Any]:
    person = api.example("branch-protection")["required_pull_request_reviews"]["dismissal_restrictions"]["users"][0]
    return {**person, "login": login}


def repository_body(api: OpenApi) -> dict[str, Any]:
    """GitHub's example repository, with the fields its own schema requires and the example lacks."""
    full = api.example("full-repository-default-response")
    full["default_branch"] = "main"
    full["language"] = "Python"
    full.pop("source", None)
    full.pop("parent", None)
    return full


def protection_body(api: OpenApi, *contexts: str) -> dict[str, Any]:
    """GitHub's example protection, brought up to its schema (``checks`` beside ``contexts``; the example's
    teams and apps lack required fields, so they are emptied)."""
    protection = api.example("branch-protection")
    protection["required_status_checks"]["contexts"] = list(contexts)
    protection["required_status_checks"]["checks"] = [{"context": c, "app_id": None} for c in contexts]
    restrictions = protection["required_pull_request_reviews"]["dismissal_restrictions"]
    restrictions["teams"], restrictions["apps"] = [], []
    protection["restrictions"]["teams"] = []
    return protection


def seed_repository(stub: GitHubStub, repo: str = "ml/model-serving", *, reviews: int = 2) -> None:
    api = stub.api
    stub.ok(f"/repos/{repo}", repository_body(api))
    protection = protection_body(api, "CodeQL", "unit-tests")
    protection["required_pull_request_reviews"]["required_approving_review_count"] = reviews
    protection["required_pull_request_reviews"]["require_code_owner_reviews"] = True
    protection["allow_force_pushes"] = {"enabled": False}
    protection["allow_deletions"] = {"enabled": False}
    stub.ok(f"/repos/{repo}/branches/main/protection", protection)
    stub.ok(f"/repos/{repo}/rules/branches/main", [])


def seed_environment(stub: GitHubStub, repo: str = "ml/model-serving", *, prevent_self_review: bool = True) -> None:
    environments = stub.api.example("environments")
    env = environments["environments"][0]
    env["name"] = "production"
    for rule in env["protection_rules"]:
        if rule["type"] == "required_reviewers":
            rule["prevent_self_review"] = prevent_self_review
    environments["environments"] = [env]
    stub.ok(f"/repos/{repo}/environments", environments)


def deployment(api: OpenApi, number: int, created: datetime, creator: str = "github-actions[bot]") -> dict[str, Any]:
    item = api.example("deployment-items")[0]
    item.update(
        id=number,
        environment="production",
        created_at=iso(created),
        updated_at=iso(created),
        creator=user(api, creator),
    )
    return item


def seed_deployment(
    stub: GitHubStub, repo: str, number: int, run_id: int, actor: str, approver: str | None, *, state: str = "approved"
) -> None:
    api = stub.api
    status = api.example("deployment-status-items")[0]
    status["log_url"] = f"https://github.com/{repo}/actions/runs/{run_id}/job/{run_id * 10}"
    status["target_url"] = status["log_url"]
    stub.ok(f"/repos/{repo}/deployments/{number}/statuses", [status])
    run = api.example("workflow-run")
    run.update(id=run_id, actor=user(api, actor), triggering_actor=user(api, actor))
    stub.ok(f"/repos/{repo}/actions/runs/{run_id}", run)
    approvals = []
    if approver is not None:
        approval = api.example("environment-approvals-items")[0]
        approval["state"] = state
        approval["user"] = user(api, approver)
        approval["environments"][0]["name"] = "production"
        approvals.append(approval)
    stub.ok(f"/repos/{repo}/actions/runs/{run_id}/approvals", approvals)


def seed_scan(stub: GitHubStub, repo: str, conclusion: str, finished: datetime) -> None:
    runs = stub.api.example("workflow-run-paginated")
    runs["workflow_runs"][0].update(
        conclusion=conclusion, status="completed", updated_at=iso(finished), head_branch="main"
    )
    stub.ok(f"/repos/{repo}/actions/workflows/codeql.yml/runs", runs)


def settings(stub: GitHubStub, **overrides: Any) -> GitHubSettings:
    base: dict[str, Any] = {
        "api_url": stub.url,
        "token": TOKEN,
        "repositories": ["ml/model-serving"],
        "required_approving_reviews": 2,
        "required_status_checks": ["CodeQL"],
        "security_workflows": ["codeql.yml"],
        "window": "30d",
    }
    return GitHubSettings.model_validate({**base, **overrides})


def collect(stub: GitHubStub, **overrides: Any) -> tuple[list[Observation], CollectContext, GitHubConnector]:
    connector = GitHubConnector(settings(stub, **overrides))
    ctx = CollectContext(instance="gh", run_id="r1", now=NOW)
    return list(connector.collect(ctx)), ctx, connector


def verdicts(observations: list[Observation], connector: GitHubConnector) -> dict[str, tuple[Outcome, str]]:
    out = {}
    for obs in observations:
        for check in CHECKS:
            if check.kind == obs.kind:
                result = check.run(obs, connector.settings, NOW)
                out[f"{check.id} {obs.subject.id}"] = (result.result, result.message)
    return out


def full_scenario(stub: GitHubStub) -> None:
    repo = "ml/model-serving"
    seed_repository(stub)
    seed_environment(stub)
    path = f"/repos/{repo}/deployments"
    stub.ok(path, [deployment(stub.api, 11, NOW - timedelta(days=1))], Link=stub.link(path, 2, 2))
    stub.ok(
        path,
        [deployment(stub.api, 12, NOW - timedelta(days=2)), deployment(stub.api, 13, NOW - timedelta(days=90))],
        page=2,
    )
    seed_deployment(stub, repo, 11, 101, actor="alice", approver="bob")
    seed_deployment(stub, repo, 12, 102, actor="carol", approver="carol")
    seed_scan(stub, repo, "success", NOW - timedelta(days=1))


def test_a_well_run_pipeline_and_a_self_approved_deployment(stub: GitHubStub) -> None:
    full_scenario(stub)
    observations, ctx, connector = collect(stub)
    assert ctx.problems == []
    got = verdicts(observations, connector)
    assert got["github.branch_protected ml/model-serving@main"][0] is Outcome.PASS
    assert got["github.environment_reviewers ml/model-serving/production"][0] is Outcome.PASS
    assert got["github.deployment_approved ml/model-serving/deployments/11"] == (
        Outcome.PASS,
        "ml/model-serving deployment 11 to production: approved by bob (author alice, github-actions[bot])",
    )
    verdict = got["github.deployment_approved ml/model-serving/deployments/12"]
    assert verdict[0] is Outcome.FAIL and "carol" in verdict[1]
    assert "github.deployment_approved ml/model-serving/deployments/13" not in got  # outside the window
    assert got["github.security_scan_recent ml/model-serving/codeql.yml"][0] is Outcome.PASS
    # paging followed the Link header to page 2, and stopped there
    assert any("page=2" in r for r in stub.requests)
    assert TOKEN not in repr([o.payload for o in observations])


def test_weak_protection_fails_with_each_gap(stub: GitHubStub) -> None:
    full_scenario(stub)
    protection = protection_body(stub.api, "unit-tests")
    protection["required_pull_request_reviews"]["required_approving_review_count"] = 1
    protection["required_pull_request_reviews"]["require_code_owner_reviews"] = False
    protection["enforce_admins"]["enabled"] = False
    protection["allow_force_pushes"] = {"enabled": True}
    protection["allow_deletions"] = {"enabled": False}
    stub.ok("/repos/ml/model-serving/branches/main/protection", protection)
    observations, _, connector = collect(stub)
    outcome, message = verdicts(observations, connector)["github.branch_protected ml/model-serving@main"]
    assert outcome is Outcome.FAIL
    for gap in ("1 required review(s), below 2", "code-owner review", "CodeQL", "force pushes", "administrators"):
        assert gap in message


def test_an_unprotected_branch_fails_and_a_missing_scope_is_an_error_naming_it(stub: GitHubStub) -> None:
    full_scenario(stub)
    not_protected = {"message": "Branch not protected", "documentation_url": "https://docs.github.com/rest"}
    stub.add("/repos/ml/model-serving/branches/main/protection", Reply(404, not_protected))
    observations, _, connector = collect(stub)
    outcome, message = verdicts(observations, connector)["github.branch_protected ml/model-serving@main"]
    assert (outcome, message) == (Outcome.FAIL, "ml/model-serving@main: no branch protection and no ruleset")

    forbidden = {
        "message": "Resource not accessible by personal access token",
        "documentation_url": "https://docs.github.com/rest",
    }
    stub.add(
        "/repos/ml/model-serving/branches/main/protection",
        Reply(403, forbidden, {"X-Accepted-OAuth-Scopes": "repo", "X-OAuth-Scopes": "read:org"}),
    )
    observations, _, connector = collect(stub)
    outcome, message = verdicts(observations, connector)["github.branch_protected ml/model-serving@main"]
    assert outcome is Outcome.ERROR
    assert "the endpoint accepts: repo; the token has: read:org" in message


def test_a_missing_repository_is_a_problem_not_evidence(stub: GitHubStub) -> None:
    observations, ctx, _ = collect(stub, repositories=["ml/gone"])
    assert observations == []
    assert [p.source for p in ctx.problems] == ["ml/gone"]
    assert "not found" in ctx.problems[0].reason


def test_rate_limits_are_waited_out(stub: GitHubStub, waits: list[float]) -> None:
    full_scenario(stub)
    limited = {"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest"}
    reset = str(int(time.time()) + 20)
    full = repository_body(stub.api)
    stub.add(
        "/repos/ml/model-serving",
        Reply(403, limited, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}),
        Reply(429, limited, {"Retry-After": "7"}),
        Reply(200, full),
    )
    observations, ctx, _ = collect(stub)
    assert ctx.problems == []
    assert len(waits) == 2
    assert 15 <= waits[0] <= 22
    assert waits[1] == 7
    assert observations


def test_a_rate_limit_longer_than_allowed_is_transient(stub: GitHubStub, waits: list[float]) -> None:
    from collector.sdk import TransientError

    limited = {"message": "API rate limit exceeded", "documentation_url": "https://docs.github.com/rest"}
    stub.add("/repos/ml/model-serving", Reply(429, limited, {"Retry-After": "3600"}))
    with pytest.raises(TransientError, match="rate limit"):
        collect(stub)
    assert waits == []


def test_rulesets_count_and_an_unreadable_bypass_list_is_an_error(stub: GitHubStub) -> None:
    full_scenario(stub)
    stub.add(
        "/repos/ml/model-serving/branches/main/protection",
        Reply(404, {"message": "Branch not protected", "documentation_url": "https://docs.github.com/rest"}),
    )
    rules = [
        {
            "type": "pull_request",
            "ruleset_source_type": "Repository",
            "ruleset_source": "ml/model-serving",
            "ruleset_id": 42,
            "parameters": {
                "required_approving_review_count": 2,
                "require_code_owner_review": True,
                "dismiss_stale_reviews_on_push": True,
                "require_last_push_approval": True,
                "required_review_thread_resolution": False,
            },
        },
        {
            "type": "required_status_checks",
            "ruleset_source_type": "Repository",
            "ruleset_source": "ml/model-serving",
            "ruleset_id": 42,
            "parameters": {
                "required_status_checks": [{"context": "CodeQL"}],
                "strict_required_status_checks_policy": True,
            },
        },
        {
            "type": "non_fast_forward",
            "ruleset_source_type": "Repository",
            "ruleset_source": "ml/model-serving",
            "ruleset_id": 42,
        },
        {
            "type": "deletion",
            "ruleset_source_type": "Repository",
            "ruleset_source": "ml/model-serving",
            "ruleset_id": 42,
        },
    ]
    stub.ok("/repos/ml/model-serving/rules/branches/main", rules)
    ruleset = stub.api.example("repository-ruleset")
    ruleset["bypass_actors"] = []
    stub.ok("/repos/ml/model-serving/rulesets/42", ruleset)
    observations, _, connector = collect(stub)
    assert verdicts(observations, connector)["github.branch_protected ml/model-serving@main"][0] is Outcome.PASS

    del ruleset["bypass_actors"]  # a token that may not edit the ruleset is not shown who may bypass it
    stub.ok("/repos/ml/model-serving/rulesets/42", ruleset)
    observations, _, connector = collect(stub)
    outcome, message = verdicts(observations, connector)["github.branch_protected ml/model-serving@main"]
    assert outcome is Outcome.ERROR and "bypass" in message


def test_a_failed_or_old_scan_and_a_self_reviewable_environment_fail(stub: GitHubStub) -> None:
    full_scenario(stub)
    seed_environment(stub, prevent_self_review=False)
    seed_scan(stub, "ml/model-serving", "failure", NOW - timedelta(hours=1))
    observations, _, connector = collect(stub)
    got = verdicts(observations, connector)
    assert got["github.environment_reviewers ml/model-serving/production"][0] is Outcome.FAIL
    assert got["github.security_scan_recent ml/model-serving/codeql.yml"][0] is Outcome.FAIL
    seed_scan(stub, "ml/model-serving", "success", NOW - timedelta(days=30))
    observations, _, connector = collect(stub)
    assert verdicts(observations, connector)["github.security_scan_recent ml/model-serving/codeql.yml"][0] is (
        Outcome.FAIL
    )


def test_unreadable_deployment_statuses_are_an_error_not_a_crash(stub: GitHubStub) -> None:
    full_scenario(stub)
    del stub.routes[("/repos/ml/model-serving/deployments/11/statuses", "1")]
    observations, _, connector = collect(stub)
    outcome, message = verdicts(observations, connector)["github.deployment_approved ml/model-serving/deployments/11"]
    assert outcome is Outcome.ERROR and "statuses unreadable" in message


def test_the_stub_refuses_a_body_github_would_never_send(openapi: OpenApi) -> None:
    protection = protection_body(openapi, "CodeQL")
    openapi.validate("GET", "/repos/o/r/branches/main/protection", 200, protection)
    protection["enforce_admins"] = {"enabled": "yes"}
    with pytest.raises(AssertionError, match="breaks GitHub's schema"):
        openapi.validate("GET", "/repos/o/r/branches/main/protection", 200, protection)


def test_the_entry_point_loads() -> None:
    assert load_connector("github") is GitHubConnector


class TestConformance(ConnectorConformance):
    connector_cls = GitHubConnector
    invalid_settings: ClassVar[list[dict[str, Any]]] = [
        {"token": "x"},
        {"token": "x", "repositories": ["not-a-repo"]},
        {"token": "x", "repositories": []},
        {"token": "x", "repositories": ["a/b", "a/b"]},
    ]
    secret_values: ClassVar[dict[str, str]] = {"token": "ghp_secretvalue"}
    now: ClassVar[datetime] = NOW

    @pytest.fixture(autouse=True)
    def _stub(self, stub: GitHubStub) -> None:
        full_scenario(stub)
        self.stub = stub

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "api_url": self.stub.url,
            "token": TOKEN,
            "repositories": ["ml/model-serving"],
            "security_workflows": ["codeql.yml"],
            "required_approving_reviews": 2,
        }


def test_the_recorded_answers_match_githubs_schema(openapi: OpenApi) -> None:
    """tests/data/github/answers.json (the never-a-pass net's sample) is held to the same description."""
    answers = json.loads((Path(__file__).parents[1] / "data" / "github" / "answers.json").read_text())
    assert len(answers) >= 10
    for path, body in answers.items():
        openapi.validate("GET", path.partition("?")[0], 200, body)
