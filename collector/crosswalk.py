"""Crosswalks between frameworks (``mappings/crosswalks``), used only to suggest links, never to tag evidence."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collector.coverage import ControlCoverage, CoverageReport, CoverageState
from collector.errors import MappingError
from collector.mappings import Mappings, default_mappings_dir, format_validation_error
from collector.model import ControlRef
from collector.yamlfile import YamlError, read_yaml

__all__ = ["Crosswalk", "Suggestion", "default_crosswalks_dir", "load_crosswalks", "suggest_links"]


class Crosswalk(BaseModel):
    """Pairs of related controls in two frameworks: ``links`` maps a control of the first to controls of the second."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    frameworks: tuple[str, str]
    basis: str = Field(min_length=1)
    links: dict[str, list[str]] = Field(min_length=1)

    def pairs(self) -> Iterator[tuple[ControlRef, ControlRef]]:
        left, right = self.frameworks
        for source, targets in self.links.items():
            for target in targets:
                yield ControlRef(left, source), ControlRef(right, target)


def default_crosswalks_dir() -> Path:
    return default_mappings_dir() / "crosswalks"


def _check(crosswalk: Crosswalk, mappings: Mappings, where: str) -> None:
    for framework in crosswalk.frameworks:
        if framework not in mappings.catalogs:
            raise MappingError(f"{where}: unknown framework {framework!r}")
    for source, targets in crosswalk.links.items():
        if len(set(targets)) != len(targets):
            raise MappingError(f"{where}: links.{source}: a control is listed twice")
    for left, right in crosswalk.pairs():
        for ref in (left, right):
            try:
                mappings.control(ref)
            except KeyError:
                raise MappingError(f"{where}: links.{left.control}: unknown control {ref}") from None


def load_crosswalks(directory: Path, mappings: Mappings) -> list[Crosswalk]:
    out = []
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        try:
            crosswalk = Crosswalk.model_validate(read_yaml(path)[0])
        except OSError as exc:
            raise MappingError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except YamlError as exc:
            raise MappingError(str(exc)) from None
        except ValidationError as exc:
            raise MappingError(format_validation_error(exc, str(path))) from exc
        _check(crosswalk, mappings, str(path))
        out.append(crosswalk)
    return out


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A control not automated whose crosswalk partner is: its evidence kinds and checks may speak to it too.
    A person decides; if they agree, the link goes into mappings/evidence with a rationale."""

    control: ControlRef
    state: CoverageState
    via: ControlRef
    kinds: tuple[str, ...]
    checks: tuple[str, ...]
    crosswalk: str

    def as_json(self) -> dict[str, Any]:
        return {
            "control": str(self.control),
            "state": self.state.value,
            "via": str(self.via),
            "evidence_kinds": list(self.kinds),
            "checks": list(self.checks),
            "crosswalk": self.crosswalk,
        }


def suggest_links(report: CoverageReport, crosswalks: Sequence[Crosswalk]) -> list[Suggestion]:
    """Both directions of every crosswalk pair where one side is automated and the other is not."""
    by_ref: dict[ControlRef, ControlCoverage] = {c.ref: c for c in report.controls}
    out: set[Suggestion] = set()
    for crosswalk in crosswalks:
        for left, right in crosswalk.pairs():
            for source, target in ((left, right), (right, left)):
                have, want = by_ref.get(source), by_ref.get(target)
                if have is None or want is None:
                    continue
                if have.state is CoverageState.AUTOMATED and want.state is not CoverageState.AUTOMATED:
                    out.add(Suggestion(target, want.state, source, have.kinds, have.checks, crosswalk.name))
    return sorted(out, key=lambda s: (s.control, s.via))
