"""boto3 clients for S3 and SageMaker, built on demand from the connector's ``aws`` settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from collector.sdk import redact_text

from .settings import AwsSettings

__all__ = ["AWS_ERRORS", "ClientFactory", "aws_error", "client_factory", "split_s3_uri"]

ClientFactory = Callable[[str, str | None], Any]
"""``factory(service, region)`` -> a boto3 client."""

AWS_ERRORS = (BotoCoreError, ClientError)
_RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})


def client_factory(settings: AwsSettings) -> ClientFactory:
    """One session per connector run; botocore's standard retry mode handles throttling and 5xx."""
    session = boto3.session.Session(profile_name=settings.profile) if settings.profile else boto3.session.Session()

    def make(service: str, region: str | None) -> Any:
        return session.client(
            service,  # type: ignore[call-overload]
            region_name=region or settings.region,
            endpoint_url=settings.endpoint_url,
            config=_RETRIES,
        )

    return make


def aws_error(exc: BaseException) -> str:
    """``Code: message`` for a service error, the exception text for a client-side one; URLs without credentials."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return redact_text(f"{error.get('Code', 'ClientError')}: {error.get('Message', str(exc))}")
    return redact_text(f"{type(exc).__name__}: {exc}")


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key
