"""A port's TLS grade in the spirit of the SSL Labs rating guide: a score from protocol, key
exchange and cipher strength, then the guide's caps, which are a table (:data:`CAPS`) of named
conditions, each with the grade it caps at; the worst cap wins. The method is documented in
docs/lab.md ("TLS grading")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .model import (
    TlsScan,
    _rsa_equivalent,
    is_aead,
    is_forward_secret,
    name_matches,
    weak_reasons,
)

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
