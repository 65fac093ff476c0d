"""Fixtures of the reliability suite: a PostgreSQL cluster of its own, daemons in real processes.

The cluster is started by the test (``initdb`` and ``pg_ctl`` from the PostgreSQL install, found at run time) on
its own port and data directory, so a test can stop it and start it again without touching anyone else's
database. Every test here is marked ``slow``; CI runs them."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.test_daemon import free_port, get, samples

ROOT = Path(__file__).resolve().parents[2]
HA_DATA = ROOT / "tests" / "data" / "ha"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.slow)


def postgres_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: ``pg_config --bindir``, else the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    pytest.fail(
        "the reliability suite needs a PostgreSQL server install (initdb and pg_ctl): none found through "
        "`pg_config --bindir` or /usr/lib/postgresql/*/bin; install the postgresql package"
    )


@dataclass
class Cluster:
    """A PostgreSQL cluster this test owns: stop() and start() it at will."""

    bindir: Path
    data: Path
    port: int
    user: str | None
    """The OS user the server runs as (initdb refuses root)."""

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data.parent} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-t", "30", "-l", str(self.data.parent / "log"),
                  "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")


@pytest.fixture
def pg_cluster() -> Iterator[Cluster]:
    bindir = postgres_bindir()
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.fail("running as root and no `postgres` OS user to run the test's PostgreSQL cluster as")
    base = Path(tempfile.mkdtemp(prefix="ec-pg-"))
    data = base / "data"
    data.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bindir, data, free_port(), user)
    cluster._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def write_config(directory: Path, db_url: str, port: int, connectors: str, extra: str = "") -> Path:
    path = directory / f"config-{port}.yaml"
    if "spool:" not in extra:  # the default for PostgreSQL is ./spool, the working directory: keep tests apart
        extra = f'spool: {{directory: "{directory / "spool"}"}}\n{extra}'
    path.write_text(
        f"""
database: {{url: "{db_url}"}}
http: {{listen: "127.0.0.1:{port}"}}
shutdown_grace: 10s
log: {{format: json}}
{extra}
connectors:
{connectors}
"""
    )
    return path


def slow_connector(name: str = "slow", interval: str = "2s", run_seconds: float = 0.2, subjects: int = 4,
                   started_file: Path | None = None, retry: str = "{attempts: 1}") -> str:  # fmt: skip
    started = f', started_file: "{started_file}"' if started_file else ""
    return f"""
  - name: {name}
    type: ha_slow
    schedule: {{interval: {interval}}}
    retry: {retry}
    settings: {{run_seconds: {run_seconds}, subjects: {subjects}{started}}}
"""


def plugin_path(tmp_path: Path) -> str:
    """Registers the test-only ``ha_slow`` connector for the daemon processes (an entry point, as a plugin would)."""
    dist = tmp_path / "plugins" / "ha_slow_test-0.0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ha-slow-test\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(
        "[evidence_collector.connectors]\nha_slow = ha_slow_connector:SlowConnector\n"
    )
    return os.pathsep.join([str(dist.parent), str(HA_DATA), str(ROOT)])


class Daemon:
    """``evidence-collector run`` in its own process; its JSON log lines are read after it stops."""

    def __init__(self, config: Path, port: int, plugins: str, *args: str, **popen: object) -> None:
        self.port = port
        self.log = config.with_suffix(f".{time.monotonic_ns()}.log")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": plugins}
        self.handle = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "--config", str(config), "run", *args],
            stdout=subprocess.DEVNULL,
            stderr=self.handle,
            env=env,
            **popen,  # type: ignore[call-overload]
        )

    def metric(self, name: str) -> list[tuple[dict[str, str], float]]:
        return samples(get(f"http://127.0.0.1:{self.port}/metrics")[1], name)

    def value(self, name: str, **labels: str) -> float | None:
        for got, value in self.metric(name):
            if all(got.get(k) == v for k, v in labels.items()):
                return value
        return None

    def readyz(self) -> tuple[int, str]:
        return get(f"http://127.0.0.1:{self.port}/readyz")

    def stop(self) -> tuple[int, list[dict[str, object]]]:
        import json

        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.handle.close()
        events = []
        for line in self.log.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"event": "(not json)", "line": line})
        return self.proc.returncode, events


def evidence_per_run(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT r.id, count(e.seq) FROM collection_runs r LEFT JOIN evidence e ON e.run_id = r.id "
                    "GROUP BY r.id"
                )
            ).all()
    finally:
        engine.dispose()
    return {str(r[0]): int(r[1]) for r in rows}
