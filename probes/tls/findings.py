"""The findings a TLS scan gives: configuration, certificate and vulnerability checks, and the
per-port summary (``tls.summary``) that carries the grade and what was seen."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from iotrate.models import Finding

from ..base import make_finding
from .grading import (
    grade,
)
from .model import (
    ADMIN_PROTOCOLS,
    OBSOLETE,
    CertFacts,
    TlsScan,
    is_aead,
    is_forward_secret,
    name_matches,
    weak_reasons,
)

SUMMARY_CHECK = "tls.summary"  # info-level carrier of the per-port summary (not in the scheme)


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
