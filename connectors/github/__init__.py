"""GitHub evidence for the model-deployment pipeline: branch protection, environments, approved deployments,
security-scan runs."""

from .checks import CHECKS
from .connector import GitHubConnector
from .settings import GitHubSettings

__all__ = ["CHECKS", "GitHubConnector", "GitHubSettings"]
