"""The spool: a run the store refuses waits on disk, bounded, and is committed in order when the store is back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.runner import Runner
from collector.spool import ChainNotContinued, DurableWriter, Spool
from collector.state import State
from collector.store import RunRecord, Store
from tests.helpers import scripted_instance, stored_runs

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Flaky:
    """Wraps a store; while ``down`` every call that touches the database raises, as a stopped server would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.store, name)
        if callable(attr) and name not in ("sqlite_path",):

            def call(*args: object, **kwargs: object) -> object:
                if self.down:
                    raise ConnectionRefusedError("database down (test)")
                return attr(*args, **kwargs)

            return call
        return attr


def _runner(tmp_path: Path, max_bytes: int = 1 << 20) -> tuple[Runner, Flaky, State]:
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    store.upgrade()
    flaky = Flaky(store)
    state = State()
    writer = DurableWriter(flaky, Spool(tmp_path / "spool", max_bytes))  # type: ignore[arg-type]
    return Runner(flaky, state, _mappings(), writer=writer), flaky, state  # type: ignore[arg-type]


def _mappings():  # type: ignore[no-untyped-def]
    from collector.mappings import load_mappings

    return load_mappings()


def test_runs_while_the_store_is_down_wait_in_the_spool_and_land_in_order_chained(tmp_path: Path) -> None:
    runner, flaky, state = _runner(tmp_path)
    instance = scripted_instance(subjects=[f"s{i}" for i in range(3)])
    assert runner.run(instance).run.status == "succeeded"
    flaky.down = True
    outcomes = [runner.run(instance) for _ in range(3)]
    assert [o.run.status for o in outcomes] == ["failed"] * 3
    assert all("kept in the spool" in (o.run.error or "") for o in outcomes)
    assert runner.writer.spooled_runs() == 3
    health = state.snapshot().connectors[instance.config.name]
    assert health.consecutive_failures == 3 and health.runs["failed"] == 3
    flaky.down = False
    assert runner.run(instance).run.status == "succeeded"
    assert runner.writer.spooled_runs() == 0
    store = flaky.store
    with store.engine.connect() as conn:
        chained = [r[0] for r in conn.exec_driver_sql("SELECT run_id FROM evidence ORDER BY seq")]
    assert list(dict.fromkeys(chained))[1:4] == [o.run.id for o in outcomes], "chained in the order they ran"
    assert store.count_records() == 5 * 3
    assert store.verify() == (15, None)

    state.set_health(store.run_history(), store.run_status_counts(), store.problem_totals())
    health = state.snapshot().connectors[instance.config.name]
    assert health.runs["failed"] == 3, "a reload from the database keeps the slots that failed to store"
    assert health.consecutive_failures == 0


def test_a_full_spool_gives_up_the_oldest_run_and_counts_it(tmp_path: Path) -> None:
    runner, flaky, _ = _runner(tmp_path, max_bytes=1 << 16)
    instance = scripted_instance(subjects=[f"s{i}" for i in range(20)])
    flaky.down = True
    ids = [runner.run(instance).run.id for _ in range(12)]
    spool = runner.writer.spool
    assert spool is not None
    assert spool.refused_runs >= 1
    assert spool.size_bytes() <= spool.max_bytes
    assert ids[-1] in spool.entries()[-1].name, "the newest run is kept, the oldest given up"
    assert ids[0] not in " ".join(p.name for p in spool.entries())


def test_a_spooled_run_already_stored_is_not_stored_twice(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    store.upgrade()
    spool = Spool(tmp_path / "spool", 1 << 20)
    writer = DurableWriter(store, spool)
    run = RunRecord("r1", "scripted", "one", NOW, NOW + timedelta(seconds=1), "succeeded", 0, config_hash="c")
    store.commit_run(run, [])
    spool.put(run, [], None, False)
    assert writer.drain() == 1
    assert [r.id for r in stored_runs(store)] == ["r1"]


def test_a_store_that_does_not_continue_the_known_head_is_refused_until_accepted(tmp_path: Path) -> None:
    runner, flaky, _ = _runner(tmp_path)
    instance = scripted_instance(subjects=[f"s{i}" for i in range(2)])
    runner.run(instance)
    runner.run(instance)
    (tmp_path / "e.db").unlink()
    fresh = Store(f"sqlite:///{tmp_path / 'e.db'}")
    fresh.upgrade()
    flaky.store = fresh
    outcome = runner.run(instance)
    assert outcome.run.status == "failed"
    assert "does not continue the last known head" in (outcome.run.error or "")
    assert fresh.count_records() == 0
    with pytest.raises(ChainNotContinued):
        runner.writer.check_chain()
    runner.writer.accept_new_chain = True
    assert runner.run(instance).run.status == "succeeded"
    assert fresh.count_records() == 4, "the spooled run and the new one"
