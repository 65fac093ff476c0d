"""The chain anchored outside the database: truncation and re-chaining found through a signed checkpoint; the
append-only guard refuses UPDATE and DELETE, except through the archive's bypass; a bundle's anchor compared with
the live store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from collector.checkpoint import write_checkpoint
from collector.cli import app
from collector.store import PreparedRecord, RunRecord, Store
from collector.store.guards import archive_deletes
from tests.reliability.conftest import Cluster

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _run(store: Store, n: int, at: datetime) -> None:
    run_id = str(uuid.uuid4())
    run = RunRecord(run_id, "scripted", "one", at, at, "succeeded", n, config_hash="c" * 64)
    records = [
        PreparedRecord(
            id=str(uuid.uuid4()),
            run_id=run_id,
            connector_type="scripted",
            instance="one",
            connector_version="1",
            kind="container.scan",
            subject_type="image",
            subject_id=f"img-{i}",
            observed_at=at,
            valid_until=None,
            collected_at=at,
            content_sha256=f"{i:064x}",
            payload_json="{}",
            source="test",
            config_hash="c" * 64,
            controls=[],
            checks=[],
        )
        for i in range(n)
    ]
    for rec in records:
        from collector.canonical import sha256_hex

        rec.payload_json = f'{{"i":"{rec.subject_id}"}}'
        rec.content_sha256 = sha256_hex(rec.payload_json.encode())
    store.commit_run(run, records, now=at)


def _keys(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    key = Ed25519PrivateKey.generate()
    public = tmp_path / "checkpoint-key.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key, public


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f'database: {{url: "{url}"}}\n')
    return path


def _verify(config: Path, checkpoints: Path, public: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["verify", "--config", str(config), "--checkpoint", str(checkpoints), "--public-key", str(public)]
    )
    return result.exit_code, result.output


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'e.db'}"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.url


def test_truncation_and_re_chaining_pass_plain_verify_but_not_the_checkpoint(tmp_path: Path, url: str) -> None:
    store = Store(url)
    store.upgrade()
    for minute in range(3):
        _run(store, 5, NOW + timedelta(minutes=minute))
    key, public = _keys(tmp_path)
    checkpoints = tmp_path / "checkpoints"
    cp = write_checkpoint(store, checkpoints, key, NOW + timedelta(minutes=3))
    assert cp.seq == 15
    config = _config(tmp_path, url)
    code, out = _verify(config, checkpoints, public)
    assert code == 0, out
    assert "continues the checkpoint" in out

    _run(store, 5, NOW + timedelta(minutes=4))
    assert _verify(config, checkpoints, public)[0] == 0, "a chain that grew past the checkpoint continues it"

    with store.engine.begin() as conn, archive_deletes(conn, reason="an attacker with SQL access"):
        conn.execute(sa.text("DELETE FROM evidence WHERE seq > 10"))
        conn.execute(sa.text("UPDATE chain_head SET seq = 10, chain_hash = (SELECT chain_hash FROM evidence "
                             "WHERE seq = 10)"))  # fmt: skip
    plain = CliRunner().invoke(app, ["verify", "--config", str(config)])
    assert plain.exit_code == 0, "the truncated chain is internally consistent: only the checkpoint shows it"
    code, out = _verify(config, checkpoints, public)
    assert code == 1
    assert "truncated" in out and "seq 15" in out and "ends at seq 10" in out

    # re-chain: empty the store and rebuild a chain of the same length with the project's own code
    with store.engine.begin() as conn, archive_deletes(conn, reason="an attacker with SQL access"):
        conn.execute(sa.text("DELETE FROM evidence"))
        conn.execute(sa.text("UPDATE chain_head SET seq = 0, chain_hash = :g"), {"g": "0" * 64})
    if store.dialect == "postgresql":  # SQLite reuses rowids from max(seq) + 1 by itself
        with store.engine.begin() as conn:
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('evidence', 'seq'), 1, false)"))
    for minute in range(4):
        _run(store, 5, NOW + timedelta(minutes=10 + minute))
    assert CliRunner().invoke(app, ["verify", "--config", str(config)]).exit_code == 0
    code, out = _verify(config, checkpoints, public)
    assert code == 1
    assert "re-chained" in out and "seq 15" in out
    store.dispose()


def test_a_checkpoint_signed_by_another_key_or_altered_is_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    store.upgrade()
    _run(store, 3, NOW)
    key, public = _keys(tmp_path)
    checkpoints = tmp_path / "checkpoints"
    cp = write_checkpoint(store, checkpoints, Ed25519PrivateKey.generate(), NOW)
    code, out = _verify(_config(tmp_path, store.url), checkpoints, public)
    assert code == 1 and "not by the given key" in out
    assert cp.path is not None
    cp.path.unlink()
    cp = write_checkpoint(store, checkpoints, key, NOW)
    assert cp.path is not None
    cp.path.chmod(0o644)
    cp.path.write_text(cp.path.read_text().replace('"seq": 3', '"seq": 2'))
    code, out = _verify(_config(tmp_path, store.url), checkpoints, public)
    assert code == 1 and "does not verify" in out
    store.dispose()


def test_checkpoints_are_never_overwritten(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    store.upgrade()
    key, _ = _keys(tmp_path)
    write_checkpoint(store, tmp_path / "cp", key, NOW)
    with pytest.raises(FileExistsError):
        write_checkpoint(store, tmp_path / "cp", key, NOW)
    store.dispose()


def test_the_database_refuses_update_and_delete_of_evidence_except_through_the_archive(url: str) -> None:
    store = Store(url)
    store.upgrade()
    _run(store, 3, NOW)
    for sql in (
        "UPDATE evidence SET source = 'elsewhere' WHERE seq = 2",
        "DELETE FROM evidence WHERE seq = 3",
        "UPDATE evidence_content SET payload = '{}'",
        "DELETE FROM collection_runs",
    ):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(sa.text(sql))
    if store.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE evidence CASCADE"))
    assert store.verify() == (3, None)
    with store.engine.begin() as conn, archive_deletes(conn, reason="retention"):
        conn.execute(sa.text("DELETE FROM evidence WHERE seq = 3"))
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM evidence WHERE seq = 2")), "the guard is back after the archive's transaction"
    assert store.count_records() == 2
    store.dispose()


def test_verify_reads_one_snapshot_while_writers_commit(url: str) -> None:
    import threading

    store = Store(url)
    store.upgrade()
    _run(store, 50, NOW)
    stop = threading.Event()

    def write() -> None:
        minute = 1
        while not stop.is_set():
            _run(store, 20, NOW + timedelta(minutes=minute))
            minute += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        results = [store.verify() for _ in range(30)]
    finally:
        stop.set()
        writer.join(10)
    assert [brk for _, brk in results if brk is not None] == []
    assert results[-1][0] > 50, "writers committed while verify ran"
    store.dispose()
