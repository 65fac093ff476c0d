"""Who can do what in a namespace: bindings -> (aggregated) roles -> rules -> sensitive capabilities.

Pure functions over the JSON the API server returns; the connector lists the objects, this module judges
nothing but resolves every grant to the binding path that makes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .api import RESOURCE_TYPES
from .selectors import selector_matches

__all__ = [
    "ANONYMOUS_SUBJECTS",
    "CAPABILITIES",
    "REQUIRED_RBAC_RULES",
    "RbacSnapshot",
    "namespace_access",
    "subject_label",
]

ANONYMOUS_SUBJECTS = frozenset({"User:system:anonymous", "Group:system:unauthenticated"})


def _required_rbac_rules() -> list[dict[str, list[str]]]:
    plurals: dict[str, list[str]] = {}
    for resource in RESOURCE_TYPES:
        plurals.setdefault(resource.group, []).append(resource.plural)
    return [
        {"apiGroups": [group], "resources": sorted(names), "verbs": ["list"]}
        for group, names in sorted(plurals.items())
    ]


REQUIRED_RBAC_RULES: list[dict[str, list[str]]] = _required_rbac_rules()
"""Exactly the read access the connector uses (``list`` only), as ClusterRole rules."""


@dataclass(frozen=True, slots=True)
class Capability:
    """A sensitive permission: any of ``verbs`` on ``resource`` (``pods/exec`` for a subresource) in ``group``."""

    group: str
    resource: str
    verbs: frozenset[str]


CAPABILITIES: dict[str, Capability] = {
    "secrets_read": Capability("", "secrets", frozenset({"get", "list", "watch"})),
    "pods_exec": Capability("", "pods/exec", frozenset({"create"})),
    "deployments_modify": Capability("apps", "deployments", frozenset({"update", "patch"})),
}
"""``list``/``watch`` on secrets return their contents, so they count as reading secrets like ``get``."""


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _resource_matches(granted: str, wanted: str) -> bool:
    if granted in ("*", wanted):
        return True
    base, slash, sub = wanted.partition("/")
    return bool(slash) and granted in (f"{base}/*", f"*/{sub}")


def _granted_verbs(rule: Mapping[str, Any], capability: Capability) -> list[str]:
    groups = _strings(rule.get("apiGroups"))
    if "*" not in groups and capability.group not in groups:
        return []
    if not any(_resource_matches(r, capability.resource) for r in _strings(rule.get("resources"))):
        return []
    verbs = set(_strings(rule.get("verbs")))
    return ["*"] if "*" in verbs else sorted(verbs & capability.verbs)


def _wildcards(rule: Mapping[str, Any]) -> list[str]:
    """Which of verbs/resources a resource rule grants with ``*`` (non-resource URL rules do not count)."""
    held = []
    if "*" in _strings(rule.get("verbs")) and _strings(rule.get("resources")):
        held.append("verbs")
    if "*" in _strings(rule.get("resources")):
        held.append("resources")
    return held


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name") or "")


def _namespace(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("namespace") or "")


def subject_label(subject: Mapping[str, Any], binding_namespace: str | None) -> str:
    """``User:alice``, ``Group:ml-admins``, ``ServiceAccount:model-serving/predictor``."""
    kind = str(subject.get("kind") or "Unknown")
    name = str(subject.get("name") or "")
    if kind == "ServiceAccount":
        return f"ServiceAccount:{subject.get('namespace') or binding_namespace or ''}/{name}"
    return f"{kind}:{name}"


@dataclass
class RbacSnapshot:
    """What was read of the cluster's RBAC objects; a ``None`` collection could not be read."""

    cluster_roles: list[dict[str, Any]] | None
    cluster_role_bindings: list[dict[str, Any]] | None
    roles: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)
    role_bindings: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cluster_roles = {_name(r): r for r in self.cluster_roles or []}

    def cluster_role_rules(self, name: str) -> list[tuple[dict[str, Any], str | None]] | None:
        """Rules of a ClusterRole with aggregation resolved: (rule, the aggregated role it came from)."""
        if name not in self._cluster_roles:
            return None
        return list(self._resolve(name, frozenset()))

    def _resolve(self, name: str, visiting: frozenset[str]) -> Iterator[tuple[dict[str, Any], str | None]]:
        role = self._cluster_roles[name]
        seen: set[str] = set()
        for rule, origin in [*self._aggregated(role, visiting | {name}), *((r, None) for r in _rules(role))]:
            key = json.dumps(rule, sort_keys=True)
            if key not in seen:
                seen.add(key)
                yield rule, origin

    def _aggregated(self, role: Mapping[str, Any], visiting: frozenset[str]) -> Iterator[tuple[dict[str, Any], str]]:
        aggregation = role.get("aggregationRule")
        selectors = aggregation.get("clusterRoleSelectors") if isinstance(aggregation, dict) else None
        for selector in selectors or []:
            if not isinstance(selector, dict):
                continue
            for other_name, other in sorted(self._cluster_roles.items()):
                labels = _meta(other).get("labels") or {}
                if other_name in visiting or not selector_matches(selector, labels):
                    continue
                for rule, origin in self._resolve(other_name, visiting):
                    yield rule, origin or other_name

    def role_rules(self, namespace: str, name: str) -> list[tuple[dict[str, Any], str | None]] | None:
        for role in self.roles.get(namespace) or []:
            if _name(role) == name:
                return [(rule, None) for rule in _rules(role)]
        return None

    def roles_readable(self, kind: str, namespace: str) -> bool:
        return (self.cluster_roles if kind == "ClusterRole" else self.roles.get(namespace)) is not None


def _rules(role: Mapping[str, Any]) -> list[dict[str, Any]]:
    rules = role.get("rules")
    return [rule for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []


@dataclass(frozen=True, slots=True)
class _Binding:
    path: str
    role_kind: str
    role_name: str
    namespace: str | None
    subjects: tuple[str, ...]

    @property
    def role_path(self) -> str:
        return (
            f"Role/{self.namespace}/{self.role_name}" if self.role_kind == "Role" else f"ClusterRole/{self.role_name}"
        )


def _bindings(snapshot: RbacSnapshot, namespace: str) -> Iterator[_Binding]:
    for crb in snapshot.cluster_role_bindings or []:
        yield _binding(crb, f"ClusterRoleBinding/{_name(crb)}", None)
    for rb in snapshot.role_bindings.get(namespace) or []:
        yield _binding(rb, f"RoleBinding/{namespace}/{_name(rb)}", namespace)


def _binding(obj: Mapping[str, Any], path: str, namespace: str | None) -> _Binding:
    role_ref = obj.get("roleRef")
    role_ref = role_ref if isinstance(role_ref, dict) else {}
    subjects = obj.get("subjects")
    labels = (
        tuple(subject_label(s, namespace) for s in subjects if isinstance(s, dict))
        if isinstance(subjects, list)
        else ()
    )
    return _Binding(path, str(role_ref.get("kind") or ""), str(role_ref.get("name") or ""), namespace, labels)


def _binding_rules(snapshot: RbacSnapshot, binding: _Binding) -> list[tuple[dict[str, Any], str | None]] | None:
    if binding.role_kind == "ClusterRole":
        return snapshot.cluster_role_rules(binding.role_name)
    if binding.role_kind == "Role" and binding.namespace:
        return snapshot.role_rules(binding.namespace, binding.role_name)
    return None


def _grants(binding: _Binding, rules: Iterable[tuple[dict[str, Any], str | None]]) -> Iterator[dict[str, Any]]:
    for rule, origin in rules:
        found = {name: _granted_verbs(rule, cap) for name, cap in CAPABILITIES.items()}
        wildcard = _wildcards(rule)
        if wildcard:
            found["wildcard"] = wildcard
        for capability, held in found.items():
            if not held:
                continue
            for subject in binding.subjects:
                yield {
                    "subject": subject,
                    "capability": capability,
                    "held": held,
                    "resource_names": sorted(_strings(rule.get("resourceNames"))),
                    "binding": binding.path,
                    "role": binding.role_path,
                    "aggregated_from": f"ClusterRole/{origin}" if origin else None,
                    "scope": "cluster" if binding.namespace is None else "namespace",
                }


def _grants_resources(rules: list[tuple[dict[str, Any], str | None]] | None) -> bool | None:
    if rules is None:
        return None
    return any(_strings(rule.get("resources")) for rule, _ in rules)


def namespace_access(snapshot: RbacSnapshot, namespace: str) -> dict[str, Any]:
    """Grants of sensitive capabilities effective in ``namespace``, anonymous and dangling bindings."""
    grants: list[dict[str, Any]] = []
    anonymous: list[dict[str, Any]] = []
    dangling: list[dict[str, Any]] = []
    for binding in _bindings(snapshot, namespace):
        rules = _binding_rules(snapshot, binding)
        if rules is None and snapshot.roles_readable(binding.role_kind, binding.namespace or namespace):
            dangling.append({"binding": binding.path, "role": binding.role_path})
        grants.extend(_grants(binding, rules or []))
        for subject in binding.subjects:
            if subject in ANONYMOUS_SUBJECTS:
                anonymous.append(
                    {
                        "subject": subject,
                        "binding": binding.path,
                        "role": binding.role_path,
                        "grants_resources": _grants_resources(rules),
                    }
                )
    unique = {json.dumps(g, sort_keys=True): g for g in grants}
    grants = sorted(unique.values(), key=lambda g: (g["capability"], g["subject"], json.dumps(g, sort_keys=True)))
    by_capability = {name: sorted({g["subject"] for g in grants if g["capability"] == name}) for name in _NAMES}
    return {
        "grants": grants,
        "subjects_by_capability": by_capability,
        "anonymous_bindings": sorted(anonymous, key=lambda a: (a["binding"], a["subject"])),
        "dangling_bindings": sorted(dangling, key=lambda d: d["binding"]),
    }


_NAMES = (*CAPABILITIES, "wildcard")
