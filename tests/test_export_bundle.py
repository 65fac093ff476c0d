"""Bundles exported from stores seeded through the real runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.export import ExportError, build_request, export_bundle, verify_bundle
from collector.mappings import Mappings, load_mappings
from collector.runner import Runner
from collector.state import State
from collector.store import PreparedRecord, RunRecord, Store, StoredRecord
from tests.helpers import ScriptedConnector, scripted_instance

T0 = datetime(2026, 9, 1, tzinfo=UTC)
CONTROL = "soc2:CC7.1"
CONTROL_FILE = "evidence/soc2/CC7.1.jsonl"
SCAN_DAYS = (0, 1, 2, 12, 13, 30)
"""Daily-ish scans with two planted holes: TTL 7d leaves days 9-12 and 20-30 uncovered."""


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


class ClockedStore(Store):
    """The real store, with the commit time (stored_at) taken from a test clock."""

    now: datetime = T0

    def commit_run(
        self, run: RunRecord, records: Any, *, now: datetime | None = None, **kwargs: Any
    ) -> list[StoredRecord]:
        return super().commit_run(run, records, now=now or self.now, **kwargs)


def collect_at(store: ClockedStore, mappings: Mappings, when: datetime, **settings: Any) -> list[PreparedRecord]:
    """One real run of the scripted connector whose evidence is observed and stored at ``when``."""
    ScriptedConnector.attempts.clear()
    store.now = when
    runner = Runner(store, State(), mappings, clock=lambda: when)
    outcome = runner.run(scripted_instance(observed_at=when.isoformat(), **settings))
    assert outcome.run.status == "succeeded"
    return outcome.records


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings()


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def make_store(url: str, mappings: Mappings, days: tuple[float, ...] = SCAN_DAYS) -> ClockedStore:
    store = ClockedStore(url)
    store.upgrade()
    for n in days:
        collect_at(store, mappings, day(n), fail_subjects=["b"] if n >= 30 else [])
    return store


@pytest.fixture
def seeded(db_url: str, mappings: Mappings) -> Iterator[ClockedStore]:
    store = make_store(db_url, mappings)
    yield store
    store.dispose()


Export = Callable[..., Path]


@pytest.fixture
def export(tmp_path: Path, mappings: Mappings, key: Ed25519PrivateKey) -> Export:
    def run(store: Store, name: str = "bundle.zip", **scope: Any) -> Path:
        scope.setdefault("framework", "soc2")
        request = build_request(mappings, {}, "config-digest", "0.1.0", **scope)
        out = tmp_path / name
        export_bundle(store, request, out, key, clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
        return out

    return run


def read_json(bundle: Path, name: str) -> Any:
    with zipfile.ZipFile(bundle) as zf:
        return json.loads(zf.read(name))


def read_lines(bundle: Path, name: str) -> list[dict[str, Any]]:
    with zipfile.ZipFile(bundle) as zf:
        return [json.loads(line) for line in zf.read(name).splitlines()]


def csv_rows(bundle: Path) -> dict[str, dict[str, str]]:
    with zipfile.ZipFile(bundle) as zf:
        text = zf.read("controls.csv").decode("utf-8-sig")
    return {f"{r['framework']}:{r['control']}": r for r in csv.DictReader(io.StringIO(text))}


def test_a_period_with_planted_gaps_reports_exactly_those_gaps(seeded: ClockedStore, export: Export) -> None:
    bundle = export(seeded, controls=[CONTROL], period=(day(0), day(35)))
    coverage = read_json(bundle, "coverage.json")
    [control] = coverage["controls"]
    assert control["control"] == CONTROL
    assert [(g["start"], g["end"], g["reason"]) for g in control["gaps"]] == [
        (day(9).isoformat(), day(12).isoformat(), "stale"),
        (day(20).isoformat(), day(30).isoformat(), "stale"),
    ]
    assert control["covered_share"] == pytest.approx(22 / 35, abs=1e-6)
    row = csv_rows(bundle)[CONTROL]
    assert (row["gap_count"], row["status_at_as_of"], row["records"]) == ("2", "fresh", "12")
    assert row["newest_observation"] == day(30).isoformat()
    assert row["check_outcomes"] == "container.no_fixable_vulns: 1 fail, 1 pass"
    assert verify_bundle(bundle).records == 12


def test_a_period_holds_the_state_at_its_start_and_everything_stored_within_it(
    seeded: ClockedStore, export: Export
) -> None:
    bundle = export(seeded, controls=[CONTROL], period=(day(5), day(20)))
    records = read_lines(bundle, CONTROL_FILE)
    stored = sorted({r["stored_at"] for r in records})
    assert stored == [day(2).isoformat(), day(12).isoformat(), day(13).isoformat()]
    assert len(records) == 6
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    manifest = read_json(bundle, "manifest.json")
    assert manifest["period"] == {"start": day(5).isoformat(), "end": day(20).isoformat()}
    assert manifest["counts"]["records"] == 6


def test_as_of_shows_the_latest_record_per_subject_stored_by_then(seeded: ClockedStore, export: Export) -> None:
    before = export(seeded, "before.zip", controls=[CONTROL], as_of=day(29))
    after = export(seeded, "after.zip", controls=[CONTROL], as_of=day(31))
    records = read_lines(before, CONTROL_FILE)
    assert {r["subject_id"] for r in records} == {"a", "b"}
    assert {r["observed_at"] for r in records} == {day(13).isoformat()}
    assert csv_rows(before)[CONTROL]["check_outcomes"] == "container.no_fixable_vulns: 2 pass"
    assert csv_rows(before)[CONTROL]["status_at_as_of"] == "stale"
    assert csv_rows(after)[CONTROL]["check_outcomes"] == "container.no_fixable_vulns: 1 fail, 1 pass"
    assert read_json(before, "coverage.json")["period"] is None


def test_an_export_for_a_past_period_is_reproducible_later(
    seeded: ClockedStore, export: Export, mappings: Mappings
) -> None:
    first = export(seeded, "first.zip", period=(day(0), day(20)))
    collect_at(seeded, mappings, day(40), subjects=["a", "b", "c"], fail_subjects=["a"])
    second = export(seeded, "second.zip", period=(day(0), day(20)))
    assert read_json(first, "manifest.json") == read_json(second, "manifest.json")
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        assert a.namelist() == b.namelist()
        assert all(a.read(n) == b.read(n) for n in a.namelist())
    later = export(seeded, "later.zip", period=(day(0), day(41)))
    assert (
        read_json(later, "manifest.json")["counts"]["records"]
        == read_json(first, "manifest.json")["counts"]["records"] + 5
    )


def test_the_same_store_and_as_of_give_the_same_manifest_apart_from_the_timestamp(
    seeded: ClockedStore, mappings: Mappings, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    request = build_request(mappings, {}, "c", "0.1.0", framework="soc2", as_of=day(14))
    one = export_bundle(seeded, request, tmp_path / "one.zip", key, clock=lambda: day(50)).manifest
    collect_at(seeded, mappings, day(45))
    two = export_bundle(seeded, request, tmp_path / "two.zip", key, clock=lambda: day(51)).manifest
    assert one.pop("generated_at") != two.pop("generated_at")
    assert one == two


def test_every_file_is_listed_with_size_and_hash_and_the_signature_verifies(
    seeded: ClockedStore, export: Export, key: Ed25519PrivateKey
) -> None:
    bundle = export(seeded, period=(day(0), day(35)))
    manifest = read_json(bundle, "manifest.json")
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        for entry in manifest["files"]:
            assert len(zf.read(entry["path"])) == entry["size"]
        signature = zf.read("signature")
        key.public_key().verify(signature, zf.read("manifest.json"))
    assert names == {f["path"] for f in manifest["files"]} | {"manifest.json", "signature"}
    assert {"controls.csv", "coverage.json", "index.html", "assessment-results.json", CONTROL_FILE} <= names
    assert manifest["generator"] == {"name": "evidence-collector", "version": "0.1.0"}
    assert manifest["config_hash"] == "config-digest"
    assert manifest["framework"]["id"] == "soc2"
    assert manifest["chain_anchor"]["seq"] == 12
    assert manifest["counts"]["files"] == len(manifest["files"])


def test_records_carry_hashes_and_provenance_that_match_the_store(seeded: ClockedStore, export: Export) -> None:
    bundle = export(seeded, controls=[CONTROL], period=(day(0), day(35)))
    records = {r["id"]: r for r in read_lines(bundle, CONTROL_FILE)}
    assert seeded.verify() == (12, None)
    from collector.store import EvidenceFilter

    for latest in seeded.latest_records(EvidenceFilter()):
        line = records[latest.id]
        assert (line["content_sha256"], line["chain_hash"], line["prev_hash"]) == (
            latest.content_sha256,
            latest.chain_hash,
            latest.prev_hash,
        )
        assert line["source"] == latest.source
        assert line["run_id"] == latest.run_id
        assert line["payload"] == latest.payload
        assert CONTROL in line["controls"]


def test_a_whole_framework_lists_every_mapped_control(seeded: ClockedStore, export: Export, mappings: Mappings) -> None:
    bundle = export(seeded, framework="iso27001", as_of=day(35))
    rows = csv_rows(bundle)
    mapped = {str(ref) for ref in mappings.mapped_controls("iso27001")}
    assert set(rows) == mapped
    assert rows["iso27001:A.8.8"]["records_file"] == "evidence/iso27001/A.8.8.jsonl"
    untouched = [r for name, r in rows.items() if name != "iso27001:A.8.8" and r["records"] == "0"]
    assert all(r["status_at_as_of"] == "missing" for r in untouched)


# -- bad input: a clear error and nothing left behind -------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path, mappings: Mappings) -> Iterator[ClockedStore]:
    store = make_store(f"sqlite:///{tmp_path / 'db' / 'evidence.db'}", mappings)
    yield store
    store.dispose()


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"framework": "pci", "as_of": day(5)}, "unknown framework 'pci'"),
        ({"framework": "soc2", "controls": ["CC99.9"], "as_of": day(5)}, "unknown control 'CC99.9'"),
        ({"framework": "soc2", "controls": ["iso27001:A.8.8"], "as_of": day(5)}, "belongs to iso27001"),
        ({"framework": "soc2", "period": (day(3), day(3))}, "empty period"),
        ({"framework": "soc2"}, "exactly one of --as-of"),
    ],
)
def test_bad_scope_is_refused_before_anything_is_written(
    mappings: Mappings, scope: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExportError, match=message):
        build_request(mappings, {}, "c", "0.1.0", **scope)


def _left_behind(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "db")


def test_an_as_of_before_the_first_record_is_refused(
    sqlite_store: ClockedStore, export: Export, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match="before the first record was stored"):
        export(sqlite_store, as_of=day(-1))
    assert _left_behind(tmp_path) == []


def test_an_as_of_in_the_future_is_refused(
    sqlite_store: ClockedStore, mappings: Mappings, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    """Evidence stored between now and then would change the bundle: it would not be reproducible."""
    request = build_request(mappings, {}, "c", "0.1.0", framework="soc2", as_of=day(40))
    with pytest.raises(ExportError, match="is in the future"):
        export_bundle(sqlite_store, request, tmp_path / "b.zip", key, clock=lambda: day(39))
    assert _left_behind(tmp_path) == []


def test_a_period_without_evidence_in_scope_is_refused(
    sqlite_store: ClockedStore, export: Export, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match=r"no evidence for soc2:CC6\.1"):
        export(sqlite_store, controls=["CC6.1"], period=(day(0), day(10)))
    assert _left_behind(tmp_path) == []


def test_an_empty_store_is_refused(tmp_path: Path, export: Export) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db' / 'empty.db'}")
    store.upgrade()
    with pytest.raises(ExportError, match="store is empty"):
        export(store, as_of=day(1))
    assert _left_behind(tmp_path) == []


def test_an_unwritable_destination_is_refused(
    sqlite_store: ClockedStore, mappings: Mappings, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    request = build_request(mappings, {}, "c", "0.1.0", framework="soc2", as_of=day(5))
    with pytest.raises(ExportError, match="does not exist"):
        export_bundle(sqlite_store, request, tmp_path / "nowhere" / "b.zip", key)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        if not _is_root():
            with pytest.raises(ExportError, match="not writable"):
                export_bundle(sqlite_store, request, locked / "b.zip", key)
        with pytest.raises(ExportError, match="is a directory"):
            export_bundle(sqlite_store, request, locked, key)
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def test_a_failure_midway_leaves_no_partial_bundle(
    sqlite_store: ClockedStore, mappings: Mappings, key: Ed25519PrivateKey, tmp_path: Path, monkeypatch: Any
) -> None:
    from collector.export import bundle as bundle_module

    def broken(*_: Any, **__: Any) -> bytes:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bundle_module, "index_html", broken)
    request = build_request(mappings, {}, "c", "0.1.0", framework="soc2", as_of=day(5))
    out = tmp_path / "b.zip"
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_bundle(sqlite_store, request, out, key)
    assert _left_behind(tmp_path) == []


def test_signing_keys_missing_unreadable_or_not_ed25519_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from collector.export import load_signing_key
    from collector.export.signing import SIGNING_KEY_ENV

    with pytest.raises(ExportError, match="no signing key"):
        load_signing_key(None, {})
    with pytest.raises(ExportError, match="cannot read"):
        load_signing_key(tmp_path / "absent.pem", {})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ExportError, match="not a usable PEM private key"):
        load_signing_key(garbage, {})
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(ExportError, match="Ed25519"):
        load_signing_key(None, {SIGNING_KEY_ENV: rsa_pem})
    ed_pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    assert isinstance(load_signing_key(None, {SIGNING_KEY_ENV: ed_pem}), Ed25519PrivateKey)


def test_openssh_and_password_protected_keys_load(tmp_path: Path) -> None:
    from collector.export import load_signing_key
    from collector.export.signing import SIGNING_KEY_PASSWORD_ENV

    key = Ed25519PrivateKey.generate()
    openssh = tmp_path / "id_ed25519"
    openssh.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    assert load_signing_key(openssh, {}).public_key() == key.public_key()
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    assert load_signing_key(locked, {SIGNING_KEY_PASSWORD_ENV: "s3cret"}).public_key() == key.public_key()
    with pytest.raises(ExportError, match="not a usable PEM private key"):
        load_signing_key(locked, {SIGNING_KEY_PASSWORD_ENV: "wrong"})


def test_records_tagged_with_several_controls_are_in_each_controls_file(db_url: str, tmp_path: Path) -> None:
    import shutil

    from collector.mappings import default_mappings_dir

    root = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir() / "catalogs", root / "catalogs")
    (root / "evidence").mkdir()
    (root / "evidence" / "scan.yaml").write_text(
        """
kinds:
  - kind: container.scan
    title: Container image vulnerability scan
    freshness: {ttl: 7d}
    controls:
      - {control: soc2:CC7.1, relationship: supports, rationale: Scans detect vulnerabilities in components.}
      - {control: soc2:CC7.2, relationship: supports, rationale: Scans are part of monitoring the components.}
checks:
  - check: container.no_fixable_vulns
    kind: container.scan
    controls:
      - {control: soc2:CC7.1, relationship: supports, rationale: Open fixable findings show no remediation.}
"""
    )
    store = make_store(db_url, load_mappings(root))
    try:
        request = build_request(load_mappings(root), {}, "c", "0.1.0", framework="soc2", period=(day(0), day(35)))
        out = tmp_path / "two.zip"
        export_bundle(store, request, out, Ed25519PrivateKey.generate())
    finally:
        store.dispose()
    one, two = read_lines(out, CONTROL_FILE), read_lines(out, "evidence/soc2/CC7.2.jsonl")
    assert len(one) == len(two) == 12
    assert [r["id"] for r in one] == [r["id"] for r in two]
    rows = csv_rows(out)
    assert rows["soc2:CC7.2"]["check_outcomes"] == ""
    assert rows["soc2:CC7.2"]["gap_count"] == rows["soc2:CC7.1"]["gap_count"] == "2"
    assert verify_bundle(out).records == 24
