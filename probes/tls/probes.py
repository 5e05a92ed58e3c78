"""The TLS probes. One sslyze scan per port feeds two probes (configuration + certificate, and
vulnerabilities), so a vulnerability test that errors makes only its own checks unknown instead
of throwing away the protocol findings, while the device still sees one scan's worth of
connections. Both declare the engine they drive (``engine = "sslyze"``) so the runner bounds
its memory with the engine's slots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from iotrate.models import Device, Finding, Service, Transport

from ..base import NotApplicable, Probe, ProbeContext, ProbeFailed, make_finding
from .engine import (
    CONFIG_COMMANDS,
    VULN_COMMANDS,
    shared_scan,
)
from .findings import (
    SUMMARY_CHECK,
    configuration_findings,
    vulnerability_findings,
)
from .model import (
    STARTTLS,
    TLS_PROTOCOLS,
)


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
    engine: ClassVar[str | None] = "sslyze"
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
    engine: ClassVar[str | None] = "sslyze"
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
