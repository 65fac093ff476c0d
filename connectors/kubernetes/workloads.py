"""How a workload's pods run, read from its pod template: users, images, limits and the policies selecting it.

Deployments, StatefulSets and Jobs carry ``spec.template``; a KServe InferenceService carries pod fields
inline in each component (predictor, transformer, explainer), with the model server as ``model`` (or a
framework key such as ``sklearn``) whose image usually comes from a ServingRuntime.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .api import DEPLOYMENTS, INFERENCE_SERVICES, JOBS, STATEFUL_SETS, ResourceType
from .selectors import selector_matches

__all__ = ["WORKLOAD_TYPES", "WorkloadType", "network_policies_selecting", "workload_payload"]


@dataclass(frozen=True, slots=True)
class WorkloadType:
    kind: str
    resource: ResourceType


WORKLOAD_TYPES = (
    WorkloadType("Deployment", DEPLOYMENTS),
    WorkloadType("StatefulSet", STATEFUL_SETS),
    WorkloadType("Job", JOBS),
    WorkloadType("InferenceService", INFERENCE_SERVICES),
)

_KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
_KSERVE_MODEL_KEYS = (
    "model",
    "sklearn",
    "xgboost",
    "lightgbm",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "pmml",
    "paddle",
    "huggingface",
)
_KSERVE_ISVC_LABEL = "serving.kserve.io/inferenceservice"


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _obj(value).items()}


@dataclass(frozen=True, slots=True)
class _PodSpec:
    """One pod template: its labels, pod-level security context and (role, container) pairs."""

    component: str | None
    labels: dict[str, str]
    security_context: dict[str, Any]
    containers: list[tuple[str, dict[str, Any]]]


def _pod_specs(kind: str, obj: Mapping[str, Any]) -> Iterator[_PodSpec]:
    spec = _obj(obj.get("spec"))
    if kind != "InferenceService":
        template = _obj(spec.get("template"))
        pod = _obj(template.get("spec"))
        containers = [("init", c) for c in _list(pod.get("initContainers"))]
        containers += [("container", c) for c in _list(pod.get("containers"))]
        yield _PodSpec(
            None, _labels(_obj(template.get("metadata")).get("labels")), _obj(pod.get("securityContext")), containers
        )
        return
    name = str(_obj(obj.get("metadata")).get("name") or "")
    base_labels = {**_labels(_obj(obj.get("metadata")).get("labels")), _KSERVE_ISVC_LABEL: name}
    for component in _KSERVE_COMPONENTS:
        part = _obj(spec.get(component))
        if not part:
            continue
        containers = [("container", c) for c in _list(part.get("containers"))]
        containers += [
            ("container", {"name": "kserve-container", **_obj(part.get(k))}) for k in _KSERVE_MODEL_KEYS if k in part
        ]
        labels = {**base_labels, "component": component}
        yield _PodSpec(component, labels, _obj(part.get("securityContext")), containers)


def image_digest(image: str | None) -> str | None:
    """``repo@sha256:…`` -> ``sha256:…``; a tag alone is no digest."""
    if not image:
        return None
    _, at, digest = image.partition("@")
    return digest if at and ":" in digest else None


def _runs_as_non_root(pod_context: Mapping[str, Any], container_context: Mapping[str, Any]) -> bool | None:
    """True/False when the spec decides it, ``None`` when it is left to the image (which may run as root)."""
    user = container_context.get("runAsUser", pod_context.get("runAsUser"))
    if isinstance(user, int) and not isinstance(user, bool):
        return user != 0
    non_root = container_context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
    return non_root if isinstance(non_root, bool) else None


def _container(pod: _PodSpec, role: str, container: Mapping[str, Any]) -> dict[str, Any]:
    context = _obj(container.get("securityContext"))
    resources = _obj(container.get("resources"))
    image = container.get("image") if isinstance(container.get("image"), str) else None
    return {
        "component": pod.component,
        "name": str(container.get("name") or ""),
        "role": role,
        "image": image,
        "image_digest": image_digest(image),
        "run_as_non_root": _runs_as_non_root(pod.security_context, context),
        "run_as_user": context.get("runAsUser", pod.security_context.get("runAsUser")),
        "privileged": context.get("privileged") is True,
        "limits": {str(k): str(v) for k, v in _obj(resources.get("limits")).items()},
        "requests": {str(k): str(v) for k, v in _obj(resources.get("requests")).items()},
    }


def network_policies_selecting(policies: list[dict[str, Any]], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """The namespace's NetworkPolicies whose ``podSelector`` selects pods with these labels."""
    selecting = []
    for policy in policies:
        spec = _obj(policy.get("spec"))
        if not selector_matches(_obj(spec.get("podSelector")), labels):
            continue
        types = [t for t in spec.get("policyTypes") or [] if isinstance(t, str)]
        if not types:  # the API server's default: Ingress, plus Egress when egress rules are given
            types = ["Ingress", *(["Egress"] if "egress" in spec else [])]
        selecting.append({"name": str(_obj(policy.get("metadata")).get("name") or ""), "policy_types": sorted(types)})
    return sorted(selecting, key=lambda p: p["name"])


def workload_payload(
    cluster: str, kind: str, obj: Mapping[str, Any], policies: list[dict[str, Any]] | None, policies_error: str | None
) -> dict[str, Any]:
    """The stored evidence for one workload; ``policies`` is ``None`` when they could not be read."""
    metadata = _obj(obj.get("metadata"))
    pods = list(_pod_specs(kind, obj))
    owners = [f"{o.get('kind')}/{o.get('name')}" for o in _list(metadata.get("ownerReferences"))]
    components = []
    for pod in pods:
        selecting = None if policies is None else network_policies_selecting(policies, pod.labels)
        components.append({"component": pod.component, "pod_labels": pod.labels, "network_policies": selecting})
    return {
        "cluster": cluster,
        "namespace": str(metadata.get("namespace") or ""),
        "kind": kind,
        "name": str(metadata.get("name") or ""),
        "uid": metadata.get("uid"),
        "owners": sorted(owners),
        "containers": [_container(pod, role, c) for pod in pods for role, c in pod.containers],
        "pods": components,
        "network_policies_error": policies_error,
    }
