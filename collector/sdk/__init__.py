"""Everything a connector imports from the collector: the one import root for connector authors."""

from collector.awsclients import AwsClients, aws_error_code, region_names
from collector.connector import (
    Check,
    CollectContext,
    Connector,
    ConnectorSettings,
    LocalPath,
    Problem,
    RunCancelled,
    secret_from,
)
from collector.durations import Duration, format_duration, parse_duration
from collector.errors import (
    HTTP_DISPOSITION,
    ConfigurationError,
    Disposition,
    SkippableError,
    TransientError,
    extra_needed,
)
from collector.model import CheckResult, Observation, Outcome, Subject
from collector.numbers import finite_number, is_non_finite, non_finite_paths, non_finite_text
from collector.paging import PageExpired, collect_pages
from collector.retry import call_with_retry
from collector.skew import DEFAULT_CLOCK_SKEW_TOLERANCE, in_the_future
from collector.timestamps import UnreadableTimestamp, parse_timestamp, read_timestamp
from collector.urls import redact_text, redact_url
from collector.yamlfile import YamlError, parse_yaml

__all__ = [
    "DEFAULT_CLOCK_SKEW_TOLERANCE",
    "HTTP_DISPOSITION",
    "AwsClients",
    "Check",
    "CheckResult",
    "CollectContext",
    "ConfigurationError",
    "Connector",
    "ConnectorSettings",
    "Disposition",
    "Duration",
    "LocalPath",
    "Observation",
    "Outcome",
    "PageExpired",
    "Problem",
    "RunCancelled",
    "SkippableError",
    "Subject",
    "TransientError",
    "UnreadableTimestamp",
    "YamlError",
    "aws_error_code",
    "call_with_retry",
    "collect_pages",
    "extra_needed",
    "finite_number",
    "format_duration",
    "in_the_future",
    "is_non_finite",
    "non_finite_paths",
    "non_finite_text",
    "parse_duration",
    "parse_timestamp",
    "parse_yaml",
    "read_timestamp",
    "redact_text",
    "redact_url",
    "region_names",
    "secret_from",
]
