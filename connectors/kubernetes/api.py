"""Read-only listing of Kubernetes resources as plain JSON, paged, with errors named by the permission involved.

Responses are read with ``_preload_content=False`` and parsed here rather than into the client's pydantic
models: the models of kubernetes 37.x are strict and change names between releases (``V1Subject`` ->
``RbacV1Subject``, ``non_resource_ur_ls`` -> ``non_resource_urls``), while the wire JSON is stable and may
carry fields newer than the client.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client

from collector.sdk import (
    ConfigurationError,
    PageExpired,
    TransientError,
    call_with_retry,
    collect_pages,
    redact_text,
    redact_url,
)

__all__ = [
    "CLUSTER_ROLES",
    "CLUSTER_ROLE_BINDINGS",
    "DEPLOYMENTS",
    "INFERENCE_SERVICES",
    "JOBS",
    "NAMESPACES",
    "NETWORK_POLICIES",
    "RESOURCE_TYPES",
    "ROLES",
    "ROLE_BINDINGS",
    "STATEFUL_SETS",
    "VULNERABILITY_REPORTS",
    "KubernetesApi",
    "PermissionMissing",
    "ResourceType",
    "ResourceTypeMissing",
]

PAGE_SIZE = 250


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A listable resource: ``group`` is ``""`` for the core API."""

    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def name(self) -> str:
        """``deployments.apps``, ``namespaces``: the form ``kubectl auth can-i`` and RBAC errors use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def permission(self, namespace: str | None) -> str:
        scope = f"in namespace {namespace}" if namespace else "cluster-wide"
        return f"list {self.name} ({scope})"


NAMESPACES = ResourceType("", "v1", "namespaces", namespaced=False)
CLUSTER_ROLES = ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False)
CLUSTER_ROLE_BINDINGS = ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", namespaced=False)
ROLES = ResourceType("rbac.authorization.k8s.io", "v1", "roles", namespaced=True)
ROLE_BINDINGS = ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", namespaced=True)
DEPLOYMENTS = ResourceType("apps", "v1", "deployments", namespaced=True)
STATEFUL_SETS = ResourceType("apps", "v1", "statefulsets", namespaced=True)
JOBS = ResourceType("batch", "v1", "jobs", namespaced=True)
NETWORK_POLICIES = ResourceType("networking.k8s.io", "v1", "networkpolicies", namespaced=True)
INFERENCE_SERVICES = ResourceType("serving.kserve.io", "v1beta1", "inferenceservices", namespaced=True)
VULNERABILITY_REPORTS = ResourceType("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports", namespaced=True)

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    NAMESPACES,
    CLUSTER_ROLES,
    CLUSTER_ROLE_BINDINGS,
    ROLES,
    ROLE_BINDINGS,
    DEPLOYMENTS,
    STATEFUL_SETS,
    JOBS,
    NETWORK_POLICIES,
    INFERENCE_SERVICES,
    VULNERABILITY_REPORTS,
)
"""Everything this connector ever reads, and only with ``list``: the source of ``REQUIRED_RBAC_RULES``."""


class PermissionMissing(Exception):
    """403: the connector's identity may not list this resource type here."""

    def __init__(self, resource: ResourceType, namespace: str | None, message: str) -> None:
        self.permission = resource.permission(namespace)
        super().__init__(f"missing permission: {self.permission}: {message}")


class ResourceTypeMissing(Exception):
    """404 on a list: the API group or CRD is not installed in this cluster."""

    def __init__(self, resource: ResourceType) -> None:
        self.resource = resource
        super().__init__(f"{resource.name}/{resource.version} is not served by this cluster (CRD not installed)")


def _status_message(exc: client.ApiException) -> str:
    try:
        status = json.loads(exc.body or "")
    except ValueError:
        return str(exc.reason or exc.status)
    message = status.get("message") if isinstance(status, dict) else None
    return str(message or exc.reason or exc.status)


class KubernetesApi:
    """Lists resources through the official client; every call is a ``list`` of a :data:`RESOURCE_TYPES` entry."""

    def __init__(self, api_client: client.ApiClient, page_size: int = PAGE_SIZE) -> None:
        self.api_client = api_client
        self.host = redact_url(str(api_client.configuration.host))
        """The API server as stored and shown: without credentials."""
        self.page_size = page_size
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    def list_all(
        self, resource: ResourceType, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """All objects of one consistent listing (restarted from the first page if a token expires)."""
        if resource.namespaced != (namespace is not None):
            raise ValueError(f"{resource.name} is {'' if resource.namespaced else 'not '}namespaced")
        where = f"{self.host}: {resource.permission(namespace)}"

        def fetch(token: str | None) -> tuple[Sequence[dict[str, Any]], str | None]:
            return call_with_retry(self._page, resource, namespace, label_selector, token)

        return collect_pages(fetch, where)

    def _page(
        self, resource: ResourceType, namespace: str | None, label_selector: str | None, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        try:
            response = self._request(resource, namespace, label_selector, token)
            body = json.loads(response.data)
        except client.ApiException as exc:
            raise self._translate(exc, resource, namespace, token) from None
        except urllib3.exceptions.HTTPError as exc:
            raise TransientError(redact_text(f"cannot reach the Kubernetes API at {self.host}: {exc}")) from exc
        except ValueError as exc:
            raise TransientError(f"{self.host}: {resource.name} list is not JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("items", []), list | None):
            raise TransientError(f"{self.host}: {resource.name} list has no items array")
        items = [item for item in body.get("items") or [] if isinstance(item, dict)]
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        next_token = metadata.get("continue") if isinstance(metadata, dict) else None
        return items, next_token if isinstance(next_token, str) and next_token else None

    def _request(
        self, resource: ResourceType, namespace: str | None, label_selector: str | None, token: str | None
    ) -> Any:
        options: dict[str, Any] = {"limit": self.page_size, "_preload_content": False}
        if token:
            options["_continue"] = token
        if label_selector:
            options["label_selector"] = label_selector
        if resource is NAMESPACES:
            return self._core.list_namespace(**options)
        if namespace is None:
            return self._custom.list_cluster_custom_object(resource.group, resource.version, resource.plural, **options)
        return self._custom.list_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, **options
        )

    def _translate(
        self, exc: client.ApiException, resource: ResourceType, namespace: str | None, token: str | None
    ) -> Exception:
        message = _status_message(exc)
        if exc.status == 410 and token:
            return PageExpired(message)
        if exc.status == 403:
            return PermissionMissing(resource, namespace, message)
        if exc.status == 404:
            return ResourceTypeMissing(resource)
        if exc.status == 401:
            return ConfigurationError(f"the Kubernetes API at {self.host} rejected the credentials (401): {message}")
        return exc
