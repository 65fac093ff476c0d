"""RBAC resolution, selectors and paging as pure functions: the edge cases a recorded cluster rarely shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.errors import TransientError
from collector.paging import PageExpired, collect_pages
from connectors.kubernetes.api import RESOURCE_TYPES
from connectors.kubernetes.rbac import REQUIRED_RBAC_RULES, RbacSnapshot, namespace_access
from connectors.kubernetes.selectors import selector_matches
from connectors.kubernetes.workloads import image_digest

RBAC = "rbac.authorization.k8s.io"


def cluster_role(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None, **extra: Any) -> Any:
    return {"metadata": {"name": name, "labels": labels or {}}, "rules": rules, **extra}


def crb(name: str, role: str, *subjects: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": list(subjects),
    }


def user(name: str) -> dict[str, Any]:
    return {"kind": "User", "apiGroup": RBAC, "name": name}


def access(roles: list[dict[str, Any]], bindings: list[dict[str, Any]]) -> dict[str, Any]:
    return namespace_access(RbacSnapshot(roles, bindings, roles={"ns": []}, role_bindings={"ns": []}), "ns")


@pytest.mark.parametrize(
    ("rule", "capability"),
    [
        ({"apiGroups": [""], "resources": ["pods/*"], "verbs": ["create"]}, "pods_exec"),
        ({"apiGroups": [""], "resources": ["*/exec"], "verbs": ["*"]}, "pods_exec"),
        ({"apiGroups": ["*"], "resources": ["secrets"], "verbs": ["watch"]}, "secrets_read"),
        ({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}, "deployments_modify"),
    ],
)
def test_subresource_and_group_wildcards_grant_the_capability(rule: dict[str, Any], capability: str) -> None:
    result = access([cluster_role("r", [rule])], [crb("b", "r", user("u"))])
    assert result["subjects_by_capability"][capability] == ["User:u"]


@pytest.mark.parametrize(
    "rule",
    [
        {"apiGroups": ["apps"], "resources": ["secrets"], "verbs": ["get"]},  # wrong group
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},  # pods, not pods/exec
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},  # non-resource URLs are not API resources
    ],
)
def test_near_misses_grant_nothing(rule: dict[str, Any]) -> None:
    result = access([cluster_role("r", [rule])], [crb("b", "r", user("u"))])
    assert result["grants"] == []


def test_aggregation_follows_chains_and_survives_cycles() -> None:
    roles = [
        cluster_role("top", [], aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"to-top": "true"}}]}),
        cluster_role(
            "middle",
            [],
            labels={"to-top": "true"},
            aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"to-middle": "true"}}]},
        ),
        cluster_role(
            "leaf",
            [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
            labels={"to-middle": "true", "to-top": "true"},
            aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"to-top": "true"}}]},  # a cycle back
        ),
    ]
    result = access(roles, [crb("b", "top", user("u"))])
    assert [(g["role"], g["aggregated_from"]) for g in result["grants"]] == [("ClusterRole/top", "ClusterRole/leaf")]


def test_service_account_without_namespace_takes_the_binding_namespace() -> None:
    snapshot = RbacSnapshot(
        [cluster_role("reader", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}])],
        [],
        roles={"ns": []},
        role_bindings={
            "ns": [
                {
                    "metadata": {"name": "rb", "namespace": "ns"},
                    "roleRef": {"kind": "ClusterRole", "name": "reader"},
                    "subjects": [{"kind": "ServiceAccount", "name": "sa"}],
                }
            ]
        },
    )
    result = namespace_access(snapshot, "ns")
    assert result["subjects_by_capability"]["secrets_read"] == ["ServiceAccount:ns/sa"]
    assert result["grants"][0]["scope"] == "namespace"


def test_anonymous_binding_to_a_missing_role_counts_as_granting_resources() -> None:
    result = access([], [crb("anon", "not-created-yet", {"kind": "User", "name": "system:anonymous"})])
    assert result["anonymous_bindings"] == [
        {
            "subject": "User:system:anonymous",
            "binding": "ClusterRoleBinding/anon",
            "role": "ClusterRole/not-created-yet",
            "grants_resources": None,
        }
    ]
    assert result["dangling_bindings"] == [
        {"binding": "ClusterRoleBinding/anon", "role": "ClusterRole/not-created-yet"}
    ]


def test_required_rules_cover_every_resource_type_with_list_only() -> None:
    granted = {(g, r) for rule in REQUIRED_RBAC_RULES for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {(t.group, t.plural) for t in RESOURCE_TYPES}
    assert {v for rule in REQUIRED_RBAC_RULES for v in rule["verbs"]} == {"list"}
    assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in REQUIRED_RBAC_RULES)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, {"a": "2"}, False),
    ],
)
def test_label_selectors(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_image_digest_needs_an_at_sign() -> None:
    assert image_digest("ghcr.io/x/y:1.0@sha256:abc") == "sha256:abc"
    assert image_digest("ghcr.io/x/y:sha256") is None
    assert image_digest(None) is None


def test_collect_pages_restarts_from_the_first_page_when_a_token_expires() -> None:
    calls: list[str | None] = []

    def fetch(token: str | None) -> tuple[list[int], str | None]:
        calls.append(token)
        if token == "p2" and calls.count("p2") == 1:
            raise PageExpired("too old")
        return ([1, 2], "p2") if token is None else ([3], None)

    assert collect_pages(fetch, "numbers") == [1, 2, 3]
    assert calls == [None, "p2", None, "p2"]


def test_collect_pages_refuses_a_token_loop() -> None:
    with pytest.raises(TransientError, match="repeated continuation token"):
        collect_pages(lambda token: ([1], "same"), "numbers")


def test_the_docs_show_exactly_the_required_rules() -> None:
    page = (Path(__file__).parents[2] / "docs" / "connectors" / "kubernetes.md").read_text()
    block = page.split("```yaml\nrules:\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load("rules:\n" + block)["rules"] == REQUIRED_RBAC_RULES
