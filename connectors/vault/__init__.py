"""HashiCorp Vault / OpenBao configuration evidence: audit devices, auth methods, engines, policies, root tokens."""

from .checks import CHECKS
from .connector import VaultConnector
from .policies import PathRule, PolicyError, broad_grants, parse_policy
from .settings import AppRoleLogin, VaultSettings

__all__ = [
    "CHECKS",
    "AppRoleLogin",
    "PathRule",
    "PolicyError",
    "VaultConnector",
    "VaultSettings",
    "broad_grants",
    "parse_policy",
]
