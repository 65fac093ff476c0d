"""The ``attest`` command's logic: one attestation stored through the normal path (tags, hash chain, run row)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from collector.attestation import (
    AttestationFields,
    AttestationTemplate,
    attestation_observation,
    digest_file,
    resolve_attestation,
)
from collector.canonical import content_sha256
from collector.config import ConnectorInstance, ResolvedInstance
from collector.connector import load_connector
from collector.mappings import Mappings
from collector.runner import prepare_record
from collector.store import PreparedRecord, RunRecord

__all__ = ["ATTESTATIONS_CONNECTOR", "ATTEST_INSTANCE", "attest_instance", "prepare_attestation"]

ATTEST_INSTANCE = "attest-cli"
"""The instance name under which command-line attestations are recorded (runs, metrics, exports)."""
ATTESTATIONS_CONNECTOR = "attestations"


def attest_instance() -> ResolvedInstance:
    """The ``attestations`` connector as the command uses it: no sources to read, it only tags and versions records."""
    connector_cls = load_connector(ATTESTATIONS_CONNECTOR)
    config = ConnectorInstance(name=ATTEST_INSTANCE, type=ATTESTATIONS_CONNECTOR)
    settings = connector_cls.Settings.model_construct()
    digest = content_sha256({"type": ATTESTATIONS_CONNECTOR, "instance": ATTEST_INSTANCE})
    return ResolvedInstance(config, connector_cls, settings, digest)


def prepare_attestation(
    mappings: Mappings,
    fields: AttestationFields,
    file: Path | None,
    *,
    now: datetime,
    templates: Mapping[str, AttestationTemplate],
) -> tuple[RunRecord, PreparedRecord]:
    """The run and the record to store; :class:`AttestationError` (a ValueError) names the field at fault when the
    file, a control, the template, a date or the validity is wrong."""
    document = digest_file(file) if file is not None else None
    attestation = resolve_attestation(
        fields,
        now=now,
        resolve=mappings.resolve,
        templates=templates,
        document=document,
        source=str(file.resolve()) if file is not None else "",
    )
    instance = attest_instance()
    run_id = str(uuid.uuid4())
    record = prepare_record(attestation_observation(attestation), instance.build(), instance, mappings, run_id, now)
    run = RunRecord(
        id=run_id,
        connector_type=ATTESTATIONS_CONNECTOR,
        instance=ATTEST_INSTANCE,
        started_at=now,
        finished_at=now,
        status="succeeded",
        observations=1,
        config_hash=instance.config_hash,
    )
    return run, record
