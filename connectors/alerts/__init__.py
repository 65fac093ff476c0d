"""Alert log evidence: Prometheus ``ALERTS`` history and Alertmanager silences, per monitored model."""

from .checks import ACKNOWLEDGED_IN_TIME, CHECKS, KIND_ALERT_LOG, KINDS
from .connector import AlertsConnector
from .settings import AlertsSettings

__all__ = ["ACKNOWLEDGED_IN_TIME", "CHECKS", "KINDS", "KIND_ALERT_LOG", "AlertsConnector", "AlertsSettings"]
