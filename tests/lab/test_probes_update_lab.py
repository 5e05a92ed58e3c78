"""Update status of the lab TV's libupnp from its SSDP answer, read inside the scanner namespace by
re-running this file there (banners, evidence and the false-positive guards:
unit/probes/test_probes_update.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from iotrate.probes import update

from iotrate.models import Device, Service, Transport


@pytest.mark.lab
def test_lab_tv_libupnp_from_ssdp(lab: dict[str, Any]) -> None:
    tv = next(d for d in lab["devices"] if d["name"] == "tv")
    out = subprocess.run(
        ["ip", "netns", "exec", lab["scanner"]["namespace"], sys.executable, __file__,
         tv["address"]],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout)
    assert "Portable SDK for UPnP devices/1.8.4" in result["banner"]
    found = {f["check"]: f for f in result["findings"]}
    data = found["update.cve"]["evidence"][0]["data"]
    assert data["product"] == "libupnp" and data["version"] == "1.8.4"
    assert data["cve"] == ["CVE-2020-13848"]
    assert found["update.cve"]["confidence"] == "probable"
    assert "ssdp banner on 1900/udp" in data["sources"]


def _main(address: str) -> None:
    """Scanner-namespace side: one SSDP M-SEARCH, as discovery sends it, then the judgement."""
    from iotrate.discovery.portscan import UDP_HELLOS, banner_text
    from iotrate.net import udp_exchange

    answer = asyncio.run(udp_exchange(address, 1900, UDP_HELLOS["ssdp-msearch"], 3.0))
    banner = banner_text(answer or b"", "http") or ""
    dev = Device(
        id=address,
        address=address,
        services=[Service(port=1900, transport=Transport.UDP, protocol="ssdp", banner=banner)],
    )
    findings = update.UpdateProbe.correlate([dev]).get(address, [])
    print(json.dumps({"banner": banner, "findings": [f.model_dump(mode="json") for f in findings]}))


if __name__ == "__main__":
    _main(sys.argv[1])
