"""Model-monitor evidence: Prometheus monitors, Evidently/SageMaker/Clarify reports, SageMaker schedules."""

from .checks import (
    BIAS_WITHIN_BOUNDS,
    CHECKS,
    DATA_QUALITY,
    DRIFT_FREE,
    KINDS,
    METRIC_WITHIN_BOUNDS,
    SCHEDULE_HEALTHY,
)
from .connector import ModelMonitorConnector
from .settings import ModelMonitorSettings

__all__ = [
    "BIAS_WITHIN_BOUNDS",
    "CHECKS",
    "DATA_QUALITY",
    "DRIFT_FREE",
    "KINDS",
    "METRIC_WITHIN_BOUNDS",
    "SCHEDULE_HEALTHY",
    "ModelMonitorConnector",
    "ModelMonitorSettings",
]
