"""verify-bundle: every kind of tampering is caught and named; the CLI exits non-zero on it."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from collector.canonical import sha256_hex
from collector.cli import app
from collector.export import BundleMismatch, build_request, export_bundle, verify_bundle
from collector.export import bundle as bundle_module
from collector.export.errors import ExportError
from collector.export.signing import SIGNING_KEY_ENV, fingerprint, load_signing_key, public_key_b64
from collector.export.verify import MANIFEST_MAX_BYTES
from collector.logging import configure_logging
from collector.mappings import load_mappings
from collector.store.records import record_link
from collector.store.schema import UTCDateTime, evidence
from tests.test_export_bundle import CONTROL_FILE, ClockedStore, day, make_store

SIGNER = Ed25519PrivateKey.generate()
STRANGER = Ed25519PrivateKey.generate()
Members = dict[str, bytes]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    mappings = load_mappings()
    store = make_store(f"sqlite:///{root / 'evidence.db'}", mappings)
    request = build_request(mappings, {}, "c", "0.1.0", framework="soc2", period=(day(0), day(35)))
    out = root / "bundle.zip"
    export_bundle(store, request, out, SIGNER)
    store.dispose()
    return out


def members(path: Path) -> Members:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write(path: Path, content: Members | list[tuple[str, bytes]]) -> Path:
    items = content.items() if isinstance(content, dict) else content
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return path


def resign(content: Members, key: Ed25519PrivateKey, edit: Callable[[dict], None] | None = None) -> Members:
    """What someone holding ``key`` could do: rewrite the manifest to match the files and sign it again."""
    manifest = json.loads(content["manifest.json"])
    for entry in manifest["files"]:
        data = content[entry["path"]]
        entry["size"], entry["sha256"] = len(data), sha256_hex(data)
    if edit is not None:
        edit(manifest)
    raw = json.dumps(manifest, indent=2).encode()
    return {**content, "manifest.json": raw, "signature": key.sign(raw)}


def public_pem(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "signer.pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def test_an_untouched_bundle_verifies_against_its_signer(bundle: Path) -> None:
    report = verify_bundle(bundle, SIGNER.public_key())
    assert report.records == 12
    assert report.fingerprint == fingerprint(SIGNER.public_key())
    assert report.key_given


FILES = [
    "manifest.json",
    "signature",
    CONTROL_FILE,
    "controls.csv",
    "coverage.json",
    "assessment-results.json",
    "index.html",
]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("where", [0, 0.5, -1])
def test_changing_any_byte_of_any_file_fails(bundle: Path, tmp_path: Path, name: str, where: float) -> None:
    content = members(bundle)
    data = bytearray(content[name])
    index = -1 if where == -1 else int(len(data) * where)
    data[index] ^= 0x01
    tampered = write(tmp_path / "t.zip", {**content, name: bytes(data)})
    with pytest.raises(BundleMismatch) as caught:
        verify_bundle(tampered)
    if name not in ("manifest.json", "signature"):
        assert str(caught.value).startswith(f"{name}: content does not match the manifest")
    else:
        assert "signature" in str(caught.value) or "manifest.json" in str(caught.value)


@pytest.mark.parametrize("name", FILES)
def test_a_removed_file_fails(bundle: Path, tmp_path: Path, name: str) -> None:
    content = members(bundle)
    del content[name]
    with pytest.raises(BundleMismatch, match=f"{name}: .*missing"):
        verify_bundle(write(tmp_path / "t.zip", content))


def test_an_added_file_fails(bundle: Path, tmp_path: Path) -> None:
    content = {**members(bundle), "evidence/soc2/CC6.1.jsonl": b"{}\n"}
    with pytest.raises(BundleMismatch, match=r"CC6\.1\.jsonl: is in the bundle but not listed"):
        verify_bundle(write(tmp_path / "t.zip", content))


def test_a_second_entry_with_a_listed_name_fails(bundle: Path, tmp_path: Path) -> None:
    content = members(bundle)
    items = [*content.items(), ("controls.csv", b"control\nforged\n")]
    with pytest.warns(UserWarning, match="Duplicate name"):
        tampered = write(tmp_path / "t.zip", items)
    with pytest.raises(BundleMismatch, match=r"controls\.csv: appears more than once"):
        verify_bundle(tampered)


def test_a_signature_by_another_key_fails(bundle: Path, tmp_path: Path) -> None:
    content = members(bundle)
    content["signature"] = STRANGER.sign(content["manifest.json"])
    with pytest.raises(BundleMismatch, match="signature: does not verify"):
        verify_bundle(write(tmp_path / "t.zip", content))


def test_a_bundle_resigned_by_another_key_fails_against_the_real_signer(bundle: Path, tmp_path: Path) -> None:
    def swap_key(manifest: dict) -> None:
        manifest["signing"]["public_key"] = public_key_b64(STRANGER.public_key())
        manifest["signing"]["fingerprint"] = fingerprint(STRANGER.public_key())

    forged = write(tmp_path / "t.zip", resign(members(bundle), STRANGER, swap_key))
    assert verify_bundle(forged).fingerprint == fingerprint(STRANGER.public_key())
    with pytest.raises(BundleMismatch, match="not the given public key"):
        verify_bundle(forged, SIGNER.public_key())


def test_an_altered_record_fails_its_own_hashes_even_with_a_matching_manifest(bundle: Path, tmp_path: Path) -> None:
    content = members(bundle)
    lines = content[CONTROL_FILE].splitlines(keepends=True)
    record = json.loads(lines[3])
    record["payload"]["critical"] = 0 if record["payload"]["critical"] else 7
    lines[3] = (json.dumps(record) + "\n").encode()
    forged = write(tmp_path / "t.zip", resign({**content, CONTROL_FILE: b"".join(lines)}, SIGNER))
    with pytest.raises(BundleMismatch, match=r"CC7.1.jsonl line 4 .*payload does not match its content SHA-256"):
        verify_bundle(forged, SIGNER.public_key())


def test_a_record_with_rewritten_content_hash_breaks_its_chain_hash(bundle: Path, tmp_path: Path) -> None:
    content = members(bundle)
    lines = content[CONTROL_FILE].splitlines(keepends=True)
    record = json.loads(lines[5])
    record["observed_at"] = day(-30).isoformat()
    lines[5] = (json.dumps(record) + "\n").encode()
    forged = write(tmp_path / "t.zip", resign({**content, CONTROL_FILE: b"".join(lines)}, SIGNER))
    with pytest.raises(BundleMismatch, match=r"line 6 .*do not match the record's chain hash"):
        verify_bundle(forged)


def test_a_record_rechained_onto_a_forged_predecessor_fails(bundle: Path, tmp_path: Path) -> None:
    """Even with a self-consistent chain hash, a record must link to the record before it."""
    content = members(bundle)
    lines = content[CONTROL_FILE].splitlines(keepends=True)
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert second["seq"] == first["seq"] + 1
    second["prev_hash"] = "f" * 64
    chained = SimpleNamespace(
        **{k: second[k] for k in CHAINED_TEXT},
        observed_at=datetime.fromisoformat(second["observed_at"]),
        valid_until=None,
        collected_at=datetime.fromisoformat(second["collected_at"]),
    )
    second["chain_hash"] = record_link(
        second["prev_hash"],
        chained,
        datetime.fromisoformat(second["stored_at"]),
        json.dumps(second["controls"]),
        json.dumps(second["checks"], sort_keys=True),
    )
    lines[1] = (json.dumps(second) + "\n").encode()
    forged = write(tmp_path / "t.zip", resign({**content, CONTROL_FILE: b"".join(lines)}, SIGNER))
    with pytest.raises(BundleMismatch, match=f"line 2 .*does not link to record seq={first['seq']}"):
        verify_bundle(forged)


CHAINED_TEXT = tuple(
    c.name
    for c in evidence.columns
    if not isinstance(c.type, UTCDateTime) and c.name not in ("seq", "controls", "checks", "prev_hash", "chain_hash")
)
"""The evidence columns the chain hash takes as they are stored (text): all but the times, the JSON and the links."""


def test_a_damaged_zip_fails(bundle: Path, tmp_path: Path) -> None:
    data = bytearray(bundle.read_bytes())
    data[len(data) // 3] ^= 0xFF
    damaged = tmp_path / "t.zip"
    damaged.write_bytes(bytes(data))
    with pytest.raises(BundleMismatch):
        verify_bundle(damaged)
    (tmp_path / "empty.zip").write_bytes(b"")
    with pytest.raises(BundleMismatch, match="not a readable zip"):
        verify_bundle(tmp_path / "empty.zip")


# -- the command line ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI points logging at the runner's captured stderr, which is closed after each invoke."""
    yield
    configure_logging(stream=sys.__stderr__)


@pytest.fixture
def cli_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    mappings = load_mappings()
    store: ClockedStore = make_store(f"sqlite:///{tmp_path / 'evidence.db'}", mappings)
    store.dispose()
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path / 'evidence.db'}\n")
    pem = SIGNER.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return config, {SIGNING_KEY_ENV: pem}


def test_cli_export_then_verify(cli_env: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    config, env = cli_env
    out = tmp_path / "audit.zip"
    args = ["--config", str(config), "export", "--framework", "soc2", "--control", "CC7.1"]
    result = CliRunner().invoke(app, [*args, "--period", "2026-09-01..2026-10-06", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert "12 records, 1 controls, 2 gaps" in " ".join(result.output.split())
    pub = public_pem(tmp_path, SIGNER)
    verified = CliRunner().invoke(app, ["verify-bundle", str(out), "--public-key", str(pub)])
    assert verified.exit_code == 0, verified.output
    assert "bundle verified: 7 files, 12 evidence records" in verified.output

    content = members(out)
    content["coverage.json"] = content["coverage.json"].replace(b'"stale"', b'"fresh"', 1)
    tampered = write(tmp_path / "tampered.zip", content)
    failed = CliRunner().invoke(app, ["verify-bundle", str(tampered), "--public-key", str(pub)])
    assert failed.exit_code == 1
    assert "coverage.json: content does not match the manifest" in failed.output

    stranger = CliRunner().invoke(app, ["verify-bundle", str(out), "--public-key", str(public_pem(tmp_path, STRANGER))])
    assert stranger.exit_code == 1
    assert "not the given public key" in stranger.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--framework", "soc2", "--as-of", "2026-08-01"], "before the first record was stored"),
        (["--framework", "soc2", "--period", "2026-09-05..2026-09-01"], "empty period"),
        (["--framework", "soc2", "--period", "2026-09-05"], "must be START..END"),
        (["--framework", "soc2", "--as-of", "yesterday"], "not an ISO 8601"),
        (["--framework", "nope", "--as-of", "2026-09-05"], "unknown framework"),
        (["--framework", "soc2", "--control", "CC0", "--as-of", "2026-09-05"], "unknown control"),
    ],
)
def test_cli_bad_input_exits_2_with_no_bundle(
    cli_env: tuple[Path, dict[str, str]], tmp_path: Path, args: list[str], message: str
) -> None:
    config, env = cli_env
    out = tmp_path / "audit.zip"
    result = CliRunner().invoke(app, ["--config", str(config), "export", *args, "--out", str(out)], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_without_a_key_exits_2(cli_env: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    config, _ = cli_env
    out = tmp_path / "audit.zip"
    args = ["--config", str(config), "export", "--framework", "soc2", "--as-of", "2026-09-05", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={SIGNING_KEY_ENV: ""})
    assert result.exit_code == 2
    assert "no signing key" in result.output
    assert not out.exists()


# -- hostile manifests and key files: a one-line reason and exit 1 or 2, never a crash -------------------------

_RAW = "\u0000raw\u0000"
_RAW_TOKENS = ["1" * 5000, "[" * 100_000 + "]" * 100_000, "1e99999", "-1e99999", "NaN", "-Infinity", "{}", "[]"]
_HOSTILE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -1, 2**63, 2**64 + 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _locations(value: object, at: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [at]
    if isinstance(value, dict):
        found += [loc for key, item in value.items() for loc in _locations(item, (*at, key))]
    elif isinstance(value, list):
        found += [loc for index, item in enumerate(value[:3]) for loc in _locations(item, (*at, index))]
    return found


@st.composite
def _hostile_manifest(draw: st.DrawFn, original: bytes) -> bytes:
    manifest = json.loads(original)
    loc = draw(st.sampled_from(_locations(manifest)))
    action = draw(st.sampled_from(["replace", "delete", "raw", "bytes"]))
    if action == "bytes":
        at = draw(st.integers(0, len(original)))
        return original[:at] + draw(st.binary(min_size=1, max_size=8).filter(lambda b: b"\xff" in b or b"\x80" in b))
    if not loc:
        return json.dumps(draw(_HOSTILE)).encode() if action != "raw" else draw(st.sampled_from(_RAW_TOKENS)).encode()
    parent: Any = manifest
    for part in loc[:-1]:
        parent = parent[part]
    if action == "delete":
        del parent[loc[-1]]
        return json.dumps(manifest).encode()
    parent[loc[-1]] = draw(_HOSTILE) if action == "replace" else _RAW
    text = json.dumps(manifest)
    return text.replace(json.dumps(_RAW), draw(st.sampled_from(_RAW_TOKENS))).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_verify_bundle_reports_any_manifest_in_one_line_and_never_crashes(
    bundle: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    content = members(bundle)
    raw = data.draw(_hostile_manifest(content["manifest.json"]))
    resigned = data.draw(st.booleans())
    signature = SIGNER.sign(raw) if resigned else content["signature"]
    hostile = write(
        tmp_path_factory.mktemp("hostile") / "hostile.zip", {**content, "manifest.json": raw, "signature": signature}
    )
    public_key = public_pem(tmp_path_factory.mktemp("key"), SIGNER)

    result = CliRunner().invoke(app, ["verify-bundle", str(hostile), "--public-key", str(public_key)])

    assert "Traceback" not in result.output and "unexpected error" not in result.output
    if raw == content["manifest.json"] or (resigned and result.exit_code == 0):
        assert result.exit_code == 0, result.output  # what its signer signed, with every checked field intact
        return
    assert result.exit_code in (1, 2), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_public_key_that_is_a_device_or_a_pipe_is_refused_without_reading_it(bundle: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "key.pipe"
    os.mkfifo(fifo)
    for key in ("/dev/zero", str(fifo)):
        result = CliRunner().invoke(app, ["verify-bundle", str(bundle), "--public-key", key])
        assert result.exit_code == 1, result.output
        assert f"public key {key}: is a " in result.output
        assert "not a regular file" in result.output
        as_bundle = CliRunner().invoke(app, ["verify-bundle", key])
        assert as_bundle.exit_code == 1, as_bundle.output
        assert as_bundle.output.strip().endswith(
            f"{key}: is {'a character device' if key == '/dev/zero' else 'a named pipe'}, not a regular file"
        )


def test_an_oversized_key_file_is_refused_by_its_size(bundle: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.pem"
    big.write_bytes(public_pem(tmp_path, SIGNER).read_bytes() * 1000)
    result = CliRunner().invoke(app, ["verify-bundle", str(bundle), "--public-key", str(big)])
    assert result.exit_code == 1
    assert "is larger than 64 KiB" in result.output
    with pytest.raises(ExportError, match=r"signing key .*: is larger than 64 KiB"):
        load_signing_key(big)
    with pytest.raises(ExportError, match="signing key /dev/zero: is a character device"):
        load_signing_key(Path("/dev/zero"))


def test_a_manifest_zip_bomb_is_read_only_up_to_its_limit(bundle: Path, tmp_path: Path) -> None:
    content = members(bundle)
    padded = content["manifest.json"].rstrip(b"\n") + b" " * (MANIFEST_MAX_BYTES + 1)
    hostile = write(tmp_path / "bomb.zip", {**content, "manifest.json": padded})
    with pytest.raises(BundleMismatch, match=r"manifest\.json: larger than"):
        verify_bundle(hostile, SIGNER.public_key())


def test_export_refuses_to_replace_a_device_a_pipe_or_a_directory(
    cli_env: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    config, env = cli_env
    device = tmp_path / "full"
    device.symlink_to("/dev/full")  # the reporter's `--out /dev/full`, without risking the real node
    fifo = tmp_path / "bundle.pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    args = ["--config", str(config), "export", "--framework", "soc2", "--period", "2026-09-01..2026-10-06"]
    for out, kind in ((device, "a character device"), (fifo, "a named pipe"), (folder, "a directory")):
        result = CliRunner().invoke(app, [*args, "--out", str(out)], env=env)
        assert result.exit_code == 2, result.output
        assert result.output.strip() == f"export: cannot write {out}: it is {kind}, not a regular file"
    assert device.is_symlink() and device.resolve() == Path("/dev/full")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_full_disk_is_an_error_and_leaves_the_previous_bundle(
    cli_env: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, env = cli_env
    out = tmp_path / "audit.zip"
    out.write_bytes(b"the previous bundle")
    written = 0

    def fill_up(self: Any, data: bytes) -> None:
        nonlocal written
        written += len(data)
        if written > 20_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(self, data)

    real_write = bundle_module._Entry.write
    monkeypatch.setattr(bundle_module._Entry, "write", fill_up)
    args = ["--config", str(config), "export", "--framework", "soc2", "--period", "2026-09-01..2026-10-06"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"export: cannot write {out}: No space left on device"
    assert out.read_bytes() == b"the previous bundle"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
