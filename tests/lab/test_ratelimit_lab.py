"""The per-host rate limit in the lab: a real device sees no more than the limit (the arithmetic
and the connection paths: unit/scan/test_ratelimit.py)."""

from __future__ import annotations

import bisect
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.executables import IOTRATE

from iotrate import ratelimit


@pytest.mark.lab
def test_lab_hub_sees_at_most_the_default_rate(lab: dict[str, Any], tmp_path: Path) -> None:
    """The hub's real TLS server gets sslyze's ~600 handshakes plus the sweep and the SNMP
    probes; unpaced that peaks near 300 new connections in a second. tcpdump in the hub's own
    namespace timestamps every SYN and UDP datagram from the scanner as the hub receives it."""
    hub = next(d for d in lab["devices"] if d["name"] == "hub")
    scanner = lab["scanner"]["address"]
    pcap = tmp_path / "hub.pcap"
    filt = (
        f"src host {scanner} and dst host {hub['address']} and "
        "((tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn) or udp)"
    )
    dump = subprocess.Popen(
        ["ip", "netns", "exec", hub["namespace"], "tcpdump", "-i", "eth0", "-n", "-U",
         "-w", str(pcap), filt],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert dump.stderr is not None
        dump.stderr.readline()  # "listening on eth0": the capture is open
        scan = subprocess.run(
            ["ip", "netns", "exec", lab["scanner"]["namespace"], IOTRATE, "scan",
             hub["address"], "--no-history", "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        time.sleep(0.3)
        dump.terminate()
        dump.wait(10)
    assert scan.returncode == 0, scan.stderr[-2000:]
    read = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-n", "-tt"], capture_output=True, text=True, check=True
    )
    stamps = sorted(float(line.split()[0]) for line in read.stdout.splitlines() if line)
    rate = ratelimit.DEFAULT_RATE
    assert len(stamps) > 3 * rate, "too few connections to tell a limit from none"
    # Most packets in any one-second window, allowing 2 ms of clock jitter between the
    # scanner's grant and the hub's capture timestamp.
    busiest = max(bisect.bisect_left(stamps, t + 1.0 - 0.002) - i for i, t in enumerate(stamps))
    assert busiest <= rate, busiest
    assert '"grade": "E"' in scan.stdout or '"grade": "F"' in scan.stdout  # still fully tested
