"""Referential integrity of the shipped narratives (mappings/narratives), like every other mapping file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from collector.export.narratives import load_narrative_file, load_narratives
from collector.mappings import default_mappings_dir, load_mappings
from collector.model import ControlRef

MAPPINGS = load_mappings()
FILES = sorted((default_mappings_dir() / "narratives").glob("*.yaml"))
AI_KIND_PREFIXES = ("mlflow.", "monitor.", "alert.")
PLACEHOLDERS = ("todo", "tbd", "fixme", "xxx", "lorem")


def test_there_is_one_narrative_file_per_framework() -> None:
    assert {p.stem for p in FILES} == set(MAPPINGS.catalogs)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_narrative_names_a_control_of_its_own_framework(path: Path) -> None:
    declared = yaml.safe_load(path.read_text(encoding="utf-8"))["framework"]
    assert declared == path.stem
    texts = load_narrative_file(path, MAPPINGS)
    assert texts, f"{path.name} has no narratives"
    for ref, text in texts.items():
        assert ref.framework == declared
        assert not any(word in text.lower().split() for word in PLACEHOLDERS), ref


def test_every_control_that_ml_evidence_speaks_to_has_a_narrative() -> None:
    narratives = load_narratives(MAPPINGS)
    wanted = {
        ref
        for ref, kinds in MAPPINGS.kinds_by_control.items()
        if any(kind.startswith(AI_KIND_PREFIXES) for kind in kinds)
    }
    assert ControlRef("soc2", "CC7.2") in wanted
    missing = sorted(str(ref) for ref in wanted if narratives.get(ref) is None)
    assert missing == []


def test_every_ai_framework_control_with_evidence_has_a_narrative() -> None:
    narratives = load_narratives(MAPPINGS)
    missing = sorted(
        str(ref)
        for ref in MAPPINGS.kinds_by_control
        if ref.framework in ("nist_ai_rmf", "iso42001") and narratives.get(ref) is None
    )
    assert missing == []


def test_a_shipped_narrative_for_a_control_without_evidence_says_nothing_false() -> None:
    """A narrative describes evidence the collector gathers: its control must have some mapped."""
    narratives = load_narratives(MAPPINGS)
    orphans = sorted(str(ref) for ref in narratives.texts if ref not in MAPPINGS.kinds_by_control)
    assert orphans == []


def test_the_same_control_in_two_shipped_files_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "mappings"
    for sub in ("catalogs", "evidence"):
        (root / sub).mkdir(parents=True)
        for f in (default_mappings_dir() / sub).glob("*.yaml"):
            (root / sub / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    (root / "narratives").mkdir()
    text = "narratives:\n  soc2:CC7.2: The same control described in two files.\n"
    (root / "narratives" / "a.yaml").write_text(text)
    (root / "narratives" / "b.yaml").write_text(text)
    from collector.errors import MappingError

    with pytest.raises(MappingError, match="already has a narrative"):
        load_narratives(load_mappings(root))
