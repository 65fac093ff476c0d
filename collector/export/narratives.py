"""Control narratives: a short text per control on how it addresses AI-specific risks.

Shipped defaults live in ``mappings/narratives/*.yaml`` (one file per framework); a deployment overrides or adds
texts with its own file of the same shape (``narratives:`` in the configuration). Every control named must exist
in the loaded catalogs: a narrative for a control that is not there is an error, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from collector.errors import MappingError
from collector.mappings import Mappings, format_validation_error
from collector.model import ControlRef
from collector.yamlfile import YamlError, read_yaml

__all__ = ["NarrativeFile", "Narratives", "load_narrative_file", "load_narratives"]

_MAX_CHARS = 2000
"""A narrative is a paragraph, not a policy document."""


class NarrativeFile(BaseModel):
    """``framework`` and ``narratives`` (control id → text); or, in an override file, ``controls`` keyed by
    ``framework:id`` so one file can speak to several frameworks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: str | None = None
    narratives: dict[str, str] = Field(default_factory=dict)

    @field_validator("narratives")
    @classmethod
    def _texts(cls, value: dict[str, str]) -> dict[str, str]:
        for control, text in value.items():
            stripped = " ".join(text.split())
            if len(stripped) < 20:
                raise ValueError(f"{control}: a narrative needs at least 20 characters")
            if len(stripped) > _MAX_CHARS:
                raise ValueError(f"{control}: a narrative is at most {_MAX_CHARS} characters")
        return {control: " ".join(text.split()) for control, text in value.items()}


@dataclass(frozen=True)
class Narratives:
    texts: Mapping[ControlRef, str] = field(default_factory=dict)
    overridden: frozenset[ControlRef] = frozenset()
    """Controls whose text came from the deployment's file rather than the shipped defaults."""

    def get(self, ref: ControlRef) -> str | None:
        return self.texts.get(ref)

    def source(self, ref: ControlRef) -> str:
        return "deployment" if ref in self.overridden else "default"


def _refs(data: NarrativeFile, mappings: Mappings, where: str) -> dict[ControlRef, str]:
    out: dict[ControlRef, str] = {}
    for key, text in data.narratives.items():
        qualified = key if ":" in key or data.framework is None else f"{data.framework}:{key}"
        try:
            ref = ControlRef.parse(qualified)
        except ValueError as exc:
            raise MappingError(f"{where}: narratives.{key}: {exc}") from None
        if ref.framework not in mappings.catalogs:
            raise MappingError(f"{where}: narratives.{key}: unknown framework {ref.framework!r}")
        if ref.control not in mappings.catalogs[ref.framework].by_id:
            raise MappingError(f"{where}: narratives.{key}: unknown control {ref.control!r} in {ref.framework}")
        if ref in out:
            raise MappingError(f"{where}: narratives.{key}: {ref} is given twice")
        out[ref] = text
    return out


def load_narrative_file(path: Path, mappings: Mappings) -> dict[ControlRef, str]:
    try:
        raw = read_yaml(path)[0]
    except OSError as exc:
        raise MappingError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except YamlError as exc:
        raise MappingError(str(exc)) from None
    try:
        data = NarrativeFile.model_validate(raw)
    except ValidationError as exc:
        raise MappingError(format_validation_error(exc, str(path))) from exc
    if data.framework is not None and data.framework not in mappings.catalogs:
        raise MappingError(f"{path}: framework: unknown framework {data.framework!r}")
    return _refs(data, mappings, str(path))


def load_narratives(mappings: Mappings, override: Path | None = None) -> Narratives:
    """The shipped narratives beside the loaded mappings, then the deployment's file over them."""
    texts: dict[ControlRef, str] = {}
    directory = mappings.root / "narratives"
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        for ref, text in load_narrative_file(path, mappings).items():
            if ref in texts:
                raise MappingError(f"{path}: {ref} already has a narrative in another file")
            texts[ref] = text
    overridden: set[ControlRef] = set()
    if override is not None:
        for ref, text in load_narrative_file(override, mappings).items():
            texts[ref] = text
            overridden.add(ref)
    return Narratives(texts, frozenset(overridden))
