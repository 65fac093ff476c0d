"""The console: sign-in with CSRF, pages without inline script or style, redirects, roles; then a real browser
(Debian's chromium through Playwright) signs in, opens the overview, a red control and its evidence."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.http import WebServer, bind
from tests.webapp import TOKENS, WebApp, collect, web_app, write_config

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebApp]:
    app = web_app(collect(write_config(tmp_path_factory.mktemp("console"))))
    yield app
    app.store.dispose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def sign_in(client: TestClient, role: str) -> None:
    page = client.get("/login")
    response = client.post(
        "/login", data={"token": TOKENS[role], "csrf": csrf_of(page.text), "next": "/"}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def test_pages_need_a_session_and_keep_to_the_csp(web: WebApp) -> None:
    with TestClient(web.app) as client:
        response = client.get("/controls/soc2/CC7.1", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=/controls/soc2/CC7.1"
        sign_in(client, "viewer")
        overview = client.get("/")
        assert overview.status_code == 200
        cookie = overview.headers.get("set-cookie", "")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        red = re.findall(r'<tr class="red">\s*<th scope="row"><a href="([^"]+)"', overview.text)
        assert red, "the failing image makes controls red"
        pages = [overview, client.get(red[0]), client.get("/connectors"), client.get("/coverage?framework=soc2")]
        record = re.search(r'href="(/evidence/[^"]+)"', pages[1].text)
        assert record
        pages.append(client.get(record.group(1)))
        for page in pages:
            assert page.status_code == 200, page.url
            assert "<script" not in page.text and " style=" not in page.text and "<style" not in page.text
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "Chain position" in pages[-1].text and "&#34;" in pages[-1].text, "payload pretty-printed, escaped"
        assert client.get("/access-log").status_code == 403, "the access log is for admins"


def test_forms_without_the_csrf_token_are_refused(web: WebApp) -> None:
    with TestClient(web.app) as client:
        client.get("/login")
        response = client.post("/login", data={"token": TOKENS["admin"], "csrf": "forged"}, follow_redirects=False)
        assert response.status_code == 403
        assert client.post("/login", data={"token": TOKENS["admin"]}, follow_redirects=False).status_code == 403
        wrong = client.post("/login", data={"token": "nope", "csrf": csrf_of(client.get("/login").text)})
        assert wrong.status_code == 401 and "not valid" in wrong.text


def test_sign_in_never_redirects_off_site(web: WebApp) -> None:
    with TestClient(web.app) as client:
        page = client.get("/login")
        response = client.post(
            "/login",
            data={"token": TOKENS["viewer"], "csrf": csrf_of(page.text), "next": "//evil.example/"},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/"


@pytest.fixture(scope="module")
def served(web: WebApp) -> Iterator[str]:
    sock = bind("127.0.0.1", 0, 128)
    server = WebServer(
        web.app, sock, max_connections=256, backlog=128, header_timeout_seconds=10, keep_alive_timeout_seconds=5
    )
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_in_a_browser_sign_in_open_a_red_control_and_its_evidence(served: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for name, viewport in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{served}/")
            assert page.url.startswith(f"{served}/login")
            page.get_by_label("API token").fill(TOKENS["viewer"])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{served}/")
            page.screenshot(path=str(shots / f"overview-{name}.png"), full_page=True)
            page.locator("tr.red th a").first.click()
            page.wait_for_url(re.compile(r".*/controls/.*"))
            assert page.get_by_role("heading", name="Latest records").is_visible()
            page.screenshot(path=str(shots / f"control-{name}.png"), full_page=True)
            page.locator("a[href^='/evidence/']").first.click()
            page.wait_for_url(re.compile(r".*/evidence/.*"))
            assert page.get_by_role("heading", name="Payload").is_visible()
            page.screenshot(path=str(shots / f"record-{name}.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"] + 1, f"{name}: the page scrolls sideways ({width}px)"
            page.close()
        browser.close()
    assert not errors, f"the browser reported errors (a CSP violation?): {errors}"
