"""What keeps a control fresh: future-dated evidence expires from its collection time, evidence whose checks are all
``error`` refreshes nothing, and the evidence valid longest counts. Live state, the state rebuilt from the store,
status, /metrics and the export's coverage sweep must all say the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from collector.attestation import AttestationFields, default_templates_dir, load_templates
from collector.cli import status_document
from collector.config import AppConfig, LoadedConfig, ResolvedInstance, load_and_resolve
from collector.connector import Check, CollectContext
from collector.daemon import load_state
from collector.export import build_request
from collector.export.bundle import _assess
from collector.freshness import STATUS_CODE, Freshness, expires_at
from collector.mappings import FreshnessPolicy, load_mappings
from collector.metrics import EvidenceMetrics
from collector.model import ControlRef, Observation, Outcome
from collector.runner import Runner
from collector.state import State, evaluate_controls
from collector.store import EvidenceFilter, Store
from connectors.aws import AwsConnector
from tests.helpers import ScriptedConnector, ScriptedSettings, running_moto_server, scripted_instance, store_attestation

MAPPINGS = load_mappings()
TEMPLATES = load_templates(default_templates_dir(), MAPPINGS)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FAR_FUTURE = datetime(2051, 1, 1, tzinfo=UTC)
CC71 = ControlRef("soc2", "CC7.1")
A51 = ControlRef("iso27001", "A.5.1")


def _denied(obs: Observation, settings: ScriptedSettings, now: datetime) -> Any:
    return DENIED_CHECK.result(Outcome.ERROR, "no evidence: ecr:DescribeImageScanFindings failed with AccessDenied")


DENIED_CHECK: Check[ScriptedSettings] = Check(
    id="container.no_fixable_vulns", kind="container.scan", title="denied", evaluate=_denied
)


class DeniedConnector(ScriptedConnector):
    """The scripted source, every check of every observation ``error`` (as when each API call is denied)."""

    checks = (DENIED_CHECK,)


def denied_instance(name: str = "scripted", **settings: Any) -> ResolvedInstance:
    return replace(scripted_instance(name, **settings), connector_cls=DeniedConnector)


def freshness_of(state: State, ref: ControlRef, at: datetime) -> Any:
    rows = evaluate_controls(state.snapshot(), MAPPINGS, at, {}, ref.framework)
    return next(fresh for fresh, _, _ in rows if fresh.ref == ref)


def rebuilt(store: Store) -> State:
    state = State()
    load_state(store, state)
    return state


def scrape(state: State, at: datetime, loaded: LoadedConfig | None = None) -> dict[tuple[str, frozenset[Any]], float]:
    registry = CollectorRegistry()
    active = loaded.active_kinds if loaded else None
    registry.register(EvidenceMetrics(state, MAPPINGS, clock=lambda: at, active_kinds=active))
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def control_labels(ref: ControlRef) -> frozenset[tuple[str, str]]:
    return frozenset({("framework", ref.framework), ("control", ref.control)})


# -- evidence dated in the future ---------------------------------------------------------------------------------


def test_future_dated_evidence_is_a_problem_and_expires_from_its_collection_time(store: Store) -> None:
    runner = Runner(store, State(), MAPPINGS, clock=lambda: NOW)
    outcome = runner.run(scripted_instance(observed_at=FAR_FUTURE))
    assert outcome.run.status == "partial"
    assert [p["source"] for p in outcome.run.problems] == ["scripted://a", "scripted://b"]
    reason = outcome.run.problems[0]["reason"]
    assert "2051-01-01" in reason and "in the future" in reason and "clock-skew tolerance (5m)" in reason
    assert {r.observed_at for r in store.latest_records(EvidenceFilter())} == {FAR_FUTURE}  # stored as the source said
    for state in (runner.state, rebuilt(store)):
        assert freshness_of(state, CC71, NOW + timedelta(days=1)).status is Freshness.FRESH
        week_later = freshness_of(state, CC71, NOW + timedelta(days=8))
        assert week_later.status is Freshness.STALE
        assert week_later.expires_at == NOW + timedelta(days=7)


def test_a_future_dated_record_does_not_mask_the_subjects_later_ones(store: Store) -> None:
    Runner(store, State(), MAPPINGS, clock=lambda: NOW).run(
        scripted_instance(observed_at=FAR_FUTURE, subjects=["a"], fail_subjects=["a"])
    )
    later = NOW + timedelta(days=1)
    runner = Runner(store, State(), MAPPINGS, clock=lambda: later)
    runner.run(scripted_instance(observed_at=later - timedelta(hours=1), subjects=["a"]))
    (latest,) = store.latest_records(EvidenceFilter())
    assert latest.checks[0]["result"] == "pass"
    state = rebuilt(store)
    assert state.snapshot().failing_by_check == {}
    assert freshness_of(state, CC71, later + timedelta(days=5)).status is Freshness.FRESH


def test_skew_within_the_tolerance_is_no_problem_and_the_tolerance_is_configurable(store: Store) -> None:
    runner = Runner(store, State(), MAPPINGS, clock=lambda: NOW)
    ahead = NOW + timedelta(minutes=2)
    assert runner.run(scripted_instance(observed_at=ahead)).run.status == "succeeded"
    strict = replace(scripted_instance(observed_at=ahead), clock_skew_tolerance=timedelta(0))
    assert runner.run(strict).run.status == "partial"


def test_the_clock_skew_tolerance_setting_is_validated(tmp_path: Path) -> None:
    assert AppConfig().clock_skew_tolerance == timedelta(minutes=5)
    for bad in ("-1m", "2d"):
        with pytest.raises(ValidationError, match="clock_skew_tolerance"):
            AppConfig(clock_skew_tolerance=bad)
    config = tmp_path / "config.yaml"
    config.write_text(
        "clock_skew_tolerance: 30s\n"
        f"connectors:\n  - name: scans\n    type: container_scan\n    settings: {{paths: ['{tmp_path}']}}\n"
    )
    (instance,) = load_and_resolve(config).instances
    assert instance.clock_skew_tolerance == timedelta(seconds=30)


# -- evidence whose checks are all error --------------------------------------------------------------------------


def test_all_error_evidence_does_not_refresh_freshness_and_the_run_is_inconclusive(store: Store) -> None:
    runner = Runner(store, State(), MAPPINGS, clock=lambda: NOW - timedelta(hours=1))
    runner.run(scripted_instance(observed_at=NOW - timedelta(days=6)))
    runner.clock = lambda: NOW
    denied = runner.run(denied_instance(observed_at=NOW))
    assert denied.run.status == "inconclusive"
    assert "only error checks" in (denied.run.error or "")
    assert denied.stored == 2  # what the source answered is kept
    for state in (runner.state, rebuilt(store)):
        fresh = freshness_of(state, CC71, NOW + timedelta(days=2))
        assert fresh.status is Freshness.STALE, "the denied records must not have refreshed the control"
        assert fresh.newest_observed_at == NOW - timedelta(days=6)
        health = state.snapshot().connectors["scripted"]
        assert (health.last_status, health.consecutive_failures) == ("inconclusive", 1)
        assert health.last_success == NOW - timedelta(hours=1)
        assert health.last_error == denied.run.error
        assert state.snapshot().failing_by_check == {"container.no_fixable_vulns": 2}


def test_a_source_denied_from_the_start_reads_missing_and_the_alerts_can_fire(store: Store) -> None:
    runner = Runner(store, State(), MAPPINGS, clock=lambda: NOW)
    for _ in range(3):
        runner.run(denied_instance(observed_at=NOW))
    for state in (runner.state, rebuilt(store)):
        m = scrape(state, NOW)
        conn = frozenset({("connector", "scripted"), ("connector_instance", "scripted")})
        assert m[("evidence_collector_connector_consecutive_failures", conn)] >= 3  # ConnectorFailing
        assert ("evidence_collector_connector_last_success_timestamp_seconds", conn) not in m
        assert m[("evidence_collector_connector_runs_total", conn | {("outcome", "inconclusive")})] == 3
        assert m[("evidence_collector_evidence_stale", control_labels(CC71))] == 1  # EvidenceStale
        assert m[("evidence_collector_evidence_status", control_labels(CC71))] == STATUS_CODE[Freshness.MISSING]


class UnreadableSourcesConnector(ScriptedConnector):
    """Every configured input is a problem (as when the report directory cannot be opened); nothing is yielded."""

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        for subject in self.settings.subjects:
            ctx.problem(f"/reports/{subject}.json", "cannot open: [Errno 24] Too many open files")
        yield from ()


def test_a_run_whose_every_input_was_a_problem_is_inconclusive_not_a_success(store: Store) -> None:
    runner = Runner(store, State(), MAPPINGS, clock=lambda: NOW)
    instance = replace(scripted_instance(), connector_cls=UnreadableSourcesConnector)
    outcomes = [runner.run(instance) for _ in range(2)]
    assert [o.run.status for o in outcomes] == ["inconclusive", "inconclusive"]
    assert outcomes[0].run.error == (
        "nothing collected and 2 problems (first: /reports/a.json: cannot open: [Errno 24] Too many open files)"
    )
    for state in (runner.state, rebuilt(store)):
        health = state.snapshot().connectors["scripted"]
        assert (health.consecutive_failures, health.last_success) == (2, None)


def test_a_run_that_stored_nothing_is_no_success_for_last_success(store: Store) -> None:
    runner = Runner(store, State(), MAPPINGS, clock=lambda: NOW)
    outcome = runner.run(scripted_instance(subjects=[]))
    assert outcome.run.status == "succeeded"
    for state in (runner.state, rebuilt(store)):
        health = state.snapshot().connectors["scripted"]
        assert health.last_success is None and health.consecutive_failures == 0


@pytest.fixture(scope="module")
def enforced_moto() -> Iterator[str]:
    """A moto server of this module's own: it enforces IAM."""
    with running_moto_server() as url:
        yield url


@pytest.mark.slow
def test_every_iam_call_denied_leaves_the_iam_controls_unevidenced(
    enforced_moto: str, store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    requests.post(f"{enforced_moto}/moto-api/reset", timeout=5).raise_for_status()
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    iam = boto3.client(
        "iam", endpoint_url=enforced_moto, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    iam.create_user(UserName="alice")
    iam.create_user(UserName="evidence-collector")
    only_whoami = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="evidence-collector", PolicyName="read", PolicyDocument=json.dumps(only_whoami))
    key = iam.create_access_key(UserName="evidence-collector")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config = tmp_path / "config.yaml"
    config.write_text(
        "connectors:\n  - name: aws\n    type: aws\n    settings:\n"
        f"      endpoint_url: {enforced_moto}\n      credential_report_poll: 0.05s\n      ecr: {{enabled: false}}\n"
    )
    loaded = load_and_resolve(config)
    (instance,) = loaded.instances
    requests.post(f"{enforced_moto}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
    try:
        now = datetime.now(UTC)
        runner = Runner(store, State(), MAPPINGS, clock=lambda: now)
        outcomes = [runner.run(instance) for _ in range(3)]
    finally:
        requests.post(f"{enforced_moto}/moto-api/reset-auth", data=b"inf", timeout=5).raise_for_status()
    assert [o.run.status for o in outcomes] == ["inconclusive"] * 3, [o.run.error for o in outcomes]
    assert "AccessDenied" in (outcomes[0].run.error or "")
    state = rebuilt(store)
    doc = status_document(loaded, state, now, None)
    iam_controls = {
        str(ref) for ref, kinds in MAPPINGS.kinds_by_control.items() if any(k.startswith("aws.iam.") for k in kinds)
    }
    shown = {f"{c['framework']}:{c['control']}": c for c in doc["controls"]}
    assert iam_controls <= set(shown)
    assert all(shown[c]["status"] == "missing" for c in iam_controls), {c: shown[c]["status"] for c in iam_controls}
    (aws,) = doc["connectors"]
    assert (aws["last_status"], aws["consecutive_failures"], aws["last_success"]) == ("inconclusive", 3, None)
    assert "AccessDenied" in aws["last_error"]
    m = scrape(state, now, loaded)
    aws = frozenset({("connector", "aws"), ("connector_instance", "aws")})
    assert m[("evidence_collector_connector_consecutive_failures", aws)] == 3
    assert all(m[("evidence_collector_evidence_stale", control_labels(ControlRef.parse(c)))] == 1 for c in iam_controls)


# -- the evidence valid longest counts ----------------------------------------------------------------------------


def _attest(store: Store, policy: Path, subject: str, observed: datetime, valid_for: str, now: datetime) -> None:
    fields = AttestationFields.model_validate(
        {
            "title": f"Information security policy ({subject})",
            "by": "Jane Roe, CISO",
            "controls": [str(A51)],
            "subject": subject,
            "observed_at": observed.isoformat(),
            "valid_for": valid_for,
        }
    )
    store_attestation(store, MAPPINGS, fields, policy, now=now, templates=TEMPLATES)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "infosec-policy.pdf"
    path.write_bytes(b"%PDF-1.7 information security policy v3\n")
    return path


def test_a_short_new_attestation_does_not_shorten_two_longer_ones(store: Store, policy: Path) -> None:
    _attest(store, policy, "policy-a", NOW - timedelta(days=30), "365d", NOW)
    _attest(store, policy, "policy-b", NOW - timedelta(days=20), "365d", NOW)
    _attest(store, policy, "policy-c", NOW - timedelta(hours=1), "1d", NOW)
    live = State()
    for rec in store.latest_records(EvidenceFilter()):
        live.observe(rec.kind, rec.subject_type, rec.subject_id, rec.observed_at, rec.checks, rec.controls,
                     rec.valid_until, rec.collected_at)  # fmt: skip
    for state in (live, rebuilt(store)):
        fresh = freshness_of(state, A51, NOW)
        assert fresh.status is Freshness.FRESH
        assert fresh.expires_at == NOW - timedelta(days=20) + timedelta(days=365)
    # a subject's newer attestation replaces its own older one, however long that one was valid
    _attest(store, policy, "policy-a", NOW - timedelta(minutes=30), "1d", NOW)
    _attest(store, policy, "policy-b", NOW - timedelta(minutes=20), "2d", NOW)
    fresh = freshness_of(rebuilt(store), A51, NOW)
    assert fresh.status is Freshness.AT_RISK
    assert fresh.expires_at == NOW - timedelta(minutes=20) + timedelta(days=2)


# -- the same store, every reader ---------------------------------------------------------------------------------


def _loaded(*instances: ResolvedInstance) -> LoadedConfig:
    return LoadedConfig(None, AppConfig(), MAPPINGS, list(instances), {})


def test_status_metrics_and_export_agree_on_the_same_store(store: Store, policy: Path) -> None:
    """Fresh, future-dated, all-error, expired and multi-attestation evidence, read by every reader."""
    now = datetime.now(UTC).replace(microsecond=0)
    week = timedelta(days=7)
    fresh = scripted_instance("fresh", subjects=["f"], observed_at=now - timedelta(days=1))
    future = scripted_instance("future", subjects=["x"], observed_at=now + timedelta(days=3650))
    expired = scripted_instance("expired", subjects=["e"], observed_at=now - 2 * week)
    denied = denied_instance("denied", subjects=["d"], observed_at=now)
    at = {"fresh": now, "future": now - week - timedelta(hours=1), "expired": now, "denied": now}
    for instance in (fresh, future, expired, denied):
        name = instance.config.name
        Runner(store, State(), MAPPINGS, clock=lambda name=name: at[name]).run(instance)
    _attest(store, policy, "policy-a", now - timedelta(days=30), "365d", now)
    _attest(store, policy, "policy-b", now - timedelta(days=20), "365d", now)
    _attest(store, policy, "policy-c", now - timedelta(hours=1), "1d", now)

    as_of = datetime.now(UTC) + timedelta(seconds=1)
    state = rebuilt(store)
    loaded = _loaded(fresh, future, expired, denied)
    doc = status_document(loaded, state, as_of, None)
    m = scrape(state, as_of, loaded)
    by_control = {ControlRef(c["framework"], c["control"]): c for c in doc["controls"]}
    assert by_control[CC71]["status"] == "fresh"  # from the one fresh record; the future one expired
    assert by_control[A51]["status"] == "fresh"
    assert by_control[CC71]["expires_at"] == (now - timedelta(days=1) + week).isoformat()
    for ref, row in by_control.items():
        labels = control_labels(ref)
        assert m[("evidence_collector_evidence_status", labels)] == STATUS_CODE[Freshness(row["status"])], ref
        assert m[("evidence_collector_evidence_stale", labels)] == (
            1.0 if row["status"] in ("stale", "missing") else 0.0
        ), ref
        assert m[("evidence_collector_evidence_ttl_seconds", labels)] == row["ttl_seconds"], ref
        assert m.get(("evidence_collector_evidence_age_seconds", labels)) == (
            None if row["age_seconds"] is None else pytest.approx(row["age_seconds"], abs=1e-3)
        ), ref
    for framework in ("soc2", "iso27001"):
        request = build_request(MAPPINGS, {}, "c", "0", framework=framework, period=(as_of - week, as_of))
        sweeps, _ = _assess(store, request)
        for ref_text, sweep in sweeps.items():
            ref = ControlRef.parse(ref_text)
            if ref in by_control:
                exported = sweep.finish().freshness
                assert exported.status.value == by_control[ref]["status"], ref
                assert exported.expires_at == _parse(by_control[ref]["expires_at"]), ref
    connectors = {c["name"]: c for c in doc["connectors"]}
    assert connectors["denied"]["last_status"] == "inconclusive"
    denied_labels = frozenset({("connector", "scripted"), ("connector_instance", "denied")})
    assert m[("evidence_collector_connector_consecutive_failures", denied_labels)] == 1


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# -- unconfigured sources and check details -----------------------------------------------------------------------


def test_a_disabled_ecr_leaves_the_container_scan_controls_out(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("connectors:\n  - name: aws\n    type: aws\n    settings:\n      ecr: {enabled: false}\n")
    loaded = load_and_resolve(config)
    assert "container.scan" not in loaded.active_kinds
    assert "aws.iam.credential_report" in loaded.active_kinds
    doc = status_document(loaded, State(), NOW, None)
    shown = {ControlRef(c["framework"], c["control"]) for c in doc["controls"]}
    assert CC71 not in shown and ControlRef("iso27001", "A.8.8") not in shown
    assert ControlRef("soc2", "CC6.2") in shown
    enabled = tmp_path / "enabled.yaml"
    enabled.write_text("connectors:\n  - name: aws\n    type: aws\n")
    assert "container.scan" in load_and_resolve(enabled).active_kinds


def test_evidence_json_keeps_the_check_details(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from collector.cli import app

    db = tmp_path / "evidence.db"
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{url: 'sqlite:///{db}'}}\n")
    local = Store(f"sqlite:///{db}")
    local.upgrade()
    outcome = Runner(local, State(), MAPPINGS, clock=lambda: NOW).run(
        replace(scripted_instance(), connector_cls=DetailedConnector)
    )
    assert outcome.run.status == "succeeded"
    result = CliRunner().invoke(app, ["evidence", "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    checks = [c for r in json.loads(result.stdout)["records"] for c in r["checks"]]
    assert checks and all(c["details"] == {"failing": [{"id": "CVE-2024-0001"}]} for c in checks)
    local.dispose()


def _detailed(obs: Observation, settings: ScriptedSettings, now: datetime) -> Any:
    return DETAILED_CHECK.result(Outcome.FAIL, "1 fixable HIGH", failing=[{"id": "CVE-2024-0001"}])


DETAILED_CHECK: Check[ScriptedSettings] = Check(
    id="container.no_fixable_vulns", kind="container.scan", title="detailed", evaluate=_detailed
)


class DetailedConnector(ScriptedConnector):
    checks = (DETAILED_CHECK,)


def test_aws_without_ecr_says_it_produces_no_container_scans() -> None:
    settings = AwsConnector.Settings.model_validate({"ecr": {"enabled": False}})
    assert "container.scan" not in AwsConnector(settings).produced_kinds()  # type: ignore[arg-type]


# -- the incremental state against the rule written out ----------------------------------------------------------

_RECORD = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(min_value=-20, max_value=20),  # observed, days from NOW (collected at NOW)
    st.one_of(st.none(), st.integers(min_value=1, max_value=400)),  # valid for, days
    st.booleans(),  # every check error
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_RECORD, max_size=12), st.booleans())
def test_the_state_keeps_the_evidence_valid_longest_of_each_subjects_latest_counted_record(
    records: list[tuple[str, int, int | None, bool]], overridden: bool
) -> None:
    policy = MAPPINGS.kinds["container.scan"].freshness
    override = FreshnessPolicy(ttl=timedelta(days=3), at_risk=timedelta(hours=1)) if overridden else None
    state = State()
    counted: dict[str, tuple[datetime, datetime | None]] = {}
    for subject, observed_days, valid_days, all_error in records:
        observed = NOW + timedelta(days=observed_days)
        valid_until = None if valid_days is None else observed + timedelta(days=valid_days)
        checks = [{"id": "container.no_fixable_vulns", "result": "error" if all_error else "pass", "message": ""}]
        state.observe("container.scan", "img", subject, observed, checks, ["soc2:CC7.1"], valid_until, NOW)
        state.snapshot()
        since = min(observed, NOW)
        if not all_error and (subject not in counted or since >= counted[subject][0]):
            counted[subject] = (since, valid_until)
    expiries = [expires_at(since, valid_until, policy, override) for since, valid_until in counted.values()]
    overrides = {CC71: override} if override else {}
    rows = evaluate_controls(state.snapshot(), MAPPINGS, NOW, overrides, "soc2")
    fresh = next(f for f, _, _ in rows if f.ref == CC71)
    assert fresh.expires_at == max(expiries, default=None)
