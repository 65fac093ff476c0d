"""Kubernetes RBAC, workload security settings and Trivy Operator reports as evidence."""

from .checks import CHECKS
from .connector import KubernetesConnector
from .rbac import REQUIRED_RBAC_RULES
from .settings import KubernetesSettings

__all__ = ["CHECKS", "REQUIRED_RBAC_RULES", "KubernetesConnector", "KubernetesSettings"]
