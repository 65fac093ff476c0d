"""Great Expectations validation results on disk, as ``data.validation`` evidence per (datasource, asset, suite)."""

from .checks import ASSET_VALIDATED, CHECKS, KIND, LATEST_SUCCEEDED, VALIDATION_RECENT
from .connector import DataValidationConnector
from .results import ResultError, ValidationRecord, read_results
from .settings import DataValidationSettings, ExpectedAsset

__all__ = [
    "ASSET_VALIDATED",
    "CHECKS",
    "KIND",
    "LATEST_SUCCEEDED",
    "VALIDATION_RECENT",
    "DataValidationConnector",
    "DataValidationSettings",
    "ExpectedAsset",
    "ResultError",
    "ValidationRecord",
    "read_results",
]
