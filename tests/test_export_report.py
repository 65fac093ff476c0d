"""What auditors open: the OSCAL document (validated with compliance-trestle) and index.html (in Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.export import build_request, export_bundle
from collector.export.oscal import oscal_control_id
from collector.mappings import load_mappings
from tests.test_export_bundle import CONTROL, day, make_store

KEY = Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    mappings = load_mappings()
    store = make_store(f"sqlite:///{root / 'evidence.db'}", mappings)
    out = {}
    for name, scope in {
        "period": {"framework": "soc2", "period": (day(0), day(35))},
        "as_of": {"framework": "soc2", "controls": [CONTROL], "as_of": day(13)},
        "nist": {"framework": "nist_ai_rmf", "period": (day(0), day(35))},
    }.items():
        request = build_request(mappings, {}, "c", "0.1.0", **scope)
        out[name] = root / f"{name}.zip"
        export_bundle(store, request, out[name], KEY)
    store.dispose()
    return out


def read(bundle: Path, name: str) -> bytes:
    with zipfile.ZipFile(bundle) as zf:
        return zf.read(name)


def assessment(bundle: Path) -> dict[str, Any]:
    return json.loads(read(bundle, "assessment-results.json"))


@pytest.mark.parametrize("name", ["period", "as_of", "nist"])
def test_the_oscal_assessment_results_validate_against_trestle_models(bundles: dict[str, Path], name: str) -> None:
    models = pytest.importorskip("trestle.oscal.assessment_results")
    document = assessment(bundles[name])
    parsed = models.Model.model_validate(document)
    [result] = parsed.assessment_results.results
    assert len(result.findings) == len(result.observations) > 0


def test_findings_link_observations_and_evidence_files_in_the_bundle(bundles: dict[str, Path]) -> None:
    [result] = assessment(bundles["period"])["assessment-results"]["results"]
    observations = {o["uuid"]: o for o in result["observations"]}
    with zipfile.ZipFile(bundles["period"]) as zf:
        names = set(zf.namelist())
    findings = {f["target"]["target-id"]: f for f in result["findings"]}
    cc71 = findings["cc7.1_obj"]
    assert cc71["target"]["status"]["state"] == "not-satisfied"
    assert "2 gap(s)" in cc71["description"]
    [related] = cc71["related-observations"]
    [evidence] = observations[related["observation-uuid"]]["relevant-evidence"]
    assert evidence["href"] in names
    included = [c["control-id"] for c in result["reviewed-controls"]["control-selections"][0]["include-controls"]]
    assert "cc7.1" in included


def test_a_fresh_control_with_passing_checks_is_satisfied(bundles: dict[str, Path]) -> None:
    [result] = assessment(bundles["as_of"])["assessment-results"]["results"]
    [finding] = result["findings"]
    assert finding["target"]["status"] == {"state": "satisfied", "reason": "pass"}
    assert result["start"] == result["end"] == day(13).isoformat()


def test_control_ids_become_oscal_tokens() -> None:
    assert oscal_control_id("MEASURE 2.7") == "measure-2.7"
    assert oscal_control_id("A.8.8") == "a.8.8"
    assert oscal_control_id("5.1") == "_5.1"
    nist = assessment_ids = oscal_control_id("GOVERN 1.1")
    assert re.fullmatch(r"[_a-z][a-z0-9_.\-]*", nist) is not None
    assert assessment_ids == "govern-1.1"


def test_the_oscal_document_is_the_same_for_the_same_window(bundles: dict[str, Path], tmp_path: Path) -> None:
    mappings = load_mappings()
    store = make_store(f"sqlite:///{tmp_path / 'again.db'}", mappings)
    request = build_request(mappings, {}, "c", "0.1.0", framework="soc2", period=(day(0), day(35)))
    export_bundle(store, request, tmp_path / "again.zip", Ed25519PrivateKey.generate())
    store.dispose()
    first = assessment(bundles["period"])
    again = assessment(tmp_path / "again.zip")
    assert first["assessment-results"]["uuid"] == again["assessment-results"]["uuid"]
    strip = re.compile(r"\d+ evidence records")
    assert strip.sub("", json.dumps(first)) == strip.sub("", json.dumps(again))


# -- index.html ---------------------------------------------------------------------------------------


def test_the_report_is_self_contained_and_links_to_each_controls_records(bundles: dict[str, Path]) -> None:
    html = read(bundles["period"], "index.html").decode()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    assert "@import" not in html and "url(" not in html
    with zipfile.ZipFile(bundles["period"]) as zf:
        names = set(zf.namelist())
    links = re.findall(r'href="([^"]+)"', html)
    assert "evidence/soc2/CC7.1.jsonl" in links
    assert all(link in names for link in links)
    assert html.count("<rect") >= 3  # the background and two gaps on CC7.1's timeline


def _png_colours(png: bytes) -> int:
    """Distinct colours of an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8
    assert colour_type in (2, 6)
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        colours.update(bytes(line[i : i + 3]) for i in range(0, stride, channels * 7))
        previous = line
    return len(colours)


@pytest.mark.timeout(120)
def test_the_report_renders_in_headless_chromium_without_console_errors(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    site = tmp_path / "bundle"
    with zipfile.ZipFile(bundles["period"]) as zf:
        zf.extractall(site)
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,900",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            (site / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert shot.exists()
    assert _png_colours(shot.read_bytes()) >= 8
