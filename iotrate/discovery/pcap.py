"""Passive identification: turn a packet capture into observations, sending nothing.

Reads with scapy's streaming ``PcapReader`` (pcap and pcapng), so a large capture costs time,
not memory. What devices say about themselves on their own is enough to identify most of them:
SSDP announcements and answers, mDNS responses (PTR/SRV/TXT), DHCP requests (hostname, vendor
class, parameter list) and HTTP response headers. MACs are taken only from link-local traffic
(multicast and DHCP), where the sender's MAC is the device's own and not a router's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iotrate.discovery.ssdp import SsdpError, parse_message
from iotrate.errors import UsageError
from iotrate.identify.observations import (
    DhcpObservation,
    HttpObservation,
    MacObservation,
    MdnsObservation,
    Observation,
    SsdpObservation,
)
from iotrate.net import printable

log = logging.getLogger(__name__)

MAX_PACKETS = 2_000_000
MAX_OBSERVATIONS = 50_000


def _mdns_records(dns: Any) -> Iterator[tuple[int, str, Any]]:
    for section in ("an", "ns", "ar"):
        rr = getattr(dns, section, None)
        count = 0
        # scapy >= 2.5 gives a list; older versions a chained layer.
        items = rr if isinstance(rr, list) else []
        for r in items:
            count += 1
            if count > 256:
                break
            yield int(getattr(r, "type", 0)), _name(getattr(r, "rrname", b"")), r


def _name(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip(".")
    return str(value).rstrip(".")


def _mdns_observations(src: str, dns: Any) -> list[MdnsObservation]:
    """One observation per service instance announced in this response."""
    instances: dict[str, dict[str, Any]] = {}
    for rtype, name, r in _mdns_records(dns):
        if rtype == 12:  # PTR: service type -> instance
            target = _name(getattr(r, "rdata", b""))
            if name.startswith("_services._dns-sd"):
                continue
            instances.setdefault(target, {"type": name})
        elif rtype == 33:  # SRV
            instances.setdefault(name, {})["port"] = int(getattr(r, "port", 0) or 0)
        elif rtype == 16:  # TXT
            props: dict[str, str] = {}
            for item in list(getattr(r, "rdata", []) or [])[:64]:
                raw = item if isinstance(item, bytes) else str(item).encode()
                k, _, v = raw.partition(b"=")
                props[printable(k, 64)] = printable(v, 512)
            instances.setdefault(name, {})["props"] = props
    out = []
    for inst, info in instances.items():
        stype = info.get("type")
        if stype is None:
            parts = inst.split(".")
            # "Name._type._tcp.local" -> "_type._tcp"
            for i in range(len(parts) - 2):
                if parts[i].startswith("_") and parts[i + 1] in ("_tcp", "_udp"):
                    stype = ".".join(parts[i : i + 2])
                    break
        if stype is None:
            continue
        out.append(
            MdnsObservation(
                device=src,
                kind="mdns",
                service_type=stype.removesuffix(".local"),
                name=printable(inst, 255),
                port=info.get("port"),
                properties=info.get("props", {}),
            )
        )
    return out


def _dhcp_observation(pkt: Any) -> tuple[str, DhcpObservation] | None:
    from scapy.layers.dhcp import BOOTP, DHCP

    opts: dict[str, str] = {}
    hostname = vendor = None
    for opt in pkt[DHCP].options:
        if not isinstance(opt, tuple) or len(opt) < 2:
            continue
        key, value = str(opt[0]), opt[1]
        if key == "hostname":
            hostname = printable(value if isinstance(value, bytes) else str(value), 64)
        elif key == "vendor_class_id":
            vendor = printable(value if isinstance(value, bytes) else str(value), 128)
        elif key == "param_req_list":
            opts["55"] = ",".join(str(v) for v in (value if isinstance(value, list) else [value]))
        elif key == "message-type":
            opts["53"] = str(value)
    chaddr = bytes(pkt[BOOTP].chaddr)[:6]
    mac = ":".join(f"{b:02x}" for b in chaddr)
    return mac, DhcpObservation(
        device=mac, kind="dhcp", hostname=hostname, vendor_class=vendor, options=opts
    )


class _Capture:
    """What one pass over a capture has gathered: observations so far, and the MACs and DHCP
    requests that are matched to addresses only once every packet has been read."""

    def __init__(self) -> None:
        self.observations: list[Observation] = []
        self.seen: set[tuple[str, str, str]] = set()
        self.mac_of_ip: dict[str, str] = {}
        self.dhcp_by_mac: dict[str, DhcpObservation] = {}

    def keep(self, obs: Observation, key: str) -> None:
        sig = (obs.device, obs.kind, key)
        if sig not in self.seen and len(self.observations) < MAX_OBSERVATIONS:
            self.seen.add(sig)
            self.observations.append(obs)

    def packet(self, pkt: Any) -> None:
        from scapy.layers.dhcp import DHCP
        from scapy.layers.inet import IP, TCP, UDP
        from scapy.layers.l2 import Ether

        if pkt.haslayer(DHCP):
            got = _dhcp_observation(pkt)
            if got:
                self.dhcp_by_mac.setdefault(got[0], got[1])
            return
        if not pkt.haslayer(IP):
            return
        src = str(pkt[IP].src)
        # SSDP and mDNS never cross a router, so their sender MAC is the device's own.
        link_mac = str(pkt[Ether].src).lower() if pkt.haslayer(Ether) else None
        if pkt.haslayer(UDP):
            self._udp(pkt, src, link_mac)
        elif pkt.haslayer(TCP):
            self._http(pkt, src)

    def _udp(self, pkt: Any, src: str, link_mac: str | None) -> None:
        from scapy.layers.dns import DNS
        from scapy.layers.inet import UDP

        udp = pkt[UDP]
        payload = bytes(udp.payload)
        # libupnp answers M-SEARCH from an ephemeral port, so match on content too.
        if 1900 in (udp.sport, udp.dport) or payload.startswith(b"HTTP/1.1 200"):
            self._ssdp(payload, src, link_mac)
        elif udp.sport == 5353 and pkt.haslayer(DNS) and pkt[DNS].qr == 1:
            found = _mdns_observations(src, pkt[DNS])
            for obs in found:
                self.keep(obs, f"{obs.service_type}|{obs.name}")
            if found and link_mac:
                self.mac_of_ip.setdefault(src, link_mac)

    def _ssdp(self, payload: bytes, src: str, link_mac: str | None) -> None:
        try:
            start, headers = parse_message(payload)
        except SsdpError:
            return
        if start.startswith("M-SEARCH") or not (
            "USN" in headers or "NT" in headers or "ST" in headers
        ):
            return
        self.keep(
            SsdpObservation(device=src, kind="ssdp", headers=headers),
            headers.get("USN", "") + headers.get("NT", headers.get("ST", "")),
        )
        if link_mac:
            self.mac_of_ip.setdefault(src, link_mac)

    def _http(self, pkt: Any, src: str) -> None:
        from scapy.layers.inet import TCP

        payload = bytes(pkt[TCP].payload)
        if not payload.startswith(b"HTTP/1."):
            return
        try:
            _start, headers = parse_message(payload)
        except SsdpError:
            return
        self.keep(
            HttpObservation(
                device=src,
                kind="http",
                port=int(pkt[TCP].sport),
                headers={k.title(): v for k, v in headers.items()},
            ),
            f"{pkt[TCP].sport}|{headers.get('SERVER', '')}",
        )

    def finish(self) -> list[Observation]:
        """The observations, with DHCP and MAC ones placed on the address a MAC was seen at."""
        ip_of_mac = {mac: ip for ip, mac in self.mac_of_ip.items()}
        for mac, dhcp in self.dhcp_by_mac.items():
            device = ip_of_mac.get(mac, mac)
            self.keep(dhcp.model_copy(update={"device": device}), "dhcp")
            if device == mac:
                self.keep(MacObservation(device=mac, kind="mac", mac=mac), mac)
        for ip, mac in self.mac_of_ip.items():
            self.keep(MacObservation(device=ip, kind="mac", mac=mac), mac)
        return self.observations


def read_pcap(path: Path) -> list[Observation]:
    """Observations from a capture file; raises UsageError for a file that is not a capture."""
    try:
        from scapy.error import Scapy_Exception
        from scapy.utils import PcapReader
    except ImportError as exc:  # pragma: no cover - scapy is a core dependency
        raise UsageError(f"reading captures needs scapy: {exc}") from exc

    capture = _Capture()
    try:
        reader = PcapReader(str(path))
    except (OSError, Scapy_Exception) as exc:
        raise UsageError(f"{path}: not a readable pcap/pcapng capture ({exc})") from exc
    with reader:
        for n, pkt in enumerate(reader):
            if n >= MAX_PACKETS:
                log.warning("stopping after %d packets", MAX_PACKETS)
                break
            try:
                capture.packet(pkt)
            except (ValueError, IndexError, AttributeError, TypeError, KeyError) as exc:
                log.debug("skipping malformed packet %d: %s", n, exc)
    return capture.finish()
