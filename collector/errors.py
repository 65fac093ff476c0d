"""Errors classified by what the daemon should do with them."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec

__all__ = [
    "AWS_ERROR_DISPOSITION",
    "EXTRA_OF_LIBRARY",
    "HTTP_DISPOSITION",
    "CollectorError",
    "ConfigurationError",
    "Disposition",
    "MappingError",
    "MissingExtraError",
    "SkippableError",
    "TransientError",
    "classify",
    "extra_needed",
]


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""


class ConfigurationError(CollectorError):
    """The configuration is wrong: don't retry, tell the operator what to fix."""


class MappingError(ConfigurationError):
    """A mappings file is malformed or refers to something unknown."""


class MissingExtraError(ConfigurationError, LookupError):
    """An optional library is not installed; the message names the extra that installs it."""

    def __init__(self, needed_by: str, library: str, extra: str) -> None:
        super().__init__(
            f"{needed_by} needs {library}, which is not installed: pip install 'evidence-collector[{extra}]'"
        )
        self.library = library
        self.extra = extra


EXTRA_OF_LIBRARY: dict[str, str] = {
    "boto3": "aws",
    "botocore": "aws",
    "orjson": "aws",
    "mlflow": "mlflow",
    "kubernetes": "kubernetes",
    "psycopg": "postgres",
}
"""Top-level module of each optional library -> the extra of this package that installs it."""


@contextmanager
def extra_needed(needed_by: str) -> Iterator[None]:
    """Turn a missing optional library into a :class:`MissingExtraError` naming the extra to install.

    Only a library that is absent altogether counts: an installed one missing a submodule is re-raised as it is."""
    try:
        yield
    except ModuleNotFoundError as exc:
        library = (exc.name or "").partition(".")[0]
        extra = EXTRA_OF_LIBRARY.get(library)
        if extra is None or find_spec(library) is not None:
            raise
        raise MissingExtraError(needed_by, library, extra) from None


class TransientError(CollectorError):
    """Worth retrying with backoff (timeouts, throttling, 5xx, a database that is down)."""


class SkippableError(CollectorError):
    """One input is bad: record it with its source and move on to the next."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class Disposition(enum.StrEnum):
    CONFIGURATION = "configuration"
    TRANSIENT = "transient"
    SKIPPABLE = "skippable"
    FATAL = "fatal"


HTTP_DISPOSITION: dict[int, Disposition] = {
    400: Disposition.CONFIGURATION,
    401: Disposition.CONFIGURATION,
    403: Disposition.CONFIGURATION,
    404: Disposition.SKIPPABLE,
    408: Disposition.TRANSIENT,
    409: Disposition.TRANSIENT,
    410: Disposition.SKIPPABLE,
    422: Disposition.SKIPPABLE,
    425: Disposition.TRANSIENT,
    429: Disposition.TRANSIENT,
    500: Disposition.TRANSIENT,
    502: Disposition.TRANSIENT,
    503: Disposition.TRANSIENT,
    504: Disposition.TRANSIENT,
}

AWS_ERROR_DISPOSITION: dict[str, Disposition] = {
    "Throttling": Disposition.TRANSIENT,
    "ThrottlingException": Disposition.TRANSIENT,
    "TooManyRequestsException": Disposition.TRANSIENT,
    "RequestLimitExceeded": Disposition.TRANSIENT,
    "LimitExceeded": Disposition.TRANSIENT,
    "ServiceUnavailable": Disposition.TRANSIENT,
    "InternalFailure": Disposition.TRANSIENT,
    "ServiceFailure": Disposition.TRANSIENT,
    "ReportInProgress": Disposition.TRANSIENT,
    "ExpiredToken": Disposition.TRANSIENT,
    "ExpiredTokenException": Disposition.TRANSIENT,
    "AccessDenied": Disposition.CONFIGURATION,
    "AccessDeniedException": Disposition.CONFIGURATION,
    "UnauthorizedOperation": Disposition.CONFIGURATION,
    "InvalidClientTokenId": Disposition.CONFIGURATION,
    "SignatureDoesNotMatch": Disposition.CONFIGURATION,
}
"""botocore ``ClientError`` codes; other codes fall back to the response's HTTP status."""


def _aws_disposition(exc: BaseException) -> Disposition | None:
    """botocore errors by code (client errors) or by class (credentials, region, connection)."""
    try:
        from botocore import exceptions as aws
    except ModuleNotFoundError:  # without botocore installed no exception can be one of its
        return None

    if isinstance(exc, aws.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in AWS_ERROR_DISPOSITION:
            return AWS_ERROR_DISPOSITION[code]
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return HTTP_DISPOSITION.get(status, Disposition.FATAL) if isinstance(status, int) else Disposition.FATAL
    if isinstance(exc, aws.NoCredentialsError | aws.PartialCredentialsError | aws.NoRegionError):
        return Disposition.CONFIGURATION
    if isinstance(exc, aws.ConnectionError | aws.HTTPClientError):
        return Disposition.TRANSIENT
    return None


def classify(exc: BaseException) -> Disposition:
    """The one table that decides retry / skip / stop for an exception."""
    if isinstance(exc, ConfigurationError):
        return Disposition.CONFIGURATION
    if isinstance(exc, TransientError):
        return Disposition.TRANSIENT
    if isinstance(exc, SkippableError):
        return Disposition.SKIPPABLE
    if isinstance(exc, TimeoutError | ConnectionError):
        return Disposition.TRANSIENT
    aws = _aws_disposition(exc)
    if aws is not None:
        return aws
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int):
        return HTTP_DISPOSITION.get(status, Disposition.FATAL)
    try:
        from sqlalchemy.exc import OperationalError
    except ImportError:  # pragma: no cover - sqlalchemy is a hard dependency
        return Disposition.FATAL
    if isinstance(exc, OperationalError):
        return Disposition.TRANSIENT
    return Disposition.FATAL
