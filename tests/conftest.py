from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

from collector.store import Store
from tests.helpers import running_moto_server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SKIP_ALLOWLIST = Path(__file__).resolve().parent / "skip-allowlist.txt"
STRICT_SKIPS = os.environ.get("EVIDENCE_CI") == "1"
"""Set by .ci/run: a skip that is not on the allow-list fails, so CI runs the suite a clone runs."""
if STRICT_SKIPS:
    # CI runs the same examples every time: a property test that fails there fails on the next run too, and the
    # random exploration that finds new cases runs on every developer's machine.
    settings.register_profile("ci", derandomize=True, print_blob=True)
    settings.load_profile("ci")
PG_URL = os.environ.get("EVIDENCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("EVIDENCE_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """Real outputs of real tools, vendored under tests/fixtures/<source>/ (origins in its SOURCES.md)."""
    return FIXTURES


def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"
    return None


@pytest.fixture(scope="session")
def postgres_base_url() -> str:
    problem = _postgres_available()
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"{problem} (EVIDENCE_REQUIRE_POSTGRES=1 turns this skip into a failure)")
        pytest.skip(problem)
    return PG_URL


@pytest.fixture
def postgres_url(postgres_base_url: str) -> Iterator[str]:
    """A fresh schema per test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_base_url else "?"
    yield f"{postgres_base_url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'evidence.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server for the whole session: reset state per test (``POST {url}/moto-api/reset``) or use names of
    your own. Modules that change server-wide settings (IAM enforcement) start their own with
    :func:`running_moto_server`."""
    with running_moto_server() as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on SQLite and on PostgreSQL."""
    s = Store(db_url)
    s.upgrade()
    yield s
    s.dispose()


# ------------------------------------------------------------------------------------- skips in CI


def load_skip_allowlist(path: Path) -> list[tuple[str, str]]:
    """``<test id pattern> | <reason>`` per line (fnmatch patterns); ``#`` comments and blank lines ignored."""
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, reason = (part.strip() for part in line.partition("|"))
        if not (sep and pattern and reason):
            raise pytest.UsageError(f"{path}:{number}: expected '<test id pattern> | <reason>', got {raw!r}")
        entries.append((pattern, reason))
    return entries


def unexplained_skip(nodeid: str, reason: str, allowlist: list[tuple[str, str]]) -> str | None:
    """Why a skip may not pass in CI, or None when the allow-list names it. PostgreSQL is never skipped in CI."""
    if "postgres" in reason.lower():
        return f"PostgreSQL tests may not be skipped in CI ({reason})"
    if any(fnmatchcase(nodeid, pattern) for pattern, _ in allowlist):
        return None
    return f"skipped, and {SKIP_ALLOWLIST.name} has no entry for it ({reason})"


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_unexplained_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (STRICT_SKIPS and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if "postgres" in report.keywords:
        reason = f"{reason} [postgres]"
    problem = unexplained_skip(report.nodeid, reason, load_skip_allowlist(SKIP_ALLOWLIST))
    if problem is not None:
        report.outcome = "failed"
        report.longrepr = f"EVIDENCE_CI=1: {problem}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    _fail_unexplained_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, None, None]:
    outcome = yield
    _fail_unexplained_skip(outcome.get_result())
