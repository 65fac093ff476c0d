from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from collector.mappings import load_mappings
from collector.runner import Runner
from collector.state import State
from collector.store import Store
from tests.helpers import ScriptedConnector, scripted_instance, stored_runs, tamper


@pytest.fixture
def runner(store: Store) -> Runner:
    ScriptedConnector.attempts.clear()
    return Runner(store, State(), load_mappings())


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())


def test_a_run_is_stored_with_tags_checks_and_an_intact_chain(runner: Runner, store: Store) -> None:
    outcome = runner.run(scripted_instance(fail_subjects=["b"]))
    assert outcome.run.status == "succeeded"
    assert outcome.stored == 2
    [run] = stored_runs(store)
    assert (run.status, run.observations, run.problems) == ("succeeded", 2, [])
    records = {r.subject_id: r for r in store.latest_records(_filter())}
    assert set(records) == {"a", "b"}
    assert "soc2:CC7.1" in records["a"].controls
    assert "iso27001:A.8.8" in records["a"].controls
    assert "nist_ai_rmf:MEASURE 2.7" in records["a"].controls
    assert records["b"].checks[0]["result"] == "fail"
    assert records["a"].checks[0]["result"] == "pass"
    assert records["a"].payload == {"critical": 0, "subject": "a"}
    assert store.verify() == (2, None)


def _filter(**kw: str):
    from collector.store import EvidenceFilter

    return EvidenceFilter(**kw)


def test_unchanged_content_is_a_new_observation_of_the_same_blob(runner: Runner, store: Store) -> None:
    runner.run(scripted_instance())
    runner.run(scripted_instance())
    assert _count(store, "evidence") == 4
    assert _count(store, "evidence_content") == 2
    assert _count(store, "collection_runs") == 2
    assert store.verify()[0] == 4


def test_verify_names_the_row_whose_payload_was_altered(runner: Runner, store: Store) -> None:
    runner.run(scripted_instance(subjects=["a", "b", "c"]))
    [target] = list(store.latest_records(_filter(subject="b")))
    tamper(
        store,
        "update evidence_content set payload = :p where sha256 = :h",
        p='{"critical":0,"subject":"z"}',
        h=target.content_sha256,
    )
    checked, brk = store.verify()
    assert brk is not None
    assert brk.record_id == target.id
    assert "payload altered" in brk.reason
    assert checked == target.seq - 1


def test_verify_names_an_altered_row_and_a_removed_row(runner: Runner, store: Store) -> None:
    runner.run(scripted_instance(subjects=["a", "b", "c", "d"]))
    rows = sorted(store.latest_records(_filter()), key=lambda r: r.seq)
    tamper(store, "update evidence set observed_at = :t where id = :i", t=datetime(2020, 1, 1), i=rows[1].id)
    _, brk = store.verify()
    assert brk is not None and brk.record_id == rows[1].id and "altered" in brk.reason

    tamper(store, "delete from evidence where id = :i", i=rows[1].id)
    _, brk = store.verify()
    assert brk is not None and brk.record_id == rows[2].id and "inserted or removed" in brk.reason


def test_verify_notices_rows_removed_from_the_end(runner: Runner, store: Store) -> None:
    runner.run(scripted_instance(subjects=["a", "b"]))
    last = max(store.latest_records(_filter()), key=lambda r: r.seq)
    tamper(store, "delete from evidence where id = :i", i=last.id)
    checked, brk = store.verify()
    assert checked == 1
    assert brk is not None and "chain head" in brk.reason


def test_a_bad_observation_is_a_problem_and_the_rest_is_stored(runner: Runner, store: Store) -> None:
    outcome = runner.run(scripted_instance(subjects=["a", "bad", "c"], bad_payload_subject="bad"))
    assert outcome.run.status == "partial"
    assert outcome.stored == 2
    [problem] = outcome.run.problems
    assert problem["source"] == "scripted://bad"
    assert "canonical JSON" in problem["reason"]
    assert stored_runs(store)[0].problems == [problem]


def test_transient_failures_are_retried_then_succeed(runner: Runner, store: Store) -> None:
    outcome = runner.run(scripted_instance(name="flaky", transient_failures=2))
    assert outcome.run.status == "succeeded"
    assert ScriptedConnector.attempts["flaky"] == 3
    assert outcome.stored == 2


def test_retries_are_bounded_and_the_failure_is_recorded(runner: Runner, store: Store) -> None:
    outcome = runner.run(scripted_instance(name="down", transient_failures=10))
    assert outcome.run.status == "failed"
    assert ScriptedConnector.attempts["down"] == 3
    assert "throttled" in (outcome.run.error or "")
    assert _count(store, "evidence") == 0
    health = runner.state.snapshot().connectors["down"]
    assert health.consecutive_failures == 1 and health.last_success is None


def test_a_hanging_connector_times_out_and_others_still_run(runner: Runner, store: Store) -> None:
    ScriptedConnector.release.clear()
    started = time.monotonic()
    hung = runner.run(scripted_instance(name="hung", timeout=0.5, hang_seconds=30))
    assert time.monotonic() - started < 10
    assert hung.run.status == "failed"
    assert "timeout" in (hung.run.error or "")
    ok = runner.run(scripted_instance(name="fine"))
    assert ok.run.status == "succeeded"
    ScriptedConnector.release.set()
    assert {r.instance: r.status for r in stored_runs(store)} == {"hung": "failed", "fine": "succeeded"}
    assert {r.instance for r in store.latest_records(_filter())} == {"fine"}


def test_shutdown_marks_a_running_run_interrupted(store: Store) -> None:
    ScriptedConnector.release.clear()
    shutdown = threading.Event()
    runner = Runner(store, State(), load_mappings(), shutdown=shutdown)
    threading.Timer(0.3, shutdown.set).start()
    outcome = runner.run(scripted_instance(name="slow", hang_seconds=30))
    ScriptedConnector.release.set()
    assert outcome.run.status == "interrupted"
    assert stored_runs(store)[0].status == "interrupted"
    assert _count(store, "evidence") == 0


def test_the_cursor_is_saved_with_the_run(runner: Runner, store: Store) -> None:
    assert store.get_cursor("scripted") is None
    runner.run(scripted_instance())
    assert store.get_cursor("scripted") == {"last": "2026-11-01T00:00:00+00:00"}


def test_state_rebuilt_from_the_database_equals_the_live_state(runner: Runner, store: Store) -> None:
    from collector.daemon import load_state

    runner.run(
        scripted_instance(name="one", fail_subjects=["b"], subjects=["a", "b", "bad"], bad_payload_subject="bad")
    )
    runner.run(scripted_instance(name="two", subjects=["c"], transient_failures=5))
    live = runner.state.snapshot()
    rebuilt_state = State()
    load_state(store, rebuilt_state)
    rebuilt = rebuilt_state.snapshot()
    assert rebuilt.newest == live.newest
    assert rebuilt.failing_by_check == live.failing_by_check == {"container.no_fixable_vulns": 1}
    assert rebuilt.records_total == live.records_total
    for name in ("one", "two"):
        a, b = live.connectors[name], rebuilt.connectors[name]
        assert (a.last_status, a.consecutive_failures) == (b.last_status, b.consecutive_failures)
        assert a.last_success == b.last_success
        assert a.problems_total == b.problems_total


def test_a_database_that_is_down_fails_the_run_and_loses_nothing(tmp_path) -> None:
    store = Store("postgresql+psycopg://postgres@127.0.0.1:1/none")
    runner = Runner(store, State(), load_mappings())
    outcome = runner.run(scripted_instance(name="nodb"))
    assert outcome.run.status == "failed"
    assert "OperationalError" in (outcome.run.error or "")
    assert runner.state.snapshot().connectors["nodb"].consecutive_failures == 1


def test_newer_evidence_wins_and_older_does_not_regress_state(runner: Runner) -> None:
    runner.run(scripted_instance(observed_at="2026-11-02T00:00:00Z", fail_subjects=["a"]))
    runner.run(scripted_instance(observed_at="2026-11-01T00:00:00Z"))
    snap = runner.state.snapshot()
    assert snap.newest[("soc2:CC7.1", "container.scan")] == (datetime(2026, 11, 2, tzinfo=UTC), None)
    assert snap.failing_by_check == {"container.no_fixable_vulns": 1}


def test_refresh_applies_only_what_others_stored_since(store: Store) -> None:
    from collector.daemon import load_state, refresh_state

    writer = Runner(store, State(), load_mappings())
    writer.run(scripted_instance(name="one", subjects=["a", "b"], fail_subjects=["b"]))
    reader = State()
    load_state(store, reader)
    assert reader.snapshot().records_total == {("scripted", "one", "container.scan"): 2}

    writer.run(scripted_instance(name="two", subjects=["c"], observed_at="2026-11-03T00:00:00Z"))
    writer.run(scripted_instance(name="one", subjects=["b"], observed_at="2026-11-04T00:00:00Z"))
    assert refresh_state(store, reader) == 2
    assert refresh_state(store, reader) == 0  # nothing new: nothing applied twice
    snap = reader.snapshot()
    assert snap.records_total == {
        ("scripted", "one", "container.scan"): 3,
        ("scripted", "two", "container.scan"): 1,
    }
    assert snap.failing_by_check == {}  # b's newer record passes
    assert snap.newest[("soc2:CC7.1", "container.scan")][0] == datetime(2026, 11, 4, tzinfo=UTC)
    assert set(snap.connectors) == {"one", "two"}

    fresh = State()
    load_state(store, fresh)
    assert fresh.snapshot().newest == snap.newest
    assert fresh.snapshot().records_total == snap.records_total
