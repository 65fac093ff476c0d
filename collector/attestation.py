"""Attested evidence: what a person declares about a document, validated into an ``attestation.document`` observation.

Shared by the ``attest`` command and the ``attestations`` connector (sidecar YAML files), so both accept the same
fields, reject the same mistakes and produce the same evidence. Templates (``mappings/attestation-templates``) name
the controls a typical document of a type supports; they suggest, the attesting person declares."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from collector.durations import Duration
from collector.errors import MappingError
from collector.mappings import ControlLink, Mappings, default_mappings_dir, format_validation_error
from collector.model import ControlRef, Observation, Subject
from collector.urls import redact_url
from collector.yamlfile import YamlError, parse_yaml, read_yaml, yaml_line_of

__all__ = [
    "ATTESTATION_KIND",
    "SIDECAR_SUFFIX",
    "SUBJECT_TYPE",
    "Attestation",
    "AttestationError",
    "AttestationFields",
    "AttestationTemplate",
    "DocumentDigest",
    "attestation_observation",
    "default_templates_dir",
    "digest_file",
    "digest_stream",
    "load_templates",
    "parse_instant",
    "parse_sidecar",
    "resolve_attestation",
    "sidecar_error",
    "slug",
]

ATTESTATION_KIND = "attestation.document"
SUBJECT_TYPE = "attested_document"
SIDECAR_SUFFIX = ".attestation.yaml"
_CHUNK_BYTES = 1024 * 1024
_SLUG = re.compile(r"[^a-z0-9]+")
_NOT_AN_INSTANT = "{value!r} is not a date or time; write 2026-01-31 or 2026-01-31T09:00:00+01:00"


def slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-") or "untitled"


def parse_instant(value: object) -> datetime:
    """A date (midnight UTC), or a date and time; without an offset the time is taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(_NOT_AN_INSTANT.format(value=value)) from None
    else:
        raise ValueError(_NOT_AN_INSTANT.format(value=value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


Instant = Annotated[datetime, BeforeValidator(parse_instant)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttestationFields(_Strict):
    """What a person states: the fields of ``attest`` and of a sidecar YAML file."""

    title: str = Field(min_length=1)
    by: str = Field(min_length=1)
    """Who attests (a name, and a role if useful)."""
    controls: list[str] = Field(default_factory=list)
    template: str | None = None
    """An attestation template: its controls are added to ``controls``, its ``valid_for`` is the default."""
    valid_for: Duration | None = None
    valid_until: Instant | None = None
    observed_at: Instant | None = None
    """When the document was approved or the statement made; defaults to now."""
    url: str | None = None
    subject: str | None = None
    """A stable id for the thing attested (defaults to the title, or the document's path for sidecars)."""

    @field_validator("title", "by")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://\S+$", value):
            raise ValueError(f"{redact_url(value)!r} is not an http(s) URL")
        return redact_url(value) if value is not None else None


class AttestationError(ValueError):
    """An attestation that cannot be stored; ``loc`` names the field (for a line number in a sidecar)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass(frozen=True, slots=True)
class DocumentDigest:
    name: str
    sha256: str
    size_bytes: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size_bytes": self.size_bytes}


def digest_stream(name: str, stream: BinaryIO) -> DocumentDigest:
    sha = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK_BYTES):
        sha.update(chunk)
        size += len(chunk)
    return DocumentDigest(name, sha.hexdigest(), size)


def digest_file(path: Path) -> DocumentDigest:
    """SHA-256 and size of a document; :class:`AttestationError` if it is missing or unreadable."""
    if not path.is_file():
        raise AttestationError(("file",), f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with path.open("rb") as fh:
            return digest_stream(path.name, fh)
    except OSError as exc:
        raise AttestationError(("file",), f"{path}: unreadable: {exc.strerror or exc}") from None


class AttestationTemplate(_Strict):
    """A type of document and the controls such a document honestly supports."""

    template: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1)
    describes: str = Field(min_length=10)
    """What the document is and what makes it acceptable (approved, dated, signed ...)."""
    valid_for: Duration
    controls: list[ControlLink] = Field(min_length=1)

    @property
    def refs(self) -> tuple[ControlRef, ...]:
        return tuple(link.ref for link in self.controls)


@dataclass(frozen=True, slots=True)
class Attestation:
    """A validated attestation, ready to become an observation."""

    title: str
    attested_by: str
    controls: tuple[str, ...]
    observed_at: datetime
    valid_until: datetime
    subject_id: str
    document: DocumentDigest | None
    url: str | None
    template: str | None
    source: str


def _resolve_controls(
    fields: AttestationFields,
    resolve: Callable[[str], list[ControlRef]],
    templates: Mapping[str, AttestationTemplate],
) -> tuple[tuple[str, ...], AttestationTemplate | None]:
    refs: set[ControlRef] = set()
    template = None
    if fields.template is not None:
        template = templates.get(fields.template)
        if template is None:
            known = ", ".join(sorted(templates)) or "none installed"
            raise AttestationError(("template",), f"unknown attestation template {fields.template!r} (known: {known})")
        refs.update(template.refs)
    for i, text in enumerate(fields.controls):
        try:
            refs.update(resolve(text))
        except (LookupError, ValueError) as exc:
            raise AttestationError(("controls", i), exc.args[0] if exc.args else str(exc)) from None
    if not refs:
        raise AttestationError(("controls",), "name at least one control (framework:id) or a template")
    return tuple(sorted(str(r) for r in refs)), template


def _validity(
    fields: AttestationFields,
    observed_at: datetime,
    template: AttestationTemplate | None,
    now: datetime,
    allow_expired: bool,
) -> datetime:
    if fields.valid_for is not None and fields.valid_until is not None:
        raise AttestationError(("valid_for",), "give valid_for or valid_until, not both")
    if fields.valid_until is not None:
        valid_until, where = fields.valid_until, "valid_until"
    else:
        valid_for = fields.valid_for if fields.valid_for is not None else template.valid_for if template else None
        if valid_for is None:
            raise AttestationError(("valid_for",), "say how long it holds: valid_for (e.g. 365d) or valid_until")
        if valid_for <= timedelta(0):
            raise AttestationError(("valid_for",), "valid_for must be positive")
        valid_until, where = observed_at + valid_for, "valid_for"
    if valid_until <= now and not allow_expired:
        raise AttestationError((where,), f"validity ended in the past ({valid_until.isoformat()}); nothing to attest")
    if valid_until <= observed_at:
        raise AttestationError(
            (where,), f"validity ends ({valid_until.isoformat()}) before it starts ({observed_at.isoformat()})"
        )
    return valid_until


def resolve_attestation(
    fields: AttestationFields,
    *,
    now: datetime,
    resolve: Callable[[str], list[ControlRef]],
    templates: Mapping[str, AttestationTemplate],
    document: DocumentDigest | None,
    default_subject: str | None = None,
    source: str = "",
    allow_expired: bool = False,
) -> Attestation:
    """Check every rule; raise :class:`AttestationError` naming the field at fault.

    ``allow_expired``: a sidecar whose validity has run out is still recorded (it shows as stale, which is the truth);
    the command refuses one, as typing an attestation that has already expired is a mistake."""
    if document is None and fields.url is None:
        raise AttestationError(("file",), "attest a document: give a file or a url")
    controls, template = _resolve_controls(fields, resolve, templates)
    observed_at = fields.observed_at or now
    if observed_at > now + timedelta(minutes=5):
        raise AttestationError(("observed_at",), f"observed_at {observed_at.isoformat()} is in the future")
    valid_until = _validity(fields, observed_at, template, now, allow_expired)
    return Attestation(
        title=fields.title,
        attested_by=fields.by,
        controls=controls,
        observed_at=observed_at.astimezone(UTC),
        valid_until=valid_until.astimezone(UTC),
        subject_id=fields.subject or default_subject or slug(fields.title),
        document=document,
        url=fields.url,
        template=fields.template,
        source=source or fields.url or (document.name if document else ""),
    )


def attestation_observation(att: Attestation) -> Observation:
    payload: dict[str, Any] = {
        "title": att.title,
        "attested_by": att.attested_by,
        "controls": list(att.controls),
        "valid_until": att.valid_until.isoformat(),
        "template": att.template,
        "document": att.document.as_json() if att.document else None,
        "url": att.url,
    }
    return Observation(
        kind=ATTESTATION_KIND,
        subject=Subject(SUBJECT_TYPE, att.subject_id),
        observed_at=att.observed_at,
        payload=payload,
        source=att.source,
        controls=att.controls,
        valid_until=att.valid_until,
    )


def _at(label: str, node: yaml.Node | None, loc: tuple[str | int, ...]) -> str:
    line = yaml_line_of(node, loc)
    return f"{label}:{line}" if line else label


def _fmt(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_sidecar(text: str, label: str) -> tuple[AttestationFields, yaml.Node | None]:
    """Parse a sidecar's YAML; :class:`ValueError` with ``file:line: field: problem`` for each mistake."""
    try:
        raw, node = parse_yaml(text, label)
    except YamlError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ValueError(f"{label}:1: a sidecar must be a mapping of attestation fields")
    try:
        return AttestationFields.model_validate(raw), node
    except ValidationError as exc:
        lines = [f"{_at(label, node, tuple(e['loc']))}: {_fmt(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ValueError("; ".join(lines)) from None


def sidecar_error(err: AttestationError, label: str, node: yaml.Node | None) -> str:
    return f"{_at(label, node, err.loc)}: {_fmt(err.loc)}: {err.message}"


def default_templates_dir() -> Path:
    return default_mappings_dir() / "attestation-templates"


def load_templates(directory: Path, mappings: Mappings) -> dict[str, AttestationTemplate]:
    """Every ``*.yaml`` template, its controls checked against the catalogs; any problem is a MappingError."""
    templates: dict[str, AttestationTemplate] = {}
    if not directory.is_dir():
        return templates
    for path in sorted(directory.glob("*.yaml")):
        try:
            template = AttestationTemplate.model_validate(read_yaml(path)[0])
        except OSError as exc:
            raise MappingError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except YamlError as exc:
            raise MappingError(str(exc)) from None
        except ValidationError as exc:
            raise MappingError(format_validation_error(exc, str(path))) from exc
        if template.template != path.stem:
            raise MappingError(f"{path}: template {template.template!r} belongs in {template.template}.yaml")
        _check_links(template.controls, mappings, str(path))
        templates[template.template] = template
    return templates


def _check_links(links: Iterable[ControlLink], mappings: Mappings, where: str) -> None:
    seen: set[str] = set()
    for i, link in enumerate(links):
        if link.control in seen:
            raise MappingError(f"{where}: controls[{i}]: {link.control} is listed twice")
        seen.add(link.control)
        ref = link.ref
        catalog = mappings.catalogs.get(ref.framework)
        if catalog is None or ref.control not in catalog.by_id:
            raise MappingError(f"{where}: controls[{i}]: unknown control {link.control}")
