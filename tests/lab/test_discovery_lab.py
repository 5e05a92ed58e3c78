"""Live discovery sources against the lab's real responders: gmediarender's SSDP, python-zeroconf's
mDNS and the kernel's ARP (the parsers are tested in unit/discovery/test_discovery.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.lab
def test_ssdp_finds_the_tv_with_its_description(
    lab: dict[str, Any], in_scanner: Callable[[str], Any]
) -> None:
    addrs = [d["address"] for d in lab["devices"]]
    tv = next(d for d in lab["devices"] if d["name"] == "tv")
    out = in_scanner(
        "import asyncio, json\n"
        "from iotrate.discovery import ssdp\n"
        f"obs = asyncio.run(ssdp.discover({addrs!r}, listen=1.5))\n"
        "print(json.dumps([o.model_dump() for o in obs]))"
    )
    assert {o["device"] for o in out} == {tv["address"]}
    xml = [o["description_xml"] for o in out if o["description_xml"]]
    assert len(xml) == 1
    assert tv["settings"]["friendly_name"] in xml[0]
    assert any("UPnP/1.0" in o["headers"].get("SERVER", "") for o in out)


@pytest.mark.lab
def test_ssdp_ignores_answers_from_non_targets(
    lab: dict[str, Any], in_scanner: Callable[[str], Any]
) -> None:
    others = [d["address"] for d in lab["devices"] if d["name"] != "tv"]
    out = in_scanner(
        "import asyncio, json\n"
        "from iotrate.discovery import ssdp\n"
        f"print(json.dumps(len(asyncio.run(ssdp.discover({others!r}, listen=1.0)))))"
    )
    assert out == 0


@pytest.mark.lab
def test_mdns_finds_the_speaker(lab: dict[str, Any], in_scanner: Callable[[str], Any]) -> None:
    addrs = [d["address"] for d in lab["devices"]]
    speaker = next(d for d in lab["devices"] if d["name"] == "speaker")
    out = in_scanner(
        "import asyncio, json\n"
        "from iotrate.discovery import mdns\n"
        f"obs = asyncio.run(mdns.discover({addrs!r}, listen=1.5))\n"
        "print(json.dumps([o.model_dump() for o in obs]))"
    )
    types = {o["service_type"] for o in out}
    assert types == {"_googlecast._tcp", "_airplay._tcp"}
    assert {o["device"] for o in out} == {speaker["address"]}
    cast = next(o for o in out if o["service_type"] == "_googlecast._tcp")
    assert cast["properties"]["md"] and cast["port"] == 8009


@pytest.mark.lab
def test_arp_sweep_gives_every_mac(lab: dict[str, Any], in_scanner: Callable[[str], Any]) -> None:
    out = in_scanner(
        "import asyncio, json, ipaddress\n"
        "from iotrate.discovery import arp\n"
        f"hosts = [str(h) for h in ipaddress.ip_network({lab['subnet']!r}).hosts()]\n"
        "print(json.dumps(asyncio.run(arp.sweep(hosts))))"
    )
    assert out == {d["address"]: d["mac"].lower() for d in lab["devices"]}
