"""Signed checkpoints of the evidence chain, kept outside the database.

A checkpoint is (seq, chain hash, time) signed with an Ed25519 key the database never holds (the bundle signing
code, :mod:`collector.export.signing`). The daemon writes one on a schedule to an append-only sink: a directory
where each checkpoint is a new file, created exclusively and never rewritten. Whoever can write the database can
remove its tail or rebuild the chain, but cannot make the record at a checkpoint's seq carry the checkpoint's
chain hash again: ``verify --checkpoint`` finds the truncation or the re-chaining."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from collector.export.files import read_regular_file
from collector.export.signing import fingerprint, public_key_b64, public_key_from_b64
from collector.store import ChainHead, Store

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "CheckpointProblem",
    "check_against_store",
    "latest_checkpoint",
    "write_checkpoint",
]

CHECKPOINT_FORMAT = "evidence-collector-checkpoint/1"
_MAX_BYTES = 64 << 10


class CheckpointProblem(Exception):
    """A checkpoint cannot be read or trusted, or the store does not hold what it says."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    chain_hash: str
    at: datetime
    fingerprint: str
    path: Path | None = None

    def body(self) -> bytes:
        """The signed bytes: canonical JSON of the checkpoint's fields."""
        document = {
            "format": CHECKPOINT_FORMAT,
            "seq": self.seq,
            "chain_hash": self.chain_hash,
            "at": self.at.astimezone(UTC).isoformat(),
            "fingerprint": self.fingerprint,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def write_checkpoint(store: Store, destination: Path, key: Ed25519PrivateKey, now: datetime) -> Checkpoint:
    """Sign the store's chain head and add it to ``destination`` as a new file (never overwriting one)."""
    head = store.chain_head()
    public = key.public_key()
    cp = Checkpoint(head.seq, head.chain_hash, now, fingerprint(public))
    body = cp.body()
    document = {
        "checkpoint": json.loads(body),
        "signature": base64.b64encode(key.sign(body)).decode("ascii"),
        "public_key": public_key_b64(public),
    }
    destination.mkdir(parents=True, exist_ok=True)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = destination / f"checkpoint-{stamp}-{head.seq:015d}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        os.write(fd, (json.dumps(document, sort_keys=True, indent=1) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return Checkpoint(cp.seq, cp.chain_hash, cp.at, cp.fingerprint, path)


def read_checkpoint(path: Path, public_key: Ed25519PublicKey | None) -> Checkpoint:
    """Read and check one checkpoint file; with ``public_key`` it must be that key's signature."""
    try:
        document = json.loads(read_regular_file(path, _MAX_BYTES))
        fields = document["checkpoint"]
        signature = base64.b64decode(document["signature"], validate=True)
        embedded = public_key_from_b64(str(document["public_key"]))
        cp = Checkpoint(
            int(fields["seq"]),
            str(fields["chain_hash"]),
            datetime.fromisoformat(str(fields["at"])),
            str(fields["fingerprint"]),
            path,
        )
        if fields.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {fields.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointProblem(f"checkpoint {path}: not readable: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # BundleMismatch from the key decoder
        raise CheckpointProblem(f"checkpoint {path}: {exc}") from exc
    key = public_key or embedded
    if fingerprint(key) != cp.fingerprint:
        raise CheckpointProblem(
            f"checkpoint {path}: signed by {cp.fingerprint}, not by the given key {fingerprint(key)}"
        )
    try:
        key.verify(signature, cp.body())
    except InvalidSignature as exc:
        raise CheckpointProblem(f"checkpoint {path}: the signature does not verify (altered checkpoint)") from exc
    return cp


def latest_checkpoint(source: Path, public_key: Ed25519PublicKey | None) -> Checkpoint:
    """The checkpoint with the highest seq (then the latest time) in a directory, or the one file given."""
    paths = sorted(source.glob("checkpoint-*.json")) if source.is_dir() else [source]
    if not paths:
        raise CheckpointProblem(f"{source}: holds no checkpoint-*.json file")
    checkpoints = [read_checkpoint(p, public_key) for p in paths]
    return max(checkpoints, key=lambda cp: (cp.seq, cp.at))


def check_against_store(cp: Checkpoint, head: ChainHead, hash_at_seq: str | None) -> str | None:
    """Why the store does not continue the checkpoint (truncated or re-chained), else None."""
    if hash_at_seq is None:
        return (
            f"truncated: the checkpoint of {cp.at.isoformat()} records seq {cp.seq}, the store ends at seq {head.seq}"
        )
    if hash_at_seq != cp.chain_hash:
        return (
            f"re-chained: record seq {cp.seq} has chain hash {hash_at_seq}, the checkpoint of {cp.at.isoformat()} "
            f"signed {cp.chain_hash}"
        )
    return None
