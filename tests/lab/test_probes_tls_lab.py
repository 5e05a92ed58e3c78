"""TLS probes against the lab's hub and plug.

The tests run the probes inside the scanner namespace by re-running this file there
(``ip netns exec <ns> python tests/lab/test_probes_tls_lab.py ADDRESS PORT PROTOCOL``), which
prints the findings as JSON; nothing is probed from the root namespace. Grading, findings and a
local ``openssl s_server``: unit/probes/test_probes_tls.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from iotrate.probes.base import Policy, ProbeContext
from iotrate.probes.tls import probes as tls_probes

from iotrate.models import Device, Finding, Service


def _in_scanner(lab: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    ns = lab["scanner"]["namespace"]
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


def _lab_device(lab: dict[str, Any], name: str) -> dict[str, Any]:
    return next(d for d in lab["devices"] if d["name"] == name)


@pytest.mark.lab
def test_lab_hub_weak_tls(lab: dict[str, Any]) -> None:
    hub = _lab_device(lab, "hub")
    found = {f["check"]: f for f in _in_scanner(lab, hub["address"], "443", "https")}
    obsolete = found["tls.protocol.obsolete"]["evidence"][0]["data"]
    assert obsolete["protocols"] == ["TLSv1.0", "TLSv1.1"] and obsolete["admin_interface"]
    weak = found["tls.cipher.weak"]["evidence"][0]["data"]
    assert weak["anonymous"] is True
    assert any("1024-bit DH group" in d["reasons"] for d in weak["details"])
    cert_data = found["tls.cert.expired"]["evidence"][0]["data"]
    assert cert_data["not_after"].startswith("2019-03-01")
    assert cert_data["subject"] == "O=Tuya Smart,CN=tuya-gateway"
    assert found["tls.cert.weak-key"]["evidence"][0]["data"]["key_bits"] == 1024
    assert "tls.cert.self-signed" in found
    summary = found["tls.summary"]["evidence"][0]["data"]
    assert summary["grade"] == "F"
    assert "F: anonymous cipher suites (no server authentication)" in summary["caps"]
    assert "tls.vuln.heartbleed" not in found


@pytest.mark.lab
def test_lab_plug_modern_tls_has_nothing_above_info(lab: dict[str, Any]) -> None:
    plug = _lab_device(lab, "plug")
    found = _in_scanner(lab, plug["address"], "443", "https")
    assert {f["severity"] for f in found} == {"info"}
    summary = next(f for f in found if f["check"] == "tls.summary")["evidence"][0]["data"]
    assert summary["protocols"] == ["TLSv1.2", "TLSv1.3"]
    assert summary["grade"] == "A" and summary["name_matches"] is True
    assert summary["certificate"]["issuer"] == "O=iotrate lab,CN=iotrate reference lab CA"


def _main(address: str, port: str, protocol: str) -> None:
    """Scanner-namespace side of the lab tests: run both TLS probes, print their findings."""
    svc = Service(port=int(port), protocol=protocol, tls=True)
    dev = Device(id=address, address=address, services=[svc])
    ctx = ProbeContext(address=address, device=dev, service=svc, policy=Policy.SAFE, timeout=60)

    async def run() -> list[Finding]:
        return [
            *await tls_probes.TlsProbe().run(ctx),
            *await tls_probes.TlsVulnerabilityProbe().run(ctx),
        ]

    print(json.dumps([f.model_dump(mode="json") for f in asyncio.run(run())]))


if __name__ == "__main__":
    _main(*sys.argv[1:4])
