"""The read API and access control, in process (httpx through Starlette's TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from collector.config import load_and_resolve
from collector.web import SECURITY_HEADERS
from tests.webapp import TOKENS, WebApp, bearer, collect, web_app, write_config


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebApp]:
    loaded = collect(write_config(tmp_path_factory.mktemp("web")))
    app = web_app(loaded)
    yield app
    app.store.dispose()


@pytest.fixture(scope="module")
def client(web: WebApp) -> Iterator[TestClient]:
    with TestClient(web.app, client=("10.1.2.3", 5000)) as c:
        yield c


def test_metrics_and_health_need_no_credentials(client: TestClient) -> None:
    assert client.get("/healthz").text == "ok\n"
    assert client.get("/readyz").status_code == 200
    body = client.get("/metrics").text
    assert "evidence_collector_evidence_status" in body
    assert client.get("/nope").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/api/v1/controls", "/api/v1/evidence", "/api/v1/connectors", "/api/v1/coverage", "/api/v1/runs", "/api/v1/me"],
)
def test_unauthenticated_requests_are_refused(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get(path, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert client.get(path, headers={"Authorization": f"Basic {TOKENS['admin']}"}).status_code == 401


def test_a_viewer_may_not_read_the_access_log(client: TestClient) -> None:
    assert client.get("/api/v1/access-log", headers=bearer("viewer")).status_code == 403
    assert client.get("/api/v1/access-log", headers=bearer("attester")).status_code == 403
    assert client.get("/api/v1/access-log", headers=bearer("admin")).status_code == 200


def test_controls_red_first_with_status_age_ttl_and_failures(client: TestClient) -> None:
    doc = client.get("/api/v1/controls", params={"framework": "soc2"}, headers=bearer("viewer")).json()
    rows = doc["controls"]
    assert rows and all(r["framework"] == "soc2" for r in rows)
    reds = [r["red"] for r in rows]
    assert reds == sorted(reds, reverse=True), "red controls come first"
    failing = [r for r in rows if r["failures"] > 0]
    assert failing, "the demo reports carry a failing image"
    assert all(r["red"] and r["failing_checks"] for r in failing)
    cc71 = next(r for r in rows if r["control"] == "CC7.1")
    assert cc71["status"] == "fresh" and cc71["ttl_seconds"] > 0 and cc71["coverage"] == "automated"
    assert client.get("/api/v1/controls", params={"framework": "nope"}, headers=bearer("viewer")).status_code == 404


def test_one_control_has_records_and_gaps_over_the_period(client: TestClient) -> None:
    doc = client.get(
        "/api/v1/controls/soc2/CC7.1",
        params={"since": "2025-01-01T00:00:00Z"},
        headers=bearer("viewer"),
    ).json()
    assert doc["latest_records"], doc
    assert all("soc2:CC7.1" in r["controls"] for r in doc["latest_records"])
    gaps = doc["gaps"]
    assert gaps and gaps[0]["start"].startswith("2025-01-01"), "no evidence before the first collection: a gap"
    assert client.get("/api/v1/controls/soc2/NOPE", headers=bearer("viewer")).status_code == 404


def test_evidence_filters_cursor_pages_and_payload_on_request(client: TestClient, web: WebApp) -> None:
    total = web.store.count_records()
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/evidence", params=params, headers=bearer("viewer")).json()
        seen += [r["id"] for r in page["records"]]
        assert all("payload" not in r or r["payload"] is None for r in page["records"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == total
    failing = client.get(
        "/api/v1/evidence", params={"result": "fail", "payload": "true"}, headers=bearer("viewer")
    ).json()["records"]
    assert failing and all(any(c["result"] == "fail" for c in r["checks"]) for r in failing)
    assert all(r["payload"] is not None for r in failing)
    one = client.get(f"/api/v1/evidence/{failing[0]['id']}", headers=bearer("viewer")).json()
    assert one["payload"] == failing[0]["payload"]
    assert one["chain"]["head_seq"] >= one["chain"]["seq"] == one["seq"]
    assert client.get("/api/v1/evidence/no-such-id", headers=bearer("viewer")).status_code == 404
    naive = client.get("/api/v1/evidence", params={"since": "2026-01-01T00:00:00"}, headers=bearer("viewer"))
    assert naive.status_code == 400


def test_connectors_runs_and_coverage(client: TestClient) -> None:
    connectors = client.get("/api/v1/connectors", headers=bearer("viewer")).json()
    assert [c["name"] for c in connectors] == ["scans"]
    runs = client.get("/api/v1/runs", params={"instance": "scans"}, headers=bearer("viewer")).json()
    assert runs and runs[0]["problems"], "the truncated report is a problem of the run"
    coverage = client.get("/api/v1/coverage", params={"framework": "soc2"}, headers=bearer("viewer")).json()
    assert coverage["frameworks"][0]["framework"] == "soc2"


def test_openapi_is_3_1_and_lists_the_read_operations(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/api/v1/controls", "/api/v1/evidence", "/api/v1/evidence/{record_id}", "/api/v1/access-log"} <= set(
        doc["paths"]
    )


def test_security_headers_on_api_and_console(client: TestClient) -> None:
    for path in ("/api/v1/controls", "/login"):
        response = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
    assert "unsafe-inline" not in SECURITY_HEADERS["content-security-policy"]
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["content-security-policy"]


def test_every_request_is_in_the_chained_access_log(client: TestClient, web: WebApp) -> None:
    client.get("/api/v1/evidence", params={"kind": "container.scan"}, headers=bearer("viewer"))
    client.get("/api/v1/controls")
    log = client.get("/api/v1/access-log", params={"verify": "true", "limit": 5}, headers=bearer("admin")).json()
    assert log["chain_intact"] is True and log["chain_checked"] >= 3
    newest = log["entries"]
    refused = next(e for e in newest if e["target"] == "/api/v1/controls")
    assert (refused["principal"], refused["status"], refused["client"]) == ("-", 401, "10.1.2.3")
    read = next(e for e in newest if e["target"] == "/api/v1/evidence?kind=container.scan")
    assert (read["principal"], read["role"], read["via"], read["status"]) == ("viewer-user", "viewer", "token", 200)
    with web.store.engine.begin() as conn:
        conn.execute(text("UPDATE access_log SET status = 200 WHERE seq = :seq"), {"seq": refused["seq"]})
    log = client.get("/api/v1/access-log", params={"verify": "true"}, headers=bearer("admin")).json()
    assert log["chain_intact"] is False, "an altered entry breaks the chain"
    with web.store.engine.begin() as conn:
        conn.execute(text("UPDATE access_log SET status = 401 WHERE seq = :seq"), {"seq": refused["seq"]})


def test_no_response_leaves_without_its_access_log_entry(tmp_path: Path) -> None:
    loaded = collect(write_config(tmp_path))
    app = web_app(loaded)
    with app.store.engine.begin() as conn:
        conn.execute(text("DROP TABLE access_log"))
    with TestClient(app.app) as c:
        response = c.get("/api/v1/controls", headers=bearer("viewer"))
    assert response.status_code == 503
    assert "access log" in response.json()["detail"]
    app.store.dispose()


def proxy_app(tmp_path: Path) -> WebApp:
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            "  auth:\n", "  auth:\n    proxy: {trusted: [10.0.0.0/8], roles: {carol: admin}, default_role: viewer}\n"
        )
    )
    collect(config)
    return web_app(load_and_resolve(config))


def test_a_proxy_identity_header_is_believed_only_from_the_proxy(tmp_path: Path) -> None:
    app = proxy_app(tmp_path)
    header = {"X-Forwarded-User": "carol"}
    with TestClient(app.app, client=("10.9.9.9", 1)) as from_proxy:
        me = from_proxy.get("/api/v1/me", headers=header).json()
        assert me == {"principal": "carol", "role": "admin", "via": "proxy"}
        assert from_proxy.get("/api/v1/me", headers={"X-Forwarded-User": "dave"}).json()["role"] == "viewer"
    with TestClient(app.app, client=("192.0.2.7", 1)) as elsewhere:
        forged = elsewhere.get("/api/v1/access-log", headers=header)
        assert forged.status_code == 403
        assert "proxy" in forged.json()["detail"]
        assert elsewhere.get("/api/v1/me", headers={**header, **bearer("admin")}).status_code == 403
    app.store.dispose()


def test_tokens_from_a_mounted_secret_file(tmp_path: Path) -> None:
    from collector.config import AuthConfig
    from collector.web.auth import Authenticator, Denied, token_sha256

    secret = tmp_path / "tokens.yaml"
    secret.write_text(f"- {{name: auditor, role: viewer, sha256: {token_sha256('s3cret-token')}}}\n")
    auth = Authenticator(AuthConfig(tokens_file=secret))
    assert auth.identify("127.0.0.1", {"authorization": "Bearer s3cret-token"}, None).principal == "auditor"
    secret.write_text("[]\n")
    with pytest.raises(Denied):
        auth.identify("127.0.0.1", {"authorization": "Bearer s3cret-token"}, None)
    with pytest.raises(Denied):
        auth.identify("127.0.0.1", {}, None)
