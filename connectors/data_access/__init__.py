"""The ``data_access`` connector: who read, wrote and deleted the designated training data, features and model
artifacts (CloudTrail data and management events), and an access review of the allow-lists against actual use."""

from .checks import (
    ACCESS_BY_ALLOWED_PRINCIPALS,
    ACCESS_LOGGED,
    ACCESS_REVIEW_KIND,
    CHECKS,
    DATA_ACCESS_KIND,
    NO_DELETES,
    NO_UNLISTED_HUMAN_READS,
    NO_UNUSED_ACCESS,
)
from .connector import DataAccessConnector
from .settings import DataAccessSettings, Dataset, S3Location, TrailSettings
from .summary import Summariser

__all__ = [
    "ACCESS_BY_ALLOWED_PRINCIPALS",
    "ACCESS_LOGGED",
    "ACCESS_REVIEW_KIND",
    "CHECKS",
    "DATA_ACCESS_KIND",
    "NO_DELETES",
    "NO_UNLISTED_HUMAN_READS",
    "NO_UNUSED_ACCESS",
    "DataAccessConnector",
    "DataAccessSettings",
    "Dataset",
    "S3Location",
    "Summariser",
    "TrailSettings",
]
