"""The audit dossier in a bundle: master control matrix, narratives, charts of monitored metrics.

The store is filled by the real runner with the real model_monitor connector querying a real Prometheus that
holds backfilled history (promtool), so the charts are drawn from evidence as it is really stored."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from collector.canonical import content_sha256
from collector.cli import app
from collector.config import ConnectorInstance, ResolvedInstance, RetryPolicy, Schedule
from collector.crosswalk import load_crosswalks
from collector.errors import MappingError
from collector.export import BundleMismatch, build_request, export_bundle, verify_bundle
from collector.export.master_matrix import links_by_control
from collector.export.narratives import load_narratives
from collector.mappings import Mappings, load_mappings
from collector.model import ControlRef
from collector.runner import Runner
from collector.state import State
from connectors.model_monitor import ModelMonitorConnector, ModelMonitorSettings
from tests.connectors.test_model_monitor import HISTORY_START, NOW, prometheus_url  # noqa: F401 - fixture
from tests.test_export_bundle import ClockedStore

RUN_TIMES = [HISTORY_START + timedelta(minutes=m) for m in (30, 60, 90, 120)]
"""Four runs, each looking back 30 minutes: together they cover 10:00..12:00 without a hole."""
PERIOD = (HISTORY_START, NOW)
EXPORTED_AT = NOW + timedelta(hours=1)


def monitor_instance(url: str) -> ResolvedInstance:
    settings = {
        "prometheus": {"url": url, "attempts": 1},
        "monitors": [
            {"name": "accuracy", "query": "model_accuracy", "bound": {"min": 0.85}, "window": "30m", "step": "1m"},
            {
                "name": "latency",
                "model": "fraud",
                "query": 'latency_p99{model="fraud"}',
                "bound": {"max": 0.5},
                "window": "30m",
                "step": "1m",
            },
        ],
    }
    cfg = ConnectorInstance(
        name="monitors",
        type="model_monitor",
        schedule=Schedule(interval=timedelta(minutes=30), timeout=timedelta(seconds=60)),
        settings=settings,
        retry=RetryPolicy(attempts=1),
    )
    parsed = ModelMonitorSettings.model_validate(settings)
    return ResolvedInstance(cfg, ModelMonitorConnector, parsed, content_sha256(settings))


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings()


@pytest.fixture(scope="module")
def store(prometheus_url: str, mappings: Mappings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedStore]:  # noqa: F811
    path = tmp_path_factory.mktemp("dossier") / "evidence.db"
    store = ClockedStore(f"sqlite:///{path}")
    store.upgrade()
    instance = monitor_instance(prometheus_url)
    for when in RUN_TIMES:
        store.now = when
        outcome = Runner(store, State(), mappings, clock=lambda when=when: when).run(instance)
        assert outcome.run.status == "succeeded", outcome.run
    yield store
    store.dispose()


def export(store: ClockedStore, mappings: Mappings, out: Path, **scope: Any) -> Path:
    scope.setdefault("framework", "soc2")
    scope.setdefault("period", PERIOD)
    request = build_request(mappings, {}, "config-digest", "0.1.0", **scope)
    export_bundle(store, request, out, Ed25519PrivateKey.generate(), clock=lambda: EXPORTED_AT)
    return out


@pytest.fixture(scope="module")
def bundle(store: ClockedStore, mappings: Mappings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(store, mappings, tmp_path_factory.mktemp("out") / "soc2.zip")


def member(bundle: Path, name: str) -> bytes:
    with zipfile.ZipFile(bundle) as zf:
        return zf.read(name)


def chart_index(bundle: Path) -> dict[str, dict[str, Any]]:
    return {c["subject"]: c for c in json.loads(member(bundle, "charts/index.json"))["charts"]}


# ---------------------------------------------------------------------------------------- charts


def test_every_monitor_gets_a_chart_with_its_series_bound_and_files_in_the_manifest(bundle: Path) -> None:
    charts = chart_index(bundle)
    assert set(charts) == {"accuracy", "fraud/latency"}
    accuracy = charts["accuracy"]
    assert accuracy["bound"] == {"min": 0.85, "max": None}
    assert sorted(s["labels"]["model"] for s in accuracy["series"]) == ["churn", "fraud"]
    listed = {f["path"] for f in json.loads(member(bundle, "manifest.json"))["files"]}
    for chart in charts.values():
        assert {chart["files"]["svg"], chart["files"]["data"], "charts/index.json"} <= listed
    svg = member(bundle, accuracy["files"]["svg"]).decode()
    assert (
        svg.startswith("<svg")
        and "<script" not in svg
        and "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert svg.count('class="series"') == 2


def test_breaches_in_the_chart_data_are_the_samples_outside_the_bound(bundle: Path) -> None:
    """History: churn at 0.8 from 11:10 on (51 samples to 12:00), fraud at 0.84 once at 11:40; bound >= 0.85."""
    chart = chart_index(bundle)["accuracy"]
    rows = list(csv.DictReader(io.StringIO(member(bundle, chart["files"]["data"]).decode())))
    by_series: dict[str, int] = {}
    for row in rows:
        model = json.loads(row["series"])["model"]
        by_series[model] = by_series.get(model, 0) + int(row["breaches"])
    assert by_series == {"churn": 51, "fraud": 1}
    assert chart["breaching_samples"] == 52
    assert sum(int(r["samples"]) for r in rows) == chart["samples"]
    # each minute 10:00..12:00 once, although the runs' windows overlap at their edges
    assert chart["samples"] == 2 * 121


def test_a_gap_in_the_metric_is_marked_where_no_sample_was_stored(bundle: Path) -> None:
    """latency_p99 was written from 11:00 to 11:29 only; Prometheus answers a range query with the last sample for
    5 minutes after it (its lookback), so the stored evidence holds values up to 11:34."""
    chart = chart_index(bundle)["fraud/latency"]
    gaps = [(g["start"][11:16], g["end"][11:16]) for g in chart["gaps"]]
    assert gaps == [("10:00", "11:00"), ("11:34", "12:00")]
    svg = member(bundle, chart["files"]["svg"]).decode()
    assert svg.count('class="gap"') == 2


def test_the_bundle_with_charts_and_matrix_verifies_and_a_changed_chart_does_not(bundle: Path, tmp_path: Path) -> None:
    report = verify_bundle(bundle)
    names = {f["path"] for f in report.manifest["files"]}
    assert {"matrix.csv", "matrix.html", "charts/index.json"} <= names
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith(".csv") and item.filename.startswith("charts/"):
                data = data.replace(b",1,", b",0,", 1)
            dst.writestr(item, data)
    with pytest.raises(BundleMismatch, match=r"charts/.*content does not match"):
        verify_bundle(tampered)


# ---------------------------------------------------------------------------------------- matrix


def test_the_matrix_links_cc72_to_iso_and_ai_rmf_controls_by_crosswalk_and_shared_evidence(mappings: Mappings) -> None:
    links = {
        str(link.control): link.via
        for link in links_by_control(mappings, load_crosswalks(mappings.root / "crosswalks", mappings))[
            ControlRef("soc2", "CC7.2")
        ]
    }
    assert "SOC 2 TSC CC1-CC9 <-> ISO/IEC 27001:2022 Annex A" in links["iso27001:A.8.16"]
    assert "shared evidence" in links["iso27001:A.8.16"]
    # by the crosswalk; other connectors' evidence (CloudTrail data events, Vault audit devices) may add a shared link
    assert "SOC 2 TSC CC1-CC9 <-> ISO/IEC 27001:2022 Annex A" in links["iso27001:A.8.15"]
    assert links["nist_ai_rmf:MEASURE 2.4"] == ("shared evidence",)
    assert links["iso42001:A.6.2.6"] == ("shared evidence",)
    assert not any(ref.startswith("soc2:") for ref in links)


def test_the_bundle_matrix_has_a_row_per_control_with_its_status(bundle: Path) -> None:
    rows = {r["control"]: r for r in csv.DictReader(io.StringIO(member(bundle, "matrix.csv").decode("utf-8-sig")))}
    cc72 = rows["CC7.2"]
    assert "A.8.16" in cc72["linked_iso27001"] and "MEASURE 2.4" in cc72["linked_nist_ai_rmf"]
    assert "monitor.metric" in cc72["evidence_kinds"]
    # the accuracy monitor breaches its bound: the latest evidence fails, so the control is not satisfied
    assert cc72["satisfied"] == "no" and int(cc72["failing_checks"]) >= 1
    assert cc72["status_at_as_of"] == "fresh"


def test_matrix_command_prints_every_framework_as_json_and_csv(
    store: ClockedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {store.engine.url.render_as_string(hide_password=False)}\n")
    runner = CliRunner()
    as_json = runner.invoke(app, ["matrix", "--config", str(config), "--as-of", NOW.isoformat(), "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = {r["control"]: r for r in json.loads(as_json.stdout)["rows"]}
    assert {"soc2:CC7.2", "iso27001:A.8.16", "nist_ai_rmf:MEASURE 2.4", "iso42001:A.6.2.6"} <= set(rows)
    assert rows["iso42001:A.6.2.6"]["status_at_as_of"] == "fresh"
    assert rows["soc2:CC6.1"]["status_at_as_of"] == "missing"
    as_csv = runner.invoke(app, ["matrix", "--config", str(config), "--as-of", NOW.isoformat(), "--format", "csv"])
    assert as_csv.exit_code == 0
    header = next(csv.reader(io.StringIO(as_csv.stdout)))
    assert header[:4] == ["framework", "control", "title", "linked_soc2"]
    table = runner.invoke(app, ["matrix", "--config", str(config), "--as-of", NOW.isoformat(), "--framework", "soc2"])
    assert table.exit_code == 0 and "CC7.2" in table.stdout and "A.8.16" in table.stdout


def test_matrix_command_before_any_evidence_says_so(store: ClockedStore, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {store.engine.url.render_as_string(hide_password=False)}\n")
    result = CliRunner().invoke(app, ["matrix", "--config", str(config), "--as-of", "2020-01-01"])
    assert result.exit_code == 2
    assert "before the first record was stored" in result.stderr


# ---------------------------------------------------------------------------------------- narratives and report


def test_the_report_shows_per_control_narrative_evidence_checks_gaps_and_charts(bundle: Path) -> None:
    html = member(bundle, "index.html").decode()
    start = html.index('id="control-soc2-CC7-2"')
    section = html[start : html.index("</section>", start)]
    assert "alert log" in section and "(default narrative)" in section
    assert "monitor.metric: 8" in section  # 2 monitors x 4 runs
    assert "monitor.metric_within_bounds" in section and "fail" in section
    assert "freshness across the period" in section and "gaps" in section
    assert 'href="#chart-monitor-metric-accuracy"' in section
    assert "<h2>Master control matrix</h2>" in html and "<script" not in html


def test_a_deployment_narrative_file_overrides_the_shipped_one(
    store: ClockedStore, mappings: Mappings, tmp_path: Path
) -> None:
    override = tmp_path / "narratives.yaml"
    override.write_text("narratives:\n  soc2:CC7.2: Our fraud model is watched by the on-call data scientist.\n")
    narratives = load_narratives(mappings, override)
    out = export(store, mappings, tmp_path / "b.zip", narratives=narratives)
    html = member(out, "index.html").decode()
    assert "Our fraud model is watched by the on-call data scientist. <small>(deployment narrative)" in html


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("narratives:\n  soc2:CC99.9: A control that does not exist anywhere.\n", "unknown control 'CC99.9'"),
        ("narratives:\n  nope:X: A framework that does not exist anywhere.\n", "unknown framework 'nope'"),
        ("framework: soc2\nnarratives:\n  CC7.2: short\n", "at least 20 characters"),
        ("framework: soc2\nnarrative:\n  CC7.2: a misspelt key is refused\n", "narrative"),
    ],
)
def test_a_bad_narrative_file_is_an_error_naming_what_is_wrong(
    mappings: Mappings, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "narratives.yaml"
    path.write_text(text)
    with pytest.raises(MappingError, match=message):
        load_narratives(mappings, path)


def test_export_refuses_a_narrative_file_naming_an_unknown_control(store: ClockedStore, tmp_path: Path) -> None:
    path = tmp_path / "narratives.yaml"
    path.write_text("narratives:\n  soc2:CC99.9: A control that does not exist anywhere.\n")
    config = tmp_path / "config.yaml"
    url = store.engine.url.render_as_string(hide_password=False)
    config.write_text(f"database:\n  url: {url}\nnarratives: narratives.yaml\n")
    result = CliRunner().invoke(
        app, ["export", "--config", str(config), "--framework", "soc2", "--as-of", NOW.isoformat(), "--out",
              str(tmp_path / "x.zip")],
        env={"EVIDENCE_COLLECTOR_SIGNING_KEY": ""},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unknown control 'CC99.9'" in result.stderr
    assert not (tmp_path / "x.zip").exists()


def test_an_as_of_bundle_charts_the_latest_window_of_each_monitor(
    store: ClockedStore, mappings: Mappings, tmp_path: Path
) -> None:
    out = export(store, mappings, tmp_path / "asof.zip", period=None, as_of=NOW)
    chart = chart_index(out)["accuracy"]
    assert chart["start"][11:16] == "11:30" and chart["end"][11:16] == "12:00"
    assert chart["samples"] == 2 * 31
