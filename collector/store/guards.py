"""The database-level append-only guard (migration 0003) and its one sanctioned way round: the archive.

Triggers refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) on ``evidence``, ``evidence_content`` and
``collection_runs``. Retention/archive lifts the guard for its own transaction only::

    with store.engine.begin() as conn, archive_deletes(conn, reason="retention: before 2025-01-01"):
        conn.execute(delete(evidence).where(...))

PostgreSQL: ``SET LOCAL evidence_collector.allow_delete = 'on'`` (reset at the transaction's end, whatever
happens). SQLite: a row in ``append_only_bypass``, removed again before the transaction commits (a rollback
removes it too). The guard stops mistakes and naive edits; someone who can run arbitrary SQL can lift it, which
is what the signed checkpoints outside the database catch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

__all__ = ["BYPASS_SETTING", "archive_deletes"]

BYPASS_SETTING = "evidence_collector.allow_delete"


@contextmanager
def archive_deletes(conn: Connection, reason: str) -> Iterator[None]:
    """Within ``conn``'s open transaction, allow the archive's deletes; the guard is back when this exits."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL {BYPASS_SETTING} = 'on'"))
        try:
            yield
        finally:
            conn.execute(text(f"SET LOCAL {BYPASS_SETTING} = 'off'"))
        return
    conn.execute(text("INSERT INTO append_only_bypass (reason) VALUES (:reason)"), {"reason": reason})
    try:
        yield
    finally:
        conn.execute(text("DELETE FROM append_only_bypass"))
