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
import re
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
from iotrate.privatefiles import make_private_dir, write_private
from iotrate.yamlfiles import excerpt

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
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_nan)
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON: {excerpt(exc)}") from exc


def _no_nan(name: str) -> Any:
    # NaN and Infinity are not JSON; Python reads them, but no canonical form (no digest,
    # no signature) exists for them, so a file holding one is refused when read.
    raise ValueError(f"{name} is not a JSON number")


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
        make_private_dir(directory)
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


@dataclass(frozen=True)
class Verification:
    """What checking an envelope found. ``signer`` is the public key whose signature verified
    (None unless it did): the key id shown to people is computed from it, never read from the
    envelope, whose ``key_id`` field is only a claim whoever made the envelope chose."""

    problems: list[str]
    signer: Ed25519PublicKey | None

    @property
    def signer_id(self) -> str | None:
        return key_id(self.signer) if self.signer is not None else None


def check_envelope(
    value: Any, envelope: Any, *, trusted: Ed25519PublicKey | None = None
) -> Verification:
    """Check the envelope against exactly this result; with ``trusted``, also that this key
    made it. Without it, a valid signature proves the result was not changed since signing,
    not who signed it: the caller decides who the signer is from :attr:`Verification.signer`."""
    if not isinstance(envelope, dict):
        return Verification(["the signature file is not a JSON object"], None)
    if envelope.get("type") != ENVELOPE_TYPE or envelope.get("version") != ENVELOPE_VERSION:
        return Verification(
            ["the signature file is not an iotrate signature envelope (version 1)"], None
        )
    if envelope.get("algorithm") != "ed25519" or envelope.get("canonicalization") != (
        CANONICALIZATION
    ):
        return Verification(
            ["unsupported algorithm or canonicalization in the signature envelope"], None
        )
    problems: list[str] = []
    try:
        if envelope.get("result_sha256") != digest(value):
            problems.append("the result's digest differs from the signed digest: it was changed")
    except ValueError:  # NaN or infinity: not canonical JSON, so never what was signed
        problems.append("the result holds NaN or infinity, which no signed result can")
    try:
        raw = base64.b64decode(str(envelope.get("public_key", "")), validate=True)
        signature = base64.b64decode(str(envelope.get("signature", "")), validate=True)
        embedded = Ed25519PublicKey.from_public_bytes(raw)
        body = canonical_json({k: v for k, v in envelope.items() if k != "signature"})
    except ValueError:
        return Verification(
            [*problems, "the envelope's public key or signature is malformed"], None
        )
    if trusted is not None and _raw_public(trusted) != raw:
        problems.append(
            f"signed by key {key_id(embedded)}, not by the trusted key {key_id(trusted)}"
        )
    if envelope.get("key_id") != key_id(embedded):
        problems.append("the envelope's key_id is not the id of its public key")
    try:
        embedded.verify(signature, body)
    except InvalidSignature:
        problems.append("the signature does not match the envelope")
        return Verification(problems, None)
    return Verification(problems, embedded)


def verify_envelope(
    value: Any, envelope: Any, *, trusted: Ed25519PublicKey | None = None
) -> list[str]:
    """Problems found, empty when the signature is valid for exactly this result."""
    return check_envelope(value, envelope, trusted=trusted).problems


# --- trusted signers --------------------------------------------------------------------------

TRUSTED_KEYS_NAME = "trusted-keys.json"
_SIGNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@()-]{0,63}")


def trusted_keys_path() -> Path:
    """Beside the user's signing keys in the config folder: who the user trusts is a setting
    of theirs, not of any one result."""
    import platformdirs

    return platformdirs.user_config_path("iotrate") / TRUSTED_KEYS_NAME


def load_trusted(path: Path | None = None) -> dict[str, Ed25519PublicKey]:
    """The user's trusted signers by name; none when the file does not exist yet."""
    path = path or trusted_keys_path()
    if not path.exists():
        return {}
    value = load_json(path)
    keys = value.get("keys") if isinstance(value, dict) else None
    if not isinstance(keys, dict):
        raise UsageError(f"{path}: not an iotrate trusted-keys file")
    out: dict[str, Ed25519PublicKey] = {}
    for name, b64 in keys.items():
        try:
            out[name] = Ed25519PublicKey.from_public_bytes(
                base64.b64decode(str(b64), validate=True)
            )
        except ValueError as exc:
            raise UsageError(f"{path}: the key of {name!r} is malformed") from exc
    return out


def trusted_name(key: Ed25519PublicKey, trusted: dict[str, Ed25519PublicKey]) -> str | None:
    raw = _raw_public(key)
    return next((name for name, k in trusted.items() if _raw_public(k) == raw), None)


def trust_key(name: str, key: Ed25519PublicKey, path: Path | None = None) -> Path:
    """Add (or replace) a named trusted signer. The file is written 0600 in a 0700 folder:
    someone who can change it can make any signature read as the lab's."""
    if not _SIGNER_NAME.fullmatch(name):
        raise UsageError(
            "a signer name is 1-64 letters, digits, spaces and . _ @ ( ) -, starting with a "
            "letter or digit"
        )
    path = path or trusted_keys_path()
    current = load_trusted(path)
    current[name] = key
    body = {
        "version": 1,
        "keys": {n: _b64(_raw_public(k)) for n, k in sorted(current.items())},
    }
    write_private(path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return path
