"""Verifiable results: a canonical digest of the JSON result and an ed25519 signature over it.

A printed label is only worth something if anyone can check that it belongs to an unmodified
result. So the result is reduced to one canonical byte string (keys sorted, no whitespace,
UTF-8, no NaN), its SHA-256 digest goes into the label's QR code and metadata, and a lab signs
the result with a key it generated itself (``iotrate keys new``).

The signature is a *detached envelope* (``RESULT.json.sig``), not a block inside the result: the
result keeps validating against its published schema, and the bytes that were signed are
exactly the result file's JSON value. The envelope's own fields (digest, key id, time) are signed
too, by signing the canonical form of the envelope without its ``signature`` field.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from iotrate.errors import RuntimeFailure, UsageError
from iotrate.models import ScanResult, utcnow

CANONICALIZATION = "iotrate-json-1"  # json sorted keys, separators (",", ":"), UTF-8, no NaN
ENVELOPE_TYPE = "iotrate-signature"
ENVELOPE_VERSION = 1
PRIVATE_KEY_NAME = "iotrate-signing.key"
PUBLIC_KEY_NAME = "iotrate-signing.pub"


def canonical_json(value: Any) -> bytes:
    """The one byte string a JSON value is hashed and signed as."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def result_digest(result: ScanResult) -> str:
    """Digest of a result held in memory; equal to the digest of the file iotrate writes."""
    return digest(result.model_dump(mode="json"))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # With duplicate keys, two JSON parsers can see two different results behind one digest.
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc}") from exc
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class LoadedResult:
    """A result file as read: its JSON value (what the digest covers) and the typed model."""

    path: Path
    value: Any
    result: ScanResult
    digest: str


def load_result(path: Path) -> LoadedResult:
    value = load_json(path)
    try:
        result = ScanResult.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{path}: not an iotrate result ({where}: {first['msg']})") from exc
    return LoadedResult(path=path, value=value, result=result, digest=digest(value))


# --- keys -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Short fingerprint people can compare by eye and print in a lab report."""
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def new_keypair(directory: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write a fresh keypair; the private key file is created 0600 and never overwritten
    unless ``force``, because losing a lab's key orphans every label it signed."""
    priv_path, pub_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    if not force and (priv_path.exists() or pub_path.exists()):
        raise UsageError(f"{priv_path} already exists (use --force to replace it)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if force:
            priv_path.unlink(missing_ok=True)
        fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, pem)
        finally:
            os.close(fd)
        pub_path.write_bytes(pub_pem)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write the keypair in {directory}: {exc}") from exc
    return priv_path, pub_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such key file") from exc
    except OSError as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path} is readable by other users; run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path}: not an ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such key file") from exc
    except OSError as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise UsageError(f"{path}: not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{path}: not an ed25519 key")
    return key


# --- envelopes --------------------------------------------------------------------------------


def signature_path(result_path: Path) -> Path:
    return result_path.with_name(result_path.name + ".sig")


def sign_value(
    value: Any, key: Ed25519PrivateKey, *, signed_at: datetime | None = None
) -> dict[str, Any]:
    public = key.public_key()
    envelope: dict[str, Any] = {
        "type": ENVELOPE_TYPE,
        "version": ENVELOPE_VERSION,
        "algorithm": "ed25519",
        "canonicalization": CANONICALIZATION,
        "result_sha256": digest(value),
        "public_key": _b64(_raw_public(public)),
        "key_id": key_id(public),
        "signed_at": (signed_at or utcnow()).isoformat(),
    }
    envelope["signature"] = _b64(key.sign(canonical_json(envelope)))
    return envelope


def verify_envelope(
    value: Any, envelope: Any, *, trusted: Ed25519PublicKey | None = None
) -> list[str]:
    """Problems found, empty when the signature is valid for exactly this result.

    Without ``trusted`` the envelope's own public key is used: that proves the result was not
    changed since signing, not who signed it; the caller shows the key id so a person can.
    """
    if not isinstance(envelope, dict):
        return ["the signature file is not a JSON object"]
    if envelope.get("type") != ENVELOPE_TYPE or envelope.get("version") != ENVELOPE_VERSION:
        return ["the signature file is not an iotrate signature envelope (version 1)"]
    if envelope.get("algorithm") != "ed25519" or envelope.get("canonicalization") != (
        CANONICALIZATION
    ):
        return ["unsupported algorithm or canonicalization in the signature envelope"]
    problems: list[str] = []
    if envelope.get("result_sha256") != digest(value):
        problems.append("the result's digest differs from the signed digest: it was changed")
    try:
        raw = base64.b64decode(str(envelope.get("public_key", "")), validate=True)
        signature = base64.b64decode(str(envelope.get("signature", "")), validate=True)
        embedded = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return [*problems, "the envelope's public key or signature is malformed"]
    if trusted is not None and _raw_public(trusted) != raw:
        problems.append(
            f"signed by key {key_id(embedded)}, not by the trusted key {key_id(trusted)}"
        )
    body = {k: v for k, v in envelope.items() if k != "signature"}
    try:
        embedded.verify(signature, canonical_json(body))
    except InvalidSignature:
        problems.append("the signature does not match the envelope")
    return problems
