"""Pure judgements over ``k8s.namespace_access`` and ``k8s.workload`` observations, and the shared
``container.scan`` checks applied to Trivy Operator reports with this connector's thresholds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from collector.sdk import Check, CheckResult, Observation, Outcome
from collector.sdk.vulnerability_scan import NO_FIXABLE_VULNS, SCAN_RECENT, ScanThresholds

from .settings import KubernetesSettings

__all__ = [
    "ACCESS_KIND",
    "CHECKS",
    "IMAGE_PINNED_BY_DIGEST",
    "NETWORK_POLICY_PRESENT",
    "NO_ANONYMOUS_BINDINGS",
    "NO_WILDCARD_ACCESS",
    "RESOURCE_LIMITS_SET",
    "RUN_AS_NON_ROOT",
    "SCAN_CHECKS",
    "SECRETS_ACCESS_RESTRICTED",
    "WORKLOAD_KIND",
]

ACCESS_KIND = "k8s.namespace_access"
WORKLOAD_KIND = "k8s.workload"
_SHOWN = 5


def _matches_any(subject: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(subject, pattern) for pattern in patterns)


def _listing(items: list[str]) -> str:
    more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return "; ".join(items[:_SHOWN]) + more


def _path(grant: Mapping[str, Any]) -> str:
    via = f" (aggregated from {grant['aggregated_from']})" if grant.get("aggregated_from") else ""
    return f"{grant['subject']} via {grant['binding']} -> {grant['role']}{via}"


def _missing(payload: Mapping[str, Any]) -> list[str]:
    return list(payload["collection"]["missing_permissions"])


def _incomplete(check_id: str, payload: Mapping[str, Any], **details: Any) -> CheckResult:
    missing = _missing(payload)
    message = f"RBAC could not be read completely, missing permission: {', '.join(missing)}"
    return CheckResult(check_id, Outcome.ERROR, message, {"missing_permissions": missing, **details})


def _grant_check(check_id: str, capability: str, what: str) -> Callable[..., CheckResult]:
    def evaluate(observation: Observation, settings: KubernetesSettings, now: datetime) -> CheckResult:
        payload = observation.payload
        allowed = [*settings.trusted_subjects, *(settings.secrets_allowlist if capability == "secrets_read" else [])]
        grants = [g for g in payload["grants"] if g["capability"] == capability]
        offending = [g for g in grants if not _matches_any(g["subject"], allowed)]
        subjects = sorted({g["subject"] for g in offending})
        exempt = sorted({g["subject"] for g in grants} - set(subjects))
        details = {"subjects": subjects, "paths": [_path(g) for g in offending], "exempt_subjects": exempt}
        if offending:
            paths = _listing([_path(g) for g in offending])
            message = f"{len(subjects)} subject(s) {what} in {payload['namespace']}: {paths}"
            return CheckResult(check_id, Outcome.FAIL, message, details)
        if _missing(payload):
            return _incomplete(check_id, payload, **details)
        suffix = f" ({len(exempt)} allowed subject(s) do)" if exempt else ""
        return CheckResult(
            check_id, Outcome.PASS, f"no other subject {what} in {payload['namespace']}{suffix}", details
        )

    return evaluate


def no_anonymous_bindings(observation: Observation, settings: KubernetesSettings, now: datetime) -> CheckResult:
    """FAIL on a binding of system:anonymous / system:unauthenticated to a role granting API resources."""
    payload = observation.payload
    bindings = payload["anonymous_bindings"]
    offending = [b for b in bindings if b["grants_resources"] is not False]
    shown = [f"{b['subject']} via {b['binding']} -> {b['role']}" for b in offending]
    details = {"bindings": shown, "non_resource_only": len(bindings) - len(offending)}
    if offending:
        message = f"unauthenticated access bound in {payload['namespace']}: {_listing(shown)}"
        return CheckResult(_NO_ANONYMOUS_ID, Outcome.FAIL, message, details)
    if _missing(payload):
        return _incomplete(_NO_ANONYMOUS_ID, payload, **details)
    note = f" ({len(bindings)} grant only non-resource URLs such as /healthz)" if bindings else ""
    message = f"no anonymous or unauthenticated bindings to API resources in {payload['namespace']}{note}"
    return CheckResult(_NO_ANONYMOUS_ID, Outcome.PASS, message, details)


# ---------------------------------------------------------------------------------------------- workloads


def _label(container: Mapping[str, Any]) -> str:
    component = f"{container['component']}/" if container.get("component") else ""
    init = " (init)" if container.get("role") == "init" else ""
    return f"{component}{container['name']}{init}"


def _workload(payload: Mapping[str, Any]) -> str:
    return f"{payload['kind']} {payload['namespace']}/{payload['name']}"


def run_as_non_root(observation: Observation, settings: KubernetesSettings, now: datetime) -> CheckResult:
    """PASS when every container is made to run as a non-root user by its (or its pod's) security context."""
    payload = observation.payload
    containers = payload["containers"]
    if not containers:
        return CheckResult(_NON_ROOT_ID, Outcome.NOT_APPLICABLE, f"{_workload(payload)} declares no containers")
    root = [_label(c) + " (runAsUser 0)" for c in containers if c["run_as_non_root"] is False]
    unset = [_label(c) + " (not set: the image decides)" for c in containers if c["run_as_non_root"] is None]
    details = {"root": root, "unset": unset}
    if root or unset:
        message = f"{_workload(payload)} may run as root: {_listing(root + unset)}"
        return CheckResult(_NON_ROOT_ID, Outcome.FAIL, message, details)
    return CheckResult(_NON_ROOT_ID, Outcome.PASS, f"all {len(containers)} container(s) run as non-root", details)


def image_pinned_by_digest(observation: Observation, settings: KubernetesSettings, now: datetime) -> CheckResult:
    """PASS when every image named in the spec is pinned by ``@sha256:`` digest."""
    payload = observation.payload
    with_image = [c for c in payload["containers"] if c["image"]]
    if not with_image:
        message = f"{_workload(payload)} names no image (the serving runtime chooses it)"
        return CheckResult(_PINNED_ID, Outcome.NOT_APPLICABLE, message)
    unpinned = [f"{_label(c)}: {c['image']}" for c in with_image if not c["image_digest"]]
    details = {"unpinned": unpinned, "pinned": len(with_image) - len(unpinned)}
    if unpinned:
        message = f"{_workload(payload)} uses image(s) by tag: {_listing(unpinned)}"
        return CheckResult(_PINNED_ID, Outcome.FAIL, message, details)
    return CheckResult(_PINNED_ID, Outcome.PASS, f"all {len(with_image)} image(s) are pinned by digest", details)


def resource_limits_set(observation: Observation, settings: KubernetesSettings, now: datetime) -> CheckResult:
    """PASS when every container sets every limit in ``required_limits``."""
    payload = observation.payload
    containers = payload["containers"]
    if not containers:
        return CheckResult(_LIMITS_ID, Outcome.NOT_APPLICABLE, f"{_workload(payload)} declares no containers")
    required = settings.required_limits
    missing = {
        _label(c): [name for name in required if name not in c["limits"]]
        for c in containers
        if any(name not in c["limits"] for name in required)
    }
    details = {"required": list(required), "missing": missing}
    if missing:
        shown = [f"{label} lacks {', '.join(names)}" for label, names in missing.items()]
        return CheckResult(_LIMITS_ID, Outcome.FAIL, f"{_workload(payload)}: {_listing(shown)}", details)
    message = f"all {len(containers)} container(s) set {', '.join(required)} limits"
    return CheckResult(_LIMITS_ID, Outcome.PASS, message, details)


def network_policy_present(observation: Observation, settings: KubernetesSettings, now: datetime) -> CheckResult:
    """PASS when at least one NetworkPolicy selects the workload's pods (each component's, for KServe)."""
    payload = observation.payload
    if payload["network_policies_error"]:
        message = f"NetworkPolicies could not be read: {payload['network_policies_error']}"
        return CheckResult(_NETPOL_ID, Outcome.ERROR, message)
    pods = payload["pods"]
    if not pods:
        return CheckResult(_NETPOL_ID, Outcome.NOT_APPLICABLE, f"{_workload(payload)} has no pod template")
    uncovered = [p["component"] or payload["name"] for p in pods if not p["network_policies"]]
    names = sorted({n["name"] for p in pods for n in p["network_policies"] or []})
    details = {"policies": names, "uncovered": uncovered}
    if uncovered:
        message = f"no NetworkPolicy selects the pods of {_workload(payload)} ({', '.join(uncovered)})"
        return CheckResult(_NETPOL_ID, Outcome.FAIL, message, details)
    return CheckResult(_NETPOL_ID, Outcome.PASS, f"selected by NetworkPolicy {', '.join(names)}", details)


# ---------------------------------------------------------------------------------------------- container.scan


def _with_scan_settings(check: Check[ScanThresholds]) -> Check[KubernetesSettings]:
    """A shared ``container.scan`` check, reading its thresholds from ``trivy_operator``."""

    def evaluate(observation: Observation, settings: KubernetesSettings, now: datetime) -> CheckResult:
        return check.evaluate(observation, settings.trivy_operator.scan_settings(), now)

    return Check(id=check.id, kind=check.kind, title=check.title, evaluate=evaluate)


_NO_WILDCARD_ID = "k8s.no_wildcard_access"
_SECRETS_ID = "k8s.secrets_access_restricted"
_NO_ANONYMOUS_ID = "k8s.no_anonymous_bindings"
_NON_ROOT_ID = "k8s.run_as_non_root"
_PINNED_ID = "k8s.image_pinned_by_digest"
_LIMITS_ID = "k8s.resource_limits_set"
_NETPOL_ID = "k8s.network_policy_present"

NO_WILDCARD_ACCESS: Check[KubernetesSettings] = Check(
    id=_NO_WILDCARD_ID,
    kind=ACCESS_KIND,
    title="No subject holds * verbs or * resources in the namespace",
    evaluate=_grant_check(_NO_WILDCARD_ID, "wildcard", "hold * verbs or resources"),
)
SECRETS_ACCESS_RESTRICTED: Check[KubernetesSettings] = Check(
    id=_SECRETS_ID,
    kind=ACCESS_KIND,
    title="Only allowlisted subjects can read secrets in the namespace",
    evaluate=_grant_check(_SECRETS_ID, "secrets_read", "can read secrets"),
)
NO_ANONYMOUS_BINDINGS: Check[KubernetesSettings] = Check(
    id=_NO_ANONYMOUS_ID,
    kind=ACCESS_KIND,
    title="No binding gives system:anonymous or system:unauthenticated access to API resources",
    evaluate=no_anonymous_bindings,
)
RUN_AS_NON_ROOT: Check[KubernetesSettings] = Check(
    id=_NON_ROOT_ID, kind=WORKLOAD_KIND, title="Every container runs as a non-root user", evaluate=run_as_non_root
)
IMAGE_PINNED_BY_DIGEST: Check[KubernetesSettings] = Check(
    id=_PINNED_ID, kind=WORKLOAD_KIND, title="Every image is pinned by digest", evaluate=image_pinned_by_digest
)
RESOURCE_LIMITS_SET: Check[KubernetesSettings] = Check(
    id=_LIMITS_ID, kind=WORKLOAD_KIND, title="Every container sets resource limits", evaluate=resource_limits_set
)
NETWORK_POLICY_PRESENT: Check[KubernetesSettings] = Check(
    id=_NETPOL_ID,
    kind=WORKLOAD_KIND,
    title="A NetworkPolicy selects the workload's pods",
    evaluate=network_policy_present,
)
SCAN_CHECKS = (_with_scan_settings(NO_FIXABLE_VULNS), _with_scan_settings(SCAN_RECENT))
CHECKS = (
    NO_WILDCARD_ACCESS,
    SECRETS_ACCESS_RESTRICTED,
    NO_ANONYMOUS_BINDINGS,
    RUN_AS_NON_ROOT,
    IMAGE_PINNED_BY_DIGEST,
    RESOURCE_LIMITS_SET,
    NETWORK_POLICY_PRESENT,
    *SCAN_CHECKS,
)
