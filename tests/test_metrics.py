from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.coverage import coverage_basis
from collector.mappings import load_mappings
from collector.metrics import EvidenceMetrics, StateSync
from collector.state import State

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SCAN_CONTROLS = load_mappings().tags_for("container.scan", ["container.no_fixable_vulns"])


def scrape(
    state: State, now: datetime, sync: StateSync | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(EvidenceMetrics(state, load_mappings(), clock=lambda: now, sync=sync))
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def control(framework: str, ctl: str) -> tuple[tuple[str, str], ...]:
    return (("control", ctl), ("framework", framework))


def test_fresh_then_stale_as_time_passes() -> None:
    state = State()
    state.observe("container.scan", "container_image", "img@sha256:1", NOW - timedelta(days=1), [], SCAN_CONTROLS)
    m = scrape(state, NOW)
    key = control("soc2", "CC7.1")
    assert m[("evidence_collector_evidence_status", key)] == 0
    assert m[("evidence_collector_evidence_stale", key)] == 0
    assert m[("evidence_collector_evidence_age_seconds", key)] == 86400
    assert m[("evidence_collector_evidence_ttl_seconds", key)] == 7 * 86400

    at_risk = scrape(state, NOW + timedelta(days=5, hours=1))
    assert at_risk[("evidence_collector_evidence_status", key)] == 1

    later = scrape(state, NOW + timedelta(days=7))
    assert later[("evidence_collector_evidence_status", key)] == 2
    assert later[("evidence_collector_evidence_stale", key)] == 1


def test_missing_evidence_is_stale_and_has_no_age() -> None:
    m = scrape(State(), NOW)
    key = control("iso27001", "A.8.8")
    assert m[("evidence_collector_evidence_status", key)] == 3
    assert m[("evidence_collector_evidence_stale", key)] == 1
    assert ("evidence_collector_evidence_age_seconds", key) not in m


def test_check_failures_are_counted_per_control_apart_from_freshness() -> None:
    state = State()
    failing = [{"id": "container.no_fixable_vulns", "result": "fail", "message": "2 HIGH"}]
    state.observe("container.scan", "container_image", "a", NOW, failing, SCAN_CONTROLS)
    state.observe("container.scan", "container_image", "b", NOW, failing, SCAN_CONTROLS)
    state.observe("container.scan", "container_image", "c", NOW, [], SCAN_CONTROLS)
    m = scrape(state, NOW)
    assert m[("evidence_collector_control_check_failures", control("soc2", "CC7.1"))] == 2
    assert m[("evidence_collector_evidence_status", control("soc2", "CC7.1"))] == 0  # fresh, yet failing: two signals
    no_check_mapped = control("nist_ai_rmf", "MEASURE 2.7")
    assert m[("evidence_collector_control_check_failures", no_check_mapped)] == 0

    state.observe("container.scan", "container_image", "a", NOW + timedelta(hours=1), [], SCAN_CONTROLS)
    assert scrape(state, NOW)[("evidence_collector_control_check_failures", control("soc2", "CC7.1"))] == 1


def test_connector_health_series_and_no_high_cardinality_labels() -> None:
    state = State()
    state.register_connector("scans", "container_scan")
    state.record_run("scans", "container_scan", "succeeded", NOW, 1.5, 0)
    state.record_run("scans", "container_scan", "failed", NOW + timedelta(hours=1), 0.5, 2)
    state.observe("container.scan", "container_image", "repo@sha256:abcdef", NOW, [], SCAN_CONTROLS)
    stored = SimpleNamespace(
        kind="container.scan", subject_type="container_image", subject_id="repo@sha256:abcdef",
        observed_at=NOW, checks=[], controls=SCAN_CONTROLS, valid_until=None, collected_at=NOW,
    )  # fmt: skip
    state.observe_records([stored] * 3, "container_scan", "scans")
    m = scrape(state, NOW)
    conn = (("connector", "container_scan"), ("connector_instance", "scans"))
    assert m[("evidence_collector_connector_last_success_timestamp_seconds", conn)] == NOW.timestamp()
    assert m[("evidence_collector_connector_runs_total", (*conn, ("outcome", "failed")))] == 1
    assert m[("evidence_collector_connector_runs_total", (*conn, ("outcome", "succeeded")))] == 1
    assert m[("evidence_collector_connector_consecutive_failures", conn)] == 1
    assert m[("evidence_collector_connector_last_run_duration_seconds", conn)] == 0.5
    assert m[("evidence_collector_connector_input_problems_total", conn)] == 2
    assert m[("evidence_collector_evidence_records_total", (*conn, ("kind", "container.scan")))] == 3
    allowed = {"framework", "control", "connector", "connector_instance", "outcome", "kind", "version"}
    for _name, labels in m:
        assert {k for k, _ in labels} <= allowed
        assert not any("sha256" in v for _, v in labels)


def test_a_state_not_current_is_served_as_last_known_and_says_since_when() -> None:
    started = NOW - timedelta(hours=1)
    sync = StateSync(started)
    never_loaded = scrape(State(), NOW, sync)
    assert never_loaded[("evidence_collector_state_current", ())] == 0
    assert never_loaded[("evidence_collector_state_stale_since_timestamp_seconds", ())] == started.timestamp()
    assert not [
        name
        for name, _ in never_loaded
        if name in ("evidence_collector_evidence_stale", "evidence_collector_evidence_status")
    ], "a state never loaded knows nothing: no control is reported missing"

    state = State()
    state.rebuild([], {}, {}, {})
    state.observe("container.scan", "container_image", "img@sha256:1", NOW - timedelta(days=1), [], SCAN_CONTROLS)
    assert sync.synced()
    current = scrape(state, NOW, sync)
    assert current[("evidence_collector_state_current", ())] == 1
    assert ("evidence_collector_state_stale_since_timestamp_seconds", ()) not in current

    cut_off = NOW + timedelta(minutes=5)
    assert sync.failed(cut_off) == cut_off
    assert sync.failed(cut_off + timedelta(minutes=1)) == cut_off, "since the first failed read"
    during = scrape(state, NOW + timedelta(minutes=10), sync)
    assert during[("evidence_collector_state_current", ())] == 0
    assert during[("evidence_collector_state_stale_since_timestamp_seconds", ())] == cut_off.timestamp()
    assert during[("evidence_collector_evidence_status", control("soc2", "CC7.1"))] == 0, (
        "the last known state, still fresh"
    )
    expired = scrape(state, NOW + timedelta(days=7), sync)
    assert expired[("evidence_collector_evidence_stale", control("soc2", "CC7.1"))] == 1, (
        "evidence that expired meanwhile is stale"
    )


def scrape_every_family() -> str:
    """An exposition with samples in every family the collector describes."""
    state = State()
    state.rebuild([], {}, {}, {})
    state.register_connector("scans", "container_scan")
    state.record_run("scans", "container_scan", "succeeded", NOW, 1.5, 1)
    stored = SimpleNamespace(
        kind="container.scan", subject_type="container_image", subject_id="repo@sha256:abcdef",
        observed_at=NOW, checks=[], controls=SCAN_CONTROLS, valid_until=None, collected_at=NOW,
    )  # fmt: skip
    state.observe_records([stored], "container_scan", "scans")
    state.record_export("nightly", "succeeded", NOW)
    state.register_scheduler_job("collect:scans")
    state.record_scheduler_event("collect:scans", "missed")
    state.set_chain_head(7, "ab" * 32)
    state.set_spool(2, 1)
    registry = CollectorRegistry()
    metrics = EvidenceMetrics(
        state,
        load_mappings(),
        clock=lambda: NOW,
        coverage=coverage_basis(["container_scan"], {}),
        sync=StateSync(NOW - timedelta(minutes=1)),
    )
    registry.register(metrics)
    text = generate_latest(registry).decode()
    exposed = {family.name for family in text_string_to_metric_families(text)}
    assert exposed == {family.name for family in metrics.describe()}, "a family without samples here goes untested"
    return text


def test_every_family_is_prefixed_and_named_for_its_type_and_unit() -> None:
    text = scrape_every_family()
    families = list(text_string_to_metric_families(text))
    assert sum(1 for family in families if family.type == "counter") >= 4
    for family in families:
        assert family.name.startswith("evidence_collector_"), family.name
        assert not re.search(
            r"_(milli|micro|nano)?(seconds|minutes|hours|days)_|_(ms|minutes|hours|days)$", family.name
        )
        if "seconds" in family.name:
            assert family.name.endswith("_seconds"), family.name
        if "timestamp" in family.name:
            assert family.name.endswith("_timestamp_seconds"), family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name == f"{family.name}_total", sample.name
            else:
                assert sample.name == family.name and not sample.name.endswith("_total"), sample.name
    counters = re.findall(r"^# TYPE (\S+) counter$", text, re.MULTILINE)
    assert counters and all(name.endswith("_total") for name in counters), counters


def test_no_label_collides_with_the_labels_prometheus_sets_on_a_target() -> None:
    labels = {
        label
        for family in text_string_to_metric_families(scrape_every_family())
        for sample in family.samples
        for label in sample.labels
    }
    assert "connector_instance" in labels
    assert not labels & {"instance", "job"}
    assert not [label for label in labels if label.startswith(("__", "exported_"))]
