"""The ready metric says what /readyz says, and a bundle's chain anchor is compared with the live store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from collector.cli import app
from collector.store import Store
from collector.store.guards import archive_deletes
from tests.reliability.conftest import Daemon, plugin_path, slow_connector, write_config
from tests.test_daemon import free_port, wait_for


@pytest.mark.timeout(60)
def test_the_ready_metric_follows_readyz_and_checkpoints_reach_the_sink(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "cp.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    sink = tmp_path / "checkpoints"
    extra = f'checkpoints: {{destination: "{sink}", every: 1s, sign_key_file: "{pem}"}}'
    port = free_port()
    daemon = Daemon(write_config(tmp_path, f"sqlite:///{db}", port, slow_connector(interval="1s"), extra), port,
                    plugin_path(tmp_path))  # fmt: skip
    try:
        wait_for(lambda: daemon.readyz()[0] == 200, timeout=30, what="/readyz")
        assert daemon.value("evidence_collector_ready") == 1
        wait_for(lambda: (daemon.value("evidence_collector_chain_seq") or 0) >= 8, timeout=30, what="chain_seq")
        [(labels, value)] = daemon.metric("evidence_collector_chain_head_info")
        assert len(labels["chain_hash"]) == 64 and value == 1
        wait_for(lambda: len(list(sink.glob("checkpoint-*.json"))) >= 2, timeout=15, what="checkpoints")
        db.unlink()
        wait_for(lambda: daemon.readyz()[0] == 503, timeout=10, what="/readyz to fail")
        assert daemon.value("evidence_collector_ready") == 0
    finally:
        code, _ = daemon.stop()
    assert code == 0
    checkpoint = json.loads(sorted(sink.glob("checkpoint-*.json"))[-1].read_text())
    assert checkpoint["checkpoint"]["seq"] >= 8


@pytest.mark.timeout(60)
def test_verify_bundle_store_names_a_truncated_store(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    config = tmp_path / "c.yaml"
    root = Path(__file__).resolve().parents[2]
    config.write_text(
        f'database: {{url: "sqlite:///{db}"}}\nconnectors:\n  - name: scans\n    type: container_scan\n'
        f'    settings: {{paths: ["{root}/deploy/demo/reports/*.json"]}}\n'
    )
    runner = CliRunner()
    for _ in range(2):
        assert runner.invoke(app, ["--config", str(config), "collect"]).exit_code in (0, 1)
    key = tmp_path / "k.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    bundle = tmp_path / "b.zip"
    result = runner.invoke(
        app,
        [
            "export",
            "--config",
            str(config),
            "--framework",
            "soc2",
            "--out",
            str(bundle),
            "--sign-key",
            str(key),
            "--as-of",
            datetime.now(UTC).isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    ok = runner.invoke(app, ["verify-bundle", str(bundle), "--store", "--config", str(config)])
    assert ok.exit_code == 0, ok.output
    assert "continues the bundle's chain anchor" in ok.output
    store = Store(f"sqlite:///{db}")
    with store.engine.begin() as conn, archive_deletes(conn, reason="an attacker"):
        last = conn.execute(sa.text("SELECT max(seq) FROM evidence")).scalar_one()
        conn.execute(sa.text("DELETE FROM evidence WHERE seq > :s"), {"s": last - 2})
    store.dispose()
    bad = runner.invoke(app, ["verify-bundle", str(bundle), "--store", "--config", str(config)])
    assert bad.exit_code == 1
    assert "truncated" in bad.output
