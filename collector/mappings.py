"""Control catalogs and the evidence map, validated once at load with indexes both ways."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from importlib import resources
from importlib.metadata import entry_points
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from collector.durations import Duration
from collector.errors import MappingError
from collector.model import ControlRef
from collector.yamlfile import YamlError, read_yaml

__all__ = [
    "MAPPINGS_ENTRY_POINT_GROUP",
    "Catalog",
    "CheckMapping",
    "Control",
    "ControlLink",
    "FreshnessPolicy",
    "KindMapping",
    "Mappings",
    "default_mappings_dir",
    "format_validation_error",
    "load_mappings",
    "plugin_evidence_maps",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    """Validators are built on first use, not at import."""


class Control(_Strict):
    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    group: str = Field(min_length=1)
    group_title: str = ""
    function: str | None = None
    text: str | None = None


class Catalog(_Strict):
    framework: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    version: str
    controls: list[Control] = Field(min_length=1)
    aliases: dict[str, list[str]] = Field(default_factory=dict)

    @cached_property
    def by_id(self) -> dict[str, Control]:
        return {c.id: c for c in self.controls}

    @model_validator(mode="after")
    def _unique_and_resolvable(self) -> Catalog:
        seen: set[str] = set()
        for control in self.controls:
            if control.id in seen:
                raise ValueError(f"control id {control.id!r} appears twice")
            seen.add(control.id)
        for alias, targets in self.aliases.items():
            unknown = [t for t in targets if t not in seen]
            if unknown:
                raise ValueError(f"alias {alias!r} points at unknown controls {unknown}")
        return self


class ControlLink(_Strict):
    control: str
    relationship: Literal["supports", "satisfies"]
    rationale: str = Field(min_length=10)

    @field_validator("control")
    @classmethod
    def _parse(cls, value: str) -> str:
        return str(ControlRef.parse(value))

    @property
    def ref(self) -> ControlRef:
        return ControlRef.parse(self.control)


class FreshnessPolicy(_Strict):
    """How long evidence stays fresh, and how long before expiry it turns ``at_risk``."""

    ttl: Duration
    at_risk: Duration = timedelta(0)

    @model_validator(mode="after")
    def _tolerance_within_ttl(self) -> FreshnessPolicy:
        if self.ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        if self.at_risk >= self.ttl:
            raise ValueError("at_risk must be shorter than ttl")
        return self


class KindMapping(_Strict):
    kind: str
    title: str
    freshness: FreshnessPolicy
    controls: list[ControlLink] = Field(default_factory=list)
    declared_controls: bool = False
    """When true, each observation names the controls it supports (attestations), validated against the catalogs."""


class CheckMapping(_Strict):
    check: str
    kind: str
    controls: list[ControlLink] = Field(default_factory=list)


class EvidenceMapFile(_Strict):
    kinds: list[KindMapping] = Field(default_factory=list)
    checks: list[CheckMapping] = Field(default_factory=list)


def format_validation_error(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        lines.append(f"{where}: {loc}: {err['msg']}")
    return "\n".join(lines)


def default_mappings_dir() -> Path:
    """The mappings shipped in the package (``collector/_mappings`` in a wheel), else the checkout's ``mappings/``."""
    shipped = resources.files("collector") / "_mappings"
    if isinstance(shipped, Path) and shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parent.parent / "mappings"


MAPPINGS_ENTRY_POINT_GROUP = "evidence_collector.mappings"
"""Installed connector packages ship their own evidence map: an entry point in this group names the map file
(a ``Path`` or ``str``), e.g. ``my_source = "my_package:EVIDENCE_MAP"``. It is read like ``evidence/*.yaml``."""


def plugin_evidence_maps() -> list[tuple[str, Path]]:
    """``(plugin name, evidence map file)`` for every installed package that ships one, by name."""
    maps: list[tuple[str, Path]] = []
    for ep in sorted(entry_points(group=MAPPINGS_ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"mappings plugin {ep.name!r} ({ep.value})"
        try:
            target = ep.load()
        except Exception as exc:  # a broken plugin is named, never skipped
            raise MappingError(f"{where}: cannot load: {type(exc).__name__}: {exc}") from exc
        if not isinstance(target, str | PathLike):
            raise MappingError(f"{where}: names a {type(target).__name__}, expected the path of an evidence map file")
        path = Path(target)
        if not path.is_file():
            raise MappingError(f"{where}: {path}: evidence map file not found")
        maps.append((ep.name, path))
    return maps


@dataclass(frozen=True)
class Mappings:
    """Catalogs and evidence links with lookups built once."""

    catalogs: dict[str, Catalog]
    kinds: dict[str, KindMapping]
    checks: dict[str, CheckMapping]
    controls_by_kind: dict[str, tuple[ControlRef, ...]]
    controls_by_check: dict[str, tuple[ControlRef, ...]]
    kinds_by_control: dict[ControlRef, tuple[str, ...]]
    checks_by_control: dict[ControlRef, tuple[str, ...]]
    root: Path = field(default_factory=default_mappings_dir)
    """The directory these were loaded from (attestation templates live beside them)."""
    _tags_cache: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def control(self, ref: ControlRef) -> Control:
        return self.catalogs[ref.framework].by_id[ref.control]

    def frameworks(self) -> list[str]:
        return sorted(self.catalogs)

    def all_controls(self, framework: str | None = None) -> list[ControlRef]:
        return [
            ControlRef(fw, c.id)
            for fw, catalog in sorted(self.catalogs.items())
            if framework in (None, fw)
            for c in catalog.controls
        ]

    def mapped_controls(self, framework: str | None = None) -> list[ControlRef]:
        """Controls that at least one evidence kind speaks to, in catalog order."""
        return [ref for ref in self.all_controls(framework) if ref in self.kinds_by_control]

    def resolve(self, text: str) -> list[ControlRef]:
        """Parse ``framework:id``, accepting catalog aliases (ISO 27001:2013 numbers)."""
        ref = ControlRef.parse(text)
        catalog = self.catalogs.get(ref.framework)
        if catalog is None:
            raise LookupError(f"unknown framework {ref.framework!r} (known: {', '.join(self.frameworks())})")
        if ref.control in catalog.by_id:
            return [ref]
        if ref.control in catalog.aliases:
            return [ControlRef(ref.framework, target) for target in catalog.aliases[ref.control]]
        raise LookupError(f"unknown control {ref.control!r} in framework {ref.framework!r}")

    def tags_for(self, kind: str, check_ids: Iterable[str], declared: Iterable[str] = ()) -> list[str]:
        """Control tags of a record: its kind's and its checks' links, plus declared controls where allowed.

        Memoised: a run repeats the same few combinations, and callers share (never mutate) the returned list."""
        key = (kind, tuple(check_ids), tuple(declared))
        cached = self._tags_cache.get(key)
        if cached is None:
            cached = self._tags_for(*key)
            if len(self._tags_cache) < 10_000:
                self._tags_cache[key] = cached
        return cached

    def _tags_for(self, kind: str, check_ids: Iterable[str], declared: Iterable[str]) -> list[str]:
        refs = set(self.controls_by_kind.get(kind, ()))
        for check_id in check_ids:
            refs.update(self.controls_by_check.get(check_id, ()))
        declared = list(declared)
        if declared:
            mapping = self.kinds.get(kind)
            if mapping is None or not mapping.declared_controls:
                raise ValueError(f"evidence kind {kind!r} does not accept declared controls")
            for text in declared:
                try:
                    refs.update(self.resolve(text))
                except LookupError as exc:
                    raise ValueError(str(exc)) from exc
        return sorted(str(r) for r in refs)


def _read_yaml(path: Path) -> Any:
    try:
        return read_yaml(path)[0]
    except OSError as exc:
        raise MappingError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except YamlError as exc:
        raise MappingError(str(exc)) from None


def _resolve_links(links: list[ControlLink], catalogs: dict[str, Catalog], where: str) -> tuple[ControlRef, ...]:
    out: list[ControlRef] = []
    for i, link in enumerate(links):
        ref = link.ref
        catalog = catalogs.get(ref.framework)
        if catalog is None:
            raise MappingError(f"{where}.controls[{i}]: unknown framework {ref.framework!r}")
        if ref.control not in catalog.by_id:
            raise MappingError(f"{where}.controls[{i}]: unknown control {ref.control!r} in {ref.framework}")
        out.append(ref)
    return tuple(out)


def load_mappings(directory: Path | None = None, *, plugins: bool = True) -> Mappings:
    """Load ``catalogs/*.yaml``, ``evidence/*.yaml`` and (``plugins``) the evidence maps installed connector
    packages ship (:func:`plugin_evidence_maps`), validated alike; any problem is a :class:`MappingError`."""
    root = directory or default_mappings_dir()
    if not root.is_dir():
        raise MappingError(f"{root}: mappings directory not found")
    catalogs: dict[str, Catalog] = {}
    for path in sorted((root / "catalogs").glob("*.yaml")):
        try:
            catalog = Catalog.model_validate(_read_yaml(path))
        except ValidationError as exc:
            raise MappingError(format_validation_error(exc, str(path))) from exc
        if catalog.framework in catalogs:
            raise MappingError(f"{path}: framework {catalog.framework!r} is defined twice")
        catalogs[catalog.framework] = catalog
    if not catalogs:
        raise MappingError(f"{root / 'catalogs'}: no catalog files (*.yaml)")

    kinds: dict[str, KindMapping] = {}
    checks: dict[str, CheckMapping] = {}
    by_kind: dict[str, tuple[ControlRef, ...]] = {}
    by_check: dict[str, tuple[ControlRef, ...]] = {}
    evidence_files = [(str(path), path) for path in sorted((root / "evidence").glob("*.yaml"))]
    if plugins:
        evidence_files += [(f"mappings plugin {name!r}, {path}", path) for name, path in plugin_evidence_maps()]
    for label, file in evidence_files:
        try:
            data = EvidenceMapFile.model_validate(_read_yaml(file))
        except ValidationError as exc:
            raise MappingError(format_validation_error(exc, label)) from exc
        for i, km in enumerate(data.kinds):
            where = f"{label}: kinds[{i}] ({km.kind})"
            if km.kind in kinds:
                raise MappingError(f"{where}: evidence kind mapped twice")
            kinds[km.kind] = km
            by_kind[km.kind] = _resolve_links(km.controls, catalogs, where)
        for i, cm in enumerate(data.checks):
            where = f"{label}: checks[{i}] ({cm.check})"
            if cm.check in checks:
                raise MappingError(f"{where}: check mapped twice")
            checks[cm.check] = cm
            by_check[cm.check] = _resolve_links(cm.controls, catalogs, where)
    for name, cm in checks.items():
        if cm.kind not in kinds:
            raise MappingError(f"check {name}: its kind {cm.kind!r} has no entry under kinds")

    kinds_by_control: dict[ControlRef, list[str]] = defaultdict(list)
    for kind, refs in by_kind.items():
        for ref in refs:
            kinds_by_control[ref].append(kind)
    checks_by_control: dict[ControlRef, list[str]] = defaultdict(list)
    for check, refs in by_check.items():
        for ref in refs:
            checks_by_control[ref].append(check)
            # a check speaks to its control only through its kind's evidence: make that kind count for freshness
            kind = checks[check].kind
            if kind not in kinds_by_control[ref]:
                kinds_by_control[ref].append(kind)
    return Mappings(
        catalogs=catalogs,
        kinds=kinds,
        checks=checks,
        controls_by_kind=by_kind,
        controls_by_check=by_check,
        kinds_by_control={k: tuple(sorted(v)) for k, v in kinds_by_control.items()},
        checks_by_control={k: tuple(sorted(v)) for k, v in checks_by_control.items()},
        root=root,
    )
