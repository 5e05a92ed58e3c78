"""ARP sweep: the fastest and most complete way to find hosts on the local link, and the only
one that sees a device with every port closed or filtered. It needs CAP_NET_RAW (root); without
it discovery falls back to the TCP connect sweep and says so.

Why a hand-written frame on a stdlib ``AF_PACKET`` socket instead of scapy: an ARP request is
one fixed 28-byte layout, and scapy costs about half a second of imports plus a Python object
graph per packet, which is most of a /24 sweep's time (benchmarks/README.md). Here a request is
a ``struct.pack`` and a reply a bounds-checked ``struct.unpack``; scapy stays for what needs a
real dissector (``iotrate.discovery.pcap``), imported there lazily.

How the sweep spends its time: requests go out paced (``rate`` frames a second, in small
bursts), then the sweep waits only as long as the network has shown it needs — until no new
reply has arrived for ``k`` times the slowest round trip seen so far (never less than
``min_quiet``) — resends once to the silent addresses, waits again, and gives up at the hard
cap ``timeout`` whatever happens. Every host is reported the moment its reply arrives
(``on_found``), so the caller can start port-scanning it while the sweep goes on.

Only targets on a directly connected subnet are asked (read from the kernel's routing table,
``/proc/net/route``): ARP is link-local by definition, so nothing here reaches past the link.
Replies are hostile input: a frame is accepted only if it is a complete Ethernet/IPv4 ARP reply
from an address we asked about, with a unicast hardware address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST, ARP_REPLY = 1, 2
BROADCAST = b"\xff" * 6
FRAME_LEN = 42  # 14 bytes of Ethernet header + 28 of ARP; the kernel pads to 60 on the wire
_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_SOL_PACKET = 263  # linux/socket.h; Python names it only on some builds
_PACKET_IGNORE_OUTGOING = 23  # linux/if_packet.h, Linux 4.20+: our own requests stay unseen
_RTF_UP, _RTF_GATEWAY = 0x1, 0x2
_READ_BATCH = 256  # frames read per wake-up, so a reply flood cannot starve the event loop

OnFound = Callable[[str, str], None]


def privileged() -> bool:
    """Whether raw sockets are allowed (root, or CAP_NET_RAW in the effective set)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 13))  # CAP_NET_RAW
    except OSError:
        pass
    return False


# --- frames ----------------------------------------------------------------------------------


def request_frame(src_mac: bytes, src_ip: str, target_ip: str) -> bytes:
    """A broadcast "who has ``target_ip``, tell ``src_ip``" Ethernet frame (42 bytes)."""
    if len(src_mac) != 6:
        raise ValueError("a MAC address is 6 bytes")
    arp = _ARP.pack(
        1,  # hardware type: Ethernet
        ETH_P_IP,
        6,
        4,
        ARP_REQUEST,
        src_mac,
        socket.inet_aton(src_ip),
        b"\x00" * 6,
        socket.inet_aton(target_ip),
    )
    return _ETH.pack(BROADCAST, src_mac, ETH_P_ARP) + arp


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_reply(frame: bytes, wanted: Callable[[str], bool]) -> tuple[str, str] | None:
    """``(ip, mac)`` if ``frame`` is an Ethernet/IPv4 ARP reply from an address ``wanted``
    accepts, else None. Short frames, other opcodes and protocols, addresses nobody asked
    about and broadcast, multicast or zero hardware addresses are all refused."""
    if len(frame) < FRAME_LEN:
        return None
    _dst, _src, ethertype = _ETH.unpack_from(frame, 0)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, _tha, _tpa = _ARP.unpack_from(frame, _ETH.size)
    if (htype, ptype, hlen, plen, op) != (1, ETH_P_IP, 6, 4, ARP_REPLY):
        return None
    if sha[0] & 1 or sha == b"\x00" * 6:  # multicast/broadcast bit, or no address at all
        return None
    ip = socket.inet_ntoa(spa)
    if not wanted(ip):
        return None
    return ip, mac_text(sha)


# --- which targets are on the link ----------------------------------------------------------


@dataclass(frozen=True)
class Route:
    iface: str
    network: ipaddress.IPv4Network
    gateway: str | None
    metric: int


def parse_routes(text: str) -> list[Route]:
    """The IPv4 main routing table in ``/proc/net/route`` format (hex, host byte order)."""
    routes = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest, gw, flags, metric, mask = (
                int(cols[1], 16),
                int(cols[2], 16),
                int(cols[3], 16),
                int(cols[6]),
                int(cols[7], 16),
            )
            net = ipaddress.IPv4Network(
                (
                    socket.inet_ntoa(struct.pack("=I", dest)),
                    socket.inet_ntoa(struct.pack("=I", mask)),
                )
            )
        except ValueError:
            continue
        if not flags & _RTF_UP:
            continue
        gateway = socket.inet_ntoa(struct.pack("=I", gw)) if flags & _RTF_GATEWAY else None
        routes.append(Route(cols[0], net, gateway, metric))
    return routes


def _read_routes() -> list[Route]:
    try:
        return parse_routes(Path("/proc/net/route").read_text(encoding="ascii"))
    except OSError:
        return []


def group_on_link(hosts: Sequence[str], routes: Sequence[Route]) -> dict[str, list[str]]:
    """IPv4 targets by the interface whose connected subnet holds them (longest prefix wins,
    then the lowest metric); targets behind a gateway, on loopback or IPv6 are left out."""
    by_iface: dict[str, list[str]] = {}
    ordered = sorted(routes, key=lambda r: (-r.network.prefixlen, r.metric))
    for h in hosts:
        try:
            addr = ipaddress.ip_address(h)
        except ValueError:
            continue
        if not isinstance(addr, ipaddress.IPv4Address) or addr.is_loopback:
            continue
        route = next((r for r in ordered if addr in r.network), None)
        if route is None or route.gateway is not None or route.iface == "lo":
            continue
        if route.network.prefixlen == 0:  # a default route straight onto a link: not a subnet
            continue
        by_iface.setdefault(route.iface, []).append(h)
    return by_iface


def on_link_hosts(hosts: Sequence[str]) -> set[str]:
    """Targets on a directly connected subnet: those ARP can prove absent."""
    return {h for addrs in group_on_link(hosts, _read_routes()).values() for h in addrs}


def _source_address(target: str) -> str:
    """The address the kernel would send from to reach ``target``: connecting a UDP socket
    chooses it without sending anything."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((target, 9))
        return str(s.getsockname()[0])


# --- the sweep -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepTiming:
    """How fast requests go out and how long the sweep listens (module docstring)."""

    timeout: float = 2.0  # hard cap on the whole sweep, seconds
    rate: float = 4000.0  # requests per second
    retries: int = 1  # extra rounds to addresses that stayed silent
    k: float = 4.0  # quiet window = k x slowest round trip seen...
    min_quiet: float = 0.12  # ...but never shorter than this
    burst_interval: float = 0.005  # requests go out in bursts this far apart


class _Listener:
    """Collects replies on one raw socket as they arrive (an event-loop reader)."""

    def __init__(self, sock: socket.socket, wanted: set[str], on_found: OnFound | None) -> None:
        self.sock = sock
        self.wanted = wanted
        self.on_found = on_found
        self.found: dict[str, str] = {}
        self.sent_at: dict[str, float] = {}
        self.max_rtt = 0.0
        self.last_reply = 0.0
        self.event = asyncio.Event()

    def _is_new(self, ip: str) -> bool:
        return ip in self.wanted and ip not in self.found

    def readable(self) -> None:
        for _ in range(_READ_BATCH):
            try:
                frame = self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("ARP socket read failed: %s", exc)
                return
            hit = parse_reply(frame, self._is_new)
            if hit is None:
                continue
            ip, mac = hit
            now = time.monotonic()
            self.found[ip] = mac
            self.last_reply = now
            self.max_rtt = max(self.max_rtt, now - self.sent_at.get(ip, now))
            self.event.set()
            if self.on_found is not None:
                try:
                    self.on_found(ip, mac)
                except Exception:  # the caller's trouble must not end the sweep
                    log.debug("on_found(%s) failed", ip, exc_info=True)


def _open(iface: str) -> tuple[socket.socket, bytes]:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        sock.bind((iface, ETH_P_ARP))  # CPython applies htons() here itself
        try:
            sock.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass  # older kernel: our own requests are refused by parse_reply (opcode)
        sock.setblocking(False)
        mac = bytes(sock.getsockname()[4])[:6]
    except BaseException:
        sock.close()
        raise
    if len(mac) != 6:
        sock.close()
        raise OSError(f"{iface} has no Ethernet address")
    return sock, mac


async def _sweep_iface(
    iface: str, targets: list[str], timing: SweepTiming, on_found: OnFound | None
) -> dict[str, str]:
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    hard_stop = start + timing.timeout
    sources = {t: _source_address(t) for t in targets}
    sock, mac = _open(iface)
    listener = _Listener(sock, set(targets), on_found)
    loop.add_reader(sock.fileno(), listener.readable)
    per_burst = max(1, round(timing.rate * timing.burst_interval))
    try:
        last_send = start
        for _round in range(1 + timing.retries):
            silent = [t for t in targets if t not in listener.found]
            if not silent or time.monotonic() >= hard_stop:
                break
            for i in range(0, len(silent), per_burst):
                for t in silent[i : i + per_burst]:
                    if t in listener.found:
                        continue
                    frame = request_frame(mac, sources[t], t)
                    try:
                        sock.send(frame)
                    except BlockingIOError:
                        await asyncio.sleep(timing.burst_interval)
                        sock.send(frame)
                    listener.sent_at[t] = time.monotonic()
                last_send = time.monotonic()
                await asyncio.sleep(timing.burst_interval)
                if last_send >= hard_stop:
                    break
            # Listen until the link has been quiet for k round trips (or everyone answered).
            while len(listener.found) < len(targets):
                now = time.monotonic()
                window = max(timing.min_quiet, timing.k * listener.max_rtt)
                quiet_until = max(last_send, listener.last_reply) + window
                wait = min(quiet_until, hard_stop) - now
                if wait <= 0:
                    break
                listener.event.clear()
                try:
                    await asyncio.wait_for(listener.event.wait(), wait)
                except TimeoutError:
                    pass
    finally:
        loop.remove_reader(sock.fileno())
        listener.readable()  # whatever arrived in the last instant still counts
        sock.close()
    log.debug(
        "ARP on %s: %d of %d answered in %.3fs (slowest %.1f ms)",
        iface,
        len(listener.found),
        len(targets),
        time.monotonic() - start,
        listener.max_rtt * 1000,
    )
    return listener.found


async def sweep(
    hosts: Sequence[str],
    timeout: float = 2.0,
    on_found: OnFound | None = None,
    timing: SweepTiming | None = None,
) -> dict[str, str]:
    """Address -> MAC of every on-link target that answered ARP (empty when not privileged
    or when no raw socket can be opened). ``on_found(ip, mac)`` is called as each answers."""
    if not privileged():
        return {}
    timing = timing or SweepTiming(timeout=timeout)
    groups = group_on_link(list(hosts), _read_routes())
    if not groups:
        return {}
    results = await asyncio.gather(
        *(_sweep_iface(iface, addrs, timing, on_found) for iface, addrs in groups.items()),
        return_exceptions=True,
    )
    found: dict[str, str] = {}
    for iface, res in zip(groups, results, strict=True):
        if isinstance(res, BaseException):
            if not isinstance(res, OSError | ValueError):
                raise res
            log.info("ARP sweep on %s unavailable: %s", iface, res)
            continue
        found.update(res)
    return found
