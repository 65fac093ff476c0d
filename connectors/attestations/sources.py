"""Where sidecars come from: a directory tree, or an S3 prefix. Each yields sidecar texts with their documents."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from collector.attestation import AttestationError, DocumentDigest, digest_file, digest_stream
from collector.sdk import CollectContext, ConfigurationError, call_with_retry, extra_needed

from .settings import AttestationsSettings

__all__ = ["Sidecar", "directory_sidecars", "s3_sidecars"]


@dataclass(frozen=True, slots=True)
class Sidecar:
    label: str
    """The sidecar's path or s3:// URL, as problems name it."""
    text: str
    document: DocumentDigest | None
    document_label: str
    """The document the sidecar describes (present or not)."""
    default_subject: str


def _too_large(label: str, size: int, settings: AttestationsSettings) -> str:
    return f"{label}: sidecar too large ({size} bytes, max_sidecar_bytes is {settings.max_sidecar_bytes})"


def _decode(data: bytes, label: str, ctx: CollectContext) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        ctx.problem(label, f"{label}: not UTF-8: {exc.reason} at byte {exc.start}")
        return None


def directory_sidecars(settings: AttestationsSettings, ctx: CollectContext) -> Iterator[Sidecar]:
    assert settings.directory is not None
    root = Path(settings.directory).expanduser()
    if not root.is_dir():
        raise ConfigurationError(f"attestations directory {root} does not exist or is not a directory")
    suffix = settings.sidecar_suffix
    for path in sorted(p for p in root.rglob(f"*{suffix}") if p.is_file()):
        ctx.raise_if_cancelled()
        label = str(path)
        try:
            size = path.stat().st_size
            if size > settings.max_sidecar_bytes:
                ctx.problem(label, _too_large(label, size, settings))
                continue
            data = path.read_bytes()
        except OSError as exc:
            ctx.problem(label, f"{label}: unreadable: {exc.strerror or exc}")
            continue
        text = _decode(data, label, ctx)
        if text is None:
            continue
        document_path = path.with_name(path.name[: -len(suffix)])
        document = None
        if document_path.exists():
            try:
                document = digest_file(document_path)
            except AttestationError as exc:
                ctx.problem(label, exc.message)
                continue
        yield Sidecar(label, text, document, str(document_path), document_path.relative_to(root).as_posix())


def _s3_client(settings: AttestationsSettings) -> Any:
    with extra_needed("an s3_bucket attestations source"):
        import boto3

    return boto3.client("s3", region_name=settings.s3_region, endpoint_url=settings.s3_endpoint_url)


def _list_objects(client: Any, bucket: str, prefix: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            sizes[obj["Key"]] = int(obj["Size"])
    return sizes


def _get(client: Any, bucket: str, key: str) -> Any:
    return call_with_retry(client.get_object, Bucket=bucket, Key=key)["Body"]


def s3_sidecars(settings: AttestationsSettings, ctx: CollectContext) -> Iterator[Sidecar]:
    assert settings.s3_bucket is not None
    bucket, suffix = settings.s3_bucket, settings.sidecar_suffix
    client = _s3_client(settings)
    from botocore.exceptions import BotoCoreError, ClientError

    sizes = call_with_retry(_list_objects, client, bucket, settings.s3_prefix)
    for key in sorted(k for k in sizes if k.endswith(suffix)):
        ctx.raise_if_cancelled()
        label = f"s3://{bucket}/{key}"
        if sizes[key] > settings.max_sidecar_bytes:
            ctx.problem(label, _too_large(label, sizes[key], settings))
            continue
        document_key = key[: -len(suffix)]
        try:
            text = _decode(_get(client, bucket, key).read(), label, ctx)
            if text is None:
                continue
            document = None
            if document_key in sizes:
                with _get(client, bucket, document_key) as body:
                    document = digest_stream(PurePosixPath(document_key).name, body)
        except (ClientError, BotoCoreError) as exc:
            ctx.problem(label, f"{label}: cannot read from S3: {exc}")
            continue
        yield Sidecar(label, text, document, f"s3://{bucket}/{document_key}", document_key)
