"""The example connector's own tests: the SDK's conformance kit, then its two checks on the sample cards."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from model_card_connector import COMPLETE, REVIEWED, ModelCardConnector, ModelCardSettings

from collector.sdk import CollectContext, Observation, Outcome
from collector.sdk.testing import ConnectorConformance

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class TestConformance(ConnectorConformance):
    connector_cls = ModelCardConnector
    invalid_settings = [{}, {"paths": ["x"], "review_max_age": "soon"}]

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"paths": [str(DATA / "*" / "README.md")]}


WRITTEN = datetime(2025, 12, 1, tzinfo=UTC).timestamp()
"""The cards' modification time in these tests (the evidence's ``observed_at``), a month before ``NOW``."""


def collect(tmp_path: Path, **settings: Any) -> tuple[dict[str, Observation], CollectContext]:
    cards = tmp_path / "cards"
    shutil.copytree(DATA, cards, dirs_exist_ok=True)
    for card in [*cards.glob("*/README.md"), *tmp_path.glob("README.md")]:
        os.utime(card, (WRITTEN, WRITTEN))
    paths = settings.pop("paths", [str(cards / "*" / "README.md")])
    connector = ModelCardConnector(ModelCardSettings(paths=paths, **settings))
    ctx = CollectContext(instance="cards", run_id="r1", now=NOW)
    return {o.subject.id: o for o in connector.collect(ctx)}, ctx


def test_a_complete_recently_reviewed_card_passes_both_checks(tmp_path: Path) -> None:
    cards, ctx = collect(tmp_path)
    assert ctx.problems == []
    settings = ModelCardSettings(paths=["x"])
    assert COMPLETE.run(cards["fraud-detector"], settings, NOW).result is Outcome.PASS
    assert REVIEWED.run(cards["fraud-detector"], settings, NOW).result is Outcome.PASS


def test_a_card_missing_sections_and_licence_fails_naming_them(tmp_path: Path) -> None:
    cards, _ = collect(tmp_path)
    result = COMPLETE.run(cards["churn-model"], ModelCardSettings(paths=["x"]), NOW)
    assert result.result is Outcome.FAIL
    assert result.details["missing"] == ["Bias, Risks, and Limitations", "Evaluation", "metadata license"]
    assert REVIEWED.run(cards["churn-model"], ModelCardSettings(paths=["x"]), NOW).result is Outcome.FAIL


@pytest.mark.parametrize(
    ("reviewed", "outcome"),
    [("2024-01-01", Outcome.FAIL), ("someday", Outcome.ERROR), ("2027-06-01", Outcome.FAIL)],
)
def test_an_old_unreadable_or_future_review_date_is_never_a_pass(
    tmp_path: Path, reviewed: str, outcome: Outcome
) -> None:
    card = (DATA / "fraud-detector" / "README.md").read_text().replace("2025-11-20", reviewed)
    (tmp_path / "README.md").write_text(card)
    cards, _ = collect(tmp_path, paths=[str(tmp_path / "README.md")])
    assert REVIEWED.run(cards["fraud-detector"], ModelCardSettings(paths=["x"]), NOW).result is outcome


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("# no front matter\n", "no YAML front matter"),
        ("---\n[a, b\n---\n", "not valid YAML"),
        ("---\n- a\n---\n", "not a mapping"),
    ],
)
def test_an_unreadable_card_is_a_problem_naming_the_file(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "README.md").write_text(text)
    cards, ctx = collect(tmp_path, paths=[str(tmp_path / "README.md")])
    assert cards == {}
    [problem] = ctx.problems
    assert problem.source.endswith("README.md")
    assert reason in problem.reason
