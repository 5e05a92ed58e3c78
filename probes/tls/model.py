"""What a TLS scan saw, as iotrate's own frozen values (protocols, accepted suites, the
certificate), so grading and findings are pure functions tests drive without a server."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

# Protocols that are TLS from the first byte, by the names discovery gives them.
TLS_PROTOCOLS = frozenset(
    {
        "https",
        "tls",
        "ssl",
        "mqtts",
        "rtsps",
        "ftps",
        "imaps",
        "pop3s",
        "smtps",
        "ldaps",
        "ipps",
        "sips",
        "xmpps",
        "amqps",
        "castv2",
        "androidtv-remote",
        "androidtv-pairing",
    }
)
# Protocols with a STARTTLS upgrade that sslyze can drive, by discovery's names.
STARTTLS = {
    "smtp": "SMTP",
    "submission": "SMTP",
    "imap": "IMAP",
    "pop3": "POP3",
    "ftp": "FTP",
    "ldap": "LDAP",
    "xmpp": "XMPP",
    "xmpp-server": "XMPP_SERVER",
    "postgres": "POSTGRES",
    "postgresql": "POSTGRES",
    "rdp": "RDP",
}
# Ports whose HTTPS is the device's own web UI or management API (the scheme's
# `admin_interface`); a Cast or MQTT TLS port is not.
ADMIN_PROTOCOLS = frozenset({"https"})

PROTOCOL_NAMES = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
OBSOLETE = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")

# --------------------------------------------------------------------------- scan summary


@dataclass(frozen=True)
class AcceptedSuite:
    name: str  # RFC name, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    protocol: str  # one of PROTOCOL_NAMES
    key_size: int  # symmetric key bits
    anonymous: bool = False
    ephemeral_type: str | None = None  # "DH" or "ECDH"
    ephemeral_bits: int | None = None


@dataclass(frozen=True)
class CertFacts:
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    key_type: str  # RSA, EC, DSA, Ed25519, Ed448
    key_bits: int
    signature_hash: str | None  # sha256, sha1, md5; None for Ed25519/Ed448
    sha256: str  # of the DER certificate
    spki_sha256: str  # of the public key (SubjectPublicKeyInfo)
    self_signed: bool
    names: tuple[str, ...] = ()  # SAN DNS names and IPs, else the CN


@dataclass(frozen=True)
class TlsScan:
    """What one sslyze scan of one port showed; ``None`` means "not measured" (its command
    errored, listed in ``errors``)."""

    address: str
    port: int
    suites: tuple[AcceptedSuite, ...] = ()
    certificate: CertFacts | None = None
    heartbleed: bool | None = None
    robot: str | None = None  # sslyze's RobotScanResultEnum value
    ccs_injection: bool | None = None
    secure_renegotiation: bool | None = None
    client_renegotiation_dos: bool | None = None
    compression: bool | None = None
    curves: tuple[str, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)
    starttls: str | None = None
    publicly_trusted: bool | None = None  # chain validates against sslyze's public trust stores

    @property
    def protocols(self) -> list[str]:
        seen = {s.protocol for s in self.suites}
        return [p for p in PROTOCOL_NAMES if p in seen]


# --------------------------------------------------------------------------- suite judgement


def is_aead(suite: AcceptedSuite) -> bool:
    return suite.protocol == "TLSv1.3" or any(
        t in suite.name for t in ("_GCM", "_CCM", "CHACHA20_POLY1305")
    )


def is_forward_secret(suite: AcceptedSuite) -> bool:
    """Ephemeral and authenticated: anonymous (EC)DH is ephemeral but protects nothing."""
    if suite.anonymous:
        return False
    return suite.protocol == "TLSv1.3" or "_DHE_" in suite.name or "_ECDHE_" in suite.name


def weak_reasons(suite: AcceptedSuite) -> list[str]:
    """Why a suite is weak, in words a lab report can quote; empty when it is not."""
    name = suite.name.upper()
    out = []
    if suite.anonymous or "_ANON_" in name:
        out.append("anonymous (no server authentication)")
    if "_NULL_" in name or "WITH_NULL" in name or suite.key_size == 0:
        out.append("no encryption (NULL)")
    if "EXPORT" in name:
        out.append("export-grade")
    if "RC4" in name:
        out.append("RC4")
    if "3DES" in name or "DES_192_EDE3" in name:
        out.append("3DES (64-bit block, SWEET32)")
    elif "_DES_" in name or "DES40" in name or "DES_64" in name or "DES_CBC_" in name:
        out.append("DES")
    if "IDEA" in name or "RC2" in name:
        out.append("64-bit block cipher")
    if name.endswith("_MD5"):
        out.append("MD5 MAC")
    if 0 < suite.key_size < 128 and "EXPORT" not in name:
        out.append(f"{suite.key_size}-bit key")
    if not suite.anonymous and suite.ephemeral_type == "DH" and suite.ephemeral_bits:
        if suite.ephemeral_bits < 2048:
            out.append(f"{suite.ephemeral_bits}-bit DH group")
    if not suite.anonymous and suite.ephemeral_type == "ECDH" and suite.ephemeral_bits:
        if suite.ephemeral_bits < 224:
            out.append(f"{suite.ephemeral_bits}-bit curve")
    return out


def _rsa_equivalent(key_type: str, bits: int) -> int:
    """Strength in RSA-equivalent bits, so RSA, DH and EC keys are scored on one scale."""
    if key_type in ("RSA", "DSA", "DH"):
        return bits
    if key_type in ("Ed25519",):
        return 3072
    if key_type == "Ed448":
        return 7680
    if bits >= 512:
        return 15360
    if bits >= 384:
        return 7680
    if bits >= 253:
        return 3072
    if bits >= 224:
        return 2048
    if bits >= 160:
        return 1024
    return 512


def name_matches(cert: CertFacts, address: str) -> bool:
    """Whether the certificate names the address we connected to (IP SAN, or a DNS name or CN
    equal to it); devices are reached by IP, so most will not, which is only informational."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    for name in cert.names:
        if ip is not None:
            try:
                if ipaddress.ip_address(name) == ip:
                    return True
            except ValueError:
                continue
        elif name.lower() == address.lower():
            return True
    return False


# --------------------------------------------------------------------------- certificates


def cert_facts(cert: x509.Certificate) -> CertFacts:
    """The certificate facts a report needs, from a parsed leaf certificate."""
    key = cert.public_key()
    key_type, bits = "unknown", 0
    if isinstance(key, rsa.RSAPublicKey):
        key_type, bits = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, bits = "EC", key.curve.key_size
    elif isinstance(key, dsa.DSAPublicKey):
        key_type, bits = "DSA", key.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key_type, bits = "Ed25519", 256
    elif isinstance(key, ed448.Ed448PublicKey):
        key_type, bits = "Ed448", 456
    try:
        sig_hash = cert.signature_hash_algorithm
        sig_name = sig_hash.name if sig_hash is not None else None
    except UnsupportedAlgorithm:  # a signature OID cryptography does not know
        sig_name = "unknown"
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.OID_COMMON_NAME)]
    return CertFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        key_bits=bits,
        signature_hash=sig_name,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        spki_sha256=hashlib.sha256(spki).hexdigest(),
        self_signed=_self_signed(cert),
        names=tuple(names),
    )


def _self_signed(cert: x509.Certificate) -> bool:
    """Issuer equals subject and the certificate's own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            algo = cert.signature_hash_algorithm
            if algo is None:
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algo)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algo = cert.signature_hash_algorithm
            if algo is None:
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algo))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return True  # DSA and others: name equality is the best we can say cheaply
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
