"""The evidence vocabulary shared by connectors and the core."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector.urls import redact_url, url_credentials

__all__ = [
    "CheckResult",
    "ControlRef",
    "Observation",
    "Outcome",
    "Subject",
    "ensure_aware",
]

_KIND = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def ensure_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value


@dataclass(frozen=True, slots=True)
class Subject:
    """What the evidence is about: a type and a stable id (an image digest, an ARN, a model version)."""

    type: str
    id: str

    def __post_init__(self) -> None:
        if not self.type or not self.id:
            raise ValueError(f"subject needs a type and an id, got {self.type!r}/{self.id!r}")
        if _CONTROL_CHARS.search(self.type) or _CONTROL_CHARS.search(self.id):
            raise ValueError(f"subject {self.type!r}/{self.id!r} contains control characters")

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


@dataclass(frozen=True, slots=True)
class Observation:
    """A raw fact as a source stated it. Connectors yield these; the core does the rest."""

    kind: str
    subject: Subject
    observed_at: datetime
    payload: Mapping[str, Any]
    source: str = ""
    """Where it came from (a file path, an endpoint): recorded as provenance, so never with credentials in it."""
    controls: tuple[str, ...] = ()
    """Controls a person declared this evidence supports (attestations only; the mapping must allow it)."""
    valid_until: datetime | None = None
    """An explicit expiry (an attestation's validity); otherwise freshness comes from the kind's TTL."""

    def __post_init__(self) -> None:
        if not _KIND.match(self.kind):
            raise ValueError(f"evidence kind {self.kind!r} must be dotted lower-case, like 'container.scan'")
        ensure_aware(self.observed_at, f"observed_at of {self.kind} {self.subject}")
        if _CONTROL_CHARS.search(self.source):
            raise ValueError(f"source {self.source!r} of {self.kind} {self.subject} contains control characters")
        if credentials := url_credentials(self.source):
            raise ValueError(
                f"source {redact_url(self.source)!r} of {self.kind} {self.subject} carries credentials"
                f" ({', '.join(credentials)}): a connector passes URLs through collector.urls.redact_url"
            )
        if self.valid_until is not None:
            ensure_aware(self.valid_until, f"valid_until of {self.kind} {self.subject}")
        if not isinstance(self.payload, Mapping):
            raise ValueError(f"payload of {self.kind} {self.subject} must be a JSON object")


class Outcome(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class CheckResult:
    check_id: str
    result: Outcome
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.check_id, "result": self.result.value, "message": self.message}
        if self.details:
            out["details"] = dict(self.details)
        return out


@dataclass(frozen=True, slots=True, order=True)
class ControlRef:
    """A control within a framework, written ``framework:control`` (e.g. ``soc2:CC7.1``)."""

    framework: str
    control: str

    @classmethod
    def parse(cls, text: str) -> ControlRef:
        framework, sep, control = text.partition(":")
        if not sep or not framework or not control:
            raise ValueError(f"{text!r} is not a control reference; write framework:control, e.g. soc2:CC7.1")
        return cls(framework.strip(), control.strip())

    def __str__(self) -> str:
        return f"{self.framework}:{self.control}"
