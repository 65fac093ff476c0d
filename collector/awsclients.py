"""AWS clients for connectors: one botocore session per run, the shared service models, bounded retries.

botocore is imported only when a client is asked for, so the core installs and imports without the ``aws``
extra; a missing library names the extra to install."""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

from collector.errors import extra_needed

__all__ = ["AwsClients", "aws_error_code", "region_names"]

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def region_names(value: list[str]) -> list[str]:
    """``value`` without repeats, in order; ``ValueError`` naming any entry that is not a region name (a settings
    validator for region lists)."""
    bad = [region for region in value if not _REGION.match(region)]
    if bad:
        raise ValueError(f"not region names: {bad} (like eu-west-1)")
    return list(dict.fromkeys(value))


@cache
def _shared_loader() -> Any:
    """Service models and endpoint rules, parsed once per process rather than once per run."""
    from botocore.loaders import create_loader

    return create_loader()


class AwsClients:
    """Clients from one botocore session (the default credential chain, read anew for each ``AwsClients``).

    ``endpoint_url`` is for tests against moto; ``session`` lets a test register event hooks or stubs."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        retry_mode: Literal["adaptive", "standard"] = "adaptive",
        max_attempts: int = 10,
        session: Any = None,
        needed_by: str = "an AWS connector",
    ) -> None:
        with extra_needed(needed_by):
            from botocore.config import Config
            from botocore.session import get_session
        if session is None:
            session = get_session()
            session.register_component("data_loader", _shared_loader())
        self.session = session
        self.endpoint_url = endpoint_url
        self.config = Config(
            retries={"mode": retry_mode, "max_attempts": max_attempts}, user_agent_extra="evidence-collector"
        )

    def region(self) -> str | None:
        """The session's own region (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile), if any."""
        region = self.session.get_config_variable("region")
        return str(region) if region else None

    def client(self, service: str, region: str) -> Any:
        return self.session.create_client(
            service, region_name=region, endpoint_url=self.endpoint_url, config=self.config
        )


def aws_error_code(exc: BaseException) -> str:
    """The ``Error.Code`` of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))
