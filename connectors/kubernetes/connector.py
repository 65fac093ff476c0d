"""The ``kubernetes`` connector: RBAC reach, workload security settings and Trivy Operator reports of the
selected namespaces, read with ``list`` calls only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.config import ConfigException, list_kube_config_contexts, load_incluster_config, load_kube_config

from collector.sdk import CollectContext, ConfigurationError, Connector, Observation, Subject, redact_url
from collector.sdk.vulnerability_scan import KIND as SCAN_KIND

from .api import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    NAMESPACES,
    NETWORK_POLICIES,
    ROLE_BINDINGS,
    ROLES,
    VULNERABILITY_REPORTS,
    KubernetesApi,
    PermissionMissing,
    ResourceType,
    ResourceTypeMissing,
)
from .checks import ACCESS_KIND, CHECKS, WORKLOAD_KIND
from .rbac import RbacSnapshot, namespace_access
from .settings import KubernetesSettings
from .trivy_operator import VulnerabilityReport, image_scans, read_report
from .workloads import WORKLOAD_TYPES, workload_payload

__all__ = ["KubernetesConnector", "connect"]

Objects = list[dict[str, Any]]


def _current_context(kubeconfig: str | None) -> str:
    _, current = list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return str(current.get("name") or "default") if isinstance(current, dict) else "default"


def _load_kubeconfig(settings: KubernetesSettings, configuration: client.Configuration) -> str:
    load_kube_config(  # type: ignore[no-untyped-call]
        config_file=settings.kubeconfig,
        context=settings.context,
        client_configuration=configuration,
        persist_config=False,
    )
    return settings.context or _current_context(settings.kubeconfig)


def connect(settings: KubernetesSettings) -> tuple[client.ApiClient, str]:
    """An API client and the cluster's name: ``host`` as is, else kubeconfig/context, else in-cluster, else
    the default kubeconfig."""
    configuration = client.Configuration()
    try:
        if settings.host is not None:
            configuration.host = settings.host.rstrip("/")
            name = redact_url(settings.host)
        elif settings.kubeconfig is not None or settings.context is not None:
            name = _load_kubeconfig(settings, configuration)
        else:
            try:
                load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                name = "in-cluster"
            except ConfigException:
                name = _load_kubeconfig(settings, configuration)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        where = settings.kubeconfig or "the in-cluster service account or the default kubeconfig"
        raise ConfigurationError(f"cannot configure the Kubernetes client from {where}: {exc}") from exc
    return client.ApiClient(configuration), settings.cluster_name or name


@dataclass
class _Reader:
    """Lists through the API; a 403 is recorded as a problem naming the permission, a 404 (CRD not installed)
    as an absent resource type. Either way the listing is ``None``."""

    api: KubernetesApi
    ctx: CollectContext
    missing: list[str] = field(default_factory=list)
    absent: set[ResourceType] = field(default_factory=set)

    def read(self, resource: ResourceType, namespace: str | None = None) -> Objects | None:
        try:
            return self.api.list_all(resource, namespace)
        except PermissionMissing as exc:
            self.missing.append(exc.permission)
            self.ctx.problem(self.api.host, str(exc))
        except ResourceTypeMissing:
            self.absent.add(resource)
        return None


class KubernetesConnector(Connector[KubernetesSettings]):
    """RBAC, workloads and Trivy Operator VulnerabilityReports of the selected namespaces."""

    type = "kubernetes"
    version = "0.1.0"
    Settings = KubernetesSettings
    kinds = frozenset({ACCESS_KIND, WORKLOAD_KIND, SCAN_KIND})
    checks = CHECKS

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        api_client, cluster = connect(self.settings)
        with api_client:
            api = KubernetesApi(api_client, page_size=self.settings.page_size)
            namespaces = self._namespaces(api, ctx)
            yield from self._access(_Reader(api, ctx), cluster, namespaces, ctx)
            if self.settings.workloads:
                yield from self._workloads(_Reader(api, ctx), cluster, namespaces, ctx)
            if self.settings.trivy_operator.enabled is not False:
                yield from self._scans(_Reader(api, ctx), namespaces, ctx)

    def _namespaces(self, api: KubernetesApi, ctx: CollectContext) -> list[str]:
        if self.settings.namespaces is not None:
            return sorted(set(self.settings.namespaces))
        selector = self.settings.namespace_selector
        try:
            found = api.list_all(NAMESPACES, label_selector=selector)
        except PermissionMissing as exc:
            raise ConfigurationError(f"{api.host}: cannot select namespaces by label: {exc}") from exc
        names = sorted({str((ns.get("metadata") or {}).get("name")) for ns in found})
        if not names:
            ctx.problem(f"namespace_selector {selector}", "no namespace matches the selector")
        return names

    def _access(
        self, reader: _Reader, cluster: str, namespaces: list[str], ctx: CollectContext
    ) -> Iterator[Observation]:
        snapshot = RbacSnapshot(reader.read(CLUSTER_ROLES), reader.read(CLUSTER_ROLE_BINDINGS))
        cluster_missing = list(reader.missing)
        for namespace in namespaces:
            ctx.raise_if_cancelled()
            reader.missing = []
            snapshot.roles[namespace] = reader.read(ROLES, namespace)
            snapshot.role_bindings[namespace] = reader.read(ROLE_BINDINGS, namespace)
            missing = [*cluster_missing, *reader.missing]
            payload = {
                "cluster": cluster,
                "namespace": namespace,
                "collection": {"complete": not missing, "missing_permissions": missing},
                **namespace_access(snapshot, namespace),
            }
            subject = Subject("k8s_namespace", f"{cluster}/{namespace}")
            yield Observation(ACCESS_KIND, subject, ctx.now, payload, source=reader.api.host)

    def _workloads(
        self, reader: _Reader, cluster: str, namespaces: list[str], ctx: CollectContext
    ) -> Iterator[Observation]:
        for namespace in namespaces:
            ctx.raise_if_cancelled()
            reader.missing = []
            policies = reader.read(NETWORK_POLICIES, namespace)
            policies_error = "; ".join(f"missing permission: {p}" for p in reader.missing) or None
            for workload_type in WORKLOAD_TYPES:
                if workload_type.resource in reader.absent:
                    continue
                objects = reader.read(workload_type.resource, namespace)
                if workload_type.resource in reader.absent:
                    _not_applicable(ctx, workload_type.resource)
                for obj in objects or []:
                    payload = workload_payload(cluster, workload_type.kind, obj, policies, policies_error)
                    subject = Subject("k8s_workload", f"{cluster}/{namespace}/{workload_type.kind}/{payload['name']}")
                    yield Observation(WORKLOAD_KIND, subject, ctx.now, payload, source=reader.api.host)

    def _scans(self, reader: _Reader, namespaces: list[str], ctx: CollectContext) -> Iterator[Observation]:
        reports: list[VulnerabilityReport] = []
        for namespace in namespaces:
            ctx.raise_if_cancelled()
            objects = reader.read(VULNERABILITY_REPORTS, namespace)
            if VULNERABILITY_REPORTS in reader.absent:
                self._trivy_absent(reader, ctx)
                return
            reports.extend(_readable(objects or [], namespace, ctx))
        for scan in image_scans(reports):
            observed_at = scan.scanned_at or ctx.now
            yield Observation(SCAN_KIND, scan.subject, observed_at, scan.payload, source=scan.source)

    def _trivy_absent(self, reader: _Reader, ctx: CollectContext) -> None:
        if self.settings.trivy_operator.enabled is True:
            reason = f"{_served(VULNERABILITY_REPORTS)} is not served (Trivy Operator CRD)"
            ctx.problem(reader.api.host, f"{reason} but trivy_operator.enabled is true")
        else:
            _not_applicable(ctx, VULNERABILITY_REPORTS)


def _served(resource: ResourceType) -> str:
    return f"{resource.name}/{resource.version}"


def _not_applicable(ctx: CollectContext, resource: ResourceType) -> None:
    if ctx.log is not None:
        ctx.log.info(
            "not_applicable", resource=_served(resource), reason="not served by this cluster (CRD not installed)"
        )


def _readable(objects: Objects, namespace: str, ctx: CollectContext) -> Iterator[VulnerabilityReport]:
    for obj in objects:
        where = f"vulnerabilityreports/{namespace}/{(obj.get('metadata') or {}).get('name')}"
        try:
            report = read_report(obj, where)
        except (ValueError, TypeError, AttributeError) as exc:
            ctx.problem(where, f"unreadable VulnerabilityReport: {exc}")
            continue
        if report.scan.time_error:
            ctx.problem(where, f"{report.scan.time_error}: the image's scan recency is an error")
        yield report
