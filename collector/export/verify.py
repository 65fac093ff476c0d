"""Check a bundle: the signature over manifest.json, the file set, every file's size and SHA-256, and each
evidence record's content hash and chain link. The first thing that does not match is raised."""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, Field, StrictInt, StrictStr, ValidationError

from collector.export.bundle import BUNDLE_FORMAT, MANIFEST, SIGNATURE
from collector.export.errors import BundleMismatch
from collector.export.evidence_lines import record_problem
from collector.export.files import open_regular_file
from collector.export.signing import check_signature, fingerprint, public_key_from_b64

__all__ = ["VerifyReport", "verify_bundle"]

_CHUNK = 1 << 20
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError, ValueError)
MANIFEST_MAX_BYTES = 64 << 20
"""A manifest lists one entry per file; far larger is a zip bomb, not a bundle."""
_SIGNATURE_MAX_BYTES = 1024


class _Listed(BaseModel):
    path: StrictStr = Field(min_length=1)
    size: StrictInt = Field(ge=0)
    sha256: StrictStr


class _Signing(BaseModel):
    public_key: StrictStr
    fingerprint: StrictStr


class _Counts(BaseModel):
    evidence_lines: StrictInt = Field(ge=0)


class _ManifestShape(BaseModel):
    """The fields verification reads, with the types it relies on; other fields are the exporter's business."""

    format: StrictStr
    files: list[_Listed]
    signing: _Signing
    counts: _Counts


@dataclass(frozen=True)
class VerifyReport:
    files: int
    records: int
    """Evidence lines whose content hash and chain hash were recomputed."""
    fingerprint: str
    key_given: bool
    """False when only the key inside the bundle was used: integrity is shown, not who signed."""
    manifest: dict[str, Any]


def _read_member(bundle: zipfile.ZipFile, name: str, max_bytes: int) -> bytes:
    try:
        with bundle.open(name) as handle:
            data = handle.read(max_bytes + 1)
    except _UNREADABLE as exc:
        raise BundleMismatch(f"{name}: cannot be read from the zip: {exc}") from exc
    if len(data) > max_bytes:
        raise BundleMismatch(f"{name}: larger than {max_bytes} bytes; not a bundle's {name}")
    return data


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BundleMismatch(f"{MANIFEST}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or an integer of thousands of digits
        raise BundleMismatch(f"{MANIFEST}: not valid JSON ({_one_line(exc)})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleMismatch(f"{MANIFEST}: not an evidence bundle manifest (format {BUNDLE_FORMAT} expected)")
    for key in ("files", "signing", "counts"):
        if key not in manifest:
            raise BundleMismatch(f"{MANIFEST}: has no {key!r}")
    try:
        _ManifestShape.model_validate(manifest)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BundleMismatch(f"{MANIFEST}: {where}: {first['msg']}") from exc
    return manifest


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _check_signer(manifest: dict[str, Any], raw: bytes, signature: bytes, given: Ed25519PublicKey | None) -> str:
    signing = manifest["signing"]
    embedded = public_key_from_b64(str(signing.get("public_key", "")))
    if fingerprint(embedded) != signing.get("fingerprint"):
        raise BundleMismatch(f"{MANIFEST}: signing.fingerprint does not match signing.public_key")
    key = embedded
    if given is not None:
        if fingerprint(given) != signing.get("fingerprint"):
            raise BundleMismatch(
                f"signature: the bundle names signing key {signing.get('fingerprint')}, "
                f"not the given public key {fingerprint(given)}"
            )
        key = given
    check_signature(key, signature, raw)
    return fingerprint(key)


def _check_file_set(names: list[str], listed: dict[str, dict[str, Any]]) -> None:
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise BundleMismatch(f"{duplicates[0]}: appears more than once in the zip")
    present = set(names) - {MANIFEST, SIGNATURE}
    for name in sorted(present - set(listed)):
        raise BundleMismatch(f"{name}: is in the bundle but not listed in {MANIFEST} (file added)")
    for name in sorted(set(listed) - present):
        raise BundleMismatch(f"{name}: is listed in {MANIFEST} but missing from the bundle (file removed)")


@dataclass
class _EvidenceCheck:
    name: str
    lines: int = 0
    problem: str | None = None
    _prev_seq: int | None = None
    _prev_chain: str | None = None

    def line(self, raw: bytes) -> None:
        self.lines += 1
        if self.problem is not None:
            return
        where = f"{self.name} line {self.lines}"
        try:
            record = json.loads(raw)
            problem = record_problem(record)
            seq, prev_hash, chain = int(record["seq"]), record["prev_hash"], record["chain_hash"]
        except (
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            RecursionError,
        ) as exc:  # AttributeError: not an object
            self.problem = f"{where}: not a well-formed evidence record ({type(exc).__name__}: {exc})"
            return
        if problem is not None:
            self.problem = f"{where} (record seq={seq} id={record.get('id')}): {problem}"
        elif self._prev_seq is not None and seq == self._prev_seq + 1 and prev_hash != self._prev_chain:
            self.problem = f"{where} (record seq={seq}): its previous-hash does not link to record seq={seq - 1}"
        self._prev_seq, self._prev_chain = seq, chain


def _hash_member(handle: IO[bytes], check: _EvidenceCheck | None) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    if check is None:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        return size, digest.hexdigest()
    for raw in handle:
        digest.update(raw)
        size += len(raw)
        check.line(raw)
    return size, digest.hexdigest()


def _check_file(bundle: zipfile.ZipFile, entry: dict[str, Any]) -> int:
    name = str(entry["path"])
    check = _EvidenceCheck(name) if name.startswith("evidence/") and name.endswith(".jsonl") else None
    try:
        with bundle.open(name) as handle:
            size, sha256 = _hash_member(handle, check)
    except _UNREADABLE as exc:
        raise BundleMismatch(f"{name}: cannot be read from the zip: {exc}") from exc
    if sha256 != entry.get("sha256") or size != entry.get("size"):
        raise BundleMismatch(
            f"{name}: content does not match the manifest (SHA-256 {sha256}, size {size}; "
            f"manifest says {entry.get('sha256')}, size {entry.get('size')})"
        )
    if check is not None and check.problem is not None:
        raise BundleMismatch(check.problem)
    return check.lines if check is not None else 0


def verify_bundle(path: Path, public_key: Ed25519PublicKey | None = None) -> VerifyReport:
    try:
        handle = open_regular_file(path)
    except (OSError, ValueError) as exc:
        raise BundleMismatch(f"{path}: {exc.strerror if isinstance(exc, OSError) else exc}") from exc
    try:
        bundle = zipfile.ZipFile(handle)
    except _UNREADABLE as exc:
        handle.close()
        raise BundleMismatch(f"{path}: not a readable zip bundle: {exc}") from exc
    with handle, bundle:
        names = bundle.namelist()
        for required in (MANIFEST, SIGNATURE):
            if required not in names:
                raise BundleMismatch(f"{required}: missing from the bundle")
        raw = _read_member(bundle, MANIFEST, MANIFEST_MAX_BYTES)
        manifest = _manifest(raw)
        signer = _check_signer(manifest, raw, _read_member(bundle, SIGNATURE, _SIGNATURE_MAX_BYTES), public_key)
        listed = {str(f["path"]): f for f in manifest["files"]}
        _check_file_set(names, listed)
        lines = sum(_check_file(bundle, entry) for entry in manifest["files"])
    expected = manifest["counts"].get("evidence_lines")
    if expected != lines:
        raise BundleMismatch(f"{MANIFEST}: counts.evidence_lines is {expected}, the evidence files hold {lines}")
    return VerifyReport(len(listed), lines, signer, public_key is not None, manifest)
