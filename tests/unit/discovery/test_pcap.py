"""Passive identification from captures: crafted packets and a garbage file (a real capture of
the lab's own traffic: tests/lab/test_pcap_lab.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSRR, DNSRRSRV
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from iotrate.discovery.pcap import read_pcap
from iotrate.errors import UsageError


def crafted() -> list[Any]:
    notify = (
        b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n"
        b"NTS: ssdp:alive\r\nSERVER: Linux/4.9 UPnP/1.0 Samsung/1.0\r\n"
        b"USN: uuid:abc::upnp:rootdevice\r\nLOCATION: http://192.168.1.10:7676/d.xml\r\n\r\n"
    )
    mdns = DNS(
        qr=1,
        aa=1,
        an=[
            DNSRR(rrname="_googlecast._tcp.local.", type="PTR", rdata="K._googlecast._tcp.local."),
            DNSRRSRV(rrname="K._googlecast._tcp.local.", port=8009, target="k.local."),
            DNSRR(rrname="K._googlecast._tcp.local.", type="TXT", rdata=[b"md=Google Home Mini"]),
        ],
    )
    dhcp = DHCP(
        options=[
            ("message-type", "request"),
            ("hostname", "LG-Fridge<script>"),
            ("vendor_class_id", "udhcp 1.30.1"),
            ("param_req_list", [1, 3, 6, 12]),
            "end",
        ]
    )
    return [
        Ether(src="3c:59:1e:4a:10:0a", dst="01:00:5e:7f:ff:fa")
        / IP(src="192.168.1.10", dst="239.255.255.250")
        / UDP(sport=1900, dport=1900)
        / notify,
        Ether(src="f4:f5:d8:c2:5a:17", dst="01:00:5e:00:00:fb")
        / IP(src="192.168.1.14", dst="224.0.0.251")
        / UDP(sport=5353, dport=5353)
        / mdns,
        Ether(src="20:17:42:6b:31:5c", dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=bytes.fromhex("2017426b315c"))
        / dhcp,
        Ether(src="44:47:cc:a2:07:93", dst="aa:bb:cc:dd:ee:ff")
        / IP(src="192.168.1.12", dst="192.168.1.2")
        / TCP(sport=80, dport=40000, flags="PA")
        / b"HTTP/1.1 200 OK\r\nServer: DNVRS-Webs\r\n\r\n",
        Ether()
        / IP(src="192.168.1.99", dst="239.255.255.250")
        / UDP(sport=1900, dport=1900)
        / b"\xff"
        * 50,
    ]


def test_crafted_capture(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    wrpcap(str(path), crafted())
    obs = read_pcap(path)
    kinds = {(o.device, o.kind) for o in obs}
    assert ("192.168.1.10", "ssdp") in kinds
    assert ("192.168.1.14", "mdns") in kinds
    assert ("192.168.1.12", "http") in kinds
    assert ("20:17:42:6b:31:5c", "dhcp") in kinds
    assert ("192.168.1.10", "mac") in kinds
    assert not any(o.device == "192.168.1.99" for o in obs)  # garbage SSDP is dropped
    mdns = next(o for o in obs if o.kind == "mdns")
    assert mdns.service_type == "_googlecast._tcp" and mdns.port == 8009  # type: ignore[union-attr]
    assert mdns.properties["md"] == "Google Home Mini"  # type: ignore[union-attr]


def test_not_a_capture(tmp_path: Path) -> None:
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"this is not a capture" * 10)
    with pytest.raises(UsageError, match="not a readable"):
        read_pcap(bad)
