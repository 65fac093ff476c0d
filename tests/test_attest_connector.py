"""The `attestations` connector: sidecars in a directory and in S3 (a real moto server); bad sidecars are rejected
with file and line while the others proceed."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from collector.connector import CollectContext, load_connector
from collector.errors import ConfigurationError
from collector.mappings import load_mappings
from collector.sdk.testing import ConnectorConformance, collect_all
from connectors.attestations import AttestationsConnector, AttestationsSettings
from tests.helpers import running_moto_server

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MAPPINGS = load_mappings()

GOOD = """\
title: Information security policy v3
by: Jane Roe, CISO
controls: [soc2:CC5.3, iso27001:A.5.1]
observed_at: 2026-06-01
valid_for: 365d
"""


def write(directory: Path, document: str, sidecar: str | None, content: bytes = b"document body\n") -> Path:
    path = directory / document
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if sidecar is not None:
        (directory / f"{document}.attestation.yaml").write_text(sidecar, encoding="utf-8")
    return path


def collect(**settings: Any) -> tuple[list[Any], list[Any]]:
    connector = AttestationsConnector(AttestationsSettings(**settings))
    observations, ctx = collect_all(
        connector, CollectContext(instance="policies", run_id="r1", now=NOW, mappings=MAPPINGS)
    )
    return observations, ctx.problems


class TestConformance(ConnectorConformance):
    connector_cls = AttestationsConnector
    invalid_settings = [{}, {"directory": "  "}, {"directory": "/x", "sidecar_suffix": "yaml"}]

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        write(tmp_path / "docs", "policy.pdf", GOOD)
        return {"directory": str(tmp_path / "docs")}

    def context(self) -> CollectContext:
        return CollectContext(instance="conformance", run_id="conformance-run", now=NOW, mappings=MAPPINGS)


def test_entry_point_names_the_connector() -> None:
    assert load_connector("attestations") is AttestationsConnector


def test_a_sidecar_becomes_an_attestation_of_its_document(tmp_path: Path) -> None:
    document = write(tmp_path, "policies/infosec.pdf", GOOD)
    (obs,), problems = collect(directory=str(tmp_path))
    assert problems == []
    assert obs.kind == "attestation.document"
    assert obs.subject.id == "policies/infosec.pdf"
    assert obs.controls == ("iso27001:A.5.1", "soc2:CC5.3")
    assert obs.observed_at == datetime(2026, 6, 1, tzinfo=UTC)
    assert obs.valid_until == datetime(2027, 6, 1, tzinfo=UTC)
    assert obs.source == str(document)
    assert obs.payload["document"]["sha256"] == hashlib.sha256(document.read_bytes()).hexdigest()


BAD_SIDECARS = [
    pytest.param(GOOD + "owner: someone\n", ":6: owner: Extra inputs are not permitted", id="unknown-field"),
    pytest.param(GOOD.replace("iso27001:A.5.1]", "iso27001:A.99]"), ":3: controls[1]: unknown control", id="control"),
    pytest.param(GOOD.replace("valid_for: 365d", "valid_for: a year"), ":5: valid_for:", id="bad-duration"),
    pytest.param("title: [unclosed\n", ":2: not valid YAML", id="bad-yaml"),
    pytest.param("- just a list\n", ":1: a sidecar must be a mapping", id="not-a-mapping"),
    pytest.param(GOOD + "template: no-such-template\n", ":6: template: unknown attestation template", id="template"),
    pytest.param(GOOD.replace("observed_at: 2026-06-01\n", ""), ":1: observed_at: required", id="undated"),
]


@pytest.mark.parametrize(("sidecar", "where"), BAD_SIDECARS)
def test_a_bad_sidecar_is_rejected_with_file_and_line_and_others_proceed(
    tmp_path: Path, sidecar: str, where: str
) -> None:
    write(tmp_path, "a-good.pdf", GOOD)
    write(tmp_path, "b-bad.pdf", sidecar)
    write(tmp_path, "c-good.pdf", GOOD)
    observations, problems = collect(directory=str(tmp_path))
    assert [o.subject.id for o in observations] == ["a-good.pdf", "c-good.pdf"]
    (problem,) = problems
    sidecar_path = str(tmp_path / "b-bad.pdf.attestation.yaml")
    assert problem.source == sidecar_path
    assert problem.reason.startswith(sidecar_path + where.split(":", 2)[0] + ":" + where.split(":", 2)[1]), problem
    assert where.split(":", 2)[2].strip() in problem.reason


def test_a_sidecar_without_its_document_needs_a_url(tmp_path: Path) -> None:
    (tmp_path / "gone.pdf.attestation.yaml").write_text(GOOD)
    (tmp_path / "wiki.attestation.yaml").write_text(GOOD + "url: https://wiki.example.com/policy\n")
    (obs,), (problem,) = collect(directory=str(tmp_path))
    assert obs.subject.id == "wiki"
    assert obs.source == "https://wiki.example.com/policy"
    assert obs.payload["document"] is None
    assert "no document" in problem.reason
    assert "gone.pdf" in problem.reason


def test_an_expired_sidecar_is_still_recorded_so_it_shows_stale(tmp_path: Path) -> None:
    write(tmp_path, "old.pdf", GOOD.replace("2026-06-01", "2024-01-01"))
    (obs,), problems = collect(directory=str(tmp_path))
    assert problems == []
    assert obs.valid_until is not None
    assert obs.valid_until < NOW


def test_a_template_in_a_sidecar_supplies_controls(tmp_path: Path) -> None:
    sidecar = "title: Q3 access review\nby: IT lead\ntemplate: access-control-policy\nobserved_at: 2026-10-01\n"
    write(tmp_path, "access-review.xlsx", sidecar)
    (obs,), problems = collect(directory=str(tmp_path))
    assert problems == []
    assert "iso27001:A.5.18" in obs.controls
    assert obs.payload["template"] == "access-control-policy"


def test_a_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        collect(directory=str(tmp_path / "nope"))


def test_an_oversized_sidecar_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, "big.pdf", GOOD + "# " + "x" * 500 + "\n")
    observations, (problem,) = collect(directory=str(tmp_path), max_sidecar_bytes=200)
    assert observations == []
    assert "too large" in problem.reason


# ------------------------------------------------------------------------------------------------------- S3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with running_moto_server() as url:
        yield url


@pytest.mark.slow
def test_sidecars_under_an_s3_prefix(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    s3.create_bucket(Bucket="grc-docs")
    body = b"%PDF supplier review\n"
    s3.put_object(Bucket="grc-docs", Key="attested/vendor-review.pdf", Body=body)
    s3.put_object(Bucket="grc-docs", Key="attested/vendor-review.pdf.attestation.yaml", Body=GOOD.encode())
    s3.put_object(Bucket="grc-docs", Key="attested/bad.pdf.attestation.yaml", Body=(GOOD + "extra: 1\n").encode())
    s3.put_object(Bucket="grc-docs", Key="elsewhere/x.pdf.attestation.yaml", Body=GOOD.encode())
    (obs,), (problem,) = collect(
        s3_bucket="grc-docs", s3_prefix="attested/", s3_endpoint_url=moto_url, s3_region="us-east-1"
    )
    assert obs.subject.id == "attested/vendor-review.pdf"
    assert obs.source == "s3://grc-docs/attested/vendor-review.pdf"
    assert obs.payload["document"] == {
        "name": "vendor-review.pdf",
        "sha256": hashlib.sha256(body).hexdigest(),
        "size_bytes": len(body),
    }
    assert problem.reason.startswith("s3://grc-docs/attested/bad.pdf.attestation.yaml:6: extra:")


def test_sidecar_controls_are_checked_against_the_configured_mappings(tmp_path: Path) -> None:
    import shutil

    import yaml

    from collector.mappings import default_mappings_dir

    custom = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), custom)
    (custom / "catalogs" / "internal.yaml").write_text(
        yaml.safe_dump(
            {
                "framework": "internal",
                "name": "Internal control set",
                "version": "1",
                "controls": [{"id": "POL-1", "title": "Policy reviewed yearly", "group": "POL"}],
            }
        )
    )
    write(
        tmp_path / "docs",
        "policy.pdf",
        GOOD.replace("controls: [soc2:CC5.3, iso27001:A.5.1]", "controls: [internal:POL-1]"),
    )
    connector = AttestationsConnector(AttestationsSettings(directory=str(tmp_path / "docs")))

    configured = CollectContext(instance="p", run_id="r", now=NOW, mappings=load_mappings(custom))
    (obs,), ctx = collect_all(connector, configured)
    assert ctx.problems == []
    assert obs.controls == ("internal:POL-1",)

    (), ctx = collect_all(connector, CollectContext(instance="p", run_id="r", now=NOW, mappings=MAPPINGS))
    [problem] = ctx.problems
    assert "internal" in problem.reason


def test_without_catalogs_in_the_context_the_run_is_a_configuration_error(tmp_path: Path) -> None:
    write(tmp_path / "docs", "policy.pdf", GOOD)
    connector = AttestationsConnector(AttestationsSettings(directory=str(tmp_path / "docs")))
    with pytest.raises(ConfigurationError, match="catalogs"):
        list(connector.collect(CollectContext(instance="p", run_id="r", now=NOW)))
