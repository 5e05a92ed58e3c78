"""The raw ARP sweep against the lab's namespaces, whose kernels answer ARP as real hosts do:
every device found with its MAC, empty addresses given up on time, the port scan fed as answers
come (the parsing and routing tests are in unit/discovery/test_arp.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from iotrate.discovery import arp


@pytest.mark.lab
def test_sweep_finds_every_lab_device_as_it_answers(
    lab: dict[str, Any], in_scanner: Callable[[str], Any]
) -> None:
    """Real kernels answer: every device once, with its MAC, reported before the sweep ends;
    the scanner itself and the empty addresses are never reported."""
    out = in_scanner(
        "import asyncio, ipaddress, json, time\n"
        "from iotrate.discovery import arp\n"
        f"hosts = [str(h) for h in ipaddress.ip_network({lab['subnet']!r}).hosts()]\n"
        "seen = []\n"
        "t = time.monotonic()\n"
        "found = asyncio.run(arp.sweep(hosts, on_found=lambda ip, mac: seen.append([ip, mac])))\n"
        "print(json.dumps({'found': found, 'seen': seen, 's': time.monotonic() - t}))"
    )
    expected = {d["address"]: d["mac"].lower() for d in lab["devices"]}
    assert out["found"] == expected
    assert sorted(map(tuple, out["seen"])) == sorted(expected.items())
    # Stops on its own quiet window, long before the hard cap.
    assert out["s"] < arp.SweepTiming().timeout


@pytest.mark.lab
def test_sweep_of_empty_addresses_stops_at_its_windows(
    lab: dict[str, Any], in_scanner: Callable[[str], Any]
) -> None:
    """Nothing answers: the sweep ends after its rounds' quiet windows, bounded by the cap."""
    timing = arp.SweepTiming()
    out = in_scanner(
        "import asyncio, ipaddress, json, time\n"
        "from iotrate.discovery import arp\n"
        f"net = ipaddress.ip_network({lab['subnet']!r})\n"
        "hosts = [str(h) for h in list(net.hosts())[200:250]]\n"
        "t = time.monotonic()\n"
        "found = asyncio.run(arp.sweep(hosts))\n"
        "print(json.dumps({'found': found, 's': time.monotonic() - t}))"
    )
    assert out["found"] == {}
    # Each round sends 50 requests at ``rate`` a second, then listens ``min_quiet``; 0.5 s of
    # slack covers interpreter start-up and scheduling on a loaded machine.
    bound = (1 + timing.retries) * (50 / timing.rate + timing.min_quiet) + 0.5
    assert out["s"] < min(bound, timing.timeout + 0.5)


@pytest.mark.lab
def test_discovery_port_scans_hosts_while_the_sweep_listens(
    lab: dict[str, Any], in_scanner: Callable[[str], Any]
) -> None:
    """ARP answers feed the port scan at once; silent on-link addresses are never connected."""
    out = in_scanner(
        "import asyncio, ipaddress, json\n"
        "from iotrate.discovery import sweep\n"
        "from iotrate.discovery.portscan import ScanLimits, port_specs\n"
        f"hosts = [str(h) for h in ipaddress.ip_network({lab['subnet']!r}).hosts()]\n"
        "macs = {}\n"
        "done = []\n"
        "res, mode = asyncio.run(sweep.discover(hosts, port_specs('iot'), ScanLimits(),\n"
        "    lambda h: done.append([h.address, h.address in macs]), macs, True))\n"
        "print(json.dumps({'mode': mode, 'macs': macs, 'done': done,\n"
        "    'alive': sorted(h.address for h in res if h.alive), 'n': len(res)}))"
    )
    expected = {d["address"]: d["mac"].lower() for d in lab["devices"]}
    assert out["mode"] == "arp + tcp-connect"
    assert out["macs"] == expected
    assert sorted(out["alive"]) == sorted(expected)
    # Every host was handed on with its MAC already known, and only answering hosts were scanned.
    assert sorted(a for a, had_mac in out["done"] if had_mac) == sorted(expected)
    assert out["n"] == len(expected)
