"""Sanity checks for the control catalogs in mappings/catalogs/."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

CATALOG_DIR = Path(__file__).parent.parent / "mappings" / "catalogs"

EXPECTED = {
    "soc2.yaml": ("soc2", 61),
    "iso27001.yaml": ("iso27001", 93),
    "nist_ai_rmf.yaml": ("nist_ai_rmf", 72),
    "iso42001.yaml": ("iso42001", 38),
}


def _load(name: str) -> dict[str, Any]:
    with (CATALOG_DIR / name).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict)
    return data


def _by_id(name: str) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in _load(name)["controls"]}


@pytest.mark.parametrize(("filename", "expected"), list(EXPECTED.items()))
def test_catalog_shape(filename: str, expected: tuple[str, int]) -> None:
    framework, count = expected
    data = _load(filename)
    assert data["framework"] == framework
    assert isinstance(data["name"], str)
    assert data["name"]
    assert isinstance(data["version"], str)
    assert data["version"]
    controls = data["controls"]
    assert len(controls) == count
    ids = [c["id"] for c in controls]
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicates
    required = {"id", "title", "group", "group_title"}
    if framework == "nist_ai_rmf":
        required |= {"text", "function"}
    for control in controls:
        assert set(control) == required, control["id"]
        for key in required:
            assert isinstance(control[key], str), (control["id"], key)
            assert control[key].strip(), (control["id"], key)


def test_iso27001_aliases() -> None:
    data = _load("iso27001.yaml")
    ids_2022 = {c["id"] for c in data["controls"]}
    aliases = data["aliases"]
    assert len(aliases) == 114
    for old_id, targets in aliases.items():
        assert isinstance(targets, list), old_id
        assert targets, old_id
        assert set(targets) <= ids_2022, (old_id, targets)
    assert set(aliases["A.18.2.3"]) == {"A.5.36", "A.8.8"}
    assert aliases["A.5.1.1"] == ["A.5.1"]


def test_iso27001_groups() -> None:
    groups = Counter(c["group"] for c in _load("iso27001.yaml")["controls"])
    assert groups == {"A.5": 37, "A.6": 8, "A.7": 14, "A.8": 34}


def test_nist_measure_2_7() -> None:
    controls = _by_id("nist_ai_rmf.yaml")
    control = controls["MEASURE 2.7"]
    assert control["function"] == "MEASURE"
    assert control["group"] == "MEASURE 2"
    text = control["text"].lower()
    assert "security" in text
    assert "resilience" in text
    functions = Counter(c["function"] for c in controls.values())
    assert functions == {"GOVERN": 19, "MAP": 18, "MEASURE": 22, "MANAGE": 13}


def test_soc2_key_criteria() -> None:
    controls = _by_id("soc2.yaml")
    for criterion in ("CC6.1", "CC7.1", "CC8.1"):
        assert criterion in controls
    assert controls["CC7.1"]["group"] == "CC7"


def test_iso42001_groups() -> None:
    controls = _by_id("iso42001.yaml")
    assert "A.6.2.6" in controls
    assert {c["group"] for c in controls.values()} == {f"A.{n}" for n in range(2, 11)}
