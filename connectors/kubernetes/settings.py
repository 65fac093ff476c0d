"""Settings of the ``kubernetes`` connector."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from collector.sdk import ConnectorSettings, Duration, LocalPath
from collector.sdk.vulnerability_scan import ScanThresholds, Threshold

__all__ = ["DEFAULT_TRUSTED_SUBJECTS", "KubernetesSettings", "TrivyOperatorSettings"]

DEFAULT_TRUSTED_SUBJECTS = (
    "Group:system:masters",
    "Group:system:nodes",
    "User:system:kube-controller-manager",
    "User:system:kube-scheduler",
    "User:system:node:*",
    "ServiceAccount:kube-system/*",
)
"""The control plane's own identities: reported in the evidence, never failed by a check."""


class TrivyOperatorSettings(ConnectorSettings):
    enabled: bool | Literal["auto"] = "auto"
    """``auto``: read VulnerabilityReports when the CRD is installed; ``true``: a missing CRD is a problem."""
    fail_on_severity: Threshold = "HIGH"
    """As ``container_scan``: the lowest severity at which a fixable vulnerability fails."""
    max_age: Duration = timedelta(days=7)
    """As ``container_scan``: a report older than this fails ``container.scan_recent``."""

    @field_validator("fail_on_severity", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    def scan_settings(self) -> ScanThresholds:
        """The thresholds in the form the shared ``container.scan`` checks read."""
        return ScanThresholds(fail_on_severity=self.fail_on_severity, max_age=self.max_age)


class KubernetesSettings(ConnectorSettings):
    kubeconfig: LocalPath | None = None
    """A kubeconfig file; default: the in-cluster service account, then ``$KUBECONFIG`` / ``~/.kube/config``."""
    context: str | None = None
    """A context of the kubeconfig (default: its current context)."""
    host: str | None = None
    """An API server URL used as is, without credentials (tests, ``kubectl proxy``)."""
    cluster_name: str | None = Field(default=None, min_length=1)
    """Names the cluster in subject ids; default: the kubeconfig context, ``in-cluster`` or the host."""
    namespaces: list[str] | None = Field(default=None, min_length=1)
    """Namespaces by name ..."""
    namespace_selector: str | None = Field(default=None, min_length=1)
    """... or by label selector, e.g. ``ai.evidence/scope=model-serving``."""
    secrets_allowlist: list[str] = Field(default_factory=list)
    """Subjects allowed to read secrets: ``ServiceAccount:ns/name``, ``User:name``, ``Group:name``; ``*`` globs."""
    trusted_subjects: list[str] = Field(default_factory=lambda: list(DEFAULT_TRUSTED_SUBJECTS))
    """Subjects no RBAC check fails on (the control plane by default); still listed in the evidence."""
    required_limits: list[str] = Field(default_factory=lambda: ["cpu", "memory"], min_length=1)
    """Resource limits every container must set for ``k8s.resource_limits_set``."""
    workloads: bool = True
    """Collect Deployments, StatefulSets, Jobs and InferenceServices."""
    trivy_operator: TrivyOperatorSettings = Field(default_factory=TrivyOperatorSettings)
    page_size: int = Field(default=250, ge=1, le=5000)
    """Objects per list request (``limit``)."""

    @field_validator("namespaces")
    @classmethod
    def _no_blank_namespaces(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not name.strip() for name in value):
            raise ValueError("namespaces must not contain an empty name")
        return value

    @field_validator("secrets_allowlist", "trusted_subjects")
    @classmethod
    def _subject_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            kind, sep, name = pattern.partition(":")
            if not sep or kind not in ("User", "Group", "ServiceAccount") or not name:
                raise ValueError(
                    f"{pattern!r} is not a subject; write User:name, Group:name or ServiceAccount:namespace/name"
                )
        return value

    @model_validator(mode="after")
    def _one_namespace_choice(self) -> KubernetesSettings:
        if (self.namespaces is None) == (self.namespace_selector is None):
            raise ValueError("set exactly one of namespaces (a list of names) or namespace_selector (a label selector)")
        if self.host is not None and (self.kubeconfig is not None or self.context is not None):
            raise ValueError("host is used without credentials; do not combine it with kubeconfig or context")
        return self
