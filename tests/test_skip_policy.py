"""In CI (EVIDENCE_CI=1) a skipped test fails unless tests/skip-allowlist.txt names it; PostgreSQL never skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SKIP_ALLOWLIST, load_skip_allowlist, unexplained_skip

ROOT = Path(__file__).resolve().parent.parent
SKIPPING = """
import sys

import pytest

def test_needs_a_tool():
    pytest.skip("frobnicator not installed")

def test_runs_on_a_supported_python():
    assert sys.version_info >= (3, 11)
"""


def run_pytest(tmp_path: Path, *, strict: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "EVIDENCE_CI"}
    env["PYTHONPATH"] = str(ROOT)
    if strict:
        env["EVIDENCE_CI"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_sample.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_an_unlisted_skip_fails_the_run_in_ci(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, strict=True)
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed" in result.stdout
    assert "skip-allowlist.txt has no entry for it (frobnicator not installed)" in result.stdout


def test_outside_ci_a_skip_stays_a_skip(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, strict=False)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout


def test_a_listed_skip_passes_and_postgres_never_does() -> None:
    allow = [("tests/test_tools.py::test_frob*", "the frobnicator has no Debian package")]
    assert unexplained_skip("tests/test_tools.py::test_frob_once", "frobnicator not installed", allow) is None
    assert unexplained_skip("tests/test_tools.py::test_other", "frobnicator not installed", allow) is not None
    pg = unexplained_skip("tests/test_tools.py::test_frob_once", "PostgreSQL not reachable", allow)
    assert pg is not None
    assert "PostgreSQL tests may not be skipped in CI" in pg


def test_an_entry_without_a_reason_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "allow.txt"
    path.write_text("# comment\n\ntests/a.py::t | why\ntests/b.py::t\n")
    with pytest.raises(pytest.UsageError, match=r"allow.txt:4: expected '<test id pattern> \| <reason>'"):
        load_skip_allowlist(path)


def test_the_shipped_allowlist_is_short_and_every_entry_has_a_reason() -> None:
    entries = load_skip_allowlist(SKIP_ALLOWLIST)
    assert len(entries) <= 10
    assert all(len(reason) >= 10 for _, reason in entries)
