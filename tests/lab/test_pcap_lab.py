"""Passive identification from a real capture of the lab's own SSDP and mDNS traffic, taken with
tcpdump inside the scanner namespace (crafted packets: unit/discovery/test_pcap.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iotrate.discovery.pcap import read_pcap


@pytest.mark.lab
def test_real_capture_of_the_lab(
    lab: dict[str, Any], in_scanner: Callable[[str], Any], tmp_path: Path
) -> None:
    """tcpdump records the lab's SSDP and mDNS while discovery runs; passive mode reads it."""
    path = tmp_path / "lab.pcap"
    ns = lab["scanner"]["namespace"]
    dump = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "tcpdump",
            "-i",
            "eth0",
            "-U",
            "-w",
            str(path),
            "udp",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        addrs = [d["address"] for d in lab["devices"]]
        in_scanner(
            "import asyncio, json\n"
            "from iotrate.discovery import mdns, ssdp\n"
            "async def main():\n"
            f"    await asyncio.gather(ssdp.discover({addrs!r}, listen=1.5),"
            f" mdns.discover({addrs!r}, listen=1.5))\n"
            "asyncio.run(main())\n"
            "print('0')"
        )
        time.sleep(0.5)
    finally:
        dump.terminate()
        dump.wait(timeout=10)
    obs = read_pcap(path)
    by = {(o.device, o.kind) for o in obs}
    tv = next(d for d in lab["devices"] if d["name"] == "tv")
    speaker = next(d for d in lab["devices"] if d["name"] == "speaker")
    assert (tv["address"], "ssdp") in by
    assert (speaker["address"], "mdns") in by
    macs = {o.device: o.mac for o in obs if o.kind == "mac"}  # type: ignore[union-attr]
    assert macs.get(speaker["address"]) == speaker["mac"].lower()
