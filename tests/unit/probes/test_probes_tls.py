"""TLS probes: grading and findings on scripted scans and a real ``openssl s_server`` on 127.0.0.1
with throwaway certificates. The lab's hub and plug: tests/lab/test_probes_tls_lab.py.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from iotrate.probes.base import NotApplicable, Policy, ProbeContext, ProbeFailed, make_finding
from iotrate.probes.tls import findings as tls_findings
from iotrate.probes.tls import grading as tls_grading
from iotrate.probes.tls import model as tls_model
from iotrate.probes.tls import probes as tls_probes

from iotrate.models import Device, Finding, Service

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number:UserWarning")

NOW = datetime(2026, 11, 25, tzinfo=UTC)
SCHEME = Path(__file__).resolve().parents[3] / "rating_schema" / "iotrate-2026.1.yaml"


def suite(
    name: str,
    protocol: str = "TLSv1.2",
    bits: int = 128,
    anonymous: bool = False,
    eph: str | None = "ECDH",
    eph_bits: int | None = 253,
) -> tls_model.AcceptedSuite:
    return tls_model.AcceptedSuite(name, protocol, bits, anonymous, eph, eph_bits)


def cert(bits: int = 2048, self_signed: bool = True, **kw: Any) -> tls_model.CertFacts:
    base: dict[str, Any] = {
        "subject": "CN=device",
        "issuer": "CN=device" if self_signed else "CN=ca",
        "not_before": NOW - timedelta(days=10),
        "not_after": NOW + timedelta(days=300),
        "key_type": "RSA",
        "key_bits": bits,
        "signature_hash": "sha256",
        "sha256": "aa" * 32,
        "spki_sha256": "bb" * 32,
        "self_signed": self_signed,
        "names": ("10.0.0.5",),
    }
    base.update(kw)
    return tls_model.CertFacts(**base)


MODERN = (
    suite("TLS_AES_128_GCM_SHA256", "TLSv1.3"),
    suite("TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3", 256),
    suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    suite("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", bits=256),
)


def checks(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


# --------------------------------------------------------------------------- grading


def test_modern_configuration_grades_a_with_nothing_above_info() -> None:
    scan = tls_model.TlsScan("10.0.0.5", 443, MODERN, cert(), False, "NOT_VULNERABLE_NO_ORACLE")
    g = tls_grading.grade(scan, NOW)
    assert (g.grade, g.score) == ("A", 93.0)
    assert (g.protocol_score, g.key_exchange_score, g.cipher_score) == (100, 90, 90)
    found = tls_findings.configuration_findings(scan, NOW, "https", "tls")
    assert {f.check for f in found} == {"tls.cert.self-signed", "tls.summary"}
    assert all(f.severity.value == "info" for f in found)


def test_ssl_labs_arithmetic_and_caps() -> None:
    # TLS 1.0 + 1.2 averages 95; 1024-bit DHE makes the key exchange 80 and caps at B.
    suites = (
        suite("TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "TLSv1.0", eph="DH", eph_bits=1024),
        suite("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "TLSv1.2", 256, eph="DH", eph_bits=1024),
    )
    g = tls_grading.grade(tls_model.TlsScan("10.0.0.5", 443, suites, cert()), NOW)
    assert (g.protocol_score, g.key_exchange_score, g.cipher_score) == (95, 80, 90)
    assert g.score == pytest.approx(0.3 * 95 + 0.3 * 80 + 0.4 * 90)
    assert g.grade == "B"
    assert "B: TLS 1.0 or 1.1 supported" in g.caps
    assert "B: DH group below 2048 bits (1024)" in g.caps


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"heartbleed": True}, "F"),
        ({"robot": "VULNERABLE_WEAK_ORACLE"}, "F"),
        ({"ccs_injection": True}, "F"),
        ({"secure_renegotiation": False}, "F"),
        ({"compression": True}, "C"),
    ],
)
def test_vulnerabilities_cap_the_grade(extra: dict[str, Any], expected: str) -> None:
    scan = tls_model.TlsScan("10.0.0.5", 443, MODERN, cert(), **extra)
    assert tls_grading.grade(scan, NOW).grade == expected


def test_anonymous_suites_zero_the_key_exchange_and_flag_the_finding() -> None:
    suites = (*MODERN, suite("TLS_DH_anon_WITH_AES_128_CBC_SHA", anonymous=True, eph="DH"))
    scan = tls_model.TlsScan("10.0.0.5", 443, suites, cert())
    g = tls_grading.grade(scan, NOW)
    assert (g.grade, g.score, g.key_exchange_score) == ("F", 0.0, 0)
    weak = checks(tls_findings.configuration_findings(scan, NOW, "https", "tls"))["tls.cipher.weak"]
    data = weak.evidence[0].data
    assert data["anonymous"] is True and data["null_cipher"] is False
    assert data["ciphers"] == ["TLS_DH_anon_WITH_AES_128_CBC_SHA"]


def test_cbc_only_without_forward_secrecy() -> None:
    suites = (
        suite("TLS_RSA_WITH_AES_128_CBC_SHA", eph=None, eph_bits=None),
        suite("TLS_RSA_WITH_3DES_EDE_CBC_SHA", bits=112, eph=None, eph_bits=None),
    )
    scan = tls_model.TlsScan("10.0.0.5", 443, suites, cert(self_signed=False))
    found = checks(tls_findings.configuration_findings(scan, NOW, "https", "tls"))
    weak = found["tls.cipher.weak"].evidence[0].data
    assert weak["cbc_only"] is True
    details = {d["suite"]: d["reasons"] for d in weak["details"]}
    assert "3DES (64-bit block, SWEET32)" in details["TLS_RSA_WITH_3DES_EDE_CBC_SHA"]
    assert "tls.forward-secrecy.missing" in found
    caps = tls_grading.grade(scan, NOW).caps
    assert "C: RC4 or 3DES with TLS 1.1 or later" in caps
    assert "B: no forward secrecy" in caps and "B: no AEAD cipher suites" in caps


def test_certificate_findings_and_trust_are_separate_from_the_grade() -> None:
    old = cert(
        bits=1024,
        not_before=NOW - timedelta(days=4000),
        not_after=NOW - timedelta(days=600),
        names=("tuya-gateway",),
    )
    scan = tls_model.TlsScan("10.0.0.5", 443, MODERN, old)
    found = checks(tls_findings.configuration_findings(scan, NOW, "https", "tls"))
    assert {"tls.cert.expired", "tls.cert.weak-key", "tls.cert.self-signed"} <= set(found)
    assert found["tls.cert.weak-key"].evidence[0].data["key_bits"] == 1024
    summary = found["tls.summary"].evidence[0].data
    assert summary["trust"] == ["self-signed", "expired", "name mismatch"]
    assert summary["name_matches"] is False
    assert summary["grade"] == "B"  # key below 2048 bits caps at B; trust is reported apart


def test_weak_signature_only_matters_on_a_certificate_someone_else_signed() -> None:
    sha1 = tls_findings.certificate_findings(
        cert(self_signed=False, signature_hash="sha1"), "10.0.0.5", 443, NOW, "tls"
    )
    assert "tls.cert.weak-signature" in checks(sha1)
    own = tls_findings.certificate_findings(
        cert(signature_hash="sha1"), "10.0.0.5", 443, NOW, "tls"
    )
    assert "tls.cert.weak-signature" not in checks(own)


def test_not_yet_valid() -> None:
    future = cert(not_before=NOW + timedelta(days=3))
    found = checks(tls_findings.certificate_findings(future, "10.0.0.5", 443, NOW, "tls"))
    assert "tls.cert.not-yet-valid" in found


def test_obsolete_protocol_evidence_marks_admin_interfaces() -> None:
    suites = (*MODERN, suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLSv1.1"))
    scan = tls_model.TlsScan("10.0.0.5", 443, suites, cert())
    https = checks(tls_findings.configuration_findings(scan, NOW, "https", "tls"))
    data = https["tls.protocol.obsolete"].evidence[0].data
    assert data["protocols"] == ["TLSv1.1"] and data["admin_interface"] is True
    cast = checks(tls_findings.configuration_findings(scan, NOW, "castv2", "tls"))
    assert cast["tls.protocol.obsolete"].evidence[0].data["admin_interface"] is False


def test_vulnerability_findings() -> None:
    scan = tls_model.TlsScan(
        "10.0.0.5",
        443,
        MODERN,
        heartbleed=True,
        robot="VULNERABLE_STRONG_ORACLE",
        ccs_injection=True,
        secure_renegotiation=False,
        compression=True,
    )
    assert {f.check for f in tls_findings.vulnerability_findings(scan, "tls.vulns")} == {
        "tls.vuln.heartbleed",
        "tls.vuln.robot",
        "tls.vuln.ccs-injection",
        "tls.vuln.renegotiation",
        "tls.vuln.compression",
    }
    clean = tls_model.TlsScan(
        "10.0.0.5", 443, MODERN, heartbleed=False, robot="NOT_VULNERABLE_NO_ORACLE"
    )
    assert tls_findings.vulnerability_findings(clean, "tls.vulns") == []


def _summary(device: str, fp: str, port: int = 443) -> Finding:
    return make_finding(
        "tls.summary",
        "s",
        port,
        {"spki_sha256": fp, "certificate": {"subject": "CN=x"}},
        probe="tls",
    )


def test_correlate_reports_a_key_shared_by_two_devices() -> None:
    devices = [
        Device(
            id="a", address="10.0.0.1", findings=[_summary("a", "f1"), _summary("a", "f1", 8443)]
        ),
        Device(id="b", address="10.0.0.2", findings=[_summary("b", "f1")]),
        Device(id="c", address="10.0.0.3", findings=[_summary("c", "f2")]),
    ]
    found = tls_probes.TlsProbe.correlate(devices)
    assert sorted(found) == ["a", "b"]
    assert [f.port for f in found["a"]] == [443, 8443]
    assert found["b"][0].evidence[0].data == {"fingerprint": "f1", "shared_with": ["a"]}
    assert found["b"][0].check == "tls.cert.shared"


def test_applies_to_tls_ports_and_starttls_protocols() -> None:
    dev = Device(id="d", address="10.0.0.1")
    probe = tls_probes.TlsProbe()
    assert probe.applies(dev, Service(port=8009, protocol="castv2", tls=True))
    assert probe.applies(dev, Service(port=8883, protocol="mqtts"))
    assert probe.applies(dev, Service(port=21, protocol="ftp", tls=False))
    assert not probe.applies(dev, Service(port=80, protocol="http", tls=False))
    assert not probe.applies(dev, Service(port=443, protocol="https", tls=False))
    assert not probe.applies(dev, None)


def test_checks_are_in_the_rating_scheme() -> None:
    scheme = {c["id"]: c for c in yaml.safe_load(SCHEME.read_text())["checks"]}
    checks = set(tls_probes.TlsProbe.checks) | set(tls_probes.TlsVulnerabilityProbe.checks)
    assert checks == {c for c in scheme if c.startswith("tls.")}


# --------------------------------------------------------------------------- real servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_cert(directory: Path, bits: int, before: datetime, after: datetime) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throwaway-device")])
    crt = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before)
        .not_valid_after(after)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"cert-{bits}.pem"
    path.write_bytes(
        crt.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def _s_server(pem: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not installed")
    cmd = [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(pem), "-www"]
    proc = subprocess.Popen(
        [*cmd, "-quiet", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("openssl s_server did not start")


@pytest.fixture
def weak_server(tmp_path: Path) -> Iterator[int]:
    """Like the lab hub: TLS 1.0-1.2, every suite at security level 0, expired 1024-bit cert."""
    pem = _write_cert(
        tmp_path, 1024, datetime(2016, 3, 1, tzinfo=UTC), datetime(2019, 3, 1, tzinfo=UTC)
    )
    port = _free_port()
    proc = _s_server(
        pem,
        port,
        "-cipher",
        "ALL:@SECLEVEL=0",
        "-min_protocol",
        "TLSv1",
        "-max_protocol",
        "TLSv1.2",
    )
    yield port
    proc.kill()
    proc.wait()


def _ctx(port: int, protocol: str = "https", tls_flag: bool | None = True) -> ProbeContext:
    svc = Service(port=port, protocol=protocol, tls=tls_flag)
    dev = Device(id="127.0.0.1", address="127.0.0.1", services=[svc])
    return ProbeContext(
        address="127.0.0.1", device=dev, service=svc, policy=Policy.SAFE, timeout=30
    )


def test_loopback_s_server_weak_configuration(weak_server: int) -> None:
    async def both() -> tuple[list[Finding], list[Finding]]:
        ctx = _ctx(weak_server)
        return await tls_probes.TlsProbe().run(ctx), await tls_probes.TlsVulnerabilityProbe().run(
            ctx
        )

    config, vulns = asyncio.run(both())
    found = checks(config)
    assert found["tls.protocol.obsolete"].evidence[0].data["protocols"] == ["TLSv1.0", "TLSv1.1"]
    assert found["tls.cipher.weak"].evidence[0].data["anonymous"] is True
    assert found["tls.cert.expired"].evidence[0].data["not_after"].startswith("2019-03-01")
    assert found["tls.cert.weak-key"].evidence[0].data["key_bits"] == 1024
    assert "tls.cert.self-signed" in found
    summary = found["tls.summary"].evidence[0].data
    assert summary["grade"] == "F" and summary["heartbleed"] is False
    assert len(summary["spki_sha256"]) == 64
    assert all(f.confidence.value == "confirmed" for f in config)
    assert vulns == []


def test_loopback_plain_tcp_is_a_failed_outcome_not_a_pass(tmp_path: Path) -> None:
    port = _free_port()
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    srv.settimeout(0.1)
    stop = time.monotonic() + 20

    async def serve_garbage() -> None:
        while time.monotonic() < stop:
            try:
                conn, _ = await asyncio.to_thread(srv.accept)
            except (TimeoutError, OSError):
                continue
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nnot tls\n")
            conn.close()

    async def main() -> None:
        server = asyncio.create_task(serve_garbage())
        try:
            with pytest.raises(ProbeFailed, match="no TLS handshake"):
                await tls_probes.TlsProbe().run(_ctx(port))
        finally:
            server.cancel()

    started = time.monotonic()
    asyncio.run(main())
    srv.close()
    assert time.monotonic() - started < 15


def test_starttls_refused_is_not_applicable(tmp_path: Path) -> None:
    port = _free_port()
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    srv.settimeout(0.1)

    async def ftp_without_tls(stop: float) -> None:
        while time.monotonic() < stop:
            try:
                conn, _ = await asyncio.to_thread(srv.accept)
            except (TimeoutError, OSError):
                continue
            conn.sendall(b"220 camera FTP\r\n")
            conn.settimeout(2)
            try:
                conn.recv(100)
                conn.sendall(b"500 AUTH not understood\r\n")
            except OSError:
                pass
            conn.close()

    async def main() -> None:
        server = asyncio.create_task(ftp_without_tls(time.monotonic() + 20))
        try:
            with pytest.raises(NotApplicable):
                await tls_probes.TlsProbe().run(_ctx(port, "ftp", False))
        finally:
            server.cancel()

    asyncio.run(main())
    srv.close()
