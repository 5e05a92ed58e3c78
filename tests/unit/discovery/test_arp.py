"""The raw ARP sweep: frame building and parsing (hostile frames included), on-link routing; the
sweep itself against the lab's namespaces is in tests/lab/test_arp_lab.py."""

from __future__ import annotations

import socket
import struct

import pytest

from iotrate.discovery import arp

MAC = bytes.fromhex("021ab0000002")
PEER = bytes.fromhex("3c591e4a100a")


def reply(
    sender_ip: str = "10.0.0.10",
    sender_mac: bytes = PEER,
    op: int = arp.ARP_REPLY,
    ethertype: int = arp.ETH_P_ARP,
    htype: int = 1,
    ptype: int = arp.ETH_P_IP,
    hlen: int = 6,
    plen: int = 4,
    pad: int = 18,
) -> bytes:
    """An ARP reply frame as a device would send it, every field overridable."""
    eth = MAC + sender_mac + struct.pack("!H", ethertype)
    body = struct.pack("!HHBBH", htype, ptype, hlen, plen, op)
    body += sender_mac + socket.inet_aton(sender_ip) + MAC + socket.inet_aton("10.0.0.2")
    return eth + body + b"\x00" * pad


def wanted(ip: str) -> bool:
    return ip.startswith("10.0.0.")


def test_request_frame_is_a_broadcast_who_has() -> None:
    frame = arp.request_frame(MAC, "10.0.0.2", "10.0.0.77")
    assert len(frame) == arp.FRAME_LEN
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == MAC
    assert frame[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, arp.ARP_REQUEST)
    assert frame[22:28] == MAC and socket.inet_ntoa(frame[28:32]) == "10.0.0.2"
    assert frame[32:38] == b"\x00" * 6 and socket.inet_ntoa(frame[38:42]) == "10.0.0.77"
    with pytest.raises(ValueError):
        arp.request_frame(b"\x00" * 5, "10.0.0.2", "10.0.0.77")


def test_a_reply_gives_address_and_mac() -> None:
    assert arp.parse_reply(reply(), wanted) == ("10.0.0.10", "3c:59:1e:4a:10:0a")
    assert arp.parse_reply(reply(pad=0), wanted) == ("10.0.0.10", "3c:59:1e:4a:10:0a")


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"", "empty"),
        (reply(pad=0)[:41], "one byte short of a whole ARP packet"),
        (reply()[:20], "header only"),
        (reply(op=arp.ARP_REQUEST), "a request (e.g. our own, echoed), not a reply"),
        (reply(op=7), "an unknown opcode"),
        (reply(ethertype=0x0800), "an IPv4 frame"),
        (reply(htype=6), "not Ethernet hardware"),
        (reply(ptype=0x86DD), "not IPv4 addresses"),
        (reply(hlen=8), "odd hardware address length"),
        (reply(plen=16), "odd protocol address length"),
        (reply(sender_ip="192.168.9.9"), "an address nobody asked about (foreign subnet)"),
        (reply(sender_mac=b"\xff" * 6), "a broadcast hardware address"),
        (reply(sender_mac=bytes.fromhex("01005e000001")), "a multicast hardware address"),
        (reply(sender_mac=b"\x00" * 6), "no hardware address"),
    ],
)
def test_hostile_frames_are_refused(frame: bytes, why: str) -> None:
    assert arp.parse_reply(frame, wanted) is None, why


ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
wlan0\t0000000A\t00000000\t0001\t0\t0\t600\t0000FFFF\t0\t0\t0
eth0\t0000E80A\t0200E80A\t0003\t0\t0\t0\t00F0FFFF\t0\t0\t0
down0\t0000100A\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0
garbage line
"""


def test_routes_are_read_in_kernel_byte_order() -> None:
    routes = {(r.iface, str(r.network), r.gateway) for r in arp.parse_routes(ROUTES)}
    assert routes == {
        ("eth0", "0.0.0.0/0", "192.168.1.1"),
        ("eth0", "192.168.1.0/24", None),
        ("wlan0", "10.0.0.0/16", None),
        ("eth0", "10.232.0.0/20", "10.232.0.2"),
    }  # the route whose flags lack RTF_UP is left out


def test_only_connected_subnets_are_asked() -> None:
    hosts = [
        "192.168.1.20",  # on eth0's /24
        "10.0.3.4",  # on wlan0's /16
        "10.232.1.5",  # behind a gateway (the scale lab's routed hosts)
        "8.8.8.8",  # default route only
        "127.0.0.1",
        "::1",
        "not an address",
    ]
    groups = arp.group_on_link(hosts, arp.parse_routes(ROUTES))
    assert groups == {"eth0": ["192.168.1.20"], "wlan0": ["10.0.3.4"]}
