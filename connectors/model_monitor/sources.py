"""Report files from local globs and S3 prefixes, read as JSON with a size limit."""

from __future__ import annotations

import codecs
import glob
import json
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collector.sdk import CollectContext

from .aws import AWS_ERRORS, ClientFactory, aws_error, split_s3_uri
from .reports import ReportError

__all__ = ["ReportFile", "decode_json", "list_files", "list_s3_files", "read_s3_object"]


@dataclass(frozen=True, slots=True)
class ReportFile:
    source: str
    """A local path or ``s3://bucket/key``."""
    directory: str
    modified_at: datetime
    read: Callable[[], bytes]

    @property
    def name(self) -> str:
        return posixpath.basename(self.source)


def decode_json(data: bytes) -> Any:
    """JSON from UTF-8 (with or without a BOM); Evidently writes bare ``NaN``, which is accepted here."""
    if not data.strip():
        raise ReportError("empty file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ReportError("not valid JSON: nested too deeply") from None


def _read_local(path: str, max_bytes: int) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise ReportError(f"unreadable: {exc.strerror or exc}") from None
        if len(data) > max_bytes:
            raise ReportError(f"file too large: more than {max_bytes} bytes (max_file_bytes)")
        return data.removeprefix(codecs.BOM_UTF8)

    return read


def list_files(pattern: str, max_bytes: int, ctx: CollectContext) -> list[ReportFile]:
    """Every file the glob matches, each once, in sorted order."""
    matches = glob.glob(os.path.expanduser(pattern), recursive=True)
    paths = sorted({p for p in matches if os.path.isfile(p)})
    if not paths:
        ctx.problem(pattern, "no files match" + (" (only directories)" if matches else ""))
    out = []
    for path in paths:
        modified = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
        out.append(ReportFile(path, os.path.dirname(path), modified, _read_local(path, max_bytes)))
    return out


def read_s3_object(s3: Any, bucket: str, key: str, max_bytes: int) -> bytes:
    response = s3.get_object(Bucket=bucket, Key=key)
    size = int(response.get("ContentLength") or 0)
    body = response["Body"]
    try:
        if size > max_bytes:
            raise ReportError(f"object too large: {size} bytes, max_file_bytes is {max_bytes}")
        data: bytes = body.read(max_bytes + 1)
    finally:
        body.close()
    if len(data) > max_bytes:
        raise ReportError(f"object too large: more than {max_bytes} bytes (max_file_bytes)")
    return data


def _read_s3(s3: Any, bucket: str, key: str, max_bytes: int) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return read_s3_object(s3, bucket, key, max_bytes)
        except AWS_ERRORS as exc:
            raise ReportError(f"cannot read: {aws_error(exc)}") from None

    return read


def list_s3_files(uri: str, clients: ClientFactory, max_bytes: int, ctx: CollectContext) -> list[ReportFile]:
    """Every ``.json`` object under the prefix; a listing failure is one problem for the whole source."""
    bucket, prefix = split_s3_uri(uri)
    s3 = clients("s3", None)
    out = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents") or []:
                key = item["Key"]
                if not key.endswith(".json"):
                    continue
                source = f"s3://{bucket}/{key}"
                directory = f"s3://{bucket}/{posixpath.dirname(key)}"
                out.append(ReportFile(source, directory, item["LastModified"], _read_s3(s3, bucket, key, max_bytes)))
    except AWS_ERRORS as exc:
        ctx.problem(uri, f"cannot list: {aws_error(exc)}")
        return []
    if not out:
        ctx.problem(uri, "no .json objects under this prefix")
    return sorted(out, key=lambda f: f.source)
