"""The bundle's report in a real browser (Debian's Chromium through Playwright, no browser download) and printed
to PDF by `export --pdf`: no console errors, nothing fetched, every chart drawn with its series."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from collector.export import ExportError, verify_bundle
from collector.export.pdf import find_chromium
from collector.mappings import Mappings
from tests.connectors.test_model_monitor import prometheus_url  # noqa: F401 - fixture
from tests.test_export_bundle import ClockedStore
from tests.test_export_dossier import bundle, export, mappings, store  # noqa: F401 - fixtures

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "export-dossier.png"


def test_the_report_renders_every_chart_with_no_console_error_and_nothing_fetched(
    bundle: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(tmp_path)
    charts = json.loads((tmp_path / "charts" / "index.json").read_text())["charts"]
    expected = {c["files"]["svg"].removeprefix("charts/").removesuffix(".svg"): len(c["series"]) for c in charts}
    errors: list[str] = []
    fetched: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda req: fetched.append(req.url) if not req.url.startswith("file://") else None)
        page.goto((tmp_path / "index.html").as_uri())
        page.wait_for_load_state("load")
        figures = page.locator("figure[id^=chart-]")
        assert figures.count() == len(expected) == 2
        for i in range(figures.count()):
            figure = figures.nth(i)
            slug = (figure.get_attribute("id") or "").removeprefix("chart-")
            svg = figure.locator("svg.chart")
            box = svg.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
            drawn = svg.locator("g.series")
            match = [n for s, n in expected.items() if "".join(ch if ch.isalnum() else "-" for ch in s) == slug]
            assert match, slug
            assert drawn.count() == match[0]
            for j in range(drawn.count()):
                assert drawn.nth(j).locator("polyline, circle").count() > 0
        assert page.locator("table.matrix tbody tr").count() >= 1
        assert page.locator("section.control").count() >= 1
        if os.environ.get("EVIDENCE_UPDATE_SCREENSHOTS") == "1":
            page.locator("figure[id^=chart-]").first.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOT), full_page=False)
        browser.close()
    assert errors == []
    assert fetched == []


def test_export_pdf_prints_the_report_with_its_hash_in_the_signed_manifest(
    store: ClockedStore,  # noqa: F811
    mappings: Mappings,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = export(store, mappings, tmp_path / "with-pdf.zip", pdf=True)
    report = verify_bundle(out)
    [listed] = [f for f in report.manifest["files"] if f["path"] == "report.pdf"]
    assert listed["size"] > 1000
    with zipfile.ZipFile(out) as zf:
        (tmp_path / "report.pdf").write_bytes(zf.read("report.pdf"))
    info = subprocess.run(["pdfinfo", str(tmp_path / "report.pdf")], capture_output=True, text=True, check=True)
    pages = int(next(line.split()[-1] for line in info.stdout.splitlines() if line.startswith("Pages:")))
    assert pages > 0
    text = subprocess.run(
        ["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Evidence report" in text and "CC7.2" in text and "Master control matrix" in text


def test_pdf_without_chromium_on_path_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ExportError, match=r"--pdf needs headless Chromium.*apt-get install chromium"):
        find_chromium()
