"""Continuous-compliance evidence collector for AI/ML systems."""

from collector.connector import Check, CollectContext, Connector, ConnectorSettings
from collector.model import CheckResult, ControlRef, Observation, Outcome, Subject

__version__ = "0.1.0"

__all__ = [
    "Check",
    "CheckResult",
    "CollectContext",
    "Connector",
    "ConnectorSettings",
    "ControlRef",
    "Observation",
    "Outcome",
    "Subject",
    "__version__",
]
