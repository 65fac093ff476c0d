"""The fields the checks rely on, per report format, and the errors that name a missing or renamed one.

A vulnerability record is validated against a pydantic model of exactly the fields a check reads; fields the
checks do not read are not looked at. Scanners leave empty fields out (``omitempty``), so only what every
version writes is required; a key that is absent but has a near namesake among the unknown keys (``severity``
for ``Severity``, ``FixedVersions`` for ``FixedVersion``) is taken as renamed and is an error, not "no value".
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

__all__ = [
    "GRYPE_MATCH_FIELDS",
    "GrypeMatch",
    "Malformed",
    "ReportError",
    "SarifResult",
    "TrivyRecord",
    "json_type",
    "read_record",
    "renamed_field",
    "security_severity",
    "trivy_record_model",
]


class ReportError(ValueError):
    """The file is not a report this connector can read; the message says why."""


class Malformed(ReportError):
    """A known format with content of the wrong shape; the parser names the format."""


def json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class TrivyRecord(_Record):
    """One Trivy vulnerability, under the field names of :func:`trivy_record_model`'s key set."""

    id: Identifier
    package: str | None = None
    installed_version: str | None = None
    fixed_version: str | None = None
    severity: str
    """Required: Trivy writes ``UNKNOWN`` rather than leave it out."""
    status: str | None = None


@cache
def trivy_record_model(
    id: str, package: str, installed_version: str, fixed_version: str, severity: str, status: str | None
) -> type[TrivyRecord]:
    """:class:`TrivyRecord` reading the JSON keys given (the CLI's ``VulnerabilityID``, the operator's…)."""
    aliases = {
        "id": id,
        "package": package,
        "installed_version": installed_version,
        "fixed_version": fixed_version,
        "severity": severity,
    }
    if status is not None:
        aliases["status"] = status
    fields: Any = {}
    for name, alias in aliases.items():
        declared = TrivyRecord.model_fields[name]
        annotation = Annotated[declared.annotation, *declared.metadata] if declared.metadata else declared.annotation
        default = ... if declared.is_required() else declared.default
        fields[name] = (annotation, Field(validation_alias=alias, default=default))
    return create_model(f"TrivyRecord_{id}", __base__=TrivyRecord, **fields)


class GrypeFix(_Record):
    state: str | None = None
    versions: list[str] | None = None


class GrypeVulnerability(_Record):
    id: Identifier
    severity: str | None = None
    """Optional: real grype reports (0.96) leave it out; absent is an unknown severity."""
    fix: GrypeFix | None = None
    fixed_in_version: str | None = Field(default=None, validation_alias="fixedInVersion")


class GrypeArtifact(_Record):
    name: str | None = None
    version: str | None = None


class GrypeMatch(_Record):
    vulnerability: GrypeVulnerability
    artifact: GrypeArtifact | None = None


GRYPE_MATCH_FIELDS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): ("vulnerability", "artifact"),
    ("vulnerability",): ("id", "severity", "fix", "fixedInVersion"),
    ("vulnerability", "fix"): ("state", "versions"),
    ("artifact",): ("name", "version"),
}
"""Where in a grype match the checks read, and which keys: a near namesake of one of these is a rename."""


class SarifResult(_Record):
    rule_id: str | None = Field(default=None, validation_alias="ruleId")
    rule_index: int | None = Field(default=None, validation_alias="ruleIndex")
    level: Literal["none", "note", "warning", "error"] | None = None
    """SARIF's four levels; anything else is not SARIF."""


M = TypeVar("M", bound=BaseModel)


def read_record(model: type[M], raw: Any, where: str) -> M:
    """``raw`` as ``model``, or :class:`Malformed` naming each bad field by its JSON path under ``where``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise Malformed(_describe(exc, where)) from None


def _describe(exc: ValidationError, where: str) -> str:
    problems = []
    for error in exc.errors(include_url=False)[:3]:
        path = where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
        kind = error["type"]
        if kind == "missing":
            problems.append(f"{path} is missing")
        elif kind == "string_too_short":
            problems.append(f"{path} is blank")
        elif kind in _EXPECTED or kind == "literal_error":
            expected = _EXPECTED.get(kind) or error["msg"].removeprefix("Input should be ")
            problems.append(f"{path} is {_shown(error['input'])}, expected {expected}")
        else:
            problems.append(f"{path}: {error['msg']}")
    return "; ".join(problems)


_EXPECTED = {
    "model_type": "an object",
    "dict_type": "an object",
    "list_type": "an array",
    "string_type": "a string",
    "int_type": "an integer",
}


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, bool | int | float) or value is None:
        return f"a JSON {json_type(value)} ({value!r})" if value is not None else "null"
    return f"a JSON {json_type(value)}"


def _normalised(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def renamed_field(raw: dict[str, Any], expected: Iterable[str], known: Iterable[str] = ()) -> tuple[str, str] | None:
    """``(found, expected)`` when an expected key is absent and an unknown key is a near namesake of it."""
    expected = tuple(expected)
    unknown = [key for key in raw if key not in expected and key not in known]
    for name in expected:
        if name in raw:
            continue
        target = _normalised(name)
        for key in unknown:
            candidate = _normalised(key)
            if candidate == target or difflib.SequenceMatcher(None, candidate, target).ratio() >= 0.8:
                return key, name
    return None


def security_severity(value: Any) -> float | None:
    """A SARIF ``security-severity`` as a score in [0, 10]; anything else (``NaN``, ``-1``, ``11``) is ``None``."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        score = float(value)
    except ValueError:
        return None
    return score if math.isfinite(score) and 0.0 <= score <= 10.0 else None
