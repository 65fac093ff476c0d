"""Ed25519 keys for bundles: load a PEM private key (file or environment), sign, fingerprint, verify."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from collector.export.errors import BundleMismatch, ExportError
from collector.export.files import KEY_FILE_MAX_BYTES, read_regular_file

__all__ = [
    "SIGNING_KEY_ENV",
    "SIGNING_KEY_PASSWORD_ENV",
    "check_signature",
    "fingerprint",
    "load_public_key",
    "load_signing_key",
    "public_key_b64",
    "public_key_from_b64",
]

SIGNING_KEY_ENV = "EVIDENCE_COLLECTOR_SIGNING_KEY"
"""PEM text of the Ed25519 private key (for secret stores that inject environment variables)."""
SIGNING_KEY_PASSWORD_ENV = "EVIDENCE_COLLECTOR_SIGNING_KEY_PASSWORD"  # noqa: S105 - a variable name


def load_signing_key(path: Path | None, environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey:
    env = os.environ if environ is None else environ
    if path is not None:
        try:
            pem = read_regular_file(path, KEY_FILE_MAX_BYTES)
        except OSError as exc:
            raise ExportError(f"signing key {path}: cannot read: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise ExportError(f"signing key {path}: {exc}") from exc
        where = f"signing key {path}"
    elif env.get(SIGNING_KEY_ENV):
        pem = env[SIGNING_KEY_ENV].encode()
        where = f"signing key in ${SIGNING_KEY_ENV}"
    else:
        raise ExportError(
            f"no signing key: pass --sign-key FILE or set ${SIGNING_KEY_ENV} to an Ed25519 private key in PEM "
            "(create one with `openssl genpkey -algorithm ed25519 -out signing-key.pem`)"
        )
    password = env.get(SIGNING_KEY_PASSWORD_ENV)
    secret = password.encode() if password else None
    try:
        if b"OPENSSH PRIVATE KEY" in pem:
            key: object = serialization.load_ssh_private_key(pem, password=secret)
        else:
            key = serialization.load_pem_private_key(pem, password=secret)
    except (ValueError, TypeError) as exc:
        raise ExportError(f"{where}: not a usable PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ExportError(f"{where}: is a {type(key).__name__.removeprefix('_')}, bundles are signed with Ed25519")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        pem = read_regular_file(path, KEY_FILE_MAX_BYTES)
    except OSError as exc:
        raise BundleMismatch(f"public key {path}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise BundleMismatch(f"public key {path}: {exc}") from exc
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise BundleMismatch(f"public key {path}: not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BundleMismatch(f"public key {path}: not an Ed25519 key")
    return key


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(_raw(key)).decode("ascii")


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise BundleMismatch(f"manifest: signing.public_key is not a raw Ed25519 key: {exc}") from exc


def fingerprint(key: Ed25519PublicKey) -> str:
    """``sha256:`` and the hex SHA-256 of the raw 32-byte public key."""
    return "sha256:" + hashlib.sha256(_raw(key)).hexdigest()


def check_signature(key: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    try:
        key.verify(signature, message)
    except InvalidSignature as exc:
        raise BundleMismatch("signature: does not verify over manifest.json with the signing key") from exc
