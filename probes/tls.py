"""TLS probes: protocol versions, cipher suites, the certificate and sslyze's vulnerability tests,
summarised per port with a grade in the spirit of the SSL Labs rating guide.

One sslyze scan per port feeds two probes (configuration + certificate, and vulnerabilities), so
a vulnerability test that errors makes only its own checks unknown instead of throwing away the
protocol findings, while the device still sees one scan's worth of connections. sslyze is
synchronous and keeps its own threads, so the scan runs in a worker thread with a deadline; its
per-server concurrency is 1 because small TLS stacks (and ``openssl s_server``) serve one
connection at a time and time out anything queued behind a burst.

The analysis works on :class:`TlsScan`, iotrate's own summary of what sslyze saw, so that the
grading and the findings are pure functions that tests can drive without a server. The grading
method is documented in docs/lab.md ("TLS grading").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import ssl
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from iotrate.models import Device, Finding, Service, Transport
from iotrate.ratelimit import throttle_sync

from ._io import open_tcp, write
from .base import NotApplicable, Probe, ProbeContext, ProbeFailed, make_finding

# sslyze's bundled trust stores hold a few old roots that newer cryptography warns about; the
# warning says nothing about the device under test.
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive")

SUMMARY_CHECK = "tls.summary"  # info-level carrier of the per-port summary (not in the scheme)

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


# --------------------------------------------------------------------------- grading

_PROTOCOL_SCORE = {
    "SSLv2": 0,
    "SSLv3": 80,
    "TLSv1.0": 90,
    "TLSv1.1": 95,
    "TLSv1.2": 100,
    "TLSv1.3": 100,
}


def _kx_score(bits: int) -> int:
    if bits <= 0:
        return 0
    if bits < 512:
        return 20
    if bits < 1024:
        return 40
    if bits < 2048:
        return 80
    if bits < 4096:
        return 90
    return 100


def _cipher_score(bits: int) -> int:
    if bits <= 0:
        return 0
    if bits < 128:
        return 20
    if bits < 256:
        return 80
    return 100


def _letter(score: float) -> str:
    for letter, floor in (("A", 80), ("B", 65), ("C", 50), ("D", 35), ("E", 20)):
        if score >= floor:
            return letter
    return "F"


_ORDER = "ABCDEF"


@dataclass(frozen=True)
class TlsGrade:
    grade: str | None  # None when nothing was accepted or the configuration was not measured
    score: float | None
    protocol_score: int | None
    key_exchange_score: int | None
    cipher_score: int | None
    caps: tuple[str, ...] = ()  # "C: no TLS 1.2 or 1.3" style, worst first
    trust: tuple[str, ...] = ()  # why a browser would not trust it (SSL Labs' "T"), not graded
    incomplete: tuple[str, ...] = ()  # measurements missing from the grade


def grade(scan: TlsScan, now: datetime) -> TlsGrade:
    """Score the port as SSL Labs' rating guide does (protocol 30%, key exchange 30%, cipher
    strength 40%, any zero makes the total zero), then apply the guide's caps. Trust is
    reported apart: a self-signed certificate is normal on a device and is not graded."""
    suites = scan.suites
    if not suites:
        return TlsGrade(None, None, None, None, None, incomplete=tuple(sorted(scan.errors)))
    protos = scan.protocols
    proto_scores = [_PROTOCOL_SCORE[p] for p in protos]
    p_score = (max(proto_scores) + min(proto_scores)) // 2
    cert = scan.certificate
    auth_bits = _rsa_equivalent(cert.key_type, cert.key_bits) if cert else None
    kx_values = []
    for s in suites:
        if s.anonymous:
            kx_values.append(0)
            continue
        bits: list[int] = []
        if s.ephemeral_type and s.ephemeral_bits:
            eph = "DH" if s.ephemeral_type == "DH" else "EC"
            bits.append(_rsa_equivalent(eph, s.ephemeral_bits))
        if auth_bits is not None:
            bits.append(auth_bits)
        if bits:
            kx_values.append(_kx_score(min(bits)))
    k_score = min(kx_values) if kx_values else None
    sizes = [s.key_size for s in suites]
    c_score = (_cipher_score(max(sizes)) + _cipher_score(min(sizes))) // 2
    if k_score is None:
        total = None
    elif 0 in (p_score, k_score, c_score):
        total = 0.0
    else:
        total = round(0.3 * p_score + 0.3 * k_score + 0.4 * c_score, 1)

    caps: list[tuple[str, str]] = []
    names = " ".join(s.name.upper() for s in suites)
    if "SSLv2" in protos:
        caps.append(("F", "SSL 2 supported (DROWN)"))
    if "EXPORT" in names:
        caps.append(("F", "export cipher suites (FREAK, Logjam)"))
    if any(s.anonymous for s in suites):
        caps.append(("F", "anonymous cipher suites (no server authentication)"))
    if any("no encryption (NULL)" in weak_reasons(s) for s in suites):
        caps.append(("F", "NULL cipher suites (no encryption)"))
    if cert and cert.key_type in ("RSA", "DSA") and cert.key_bits < 1024:
        caps.append(("F", f"certificate key below 1024 bits ({cert.key_bits})"))
    dh = [s.ephemeral_bits for s in suites if s.ephemeral_type == "DH" and s.ephemeral_bits]
    if dh and min(dh) < 1024:
        caps.append(("F", f"DH group below 1024 bits ({min(dh)})"))
    if cert and not cert.self_signed and cert.signature_hash == "md5":
        caps.append(("F", "certificate signed with MD5"))
    if scan.heartbleed:
        caps.append(("F", "Heartbleed"))
    if scan.robot in ("VULNERABLE_STRONG_ORACLE", "VULNERABLE_WEAK_ORACLE"):
        caps.append(("F", "ROBOT"))
    if scan.ccs_injection:
        caps.append(("F", "OpenSSL CCS injection"))
    if scan.secure_renegotiation is False:
        caps.append(("F", "insecure renegotiation"))
    if not {"TLSv1.2", "TLSv1.3"} & set(protos):
        caps.append(("C", "no TLS 1.2 or 1.3"))
    if "SSLv3" in protos:
        caps.append(("C", "SSL 3 supported (POODLE)"))
    modern = [s for s in suites if s.protocol in ("TLSv1.1", "TLSv1.2", "TLSv1.3")]
    if any("RC4" in s.name or "3DES" in s.name for s in modern):
        caps.append(("C", "RC4 or 3DES with TLS 1.1 or later"))
    if scan.compression:
        caps.append(("C", "TLS compression (CRIME)"))
    if {"TLSv1.0", "TLSv1.1"} & set(protos):
        caps.append(("B", "TLS 1.0 or 1.1 supported"))
    if not any(is_forward_secret(s) for s in suites):
        caps.append(("B", "no forward secrecy"))
    if not any(is_aead(s) for s in suites):
        caps.append(("B", "no AEAD cipher suites"))
    if cert and cert.key_type in ("RSA", "DSA") and 1024 <= cert.key_bits < 2048:
        caps.append(("B", f"certificate key below 2048 bits ({cert.key_bits})"))
    if dh and 1024 <= min(dh) < 2048:
        caps.append(("B", f"DH group below 2048 bits ({min(dh)})"))
    caps.sort(key=lambda c: _ORDER.index(c[0]), reverse=True)

    letter = _letter(total) if total is not None else None
    if letter is not None:
        for cap, _ in caps:
            if _ORDER.index(cap) > _ORDER.index(letter):
                letter = cap

    trust: list[str] = []
    if cert:
        if cert.self_signed:
            trust.append("self-signed")
        if cert.not_after < now:
            trust.append("expired")
        if cert.not_before > now:
            trust.append("not yet valid")
        if not name_matches(cert, scan.address):
            trust.append("name mismatch")
        if not cert.self_signed and scan.publicly_trusted is False:
            trust.append("private or unknown CA")
    incomplete = sorted(scan.errors)
    if cert is None:
        incomplete.append("certificate")
    return TlsGrade(
        grade=letter,
        score=total,
        protocol_score=p_score,
        key_exchange_score=k_score,
        cipher_score=c_score,
        caps=tuple(f"{g}: {why}" for g, why in caps),
        trust=tuple(trust),
        incomplete=tuple(dict.fromkeys(incomplete)),
    )


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


# --------------------------------------------------------------------------- findings


def cert_data(cert: CertFacts) -> dict[str, Any]:
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "key_type": cert.key_type,
        "key_bits": cert.key_bits,
        "signature_hash": cert.signature_hash,
        "sha256": cert.sha256,
        "spki_sha256": cert.spki_sha256,
        "self_signed": cert.self_signed,
        "names": list(cert.names),
    }


def configuration_findings(
    scan: TlsScan, now: datetime, protocol: str | None, probe: str
) -> list[Finding]:
    """Protocol, cipher-suite and certificate findings plus the per-port summary."""
    port = scan.port
    out: list[Finding] = []
    protos = scan.protocols
    obsolete = [p for p in protos if p in OBSOLETE]
    if obsolete:
        out.append(
            make_finding(
                "tls.protocol.obsolete",
                f"{' and '.join(obsolete)} accepted on {port}/tcp (handshake completed)",
                port,
                {
                    "protocols": obsolete,
                    "accepted": protos,
                    "admin_interface": protocol in ADMIN_PROTOCOLS,
                },
                probe=probe,
            )
        )
    weak: dict[str, dict[str, Any]] = {}
    for s in scan.suites:
        reasons = weak_reasons(s)
        if reasons:
            item = weak.setdefault(s.name, {"suite": s.name, "protocols": [], "reasons": reasons})
            item["protocols"].append(s.protocol)
    cbc_only = bool(scan.suites) and not any(is_aead(s) for s in scan.suites)
    if cbc_only:
        for s in scan.suites:
            item = weak.setdefault(s.name, {"suite": s.name, "protocols": [], "reasons": []})
            if s.protocol not in item["protocols"]:
                item["protocols"].append(s.protocol)
            if "CBC only, no AEAD suite offered" not in item["reasons"]:
                item["reasons"].append("CBC only, no AEAD suite offered")
    if weak:
        details = sorted(weak.values(), key=lambda d: d["suite"])
        all_reasons = sorted({r for d in details for r in d["reasons"]})
        out.append(
            make_finding(
                "tls.cipher.weak",
                f"{len(details)} weak cipher suites accepted on {port}/tcp: "
                + "; ".join(all_reasons),
                port,
                {
                    "ciphers": [d["suite"] for d in details],
                    "anonymous": any(s.anonymous for s in scan.suites),
                    "null_cipher": any("no encryption (NULL)" in d["reasons"] for d in details),
                    "export": any("export-grade" in d["reasons"] for d in details),
                    "cbc_only": cbc_only,
                    "details": details[:40],
                },
                probe=probe,
            )
        )
    if scan.suites and not any(is_forward_secret(s) for s in scan.suites):
        out.append(
            make_finding(
                "tls.forward-secrecy.missing",
                f"no cipher suite with an authenticated ephemeral key exchange on {port}/tcp",
                port,
                {"suites": sorted({s.name for s in scan.suites})[:40]},
                probe=probe,
            )
        )
    cert = scan.certificate
    if cert is not None:
        out += certificate_findings(cert, scan.address, port, now, probe)
    g = grade(scan, now)
    summary_data: dict[str, Any] = {
        "grade": g.grade,
        "score": g.score,
        "scores": {
            "protocol": g.protocol_score,
            "key_exchange": g.key_exchange_score,
            "cipher": g.cipher_score,
        },
        "caps": list(g.caps),
        "trust": list(g.trust),
        "incomplete": list(g.incomplete),
        "protocols": protos,
        "suites_accepted": len({s.name for s in scan.suites}),
        "weak_suites": len(weak),
        "forward_secrecy": any(is_forward_secret(s) for s in scan.suites),
        # Not weak enough for tls.cipher.weak when better suites are offered, but a lab wants
        # to see them: suites without forward secrecy, and CBC suites.
        "suites_without_forward_secrecy": sorted(
            {s.name for s in scan.suites if not is_forward_secret(s) and not s.anonymous}
        )[:40],
        "cbc_suites": len({s.name for s in scan.suites if "_CBC_" in s.name}),
        "aead": any(is_aead(s) for s in scan.suites),
        "curves": list(scan.curves),
        "starttls": scan.starttls,
        "heartbleed": scan.heartbleed,
        "ccs_injection": scan.ccs_injection,
        "robot": scan.robot,
        "secure_renegotiation": scan.secure_renegotiation,
        "compression": scan.compression,
        "publicly_trusted": scan.publicly_trusted,
    }
    if cert is not None:
        summary_data["certificate"] = cert_data(cert)
        summary_data["spki_sha256"] = cert.spki_sha256
        summary_data["cert_sha256"] = cert.sha256
        summary_data["name_matches"] = name_matches(cert, scan.address)
    text = f"TLS on {port}/tcp: grade {g.grade or '?'}"
    if g.score is not None:
        text += f" (score {g.score:g})"
    text += f", {', '.join(protos) or 'no protocol'}"
    if g.caps:
        text += f"; capped by {g.caps[0]}"
    if g.trust:
        text += f"; trust: {', '.join(g.trust)}"
    out.append(make_finding(SUMMARY_CHECK, text, port, summary_data, probe=probe))
    return out


def certificate_findings(
    cert: CertFacts, address: str, port: int, now: datetime, probe: str
) -> list[Finding]:
    out = []
    base = cert_data(cert)
    if cert.not_after < now:
        out.append(
            make_finding(
                "tls.cert.expired",
                f"certificate for {cert.subject} expired on {cert.not_after.date().isoformat()}",
                port,
                base,
                probe=probe,
            )
        )
    if cert.not_before > now:
        out.append(
            make_finding(
                "tls.cert.not-yet-valid",
                f"certificate for {cert.subject} is valid only from "
                f"{cert.not_before.date().isoformat()}",
                port,
                base,
                probe=probe,
            )
        )
    weak_key = (cert.key_type in ("RSA", "DSA") and cert.key_bits < 2048) or (
        cert.key_type == "EC" and cert.key_bits < 224
    )
    if weak_key:
        out.append(
            make_finding(
                "tls.cert.weak-key",
                f"{cert.key_bits}-bit {cert.key_type} certificate key",
                port,
                base,
                probe=probe,
            )
        )
    # A self-signed leaf is its own trust anchor: its signature hash protects nothing.
    if not cert.self_signed and cert.signature_hash in ("md5", "sha1"):
        out.append(
            make_finding(
                "tls.cert.weak-signature",
                f"certificate signed with {cert.signature_hash.upper()}",
                port,
                base,
                probe=probe,
            )
        )
    if cert.self_signed:
        out.append(
            make_finding(
                "tls.cert.self-signed",
                f"self-signed certificate {cert.subject}, SHA-256 {cert.sha256}",
                port,
                base,
                probe=probe,
            )
        )
    return out


def vulnerability_findings(scan: TlsScan, probe: str) -> list[Finding]:
    port = scan.port
    out = []
    if scan.heartbleed:
        out.append(
            make_finding(
                "tls.vuln.heartbleed",
                f"the TLS heartbeat on {port}/tcp returns server memory (sslyze test)",
                port,
                {"test": "sslyze heartbleed"},
                probe=probe,
            )
        )
    if scan.robot in ("VULNERABLE_STRONG_ORACLE", "VULNERABLE_WEAK_ORACLE"):
        out.append(
            make_finding(
                "tls.vuln.robot",
                f"RSA padding oracle on {port}/tcp ({scan.robot.lower()})",
                port,
                {"result": scan.robot},
                probe=probe,
            )
        )
    if scan.ccs_injection:
        out.append(
            make_finding(
                "tls.vuln.ccs-injection",
                f"early ChangeCipherSpec accepted on {port}/tcp",
                port,
                {"test": "sslyze openssl_ccs_injection"},
                probe=probe,
            )
        )
    if scan.secure_renegotiation is False:
        out.append(
            make_finding(
                "tls.vuln.renegotiation",
                f"no secure renegotiation (RFC 5746) on {port}/tcp",
                port,
                {"client_renegotiation_dos": scan.client_renegotiation_dos},
                probe=probe,
            )
        )
    if scan.compression:
        out.append(
            make_finding(
                "tls.vuln.compression",
                f"TLS compression negotiated on {port}/tcp",
                port,
                {},
                probe=probe,
            )
        )
    return out


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


# --------------------------------------------------------------------------- sslyze boundary

_CIPHER_COMMANDS = {
    "SSLv2": "ssl_2_0_cipher_suites",
    "SSLv3": "ssl_3_0_cipher_suites",
    "TLSv1.0": "tls_1_0_cipher_suites",
    "TLSv1.1": "tls_1_1_cipher_suites",
    "TLSv1.2": "tls_1_2_cipher_suites",
    "TLSv1.3": "tls_1_3_cipher_suites",
}
CONFIG_COMMANDS = (*_CIPHER_COMMANDS.values(), "certificate_info", "elliptic_curves")
VULN_COMMANDS = (
    "heartbleed",
    "robot",
    "openssl_ccs_injection",
    "session_renegotiation",
    "tls_compression",
)

NETWORK_TIMEOUT_S = 5.0
# How long a port may take to answer a ClientHello with anything (a ServerHello, an alert, a
# reset) before the port is judged not to do TLS. A stack that stalls this long would fail each
# of sslyze's connection attempts on its network timeout instead, about 55 s in all.
HANDSHAKE_PRECHECK_S = 5.0
PER_SERVER_CONNECTIONS = 1
_SSLYZE_IMPORT = threading.Lock()
_CACHE_TTL_S = 120.0


class _NoTls(Exception):
    """The port did not complete a TLS (or STARTTLS) handshake with sslyze."""

    def __init__(self, reason: str, starttls_refused: bool = False) -> None:
        super().__init__(reason)
        self.starttls_refused = starttls_refused


def _client_hello() -> bytes:
    """A real ClientHello from the ssl module, offering everything down to the oldest version."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


async def handshake_precheck(address: str, port: int, deadline: float) -> None:
    """Fail fast when the port takes a ClientHello and never answers (a tarpit, a hung stack).

    Any answer — a ServerHello, an alert, garbage, a reset, a close — passes: judging it is
    sslyze's job. Only silence fails, after ``deadline``, instead of costing each of sslyze's
    connection attempts its own timeout."""
    conn = await open_tcp(address, port, deadline)
    try:
        await write(conn, _client_hello(), deadline)
        try:
            await asyncio.wait_for(conn.reader.read(1), deadline)
        except TimeoutError:
            raise ProbeFailed(f"no TLS handshake within {deadline:g} s") from None
        except OSError:
            return
    finally:
        await conn.close()


def _pace_sslyze() -> None:
    """Route sslyze's sockets through the scan's per-host rate limit (once per process).

    sslyze opens every connection in ``tls_connection._open_socket``, from its own worker
    threads; wrapping that one function paces its few hundred handshakes per port."""
    from sslyze.connection_helpers import tls_connection

    opener = tls_connection._open_socket
    if getattr(opener, "_iotrate_paced", False):
        return

    def paced(server_location: Any, network_timeout: int) -> Any:
        throttle_sync(server_location.ip_address or server_location.hostname)
        return opener(server_location, network_timeout)

    paced._iotrate_paced = True  # type: ignore[attr-defined]
    tls_connection._open_socket = paced


def _run_sslyze(address: str, port: int, starttls: str | None) -> TlsScan:
    """Run one sslyze scan (blocking; call from a worker thread)."""
    # Submodule imports: the package's re-exports are invisible to a strict type checker.
    # Two worker threads importing sslyze at once see a partly initialised module (a circular
    # import inside sslyze), so the first import is serialised.
    with _SSLYZE_IMPORT:
        from sslyze.connection_helpers.opportunistic_tls_helpers import (
            ProtocolWithOpportunisticTlsEnum,
        )
        from sslyze.plugins.scan_commands import ScanCommand
        from sslyze.scanner.models import ServerScanRequest, ServerScanStatusEnum
        from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum
        from sslyze.scanner.scanner import Scanner
        from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation

        _pace_sslyze()
    location = ServerNetworkLocation(hostname=address, port=port, ip_address=address)
    config = ServerNetworkConfiguration(
        tls_server_name_indication=address,
        tls_opportunistic_encryption=(
            ProtocolWithOpportunisticTlsEnum[starttls] if starttls else None
        ),
        network_timeout=int(NETWORK_TIMEOUT_S),
        network_max_retries=1,
    )
    commands = {ScanCommand(c) for c in (*CONFIG_COMMANDS, *VULN_COMMANDS)}
    scanner = Scanner(
        per_server_concurrent_connections_limit=PER_SERVER_CONNECTIONS,
        concurrent_server_scans_limit=1,
    )
    scanner.queue_scans(
        [ServerScanRequest(server_location=location, network_configuration=config,
                           scan_commands=commands)]
    )  # fmt: skip
    # Drain the generator: sslyze's producer thread waits for its end-of-results sentinel to
    # be consumed, so stopping after the first result would leak that thread (and the scan's
    # memory) once per port.
    results = list(scanner.get_results())
    result = results[0]
    if result.scan_status != ServerScanStatusEnum.COMPLETED or result.scan_result is None:
        trace = result.connectivity_error_trace
        kind = trace.exc_type.__name__ if trace is not None and trace.exc_type else "error"
        message = str(trace) if trace is not None else "no connectivity"
        raise _NoTls(
            f"{kind}: {message}",
            starttls_refused=kind == "ServerRejectedOpportunisticTlsNegotiation",
        )
    res = result.scan_result
    errors: dict[str, str] = {}

    def attempt(name: str) -> Any:
        att = getattr(res, name)
        if att.status != ScanCommandAttemptStatusEnum.COMPLETED or att.result is None:
            reason = att.error_reason.value if att.error_reason is not None else "not completed"
            errors[name] = reason
            return None
        return att.result

    suites: list[AcceptedSuite] = []
    for proto, cmd in _CIPHER_COMMANDS.items():
        r = attempt(cmd)
        if r is None:
            continue
        for acc in r.accepted_cipher_suites:
            eph = acc.ephemeral_key
            eph_type = None
            if eph is not None:
                eph_type = "DH" if eph.type_name == "DH" else "ECDH"
            suites.append(
                AcceptedSuite(
                    name=acc.cipher_suite.name,
                    protocol=proto,
                    key_size=acc.cipher_suite.key_size,
                    anonymous=acc.cipher_suite.is_anonymous,
                    ephemeral_type=eph_type,
                    ephemeral_bits=eph.size if eph is not None else None,
                )
            )
    certificate = None
    trusted = None
    info = attempt("certificate_info")
    if info is not None and info.certificate_deployments:
        deployment = info.certificate_deployments[0]
        chain = deployment.received_certificate_chain
        if chain:
            certificate = cert_facts(chain[0])
        trusted = any(r.was_validation_successful for r in deployment.path_validation_results)
    curves_result = attempt("elliptic_curves")
    curves = tuple(c.name for c in curves_result.supported_curves or []) if curves_result else ()
    hb = attempt("heartbleed")
    robot = attempt("robot")
    robot_value = robot.robot_result.value if robot is not None else None
    if robot_value == "UNKNOWN_INCONSISTENT_RESULTS":
        errors["robot"] = "inconsistent results"
    ccs = attempt("openssl_ccs_injection")
    reneg = attempt("session_renegotiation")
    comp = attempt("tls_compression")
    return TlsScan(
        address=address,
        port=port,
        suites=tuple(suites),
        certificate=certificate,
        heartbleed=hb.is_vulnerable_to_heartbleed if hb is not None else None,
        robot=robot_value,
        ccs_injection=ccs.is_vulnerable_to_ccs_injection if ccs is not None else None,
        secure_renegotiation=reneg.supports_secure_renegotiation if reneg is not None else None,
        client_renegotiation_dos=(
            reneg.is_vulnerable_to_client_renegotiation_dos if reneg is not None else None
        ),
        compression=comp.supports_compression if comp is not None else None,
        curves=curves,
        errors=errors,
        starttls=starttls,
        publicly_trusted=trusted,
    )


async def _checked_scan(address: str, port: int, starttls: str | None) -> TlsScan:
    # STARTTLS ports speak their own protocol first; sslyze drives that dialogue itself.
    if starttls is None:
        await handshake_precheck(address, port, HANDSHAKE_PRECHECK_S)
    return await asyncio.to_thread(_run_sslyze, address, port, starttls)


# One scan per (event loop, address, port), shared by the probes of this module.
_scans: dict[tuple[int, str, int, str | None], tuple[float, asyncio.Task[TlsScan]]] = {}


async def shared_scan(address: str, port: int, starttls: str | None, timeout: float) -> TlsScan:
    """The port's sslyze scan, started by the first probe that asks and reused by the others
    for a couple of minutes; raises ProbeFailed or NotApplicable."""
    loop = asyncio.get_running_loop()
    now = time.monotonic()
    for key in [k for k, (t, _) in _scans.items() if now - t > _CACHE_TTL_S]:
        del _scans[key]
    key = (id(loop), address, port, starttls)
    entry = _scans.get(key)
    stale = entry is not None and (
        entry[1].get_loop() is not loop or (entry[1].done() and entry[1].cancelled())
    )
    if entry is None or stale:
        task = loop.create_task(_checked_scan(address, port, starttls))
        entry = (now, task)
        _scans[key] = entry
    try:
        return await asyncio.wait_for(asyncio.shield(entry[1]), timeout=timeout)
    except TimeoutError:
        raise ProbeFailed(f"sslyze did not finish within {timeout:g} s") from None
    except _NoTls as exc:
        if exc.starttls_refused:
            raise NotApplicable(f"STARTTLS ({starttls}) not offered: {exc}") from None
        raise ProbeFailed(f"no TLS handshake: {exc}") from None
    except OSError as exc:
        raise ProbeFailed(f"sslyze: {exc}") from None


def _starttls_for(service: Service) -> str | None:
    if service.tls is True:
        return None
    return STARTTLS.get(service.protocol or "")


def _tls_applies(service: Service | None) -> bool:
    if service is None or service.transport is not Transport.TCP:
        return False
    if service.tls is True:
        return True
    if service.protocol in STARTTLS:
        return True
    return service.tls is None and service.protocol in TLS_PROTOCOLS


def _require_service(ctx: ProbeContext) -> Service:
    if ctx.service is None:
        raise NotApplicable("the TLS probes test a service, not a device")
    return ctx.service


def _scan_budget(ctx: ProbeContext) -> float:
    return max(5.0, ctx.timeout)


class TlsProbe(Probe):
    """Protocol versions, cipher suites and certificate of a TLS port, with its grade."""

    id: ClassVar[str] = "tls"
    title: ClassVar[str] = "TLS configuration and certificate"
    timeout: ClassVar[float] = 90.0
    checks: ClassVar[tuple[str, ...]] = (
        "tls.protocol.obsolete",
        "tls.cipher.weak",
        "tls.forward-secrecy.missing",
        "tls.cert.expired",
        "tls.cert.not-yet-valid",
        "tls.cert.weak-key",
        "tls.cert.weak-signature",
        "tls.cert.self-signed",
        "tls.cert.shared",
        SUMMARY_CHECK,
    )

    def applies(self, device: Device, service: Service | None) -> bool:
        return _tls_applies(service)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        service = _require_service(ctx)
        scan = await shared_scan(
            ctx.address, service.port, _starttls_for(service), _scan_budget(ctx)
        )
        missing = [c for c in CONFIG_COMMANDS if c in scan.errors and c != "elliptic_curves"]
        if missing:
            raise ProbeFailed(
                "sslyze could not complete: "
                + ", ".join(f"{c} ({scan.errors[c]})" for c in missing)
            )
        if not scan.suites:
            raise ProbeFailed("sslyze completed but no protocol version was accepted")
        return configuration_findings(scan, datetime.now(UTC), service.protocol, self.id)

    @classmethod
    def correlate(cls, devices: Sequence[Device]) -> dict[str, list[Finding]]:
        """Devices presenting the same certificate key: whoever extracts it from one can
        impersonate all of them (ETSI EN 303 645 5.4-3)."""
        seen: dict[str, list[tuple[str, int, str]]] = {}
        for dev in devices:
            for f in dev.findings:
                if f.check != SUMMARY_CHECK:
                    continue
                for ev in f.evidence:
                    fp = ev.data.get("spki_sha256")
                    if isinstance(fp, str) and ev.port is not None:
                        cert = ev.data.get("certificate") or {}
                        seen.setdefault(fp, []).append((dev.id, ev.port, str(cert.get("subject"))))
        out: dict[str, list[Finding]] = {}
        for fp, where in sorted(seen.items()):
            ids = sorted({d for d, _, _ in where})
            if len(ids) < 2:
                continue
            for dev_id in ids:
                ports = sorted({p for d, p, _ in where if d == dev_id})
                others = [d for d in ids if d != dev_id]
                subject = next(s for d, _, s in where if d == dev_id)
                for port in ports:
                    out.setdefault(dev_id, []).append(
                        make_finding(
                            "tls.cert.shared",
                            f"the certificate key on {port}/tcp ({subject}) is also presented "
                            f"by {', '.join(others)}",
                            port,
                            {"fingerprint": fp, "shared_with": others},
                            probe=cls.id,
                        )
                    )
        return out


class TlsVulnerabilityProbe(Probe):
    """sslyze's active tests for Heartbleed, ROBOT, CCS injection, renegotiation and
    compression."""

    id: ClassVar[str] = "tls.vulns"
    title: ClassVar[str] = "TLS vulnerability tests"
    timeout: ClassVar[float] = 90.0
    checks: ClassVar[tuple[str, ...]] = (
        "tls.vuln.heartbleed",
        "tls.vuln.robot",
        "tls.vuln.ccs-injection",
        "tls.vuln.renegotiation",
        "tls.vuln.compression",
    )

    def applies(self, device: Device, service: Service | None) -> bool:
        return _tls_applies(service)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        service = _require_service(ctx)
        scan = await shared_scan(
            ctx.address, service.port, _starttls_for(service), _scan_budget(ctx)
        )
        missing = [c for c in VULN_COMMANDS if c in scan.errors]
        if missing:
            raise ProbeFailed(
                "sslyze could not complete: "
                + ", ".join(f"{c} ({scan.errors[c]})" for c in missing)
            )
        return vulnerability_findings(scan, self.id)


PROBES = (TlsProbe, TlsVulnerabilityProbe)
