"""A port's TLS grade in the spirit of the SSL Labs rating guide: a score from protocol, key
exchange and cipher strength, then the guide's caps, which are a table (:data:`CAPS`) of named
conditions, each with the grade it caps at; the worst cap wins. The method is documented in
docs/lab.md ("TLS grading")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .model import (
    CertFacts,
    TlsScan,
    _rsa_equivalent,
    is_aead,
    is_forward_secret,
    name_matches,
    weak_reasons,
)

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


@dataclass(frozen=True)
class _Seen:
    """What the caps are judged on, worked out once per scan."""

    scan: TlsScan
    protocols: frozenset[str]
    names: str  # every accepted suite's name, upper case
    cert: CertFacts | None
    dh_min: int | None  # the smallest finite-field DH group offered

    @staticmethod
    def of(scan: TlsScan) -> _Seen:
        dh = [
            s.ephemeral_bits for s in scan.suites if s.ephemeral_type == "DH" and s.ephemeral_bits
        ]
        return _Seen(
            scan=scan,
            protocols=frozenset(scan.protocols),
            names=" ".join(s.name.upper() for s in scan.suites),
            cert=scan.certificate,
            dh_min=min(dh) if dh else None,
        )

    def rsa_key_bits(self) -> int | None:
        cert = self.cert
        return cert.key_bits if cert and cert.key_type in ("RSA", "DSA") else None


@dataclass(frozen=True)
class Cap:
    """One of the rating guide's caps: the grade a port cannot do better than when ``reason``
    finds the condition (it returns the reason's text, or None when the port is clear)."""

    grade: str
    reason: Callable[[_Seen], str | None]


def _when(condition: Callable[[_Seen], bool], text: str) -> Callable[[_Seen], str | None]:
    return lambda seen: text if condition(seen) else None


def _below(bits: int | None, floor: int, ceiling: int, text: str) -> str | None:
    return f"{text} ({bits})" if bits is not None and floor <= bits < ceiling else None


_MODERN = ("TLSv1.1", "TLSv1.2", "TLSv1.3")
_ROBOT = ("VULNERABLE_STRONG_ORACLE", "VULNERABLE_WEAK_ORACLE")

CAPS: tuple[Cap, ...] = (
    Cap("F", _when(lambda s: "SSLv2" in s.protocols, "SSL 2 supported (DROWN)")),
    Cap("F", _when(lambda s: "EXPORT" in s.names, "export cipher suites (FREAK, Logjam)")),
    Cap(
        "F",
        _when(
            lambda s: any(x.anonymous for x in s.scan.suites),
            "anonymous cipher suites (no server authentication)",
        ),
    ),
    Cap(
        "F",
        _when(
            lambda s: any("no encryption (NULL)" in weak_reasons(x) for x in s.scan.suites),
            "NULL cipher suites (no encryption)",
        ),
    ),
    Cap("F", lambda s: _below(s.rsa_key_bits(), 0, 1024, "certificate key below 1024 bits")),
    Cap("F", lambda s: _below(s.dh_min, 0, 1024, "DH group below 1024 bits")),
    Cap(
        "F",
        _when(
            lambda s: (
                s.cert is not None and not s.cert.self_signed and s.cert.signature_hash == "md5"
            ),
            "certificate signed with MD5",
        ),
    ),
    Cap("F", _when(lambda s: bool(s.scan.heartbleed), "Heartbleed")),
    Cap("F", _when(lambda s: s.scan.robot in _ROBOT, "ROBOT")),
    Cap("F", _when(lambda s: bool(s.scan.ccs_injection), "OpenSSL CCS injection")),
    Cap("F", _when(lambda s: s.scan.secure_renegotiation is False, "insecure renegotiation")),
    Cap("C", _when(lambda s: not {"TLSv1.2", "TLSv1.3"} & s.protocols, "no TLS 1.2 or 1.3")),
    Cap("C", _when(lambda s: "SSLv3" in s.protocols, "SSL 3 supported (POODLE)")),
    Cap(
        "C",
        _when(
            lambda s: any(
                "RC4" in x.name or "3DES" in x.name for x in s.scan.suites if x.protocol in _MODERN
            ),
            "RC4 or 3DES with TLS 1.1 or later",
        ),
    ),
    Cap("C", _when(lambda s: bool(s.scan.compression), "TLS compression (CRIME)")),
    Cap(
        "B", _when(lambda s: bool({"TLSv1.0", "TLSv1.1"} & s.protocols), "TLS 1.0 or 1.1 supported")
    ),
    Cap(
        "B",
        _when(lambda s: not any(is_forward_secret(x) for x in s.scan.suites), "no forward secrecy"),
    ),
    Cap("B", _when(lambda s: not any(is_aead(x) for x in s.scan.suites), "no AEAD cipher suites")),
    Cap("B", lambda s: _below(s.rsa_key_bits(), 1024, 2048, "certificate key below 2048 bits")),
    Cap("B", lambda s: _below(s.dh_min, 1024, 2048, "DH group below 2048 bits")),
)
"""The rating guide's caps, in the order they are reported within one grade."""


def caps_of(scan: TlsScan) -> list[tuple[str, str]]:
    """(grade, reason) of every cap the scan hits, worst first."""
    seen = _Seen.of(scan)
    hits = [(cap.grade, why) for cap in CAPS if (why := cap.reason(seen)) is not None]
    return sorted(hits, key=lambda c: _ORDER.index(c[0]), reverse=True)


def _key_exchange_score(scan: TlsScan) -> int | None:
    """The weakest key exchange of any accepted suite (ephemeral key and certificate key, in
    RSA-equivalent bits); None when no suite's strength is known."""
    cert = scan.certificate
    auth_bits = _rsa_equivalent(cert.key_type, cert.key_bits) if cert else None
    kx_values = []
    for s in scan.suites:
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
    return min(kx_values) if kx_values else None


def _trust(scan: TlsScan, now: datetime) -> list[str]:
    cert = scan.certificate
    if cert is None:
        return []
    checks = (
        (cert.self_signed, "self-signed"),
        (cert.not_after < now, "expired"),
        (cert.not_before > now, "not yet valid"),
        (not name_matches(cert, scan.address), "name mismatch"),
        (not cert.self_signed and scan.publicly_trusted is False, "private or unknown CA"),
    )
    return [text for failed, text in checks if failed]


def grade(scan: TlsScan, now: datetime) -> TlsGrade:
    """Score the port as SSL Labs' rating guide does (protocol 30%, key exchange 30%, cipher
    strength 40%, any zero makes the total zero), then apply the guide's caps (:data:`CAPS`).
    Trust is reported apart: a self-signed certificate is normal on a device and is not
    graded."""
    suites = scan.suites
    if not suites:
        return TlsGrade(None, None, None, None, None, incomplete=tuple(sorted(scan.errors)))
    proto_scores = [_PROTOCOL_SCORE[p] for p in scan.protocols]
    p_score = (max(proto_scores) + min(proto_scores)) // 2
    k_score = _key_exchange_score(scan)
    sizes = [s.key_size for s in suites]
    c_score = (_cipher_score(max(sizes)) + _cipher_score(min(sizes))) // 2
    if k_score is None:
        total = None
    elif 0 in (p_score, k_score, c_score):
        total = 0.0
    else:
        total = round(0.3 * p_score + 0.3 * k_score + 0.4 * c_score, 1)
    caps = caps_of(scan)
    letter = _letter(total) if total is not None else None
    if letter is not None:
        for cap, _ in caps:
            if _ORDER.index(cap) > _ORDER.index(letter):
                letter = cap
    incomplete = sorted(scan.errors)
    if scan.certificate is None:
        incomplete.append("certificate")
    return TlsGrade(
        grade=letter,
        score=total,
        protocol_score=p_score,
        key_exchange_score=k_score,
        cipher_score=c_score,
        caps=tuple(f"{g}: {why}" for g, why in caps),
        trust=tuple(_trust(scan, now)),
        incomplete=tuple(dict.fromkeys(incomplete)),
    )
