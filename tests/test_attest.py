"""`attest`: an attestation stored through the normal path, on SQLite and PostgreSQL; bad input stores nothing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from collector.attest import ATTEST_INSTANCE
from collector.attestation import (
    AttestationError,
    AttestationFields,
    default_templates_dir,
    load_templates,
    parse_instant,
)
from collector.cli import app
from collector.daemon import load_state
from collector.mappings import load_mappings
from collector.state import State
from collector.store import EvidenceFilter, Store
from tests.helpers import store_attestation, stored_runs

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MAPPINGS = load_mappings()
TEMPLATES = load_templates(default_templates_dir(), MAPPINGS)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "infosec-policy.pdf"
    path.write_bytes(b"%PDF-1.7 information security policy v3\n")
    return path


def fields(**given: Any) -> AttestationFields:
    base: dict[str, Any] = {"title": "Information security policy v3", "by": "Jane Roe, CISO", "valid_for": "365d"}
    return AttestationFields.model_validate({**base, **given})


def test_attestation_is_stored_tagged_chained_and_counts_for_freshness(store: Store, policy: Path) -> None:
    rec = store_attestation(
        store,
        MAPPINGS,
        fields(controls=["soc2:CC5.3", "iso27001:A.5.1.1"], observed_at="2026-11-20"),
        policy,
        now=NOW,
        templates=TEMPLATES,
    )
    assert rec.kind == "attestation.document"
    assert rec.instance == ATTEST_INSTANCE
    assert rec.connector_type == "attestations"
    assert rec.controls == ["iso27001:A.5.1", "soc2:CC5.3"]  # the 2013 id A.5.1.1 resolved to A.5.1
    assert rec.observed_at == datetime(2026, 11, 20, tzinfo=UTC)
    assert rec.valid_until == datetime(2027, 11, 20, tzinfo=UTC)

    (stored,) = store.latest_records(EvidenceFilter(kind="attestation.document"))
    document = stored.payload["document"]
    assert document == {
        "name": "infosec-policy.pdf",
        "sha256": hashlib.sha256(policy.read_bytes()).hexdigest(),
        "size_bytes": policy.stat().st_size,
    }
    assert stored.payload["attested_by"] == "Jane Roe, CISO"
    assert store.verify() == (1, None)
    (run,) = stored_runs(store, ATTEST_INSTANCE)
    assert run.status == "succeeded"
    assert run.observations == 1

    state = State()
    load_state(store, state)
    assert state.snapshot().newest[("soc2:CC5.3", "attestation.document")] == (rec.observed_at, rec.valid_until)


def test_a_template_adds_its_controls_and_default_validity(store: Store, policy: Path) -> None:
    rec = store_attestation(
        store,
        MAPPINGS,
        AttestationFields(title="AIIA for the credit model", by="AI risk lead", template="ai-impact-assessment"),
        policy,
        now=NOW,
        templates=TEMPLATES,
    )
    assert set(rec.controls) == {str(r) for r in TEMPLATES["ai-impact-assessment"].refs}
    assert "iso42001:A.5.3" in rec.controls
    assert rec.valid_until == NOW + timedelta(days=365)


def test_a_url_alone_is_enough(store: Store) -> None:
    rec = store_attestation(
        store,
        MAPPINGS,
        fields(controls=["soc2:CC9.2"], url="https://wiki.example.com/vendor-review-2026"),
        None,
        now=NOW,
        templates=TEMPLATES,
    )
    assert rec.source == "https://wiki.example.com/vendor-review-2026"
    (stored,) = store.latest_records(EvidenceFilter(kind="attestation.document"))
    assert stored.payload["document"] is None


BAD_INPUT = [
    pytest.param({"controls": ["soc2:CC1.1"]}, "missing.pdf", "no such file", id="missing-file"),
    pytest.param({"controls": ["soc2:CC99.1"]}, None, "unknown control 'CC99.1'", id="unknown-control"),
    pytest.param({"controls": ["nist:GOVERN 1.1"]}, None, "unknown framework 'nist'", id="unknown-framework"),
    pytest.param(
        {"controls": ["soc2:CC1.1"], "valid_for": None, "valid_until": "2026-01-01"},
        None,
        "validity ended in the past",
        id="validity-in-the-past",
    ),
    pytest.param(
        {"controls": ["soc2:CC1.1"], "observed_at": "2024-01-01", "valid_for": "30d"},
        None,
        "validity ended in the past",
        id="expired-before-today",
    ),
    pytest.param(
        {"controls": ["soc2:CC1.1"], "observed_at": "2027-01-01"}, None, "in the future", id="observed-in-the-future"
    ),
    pytest.param({"controls": []}, None, "at least one control", id="no-controls"),
    pytest.param({"controls": ["soc2:CC1.1"], "template": "nope"}, None, "unknown attestation template", id="template"),
    pytest.param({"controls": ["soc2:CC1.1"], "valid_for": None}, None, "valid_for", id="no-validity"),
]


@pytest.mark.parametrize(("given", "file_name", "message"), BAD_INPUT)
def test_bad_input_is_a_clear_error_and_nothing_is_stored(
    store: Store, policy: Path, given: dict[str, Any], file_name: str | None, message: str
) -> None:
    file = policy.parent / file_name if file_name else policy
    with pytest.raises(AttestationError, match=message):
        store_attestation(store, MAPPINGS, fields(**given), file, now=NOW, templates=TEMPLATES)
    assert store.count_records() == 0
    assert stored_runs(store) == []


@pytest.mark.parametrize("duration", ["1year", "forever", "-5d", "d"])
def test_an_unparseable_duration_is_rejected_before_anything_else(duration: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration|negative"):
        fields(controls=["soc2:CC1.1"], valid_for=duration)


def test_dates_without_an_offset_are_utc() -> None:
    assert parse_instant("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_instant("2026-03-01T10:00:00+02:00") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a date"):
        parse_instant("next tuesday")


# ----------------------------------------------------------------------------------------------- the command


def write_config(tmp_path: Path, db_url: str) -> Path:
    config = tmp_path / "collector.yaml"
    config.write_text(json.dumps({"database": {"url": db_url}, "log": {"format": "json", "level": "warning"}}))
    return config


def run_cli(config: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(config), *args])


def test_attest_command_stores_and_prints_the_record(db_url: str, tmp_path: Path, policy: Path) -> None:
    config = write_config(tmp_path, db_url)
    result = run_cli(
        config, "attest", "--title", "Supplier review: model API vendor", "--by", "Procurement",
        "--template", "supplier-review", "--control", "soc2:CC3.2", "--file", str(policy), "--valid-for", "26w",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "attested_document:supplier-review-model-api-vendor" in result.output
    store = Store(db_url)
    try:
        (rec,) = store.latest_records(EvidenceFilter(kind="attestation.document"))
        assert "soc2:CC9.2" in rec.controls
        assert "soc2:CC3.2" in rec.controls
        assert rec.valid_until is not None
        assert rec.valid_until - rec.observed_at == timedelta(weeks=26)
    finally:
        store.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--control", "soc2:CC1.1", "--file", "nowhere.pdf", "--valid-for", "1d"], "--file: "),
        (
            ["--control", "soc2:CC0.9", "--url", "https://x.example/doc", "--valid-for", "1d"],
            "--control: unknown control",
        ),
        (["--control", "soc2:CC1.1", "--url", "https://x.example/doc", "--valid-until", "2020-01-01"], "in the past"),
        (["--control", "soc2:CC1.1", "--url", "https://x.example/doc", "--valid-for", "1 year"], "--valid-for:"),
        (["--control", "soc2:CC1.1", "--url", "ftp://x.example/doc", "--valid-for", "1d"], "--url:"),
    ],
    ids=["missing-file", "unknown-control", "past-validity", "bad-duration", "bad-url"],
)
def test_attest_command_bad_input_exits_2_and_stores_nothing(
    db_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    config = write_config(tmp_path, db_url)
    result = run_cli(config, "attest", "--title", "t", "--by", "b", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    store = Store(db_url)
    try:
        store.upgrade()
        assert store.count_records() == 0
    finally:
        store.dispose()
