"""The ``attestations`` connector: documents with a sidecar YAML of attest fields -> ``attestation.document``.

Unlike other connectors it reads the control catalogs (the configured ones, handed over in ``ctx.mappings``): a
sidecar declares controls, and a wrong one must be reported with the sidecar's file and line (the core would
reject it too, but could not say where)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from collector.attestation import (
    ATTESTATION_KIND,
    AttestationError,
    AttestationTemplate,
    attestation_observation,
    load_templates,
    parse_sidecar,
    resolve_attestation,
    sidecar_error,
)
from collector.sdk import CollectContext, ConfigurationError, Connector, Observation

from .settings import AttestationsSettings
from .sources import Sidecar, directory_sidecars, s3_sidecars

if TYPE_CHECKING:
    from collector.mappings import Mappings

__all__ = ["AttestationsConnector"]


class AttestationsConnector(Connector[AttestationsSettings]):
    """Reads ``<document>.attestation.yaml`` sidecars from a directory and/or an S3 prefix."""

    type = "attestations"
    version = "0.1.0"
    Settings = AttestationsSettings
    kinds = frozenset({ATTESTATION_KIND})
    checks = ()

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        mappings = ctx.mappings
        if mappings is None:
            raise ConfigurationError(
                "attestations: the run context carries no control catalogs to check sidecars against"
            )
        templates = load_templates(mappings.root / "attestation-templates", mappings)
        for sidecar in self._sidecars(ctx):
            observation = _observation(sidecar, mappings, templates, ctx)
            if observation is not None:
                yield observation

    def _sidecars(self, ctx: CollectContext) -> Iterator[Sidecar]:
        if self.settings.directory is not None:
            yield from directory_sidecars(self.settings, ctx)
        if self.settings.s3_bucket is not None:
            yield from s3_sidecars(self.settings, ctx)


def _observation(
    sidecar: Sidecar, mappings: Mappings, templates: Mapping[str, AttestationTemplate], ctx: CollectContext
) -> Observation | None:
    """The sidecar's observation, or ``None`` and a problem naming the file and line."""
    try:
        fields, node = parse_sidecar(sidecar.text, sidecar.label)
    except ValueError as exc:
        ctx.problem(sidecar.label, str(exc))
        return None
    if fields.observed_at is None:  # a default of "now" would keep an undated sidecar fresh forever
        ctx.problem(sidecar.label, f"{sidecar.label}:1: observed_at: required in a sidecar (when was it approved?)")
        return None
    if sidecar.document is None and fields.url is None:
        ctx.problem(sidecar.label, f"{sidecar.label}:1: no document {sidecar.document_label} beside it, and no url")
        return None
    try:
        attestation = resolve_attestation(
            fields,
            now=ctx.now,
            resolve=mappings.resolve,
            templates=templates,
            document=sidecar.document,
            default_subject=sidecar.default_subject,
            source=sidecar.document_label if sidecar.document else (fields.url or sidecar.label),
            allow_expired=True,
        )
    except AttestationError as exc:
        ctx.problem(sidecar.label, sidecar_error(exc, sidecar.label, node))
        return None
    return attestation_observation(attestation)
