"""The access log: append-only, each entry chained to the one before by SHA-256 as evidence rows are
(:func:`collector.store.records.record_link`'s separator and genesis), so a removed or altered entry shows."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, text

from collector.canonical import sha256_hex
from collector.store.records import FIELD_SEPARATOR, GENESIS_HASH, iso
from collector.store.schema import access_log

__all__ = ["AccessEntry", "AccessLog", "StoredAccess", "access_link"]

_PG_LOCK_KEY = 0x0AC_CE55
"""Serialises appends across replicas on PostgreSQL (a transaction-scoped advisory lock)."""


@dataclass(frozen=True, slots=True)
class AccessEntry:
    at: datetime
    principal: str
    role: str
    via: str
    """How the caller was identified: token, proxy, session (a token in the console's cookie), anonymous, none."""
    client: str
    method: str
    target: str
    """Path and query string."""
    status: int


@dataclass(frozen=True, slots=True)
class StoredAccess:
    seq: int
    entry: AccessEntry
    prev_hash: str
    chain_hash: str


def access_link(prev_hash: str, entry: AccessEntry) -> str:
    """SHA-256 over the previous link and every field, joined by U+001F (removed from free text first)."""
    fields = (
        prev_hash,
        iso(entry.at),
        entry.principal,
        entry.role,
        entry.via,
        entry.client,
        entry.method,
        entry.target,
        str(entry.status),
    )
    return sha256_hex(FIELD_SEPARATOR.join(f.replace(FIELD_SEPARATOR, "") for f in fields).encode("utf-8"))


def _clean(entry: AccessEntry) -> AccessEntry:
    """What is stored is what is hashed: no separator, bounded lengths."""

    def cut(value: str, size: int) -> str:
        return value.replace(FIELD_SEPARATOR, "")[:size]

    return AccessEntry(
        entry.at,
        cut(entry.principal, 200),
        cut(entry.role, 20),
        cut(entry.via, 20),
        cut(entry.client, 100),
        cut(entry.method, 10),
        cut(entry.target, 2000),
        entry.status,
    )


def _row(r: object) -> StoredAccess:
    m = r._mapping  # type: ignore[attr-defined]
    entry = AccessEntry(
        m["at"], m["principal"], m["role"], m["via"], m["client"], m["method"], m["target"], int(m["status"])
    )
    return StoredAccess(int(m["seq"]), entry, m["prev_hash"], m["chain_hash"])


class AccessLog:
    """Reads and appends over a store's engine (the listener's own engine, not the collector's)."""

    def __init__(self, engine: object, dialect: str) -> None:
        self.engine = engine
        self.dialect = dialect
        self._lock = threading.Lock()

    def append(self, entries: Sequence[AccessEntry]) -> None:
        """Commit the entries, chained, in one transaction; raises when the database refuses."""
        with self._lock, self.engine.begin() as conn:  # type: ignore[attr-defined]
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            prev = self._head(conn)
            rows = []
            for raw in entries:
                entry = _clean(raw)
                link = access_link(prev, entry)
                rows.append({**_fields(entry), "prev_hash": prev, "chain_hash": link})
                prev = link
            conn.execute(access_log.insert(), rows)

    @staticmethod
    def _head(conn: Connection) -> str:
        last = conn.execute(select(access_log.c.chain_hash).order_by(access_log.c.seq.desc()).limit(1)).scalar()
        return str(last) if last is not None else GENESIS_HASH

    def page(self, limit: int, before: int | None = None) -> list[StoredAccess]:
        """Newest first."""
        query = select(access_log).order_by(access_log.c.seq.desc()).limit(limit)
        if before is not None:
            query = query.where(access_log.c.seq < before)
        with self.engine.connect() as conn:  # type: ignore[attr-defined]
            return [_row(r) for r in conn.execute(query)]

    def verify(self) -> tuple[int, int | None]:
        """Walk the chain from the first entry: entries checked, and the seq of the first broken one (or None)."""
        prev, checked, last = GENESIS_HASH, 0, 0
        with self.engine.connect() as conn:  # type: ignore[attr-defined]
            while True:
                rows = conn.execute(
                    select(access_log).where(access_log.c.seq > last).order_by(access_log.c.seq).limit(5000)
                ).all()
                if not rows:
                    return checked, None
                for r in rows:
                    stored = _row(r)
                    if stored.prev_hash != prev or access_link(prev, stored.entry) != stored.chain_hash:
                        return checked, stored.seq
                    prev, last, checked = stored.chain_hash, stored.seq, checked + 1


def _fields(entry: AccessEntry) -> dict[str, object]:
    return {
        "at": entry.at,
        "principal": entry.principal,
        "role": entry.role,
        "via": entry.via,
        "client": entry.client,
        "method": entry.method,
        "target": entry.target,
        "status": entry.status,
    }
