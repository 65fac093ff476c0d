"""Small connectors and builders used by the core tests (not fakes of any real service)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import requests
import sqlalchemy as sa

from collector.attest import prepare_attestation
from collector.attestation import AttestationFields, AttestationTemplate
from collector.canonical import content_sha256
from collector.config import ConnectorInstance, ResolvedInstance, RetryPolicy, Schedule
from collector.connector import Check, CollectContext, Connector, ConnectorSettings
from collector.errors import TransientError
from collector.mappings import Mappings
from collector.model import Observation, Outcome, Subject
from collector.store import RunRecord, Store, StoredRecord
from collector.store.schema import collection_runs


class ScriptedSettings(ConnectorSettings):
    subjects: list[str] = ["a", "b"]
    observed_at: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    fail_subjects: list[str] = []
    transient_failures: int = 0
    hang_seconds: float = 0.0
    bad_payload_subject: str | None = None


def _verdict(obs: Observation, settings: ScriptedSettings, now: datetime) -> Any:
    failing = obs.subject.id in settings.fail_subjects
    return SCRIPTED_CHECK.result(Outcome.FAIL if failing else Outcome.PASS, "scripted")


SCRIPTED_CHECK: Check[ScriptedSettings] = Check(
    id="container.no_fixable_vulns", kind="container.scan", title="scripted", evaluate=_verdict
)


class ScriptedConnector(Connector[ScriptedSettings]):
    """Yields container.scan observations as its settings say; can fail, hang or emit bad payloads."""

    type = "scripted"
    version = "1.0"
    Settings = ScriptedSettings
    kinds = frozenset({"container.scan"})
    checks = (SCRIPTED_CHECK,)
    attempts: ClassVar[dict[str, int]] = {}
    release = threading.Event()

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        key = ctx.instance
        ScriptedConnector.attempts[key] = ScriptedConnector.attempts.get(key, 0) + 1
        if ScriptedConnector.attempts[key] <= self.settings.transient_failures:
            raise TransientError("source throttled us")
        if self.settings.hang_seconds:
            ScriptedConnector.release.wait(self.settings.hang_seconds)
            ctx.raise_if_cancelled()
        for subject in self.settings.subjects:
            payload: dict[str, Any] = {
                "subject": subject,
                "critical": 1 if subject in self.settings.fail_subjects else 0,
            }
            if subject == self.settings.bad_payload_subject:
                payload = {"value": float("nan")}
            yield Observation(
                kind="container.scan",
                subject=Subject("container_image", subject),
                observed_at=self.settings.observed_at,
                payload=payload,
                source=f"scripted://{subject}",
            )
        ctx.set_cursor({"last": self.settings.observed_at.isoformat()})


def scripted_instance(name: str = "scripted", timeout: float = 30, **settings: Any) -> ResolvedInstance:
    cfg = ConnectorInstance(
        name=name,
        type="scripted",
        schedule=Schedule(interval=timedelta(hours=1), timeout=timedelta(seconds=timeout)),
        settings=settings,
        retry=RetryPolicy(attempts=3, initial=timedelta(milliseconds=10), max=timedelta(milliseconds=20)),
    )
    parsed = ScriptedSettings.model_validate(settings)
    return ResolvedInstance(
        cfg, ScriptedConnector, parsed, content_sha256({"t": "scripted", **parsed.model_dump(mode="json")})
    )


@contextmanager
def running_moto_server() -> Iterator[str]:
    """Start a real moto server on a free loopback port; yield its URL; stop it (and its children)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"moto_server did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class TcpProxy:
    """A TCP forwarder on a free loopback port that a test can cut (as a network partition or a database going
    down would: open connections are reset, new ones refused) and restore on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close() alone may not
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._listener is not listener:
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def store_attestation(
    store: Store,
    mappings: Mappings,
    fields: AttestationFields,
    file: Path | None,
    *,
    now: datetime,
    templates: Mapping[str, AttestationTemplate],
) -> StoredRecord:
    """What the ``attest`` command does: prepare the attestation, then commit it in its own run."""
    run, record = prepare_attestation(mappings, fields, file, now=now, templates=templates)
    return store.commit_run(run, [record], now=now)[0]


def stored_runs(store: Store, instance: str | None = None) -> list[RunRecord]:
    """The run rows as stored, newest first, problem details included."""
    query = sa.select(collection_runs).order_by(collection_runs.c.finished_at.desc())
    if instance:
        query = query.where(collection_runs.c.instance == instance)
    with store.engine.connect() as conn:
        return [
            RunRecord(
                id=r.id,
                connector_type=r.connector_type,
                instance=r.instance,
                started_at=r.started_at,
                finished_at=r.finished_at,
                status=r.status,
                observations=r.observations,
                problems=json.loads(r.problem_details),
                error=r.error,
                config_hash=r.config_hash,
            )
            for r in conn.execute(query)
        ]


def tamper(store: Store, sql: str, **params: Any) -> None:
    """Change stored rows behind the store's back, as an attacker or a broken tool would: one who can run SQL can
    also lift the append-only guard (which is why the chain is checked against checkpoints outside the database)."""
    from collector.store.guards import archive_deletes

    with store.engine.begin() as conn, archive_deletes(conn, reason="tampering, in a test"):
        conn.execute(sa.text(sql), params)
