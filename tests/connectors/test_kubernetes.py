"""The kubernetes connector through the real python client against a loopback API server serving recorded shapes.

No kube-apiserver can run here, so ``FakeApiServer`` serves List responses the way a real one does: items
without kind/apiVersion, ``limit``/``continue`` paging with opaque tokens, 410 Expired for a stale token,
403 Forbidden and 404 NotFound as ``Status`` objects.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from collector.canonical import canonical_json
from collector.connector import CollectContext, Problem, load_connector
from collector.errors import ConfigurationError, TransientError
from collector.model import Observation, Outcome, Subject
from collector.sdk.testing import ConnectorConformance
from connectors.kubernetes import REQUIRED_RBAC_RULES, KubernetesConnector, KubernetesSettings
from connectors.kubernetes.checks import (
    IMAGE_PINNED_BY_DIGEST,
    NETWORK_POLICY_PRESENT,
    NO_ANONYMOUS_BINDINGS,
    NO_WILDCARD_ACCESS,
    RESOURCE_LIMITS_SET,
    RUN_AS_NON_ROOT,
    SECRETS_ACCESS_RESTRICTED,
)

DATA = Path(__file__).parents[1] / "data" / "kubernetes"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SELECTOR = "ai.evidence/scope=model-serving"
FRAUD_DIGEST = "sha256:a5636f120aaf9cd583b0e8d056161ee2bba713227bbebf00557221b3551b1550"
QDRANT_DIGEST = "sha256:cfc35d18e7332fde265d77541e0fc0165a811854f7158046053adb9674f9e866"
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")

# (group, version, plural) -> data file
RESOURCES = {
    ("", "v1", "namespaces"): "namespaces",
    ("rbac.authorization.k8s.io", "v1", "clusterroles"): "clusterroles",
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"): "clusterrolebindings",
    ("rbac.authorization.k8s.io", "v1", "roles"): "roles",
    ("rbac.authorization.k8s.io", "v1", "rolebindings"): "rolebindings",
    ("apps", "v1", "deployments"): "deployments",
    ("apps", "v1", "statefulsets"): "statefulsets",
    ("batch", "v1", "jobs"): "jobs",
    ("networking.k8s.io", "v1", "networkpolicies"): "networkpolicies",
    ("serving.kserve.io", "v1beta1", "inferenceservices"): "inferenceservices",
    ("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports"): "vulnerabilityreports",
}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {},
        "code": code,
    }


class FakeApiServer:
    """Serves ``lists[(group, version, plural)]`` (a List document); anything else is a 404 like a missing CRD."""

    def __init__(self, lists: dict[tuple[str, str, str], dict[str, Any]]) -> None:
        self.lists = lists
        self.forbidden: set[tuple[str, str | None]] = set()
        """(plural, namespace or None for every namespace) answered with 403."""
        self.expire_next: dict[str, Any] = {}
        """plural -> a function changing the data, run when the next continue token for it arrives (then 410)."""
        self.epoch = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body = fake.respond(self.path)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def respond(self, raw_path: str) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(("GET", parts.path, query))
            return self._respond(parts.path.strip("/").split("/"), query)

    def _respond(self, segments: list[str], query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if query.get("watch") == "true":
            return 400, _status(400, "BadRequest", "watch is not served by this fake")
        if segments[0] == "api":
            group, version, rest = "", segments[1], segments[2:]
        else:
            group, version, rest = segments[1], segments[2], segments[3:]
        namespace = None
        if len(rest) == 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        plural = rest[0] if len(rest) == 1 else ""
        document = self.lists.get((group, version, plural))
        if document is None:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        if (plural, namespace) in self.forbidden or (plural, None) in self.forbidden:
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            name = f"{plural}.{group}" if group else plural
            message = (
                f'{name} is forbidden: User "system:serviceaccount:evidence:collector" cannot list resource '
                f'"{plural}" in API group "{group}" {scope}'
            )
            return 403, _status(403, "Forbidden", message)
        return self._page(document, plural, namespace, query)

    def _page(
        self, document: dict[str, Any], plural: str, namespace: str | None, query: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        offset = 0
        if "continue" in query:
            token = json.loads(base64.urlsafe_b64decode(query["continue"]))
            change = self.expire_next.pop(plural, None)
            if change is not None:
                change(self)
                self.epoch += 1
            if token["epoch"] != self.epoch:
                message = "The provided continue parameter is too old to display a consistent list result."
                return 410, _status(410, "Expired", message)
            offset = token["offset"]
        items = [i for i in document["items"] if namespace is None or i["metadata"].get("namespace") == namespace]
        items = [i for i in items if _labels_match(query.get("labelSelector"), i["metadata"].get("labels") or {})]
        limit = int(query.get("limit", len(items) or 1))
        page = items[offset : offset + limit]
        metadata: dict[str, Any] = {"resourceVersion": document["metadata"].get("resourceVersion", "1")}
        if offset + limit < len(items):
            token = json.dumps({"offset": offset + limit, "epoch": self.epoch}).encode()
            metadata["continue"] = base64.urlsafe_b64encode(token).decode()
            metadata["remainingItemCount"] = len(items) - offset - limit
        return 200, {
            "kind": document["kind"],
            "apiVersion": document["apiVersion"],
            "metadata": metadata,
            "items": page,
        }


def _labels_match(selector: str | None, labels: dict[str, str]) -> bool:
    for term in (selector or "").split(","):
        if not term:
            continue
        key, eq, value = term.partition("=")
        if (eq and labels.get(key) != value) or (not eq and key not in labels):
            return False
    return True


def recorded_lists() -> dict[tuple[str, str, str], dict[str, Any]]:
    return {key: json.loads((DATA / f"{name}.json").read_text()) for key, name in RESOURCES.items()}


@pytest.fixture
def api_server() -> Iterator[FakeApiServer]:
    server = FakeApiServer(recorded_lists()).start()
    yield server
    server.stop()


def connector_for(server: FakeApiServer, **given: Any) -> KubernetesConnector:
    raw: dict[str, Any] = {"host": server.url, "cluster_name": "test", "namespace_selector": SELECTOR}
    raw.update(given)
    if "namespaces" in given:
        raw.pop("namespace_selector")
    return KubernetesConnector(KubernetesSettings.model_validate(raw))


def collect(server: FakeApiServer, **given: Any) -> tuple[list[Observation], list[Problem], KubernetesConnector]:
    connector = connector_for(server, **given)
    ctx = CollectContext(instance="k8s", run_id="r1", now=NOW)
    return list(connector.collect(ctx)), ctx.problems, connector


def by_subject(observations: list[Observation], kind: str) -> dict[str, Observation]:
    return {o.subject.id: o for o in observations if o.kind == kind}


def run(check: Any, observation: Observation, connector: KubernetesConnector) -> Any:
    return check.run(observation, connector.settings, NOW)


# ------------------------------------------------------------------------------------------- conformance


class TestKubernetesConformance(ConnectorConformance):
    connector_cls = KubernetesConnector
    now = NOW
    invalid_settings = [
        {"host": "http://127.0.0.1:1"},  # neither namespaces nor a selector
        {"host": "http://127.0.0.1:1", "namespaces": ["a"], "namespace_selector": "x=y"},
        {"host": "http://127.0.0.1:1", "namespaces": []},
        {"host": "http://127.0.0.1:1", "namespaces": ["a"], "secrets_allowlist": ["alice"]},
        {"host": "http://127.0.0.1:1", "namespaces": ["a"], "trivy_operator": {"enabled": "sometimes"}},
        {"host": "http://127.0.0.1:1", "namespaces": ["a"], "kubeconfig": "/tmp/kubeconfig"},
    ]

    @pytest.fixture(autouse=True)
    def _server(self, api_server: FakeApiServer) -> None:
        self.host = api_server.url

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"host": self.host, "cluster_name": "test", "namespace_selector": SELECTOR}



# ------------------------------------------------------------------------------------------- what it collects


def test_collects_access_workloads_and_scans_of_the_selected_namespaces(api_server: FakeApiServer) -> None:
    observations, problems, _ = collect(api_server)
    assert problems == []
    assert sorted(by_subject(observations, "k8s.namespace_access")) == ["test/feature-store", "test/model-serving"]
    assert sorted(by_subject(observations, "k8s.workload")) == [
        "test/feature-store/Deployment/feast-server",
        "test/model-serving/Deployment/fraud-model",
        "test/model-serving/Deployment/model-gateway",
        "test/model-serving/InferenceService/sklearn-iris",
        "test/model-serving/Job/nightly-retrain-29412000",
        "test/model-serving/StatefulSet/vector-db",
    ]
    assert sorted(by_subject(observations, "container.scan")) == [
        f"ghcr.io/example/fraud-model@{FRAUD_DIGEST}",
        f"qdrant/qdrant@{QDRANT_DIGEST}",
    ]
    assert all(o.observed_at == NOW for o in observations if o.kind != "container.scan")


def test_only_list_calls_within_the_required_rbac_rules_are_made(api_server: FakeApiServer) -> None:
    collect(api_server)
    allowed = {(g, r) for rule in REQUIRED_RBAC_RULES for g in rule["apiGroups"] for r in rule["resources"]}
    assert all(rule["verbs"] == ["list"] for rule in REQUIRED_RBAC_RULES)
    used = set()
    for method, path, query in api_server.requests:
        assert method == "GET"
        assert "watch" not in query
        segments = path.strip("/").split("/")
        group = "" if segments[0] == "api" else segments[1]
        used.add((group, segments[-1]))
    assert used <= allowed
    assert used == allowed, f"rules granted but never used: {allowed - used}"


def test_rbac_grants_name_the_subject_and_the_binding_path(api_server: FakeApiServer) -> None:
    observations, _, _ = collect(api_server)
    payload = by_subject(observations, "k8s.namespace_access")["test/model-serving"].payload
    assert payload["collection"] == {"complete": True, "missing_permissions": []}
    assert payload["subjects_by_capability"] == {
        "secrets_read": ["Group:ml-platform-admins", "Group:system:masters", "ServiceAccount:model-serving/predictor"],
        "pods_exec": ["Group:ml-platform-admins", "Group:system:masters", "User:alice@example.com"],
        "deployments_modify": ["Group:ml-deployers", "Group:ml-platform-admins", "Group:system:masters"],
        "wildcard": ["Group:system:masters", "ServiceAccount:ml-ops/model-operator"],
    }
    exec_grant = next(g for g in payload["grants"] if g["subject"] == "User:alice@example.com")
    assert exec_grant == {
        "subject": "User:alice@example.com",
        "capability": "pods_exec",
        "held": ["create"],
        "resource_names": [],
        "binding": "RoleBinding/model-serving/debug-exec",
        "role": "Role/model-serving/pod-debugger",
        "aggregated_from": None,
        "scope": "namespace",
    }
    assert payload["dangling_bindings"] == [
        {"binding": "RoleBinding/model-serving/stale-binding", "role": "Role/model-serving/removed-role"}
    ]


def test_aggregated_cluster_role_is_resolved_through_its_selector(api_server: FakeApiServer) -> None:
    # `edit` has no rules of its own yet; kserve-deployer carries the aggregate-to-edit label
    observations, _, _ = collect(api_server)
    payload = by_subject(observations, "k8s.namespace_access")["test/model-serving"].payload
    deployers = [g for g in payload["grants"] if g["subject"] == "Group:ml-deployers"]
    assert {(g["capability"], g["role"], g["aggregated_from"]) for g in deployers} == {
        ("deployments_modify", "ClusterRole/edit", "ClusterRole/kserve-deployer")
    }
    assert deployers[0]["held"] == ["patch", "update"]


def test_rbac_checks_judge_each_namespace(api_server: FakeApiServer) -> None:
    observations, _, connector = collect(api_server)
    access = by_subject(observations, "k8s.namespace_access")
    serving, features = access["test/model-serving"], access["test/feature-store"]

    wildcard = run(NO_WILDCARD_ACCESS, serving, connector)
    assert wildcard.result is Outcome.FAIL
    assert wildcard.details["subjects"] == ["ServiceAccount:ml-ops/model-operator"]
    assert "ClusterRoleBinding/model-ops -> ClusterRole/model-ops-wildcard" in wildcard.message
    assert wildcard.details["exempt_subjects"] == ["Group:system:masters"]

    secrets = run(SECRETS_ACCESS_RESTRICTED, serving, connector)
    assert secrets.result is Outcome.FAIL
    assert secrets.details["subjects"] == ["Group:ml-platform-admins", "ServiceAccount:model-serving/predictor"]

    anonymous = run(NO_ANONYMOUS_BINDINGS, serving, connector)
    assert anonymous.result is Outcome.PASS  # system:public-info-viewer grants only /healthz-style URLs
    assert "1 grant only non-resource URLs" in anonymous.message
    failing = run(NO_ANONYMOUS_BINDINGS, features, connector)
    assert failing.result is Outcome.FAIL
    assert "Group:system:unauthenticated via RoleBinding/feature-store/anon-view -> ClusterRole/view" in failing.message


def test_secrets_allowlist_accepts_named_subjects_and_globs(api_server: FakeApiServer) -> None:
    allow = ["Group:ml-platform-admins", "ServiceAccount:model-serving/*"]
    observations, _, connector = collect(api_server, secrets_allowlist=allow)
    serving = by_subject(observations, "k8s.namespace_access")["test/model-serving"]
    result = run(SECRETS_ACCESS_RESTRICTED, serving, connector)
    assert result.result is Outcome.PASS
    assert "3 allowed subject(s)" in result.message


def test_workload_checks_read_the_pod_templates(api_server: FakeApiServer) -> None:
    observations, _, connector = collect(api_server)
    workloads = by_subject(observations, "k8s.workload")

    def outcomes(name: str) -> list[Outcome]:
        obs = workloads[f"test/model-serving/{name}"]
        checks = (RUN_AS_NON_ROOT, IMAGE_PINNED_BY_DIGEST, RESOURCE_LIMITS_SET, NETWORK_POLICY_PRESENT)
        return [run(check, obs, connector).result for check in checks]

    P, F, NA = Outcome.PASS, Outcome.FAIL, Outcome.NOT_APPLICABLE
    assert outcomes("Deployment/fraud-model") == [P, P, P, P]
    assert outcomes("Deployment/model-gateway") == [F, F, F, F]
    assert outcomes("StatefulSet/vector-db") == [F, P, F, P]
    assert outcomes("Job/nightly-retrain-29412000") == [P, P, P, P]
    assert outcomes("InferenceService/sklearn-iris") == [P, F, P, P]

    vector_db = workloads["test/model-serving/StatefulSet/vector-db"]
    root = run(RUN_AS_NON_ROOT, vector_db, connector)
    assert root.details["root"] == ["qdrant (runAsUser 0)"]  # overrides the pod's runAsNonRoot
    limits = run(RESOURCE_LIMITS_SET, vector_db, connector)
    assert limits.details["missing"] == {"init-perms (init)": ["cpu", "memory"]}
    gateway = workloads["test/model-serving/Deployment/model-gateway"]
    assert "nginx: nginx:1.27" in run(IMAGE_PINNED_BY_DIGEST, gateway, connector).message
    assert run(NETWORK_POLICY_PRESENT, gateway, connector).details["uncovered"] == ["model-gateway"]
    assert NA not in outcomes("Deployment/fraud-model")


def test_inference_service_components_are_read_as_pods(api_server: FakeApiServer) -> None:
    observations, _, connector = collect(api_server)
    isvc = by_subject(observations, "k8s.workload")["test/model-serving/InferenceService/sklearn-iris"]
    containers = {(c["component"], c["name"]): c for c in isvc.payload["containers"]}
    assert set(containers) == {("predictor", "kserve-container"), ("transformer", "kserve-container")}
    assert containers[("predictor", "kserve-container")]["image"] is None  # the ServingRuntime picks it
    assert [p["network_policies"] for p in isvc.payload["pods"]] == [
        [{"name": "kserve-isvc", "policy_types": ["Ingress"]}]
    ] * 2
    pinned = run(IMAGE_PINNED_BY_DIGEST, isvc, connector)
    assert pinned.details["unpinned"] == ["transformer/kserve-container: ghcr.io/example/iris-transformer:0.3"]


def test_job_records_its_cron_job_owner(api_server: FakeApiServer) -> None:
    observations, _, _ = collect(api_server)
    job = by_subject(observations, "k8s.workload")["test/model-serving/Job/nightly-retrain-29412000"]
    assert job.payload["owners"] == ["CronJob/nightly-retrain"]
    assert job.payload["containers"][0]["limits"]["nvidia.com/gpu"] == "2"


# ------------------------------------------------------------------------------------------- Trivy Operator


def counts(**given: int) -> dict[str, int]:
    return {s: given.get(s, 0) for s in SEVERITIES}


def test_vulnerability_reports_become_container_scans_keyed_by_digest(api_server: FakeApiServer) -> None:
    observations, _, _ = collect(api_server)
    scans = by_subject(observations, "container.scan")
    fraud = scans[f"ghcr.io/example/fraud-model@{FRAUD_DIGEST}"]
    assert fraud.subject.type == "container_image"
    assert fraud.observed_at == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # the latest of the two reports
    payload = fraud.payload
    assert payload["format"] == "trivy-operator"
    assert payload["scanner"] == {"name": "trivy", "version": "0.58.1"}
    assert payload["artifact"]["digest"] == FRAUD_DIGEST
    assert payload["artifact"]["repo_tags"] == ["ghcr.io/example/fraud-model:1.4.2"]
    # findings of both reports of the image, counted from the lists; each report's summary is kept beside them
    assert payload["severity_counts"] == counts(HIGH=1, MEDIUM=1, LOW=1)
    assert payload["fixable_counts"] == counts(HIGH=1, MEDIUM=1)
    assert payload["trivy_operator"]["summary_matches_listed"] is False
    reports = payload["trivy_operator"]["reports"]
    assert [r["report"] for r in reports] == [
        "feature-store/replicaset-fraud-model-7f4b9d6c1-model",
        "model-serving/replicaset-fraud-model-6d9f7c8b5-model",
    ]
    assert reports[1]["summary_counts"] == counts(CRITICAL=27, HIGH=1, MEDIUM=1, LOW=1)
    assert reports[1]["listed_counts"] == counts(HIGH=1, MEDIUM=1, LOW=1)
    assert reports[1]["summary_matches_listed"] is False
    assert reports[0]["summary_matches_listed"] is True
    assert (reports[1]["kind"], reports[1]["name"], reports[1]["container"]) == (
        "ReplicaSet",
        "fraud-model-6d9f7c8b5",
        "model",
    )
    qdrant = scans[f"qdrant/qdrant@{QDRANT_DIGEST}"].payload
    assert qdrant["vulnerability_count"] == 0
    assert qdrant["trivy_operator"]["summary_matches_listed"] is True


def test_shared_container_scan_checks_use_the_trivy_operator_thresholds(api_server: FakeApiServer) -> None:
    observations, _, connector = collect(api_server, trivy_operator={"fail_on_severity": "medium", "max_age": "12h"})
    fraud = by_subject(observations, "container.scan")[f"ghcr.io/example/fraud-model@{FRAUD_DIGEST}"]
    results = {c.id: c.run(fraud, connector.settings, NOW) for c in connector.checks if c.kind == "container.scan"}
    assert set(results) == {"container.no_fixable_vulns", "container.scan_recent"}
    assert results["container.no_fixable_vulns"].result is Outcome.FAIL
    assert "HIGH 1, MEDIUM 1" in results["container.no_fixable_vulns"].message
    assert results["container.scan_recent"].result is Outcome.FAIL  # 28h old, max_age 12h
    relaxed = connector_for(api_server, trivy_operator={"fail_on_severity": "critical"})
    assert relaxed.checks[7].run(fraud, relaxed.settings, NOW).result is Outcome.PASS


def test_real_trivy_operator_reports_are_read(api_server: FakeApiServer, shared_fixtures: Path) -> None:
    objects = []
    for name in ("vulnerabilityreport-many-41.json", "vulnerabilityreport-no-vuln.json"):
        obj = json.loads((shared_fixtures / "trivy-operator" / name).read_text())
        obj.pop("kind")
        obj.pop("apiVersion")  # a List response carries neither on its items
        objects.append(obj)
    objects[1]["metadata"]["namespace"] = "feature-store"
    key = ("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports")
    api_server.lists[key] = {**api_server.lists[key], "items": objects}
    api_server.lists[("", "v1", "namespaces")]["items"][0]["metadata"]["labels"][SELECTOR.split("=")[0]] = (
        "model-serving"  # select `default`, where the recorded report lives
    )
    observations, problems, _ = collect(api_server)
    assert problems == []
    scans = by_subject(observations, "container.scan")
    assert list(scans) == ["nginx:alpine"]  # no digest recorded by trivy-operator 0.12: keyed by tag
    payload = scans["nginx:alpine"].payload
    raw = objects[0]["report"]
    assert payload["vulnerability_count"] == len(
        {(v["vulnerabilityID"], v["resource"]) for v in raw["vulnerabilities"]}
    )
    assert payload["severity_counts"]["CRITICAL"] == 2
    assert payload["trivy_operator"]["keyed_by"] == "tag"
    many, none = payload["trivy_operator"]["reports"]  # same image, same scan time: findings merged
    assert many["summary_counts"] == counts(CRITICAL=2, HIGH=3, MEDIUM=25, LOW=11)
    assert many["listed_counts"] == counts(CRITICAL=2, HIGH=3, MEDIUM=25, LOW=11)
    assert many["summary_matches_listed"] is True
    assert none["listed_counts"] == counts()
    assert scans["nginx:alpine"].observed_at == datetime(2023, 3, 23, 16, 23, 1, tzinfo=UTC)


def test_a_malformed_report_is_a_problem_and_the_others_are_kept(api_server: FakeApiServer) -> None:
    key = ("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports")
    broken = copy.deepcopy(api_server.lists[key]["items"][2])
    broken["metadata"]["name"] = "broken"
    broken["report"]["vulnerabilities"] = [{"resource": "openssl", "severity": "HIGH"}]
    api_server.lists[key]["items"].append(broken)
    observations, problems, _ = collect(api_server)
    assert problems == [
        Problem(
            "vulnerabilityreports/model-serving/broken",
            "unreadable VulnerabilityReport: vulnerabilityreports/model-serving/broken: "
            "report.vulnerabilities[0].vulnerabilityID is missing",
        )
    ]
    assert len(by_subject(observations, "container.scan")) == 2


def test_an_unreadable_report_time_is_a_problem_and_the_scan_is_still_recorded(api_server: FakeApiServer) -> None:
    key = ("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports")
    report = api_server.lists[key]["items"][2]
    report["report"]["updateTimestamp"] = "not-a-date"
    observations, problems, _ = collect(api_server)
    where = f"vulnerabilityreports/{report['metadata']['namespace']}/{report['metadata']['name']}"
    assert problems == [
        Problem(
            where,
            "report.updateTimestamp 'not-a-date' is not a readable timestamp: the image's scan recency is an error",
        )
    ]
    assert len(by_subject(observations, "container.scan")) == 2
    assert sum(bool(o.payload["time_error"]) for o in observations if o.kind == "container.scan") == 1


# ------------------------------------------------------------------------------------------- faults


def test_missing_crds_are_not_applicable_not_errors(api_server: FakeApiServer) -> None:
    del api_server.lists[("serving.kserve.io", "v1beta1", "inferenceservices")]
    del api_server.lists[("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports")]
    observations, problems, _ = collect(api_server)
    assert problems == []
    assert not any("InferenceService" in o.subject.id for o in observations)
    assert not by_subject(observations, "container.scan")
    isvc_calls = [p for _, p, _ in api_server.requests if p.endswith("/inferenceservices")]
    assert len(isvc_calls) == 1, "a missing CRD is not asked for again in every namespace"


def test_missing_trivy_crd_is_a_problem_when_explicitly_enabled(api_server: FakeApiServer) -> None:
    del api_server.lists[("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports")]
    _, problems, _ = collect(api_server, trivy_operator={"enabled": True})
    assert [p.reason for p in problems] == [
        "vulnerabilityreports.aquasecurity.github.io/v1alpha1 is not served (Trivy Operator CRD) "
        "but trivy_operator.enabled is true"
    ]
    collect(api_server, trivy_operator={"enabled": False})
    assert [p for _, p, _ in api_server.requests].count(
        "/apis/aquasecurity.github.io/v1alpha1/namespaces/feature-store/vulnerabilityreports"
    ) == 1, "enabled: false does not ask"


def test_forbidden_cluster_roles_make_rbac_checks_error_naming_the_permission(api_server: FakeApiServer) -> None:
    api_server.forbidden.add(("clusterroles", None))
    observations, problems, connector = collect(api_server)
    permission = "list clusterroles.rbac.authorization.k8s.io (cluster-wide)"
    assert [p.reason.startswith(f"missing permission: {permission}: ") for p in problems] == [True]
    assert 'cannot list resource "clusterroles"' in problems[0].reason  # the API server's own words
    serving = by_subject(observations, "k8s.namespace_access")["test/model-serving"]
    assert serving.payload["collection"] == {
        "complete": False,
        "missing_permissions": ["list clusterroles.rbac.authorization.k8s.io (cluster-wide)"],
    }
    assert serving.payload["dangling_bindings"] == [
        {"binding": "RoleBinding/model-serving/stale-binding", "role": "Role/model-serving/removed-role"}
    ], "ClusterRole references are not called dangling when ClusterRoles could not be read"
    secrets = run(SECRETS_ACCESS_RESTRICTED, serving, connector)
    assert secrets.result is Outcome.ERROR
    assert "list clusterroles.rbac.authorization.k8s.io (cluster-wide)" in secrets.message
    # what was readable still proves a failure: alice's Role grants exec
    assert serving.payload["subjects_by_capability"]["pods_exec"] == ["User:alice@example.com"]
    # workloads and scans are unaffected
    assert len(by_subject(observations, "k8s.workload")) == 6


def test_forbidden_network_policies_make_only_that_check_error(api_server: FakeApiServer) -> None:
    api_server.forbidden.add(("networkpolicies", "model-serving"))
    observations, problems, connector = collect(api_server)
    assert len(problems) == 1
    assert "list networkpolicies.networking.k8s.io (in namespace model-serving)" in problems[0].reason
    fraud = by_subject(observations, "k8s.workload")["test/model-serving/Deployment/fraud-model"]
    result = run(NETWORK_POLICY_PRESENT, fraud, connector)
    assert result.result is Outcome.ERROR
    assert "list networkpolicies.networking.k8s.io (in namespace model-serving)" in result.message
    assert run(RUN_AS_NON_ROOT, fraud, connector).result is Outcome.PASS
    feast = by_subject(observations, "k8s.workload")["test/feature-store/Deployment/feast-server"]
    assert run(NETWORK_POLICY_PRESENT, feast, connector).result is Outcome.PASS


def test_forbidden_workload_type_is_a_problem_and_the_rest_is_collected(api_server: FakeApiServer) -> None:
    api_server.forbidden.add(("statefulsets", "model-serving"))
    observations, problems, _ = collect(api_server)
    assert ["list statefulsets.apps (in namespace model-serving)" in p.reason for p in problems] == [True]
    names = sorted(by_subject(observations, "k8s.workload"))
    assert "test/model-serving/StatefulSet/vector-db" not in names
    assert len(names) == 5


def test_lists_are_paged_with_limit_and_continue(api_server: FakeApiServer) -> None:
    observations, _, _ = collect(api_server, page_size=1)
    crb_calls = [q for _, p, q in api_server.requests if p.endswith("/clusterrolebindings")]
    assert [q.get("limit") for q in crb_calls] == ["1"] * 4
    assert "continue" not in crb_calls[0]
    assert all("continue" in q for q in crb_calls[1:])
    serving = by_subject(observations, "k8s.namespace_access")["test/model-serving"]
    full, _, _ = collect(api_server)
    assert serving.payload == by_subject(full, "k8s.namespace_access")["test/model-serving"].payload


def test_expired_continue_token_restarts_the_whole_listing(api_server: FakeApiServer) -> None:
    def grant_a_new_binding(server: FakeApiServer) -> None:
        document = server.lists[("rbac.authorization.k8s.io", "v1", "clusterrolebindings")]
        removed = document["items"].pop(0)  # cluster-admin was on the first page already read
        added = copy.deepcopy(removed)
        added["metadata"]["name"] = "zz-late-admin"
        added["subjects"] = [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "mallory"}]
        document["items"].append(added)

    api_server.expire_next["clusterrolebindings"] = grant_a_new_binding
    observations, problems, _ = collect(api_server, page_size=2)
    assert problems == []
    crb_calls = [q for _, p, q in api_server.requests if p.endswith("/clusterrolebindings")]
    assert ["continue" in q for q in crb_calls] == [False, True, False, True]  # 410, then from the first page
    wildcard = by_subject(observations, "k8s.namespace_access")["test/model-serving"].payload["subjects_by_capability"]
    # the listing after the restart only: system:masters (first pass) is gone, mallory (second pass) is there
    assert wildcard["wildcard"] == ["ServiceAccount:ml-ops/model-operator", "User:mallory"]


def test_a_token_that_keeps_expiring_is_a_transient_error(api_server: FakeApiServer) -> None:
    def expire_again(server: FakeApiServer) -> None:
        server.expire_next["clusterrolebindings"] = expire_again

    api_server.expire_next["clusterrolebindings"] = expire_again
    with pytest.raises(TransientError, match="continuation token expired 4 times"):
        collect(api_server, page_size=2)


def test_items_with_kind_and_unknown_fields_are_tolerated(api_server: FakeApiServer) -> None:
    document = api_server.lists[("apps", "v1", "deployments")]
    for item in document["items"]:
        item["kind"], item["apiVersion"] = "Deployment", "apps/v1"  # kubectl-style
        item["spec"]["template"]["spec"]["futureField"] = {"nested": [1, 2]}
        item["status"]["someNewCondition"] = True
    observations, problems, _ = collect(api_server)
    assert problems == []
    assert len(by_subject(observations, "k8s.workload")) == 6


def test_namespaces_by_name_skip_the_namespace_listing(api_server: FakeApiServer) -> None:
    observations, _, _ = collect(api_server, namespaces=["model-serving"])
    assert not any(p == "/api/v1/namespaces" for _, p, _ in api_server.requests)
    assert sorted(by_subject(observations, "k8s.namespace_access")) == ["test/model-serving"]


def test_selector_matching_no_namespace_is_a_problem(api_server: FakeApiServer) -> None:
    observations, problems, _ = collect(api_server, namespace_selector="ai.evidence/scope=nothing")
    assert observations == []
    assert problems == [Problem("namespace_selector ai.evidence/scope=nothing", "no namespace matches the selector")]


def test_forbidden_namespace_listing_is_a_configuration_error(api_server: FakeApiServer) -> None:
    api_server.forbidden.add(("namespaces", None))
    with pytest.raises(ConfigurationError, match=r"list namespaces \(cluster-wide\)"):
        collect(api_server)


def test_collecting_twice_gives_identical_evidence(api_server: FakeApiServer) -> None:
    first, _, _ = collect(api_server, page_size=3)
    second, _, _ = collect(api_server)
    assert [canonical_json(dict(o.payload)) for o in first] == [canonical_json(dict(o.payload)) for o in second]


# ------------------------------------------------------------------------------------------- real RBAC fixtures


def test_recorded_roles_and_bootstrap_bindings_resolve_to_secret_readers(
    api_server: FakeApiServer, shared_fixtures: Path
) -> None:
    cassette = yaml.safe_load(
        (shared_fixtures / "kubernetes" / "vcr-list-roles-all-namespaces-real-apiserver.yaml").read_text()
    )
    role_list = json.loads(cassette["interactions"][0]["response"]["body"]["string"])
    bindings = yaml.safe_load(
        (shared_fixtures / "kubernetes" / "bootstrap-namespace-role-bindings-list.yaml").read_text()
    )
    assert bindings["kind"] == "List"  # kubectl-style, items carry kind/apiVersion
    api_server.lists[("rbac.authorization.k8s.io", "v1", "roles")] = role_list
    api_server.lists[("rbac.authorization.k8s.io", "v1", "rolebindings")] = {**bindings, "kind": "RoleBindingList"}
    for key in (
        ("rbac.authorization.k8s.io", "v1", "clusterroles"),
        ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
    ):
        api_server.lists[key] = {**api_server.lists[key], "items": []}
    observations, problems, connector = collect(api_server, namespaces=["kube-public", "kube-system"], workloads=False)
    assert problems == []
    access = by_subject(observations, "k8s.namespace_access")
    system = access["test/kube-system"].payload
    assert system["subjects_by_capability"]["secrets_read"] == [
        "ServiceAccount:kube-system/bootstrap-signer",
        "ServiceAccount:kube-system/token-cleaner",
    ]
    assert {g["binding"] for g in system["grants"]} == {
        "RoleBinding/kube-system/system:controller:bootstrap-signer",
        "RoleBinding/kube-system/system:controller:token-cleaner",
    }
    assert access["test/kube-public"].payload["grants"] == []
    assert run(SECRETS_ACCESS_RESTRICTED, access["test/kube-system"], connector).result is Outcome.PASS  # control plane
    strict = connector_for(api_server, namespaces=["kube-system"], trusted_subjects=[])
    assert run(SECRETS_ACCESS_RESTRICTED, access["test/kube-system"], strict).result is Outcome.FAIL


# ------------------------------------------------------------------------------------------- client configuration


def test_kubeconfig_and_context_point_the_client_at_the_cluster(api_server: FakeApiServer, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": api_server.url}}],
                "users": [{"name": "collector", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {"name": "other", "context": {"cluster": "missing", "user": "collector"}},
                    {"name": "ml-prod", "context": {"cluster": "fake", "user": "collector"}},
                ],
                "current-context": "other",
            }
        )
    )
    settings = KubernetesSettings(kubeconfig=str(kubeconfig), context="ml-prod", namespaces=["model-serving"])
    ctx = CollectContext(instance="k8s", run_id="r1", now=NOW)
    observations = list(KubernetesConnector(settings).collect(ctx))
    assert Subject("k8s_namespace", "ml-prod/model-serving") in {o.subject for o in observations}


def test_unreadable_kubeconfig_is_a_configuration_error(tmp_path: Path) -> None:
    settings = KubernetesSettings(kubeconfig=str(tmp_path / "nope"), namespaces=["a"])
    ctx = CollectContext(instance="k8s", run_id="r1", now=NOW)
    with pytest.raises(ConfigurationError, match=r"cannot configure the Kubernetes client from .*nope"):
        list(KubernetesConnector(settings).collect(ctx))


def test_connector_is_registered_under_its_type() -> None:
    cls = load_connector("kubernetes")
    assert cls is KubernetesConnector
    assert cls.kinds == frozenset({"k8s.namespace_access", "k8s.workload", "container.scan"})
    assert [c.id for c in cls.checks] == [
        "k8s.no_wildcard_access",
        "k8s.secrets_access_restricted",
        "k8s.no_anonymous_bindings",
        "k8s.run_as_non_root",
        "k8s.image_pinned_by_digest",
        "k8s.resource_limits_set",
        "k8s.network_policy_present",
        "container.no_fixable_vulns",
        "container.scan_recent",
    ]
