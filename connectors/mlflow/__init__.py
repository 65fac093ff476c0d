"""MLflow tracking and model registry: training-run lineage, registry approvals, evaluation and fairness."""

from .checks import APPROVAL_RECORDED, CHECKS, DOCUMENTED, EVALUATED, FAIRNESS_WITHIN_BOUNDS, LINEAGE_COMPLETE
from .connector import LOGGED_MODEL_KIND, RUN_KIND, VERSION_KIND, MlflowConnector
from .settings import MlflowSettings

__all__ = [
    "APPROVAL_RECORDED",
    "CHECKS",
    "DOCUMENTED",
    "EVALUATED",
    "FAIRNESS_WITHIN_BOUNDS",
    "LINEAGE_COMPLETE",
    "LOGGED_MODEL_KIND",
    "RUN_KIND",
    "VERSION_KIND",
    "MlflowConnector",
    "MlflowSettings",
]
