"""Control coverage: which controls are evidenced automatically, by attestation, could be attested, or not at all.

:func:`compute_coverage` is pure: given the mappings, what the configured connectors produce, the attestation
templates, the newest attested evidence per control and ``now``, it computes one report (per control, per framework,
per group, against the goals). :func:`basis_for_config` gathers its inputs from a loaded configuration."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector.attestation import AttestationTemplate, load_templates
from collector.config import LoadedConfig
from collector.connector import available_connectors, load_connector
from collector.freshness import Freshness, KindEvidence, control_freshness
from collector.mappings import Control, Mappings
from collector.model import ControlRef

__all__ = [
    "COVERED",
    "GOALS",
    "AttestedEvidence",
    "ConnectorCapability",
    "ControlCoverage",
    "CoverageBasis",
    "CoverageGoal",
    "CoverageReport",
    "CoverageState",
    "CoverageTotals",
    "GoalResult",
    "basis_for_config",
    "compute_coverage",
    "connector_capabilities",
    "coverage_basis",
    "group_of",
]

NewestEvidence = Mapping[tuple[str, str], tuple[datetime, datetime | None]]
"""(control, kind) -> (newest observed_at, its valid_until), as :class:`collector.state.Snapshot` keeps it."""


class CoverageState(enum.StrEnum):
    AUTOMATED = "automated"
    """A configured connector produces an evidence kind or check mapped to the control."""
    ATTESTED = "attested"
    """An attestation naming the control is stored and has not expired."""
    ATTESTABLE = "attestable"
    """No evidence yet, but an attestation template covers it: attest the document to cover it."""
    UNCOVERED = "uncovered"


COVERED = frozenset({CoverageState.AUTOMATED, CoverageState.ATTESTED, CoverageState.ATTESTABLE})
"""Automated or attestation-backed (stored or from a template)."""


@dataclass(frozen=True, slots=True)
class ConnectorCapability:
    type: str
    kinds: frozenset[str]
    checks: frozenset[str]


def connector_capabilities(types: Iterable[str]) -> tuple[dict[str, ConnectorCapability], dict[str, str]]:
    """What each connector type produces, loaded through its entry point; a type that fails to load is returned
    with the reason, and counts as not configured."""
    loaded: dict[str, ConnectorCapability] = {}
    failed: dict[str, str] = {}
    for type_name in sorted(set(types)):
        try:
            cls = load_connector(type_name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported in the coverage report, not fatal
            failed[type_name] = f"{type(exc).__name__}: {exc}"
            continue
        loaded[type_name] = ConnectorCapability(type_name, frozenset(cls.kinds), frozenset(c.id for c in cls.checks))
    return loaded, failed


@dataclass(frozen=True)
class CoverageBasis:
    """What coverage is measured against: the configured connectors' capabilities and the attestation templates."""

    capabilities: Mapping[str, ConnectorCapability]
    templates: Mapping[str, AttestationTemplate]
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """Configured connector types that could not be loaded, with the reason."""


def coverage_basis(connector_types: Iterable[str], templates: Mapping[str, AttestationTemplate]) -> CoverageBasis:
    capabilities, failed = connector_capabilities(connector_types)
    return CoverageBasis(capabilities, dict(templates), failed)


def basis_for_config(loaded: LoadedConfig, *, all_connectors: bool = False) -> CoverageBasis:
    """The configured connector types (or every installed one) and the templates beside the configured mappings;
    a broken template file is a :class:`collector.errors.MappingError`."""
    templates = load_templates(loaded.mappings.root / "attestation-templates", loaded.mappings)
    types = available_connectors() if all_connectors else [i.config.type for i in loaded.instances]
    return coverage_basis(types, templates)


@dataclass(frozen=True, slots=True)
class AttestedEvidence:
    kind: str
    observed_at: datetime
    valid_until: datetime | None
    status: Freshness


@dataclass(frozen=True, slots=True)
class ControlCoverage:
    ref: ControlRef
    title: str
    group: str
    group_title: str
    state: CoverageState
    kinds: tuple[str, ...] = ()
    """Mapped evidence kinds a configured connector produces."""
    checks: tuple[str, ...] = ()
    connectors: tuple[str, ...] = ()
    unconfigured: tuple[str, ...] = ()
    """Mapped kinds and checks no configured connector produces (configure one to automate the control)."""
    attestations: tuple[AttestedEvidence, ...] = ()
    templates: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "framework": self.ref.framework,
            "control": self.ref.control,
            "title": self.title,
            "group": self.group,
            "state": self.state.value,
            "evidence_kinds": list(self.kinds),
            "checks": list(self.checks),
            "connectors": list(self.connectors),
            "unconfigured": list(self.unconfigured),
            "attestations": [
                {
                    "kind": a.kind,
                    "observed_at": a.observed_at.isoformat(),
                    "valid_until": a.valid_until.isoformat() if a.valid_until else None,
                    "status": a.status.value,
                }
                for a in self.attestations
            ],
            "templates": list(self.templates),
        }


@dataclass(frozen=True, slots=True)
class CoverageTotals:
    framework: str
    group: str | None
    """``None`` for the framework's total."""
    title: str
    counts: Mapping[CoverageState, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, states: Iterable[CoverageState]) -> int:
        return sum(self.counts.get(s, 0) for s in states)

    def share(self, states: Iterable[CoverageState]) -> float:
        return self.count(states) / self.total if self.total else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "group": self.group,
            "title": self.title,
            "total": self.total,
            **{s.value: self.counts.get(s, 0) for s in CoverageState},
            "covered_percent": round(100 * self.share(COVERED), 1),
            "automated_percent": round(100 * self.share([CoverageState.AUTOMATED]), 1),
        }


@dataclass(frozen=True, slots=True)
class CoverageGoal:
    framework: str
    label: str
    min_share: float
    states: frozenset[CoverageState]
    groups: frozenset[str] | None = None
    """Only controls in these groups (``None``: the whole catalog)."""


_SOC2_COMMON_CRITERIA = frozenset(f"CC{n}" for n in range(1, 10))

GOALS: tuple[CoverageGoal, ...] = (
    CoverageGoal("soc2", "SOC 2 CC1-CC9, automated or attestation-backed", 0.90, COVERED, _SOC2_COMMON_CRITERIA),
    CoverageGoal("iso27001", "ISO 27001:2022 Annex A, automated or attestation-backed", 0.80, COVERED),
    CoverageGoal(
        "iso27001",
        "ISO 27001:2022 A.8 technological, automated",
        0.60,
        frozenset({CoverageState.AUTOMATED}),
        frozenset({"A.8"}),
    ),
    CoverageGoal("nist_ai_rmf", "NIST AI RMF, automated or attestation-backed", 0.85, COVERED),
    CoverageGoal("nist_ai_rmf", "NIST AI RMF, automated", 0.40, frozenset({CoverageState.AUTOMATED})),
    CoverageGoal("iso42001", "ISO 42001 Annex A, automated or attestation-backed", 0.85, COVERED),
)


@dataclass(frozen=True, slots=True)
class GoalResult:
    goal: CoverageGoal
    covered: int
    total: int

    @property
    def share(self) -> float:
        return self.covered / self.total if self.total else 0.0

    @property
    def met(self) -> bool:
        return self.total > 0 and self.share >= self.goal.min_share

    def as_json(self) -> dict[str, Any]:
        return {
            "framework": self.goal.framework,
            "goal": self.goal.label,
            "covered": self.covered,
            "total": self.total,
            "percent": round(100 * self.share, 1),
            "target_percent": round(100 * self.goal.min_share, 1),
            "met": self.met,
        }


@dataclass(frozen=True)
class CoverageReport:
    controls: list[ControlCoverage]
    frameworks: list[CoverageTotals]
    groups: list[CoverageTotals]
    goals: list[GoalResult]
    connectors: list[str]
    unavailable: Mapping[str, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "connectors": self.connectors,
            "unavailable_connectors": dict(self.unavailable),
            "frameworks": [t.as_json() for t in self.frameworks],
            "groups": [t.as_json() for t in self.groups],
            "goals": [g.as_json() for g in self.goals],
            "controls": [c.as_json() for c in self.controls],
        }


def group_of(control: Control) -> tuple[str, str]:
    """The reporting group: the NIST AI RMF function, the SOC 2 series, the ISO theme (Annex A clause)."""
    if control.function:
        return control.function, control.function
    return control.group, control.group_title or control.group


def _producers(basis: CoverageBasis) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    by_kind: dict[str, set[str]] = defaultdict(set)
    by_check: dict[str, set[str]] = defaultdict(set)
    for cap in basis.capabilities.values():
        for kind in cap.kinds:
            by_kind[kind].add(cap.type)
        for check in cap.checks:
            by_check[check].add(cap.type)
    return by_kind, by_check


def _attested(
    ref: ControlRef, mappings: Mappings, newest: NewestEvidence, now: datetime
) -> tuple[AttestedEvidence, ...]:
    out = []
    for kind, km in sorted(mappings.kinds.items()):
        if not km.declared_controls or (str(ref), kind) not in newest:
            continue
        observed_at, valid_until = newest[(str(ref), kind)]
        status = control_freshness(ref, [KindEvidence(kind, km.freshness, observed_at, valid_until)], now).status
        out.append(AttestedEvidence(kind, observed_at, valid_until, status))
    return tuple(out)


class _Index:
    """Lookups built once per report."""

    def __init__(self, mappings: Mappings, basis: CoverageBasis) -> None:
        self.kind_producers, self.check_producers = _producers(basis)
        self.kinds: dict[ControlRef, list[str]] = defaultdict(list)
        for kind, refs in mappings.controls_by_kind.items():
            for ref in refs:
                self.kinds[ref].append(kind)
        self.templates: dict[ControlRef, list[str]] = defaultdict(list)
        for name, template in sorted(basis.templates.items()):
            for ref in template.refs:
                self.templates[ref].append(name)


def _control(
    ref: ControlRef, mappings: Mappings, index: _Index, newest: NewestEvidence, now: datetime
) -> ControlCoverage:
    control = mappings.control(ref)
    group, group_title = group_of(control)
    kinds = sorted(index.kinds.get(ref, ()))
    checks = sorted(mappings.checks_by_control.get(ref, ()))
    automated_kinds = tuple(k for k in kinds if index.kind_producers.get(k))
    automated_checks = tuple(c for c in checks if index.check_producers.get(c))
    connectors: set[str] = set()
    for k in automated_kinds:
        connectors |= index.kind_producers[k]
    for c in automated_checks:
        connectors |= index.check_producers[c]
    unconfigured = tuple(k for k in kinds if k not in automated_kinds) + tuple(
        c for c in checks if c not in automated_checks
    )
    attestations = _attested(ref, mappings, newest, now)
    templates = tuple(index.templates.get(ref, ()))
    if automated_kinds or automated_checks:
        state = CoverageState.AUTOMATED
    elif any(a.status in (Freshness.FRESH, Freshness.AT_RISK) for a in attestations):
        state = CoverageState.ATTESTED
    elif templates:
        state = CoverageState.ATTESTABLE
    else:
        state = CoverageState.UNCOVERED
    return ControlCoverage(
        ref, control.title, group, group_title, state, automated_kinds, automated_checks, tuple(sorted(connectors)),
        unconfigured, attestations, templates,
    )  # fmt: skip


def _totals(controls: list[ControlCoverage], by_group: bool) -> list[CoverageTotals]:
    counts: dict[tuple[str, str | None], dict[CoverageState, int]] = {}
    titles: dict[tuple[str, str | None], str] = {}
    for c in controls:
        key = (c.ref.framework, c.group if by_group else None)
        bucket = counts.setdefault(key, dict.fromkeys(CoverageState, 0))
        bucket[c.state] += 1
        titles[key] = c.group_title if by_group else c.ref.framework
    return [CoverageTotals(fw, group, titles[(fw, group)], counts[(fw, group)]) for fw, group in counts]


def _goal(goal: CoverageGoal, controls: list[ControlCoverage]) -> GoalResult:
    scope = [
        c for c in controls if c.ref.framework == goal.framework and (goal.groups is None or c.group in goal.groups)
    ]
    return GoalResult(goal, sum(1 for c in scope if c.state in goal.states), len(scope))


def compute_coverage(
    mappings: Mappings,
    basis: CoverageBasis,
    newest: NewestEvidence,
    now: datetime,
    framework: str | None = None,
) -> CoverageReport:
    index = _Index(mappings, basis)
    controls = [_control(ref, mappings, index, newest, now) for ref in mappings.all_controls(framework)]
    return CoverageReport(
        controls=controls,
        frameworks=_totals(controls, by_group=False),
        groups=_totals(controls, by_group=True),
        goals=[_goal(g, controls) for g in GOALS if framework in (None, g.framework)],
        connectors=sorted(basis.capabilities),
        unavailable=dict(basis.unavailable),
    )
