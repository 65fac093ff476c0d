"""Referential integrity of every mapping file: control ids exist, every evidence kind and check is produced by a
registered connector (and everything connectors produce is mapped), no duplicate links, every link has a rationale.

Every connector entry point must load: a connector that does not import FAILS these tests, it is never skipped."""

from __future__ import annotations

from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.attestation import ATTESTATION_KIND, default_templates_dir, load_templates
from collector.connector import ENTRY_POINT_GROUP, Connector
from collector.crosswalk import default_crosswalks_dir, load_crosswalks
from collector.mappings import default_mappings_dir, load_mappings
from collector.model import ControlRef

ROOT = default_mappings_dir()
EVIDENCE_FILES = sorted((ROOT / "evidence").glob("*.yaml"))
TEMPLATE_FILES = sorted((ROOT / "attestation-templates").glob("*.yaml"))
ENTRY_POINTS = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
MAPPINGS = load_mappings()
PLACEHOLDERS = ("todo", "tbd", "fixme", "xxx", "same as above")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _connectors() -> dict[str, type[Connector[Any]]]:
    """Every registered connector; one that does not load fails the calling test with the reason."""
    loaded: dict[str, type[Connector[Any]]] = {}
    broken: list[str] = []
    for ep in ENTRY_POINTS:
        try:
            loaded[ep.name] = ep.load()
        except Exception as exc:
            broken.append(f"{ep.name} ({ep.value}): {type(exc).__name__}: {exc}")
    if broken:
        pytest.fail("connector entry points that do not load:\n" + "\n".join(broken))
    return loaded


def _links(path: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    data = _yaml(path) or {}
    out = [(f"kinds.{k['kind']}", k.get("controls") or []) for k in data.get("kinds", [])]
    out += [(f"checks.{c['check']}", c.get("controls") or []) for c in data.get("checks", [])]
    return out


def test_there_are_mapping_files_and_entry_points() -> None:
    assert len(EVIDENCE_FILES) >= 2
    assert {"container_scan", "attestations"} <= {ep.name for ep in ENTRY_POINTS}
    assert len(TEMPLATE_FILES) >= 20


@pytest.mark.parametrize("ep", ENTRY_POINTS, ids=lambda ep: ep.name)
def test_every_connector_entry_point_loads(ep: Any) -> None:
    cls = ep.load()
    assert isinstance(cls, type)
    assert issubclass(cls, Connector)
    assert cls.type == ep.name, f"entry point {ep.name} loads a connector whose type is {cls.type}"


@pytest.mark.parametrize("path", EVIDENCE_FILES, ids=lambda p: p.name)
def test_every_control_id_exists_in_its_catalog(path: Path) -> None:
    unknown = []
    for where, links in _links(path):
        for link in links:
            try:
                ref = ControlRef.parse(link["control"])
                MAPPINGS.control(ref)
            except (KeyError, ValueError):
                unknown.append(f"{where}: {link['control']}")
    assert unknown == []


@pytest.mark.parametrize("path", EVIDENCE_FILES, ids=lambda p: p.name)
def test_no_duplicate_links_and_every_link_has_a_rationale(path: Path) -> None:
    problems = []
    for where, links in _links(path):
        for control, n in Counter(link["control"] for link in links).items():
            if n > 1:
                problems.append(f"{where}: {control} linked {n} times")
        for link in links:
            rationale = str(link.get("rationale") or "").strip()
            if len(rationale) < 10 or rationale.lower().startswith(PLACEHOLDERS):
                problems.append(f"{where}: {link['control']}: rationale {rationale!r} says nothing")
            if link.get("relationship") not in ("supports", "satisfies"):
                problems.append(f"{where}: {link['control']}: relationship {link.get('relationship')!r}")
    assert problems == []


def test_every_mapped_kind_and_check_is_produced_by_a_registered_connector() -> None:
    connectors = _connectors()
    kinds = {kind for cls in connectors.values() for kind in cls.kinds}
    checks = {check.id: check.kind for cls in connectors.values() for check in cls.checks}
    assert sorted(set(MAPPINGS.kinds) - kinds) == [], "mapped evidence kinds no connector produces"
    assert sorted(set(MAPPINGS.checks) - set(checks)) == [], "mapped checks no connector runs"
    wrong_kind = {c: (m.kind, checks[c]) for c, m in MAPPINGS.checks.items() if c in checks and checks[c] != m.kind}
    assert wrong_kind == {}, "check mapped under a different kind than its connector declares"


def test_everything_a_connector_produces_is_mapped() -> None:
    unmapped = []
    for name, cls in _connectors().items():
        unmapped += [f"{name}: kind {k}" for k in sorted(cls.kinds) if k not in MAPPINGS.kinds]
        unmapped += [f"{name}: check {c.id}" for c in cls.checks if c.id not in MAPPINGS.checks]
    assert unmapped == []


def test_each_kind_and_check_is_mapped_in_one_place_only() -> None:
    seen: Counter[str] = Counter()
    for path in EVIDENCE_FILES:
        data = _yaml(path) or {}
        seen.update(f"kind {k['kind']}" for k in data.get("kinds", []))
        seen.update(f"check {c['check']}" for c in data.get("checks", []))
    assert [name for name, n in seen.items() if n > 1] == []


def test_attestations_declare_their_controls_and_carry_no_static_links() -> None:
    mapping = MAPPINGS.kinds[ATTESTATION_KIND]
    assert mapping.declared_controls
    assert mapping.controls == []
    assert [k for k, m in MAPPINGS.kinds.items() if m.declared_controls] == [ATTESTATION_KIND]


def test_attestation_templates_are_valid_and_justified() -> None:
    templates = load_templates(default_templates_dir(), MAPPINGS)  # raises on unknown or duplicate controls
    assert len(templates) == len(TEMPLATE_FILES)
    for name, template in templates.items():
        for link in template.controls:
            assert not link.rationale.lower().startswith(PLACEHOLDERS), (name, link.control)
        assert len({link.rationale for link in template.controls}) == len(template.controls), (
            f"{name}: a rationale is copied between links; say why for each control"
        )


def test_crosswalks_name_existing_controls_only() -> None:
    crosswalks = load_crosswalks(default_crosswalks_dir(), MAPPINGS)  # raises on any unknown control
    assert len(crosswalks) == 2
    for crosswalk in crosswalks:
        for left, right in crosswalk.pairs():
            assert (left.framework, right.framework) == crosswalk.frameworks
