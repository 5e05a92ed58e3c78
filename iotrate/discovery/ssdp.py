"""SSDP discovery: M-SEARCH, listen for answers and NOTIFYs, fetch each device description.

Written on asyncio datagram sockets rather than a UPnP library: the widely used ones
(async-upnp-client, upnpclient) follow LOCATION wherever it points and parse XML without the
limits a scanner needs. Here a LOCATION is fetched only over http(s), only from the very address
that sent the answer, only if that address is a scan target, with a byte cap and a deadline, and
parsed by defusedxml (downstream, in identification) — so a device cannot make the scanner read
a local file, its own loopback or another host, nor exhaust its memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from iotrate.identify.observations import SsdpObservation

log = logging.getLogger(__name__)

GROUP = "239.255.255.250"
PORT = 1900
MAX_DATAGRAM = 8192
MAX_HEADERS = 64
MAX_DESCRIPTION = 256 * 1024
MSEARCH = (
    'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n'
    "MX: {mx}\r\nST: {st}\r\nUSER-AGENT: Linux/1 UPnP/1.1 iotrate/0\r\n\r\n"
)


class SsdpError(Exception):
    """A datagram that is not an SSDP message."""


def parse_message(data: bytes) -> tuple[str, dict[str, str]]:
    """Start line and headers (names upper-cased) of an SSDP datagram; raises SsdpError only."""
    if len(data) > MAX_DATAGRAM:
        data = data[:MAX_DATAGRAM]
    text = data.decode("utf-8", errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    if not (start.startswith("HTTP/") or start.startswith(("NOTIFY ", "M-SEARCH "))):
        raise SsdpError("not an SSDP start line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip():
            break
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or len(headers) >= MAX_HEADERS:
            continue
        headers.setdefault(name.strip().upper()[:64], value.strip()[:1024])
    return start[:200], headers


def location_allowed(location: str, sender: str) -> bool:
    """Only http(s) URLs whose host is literally the sender's address."""
    try:
        parts = urlsplit(location)
        host = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or host is None:
        return False
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(sender)
    except ValueError:
        return False  # a hostname could resolve anywhere


@dataclass
class SsdpFound:
    address: str
    headers: list[dict[str, str]] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, allowed: Collection[str], found: dict[str, SsdpFound]) -> None:
        self.allowed = allowed
        self.found = found

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        sender = str(addr[0])
        if self.allowed and sender not in self.allowed:
            return  # answers from outside the targets are ignored
        try:
            start, headers = parse_message(data)
        except SsdpError:
            return
        if start.startswith("M-SEARCH"):
            return
        entry = self.found.setdefault(sender, SsdpFound(sender))
        if len(entry.headers) < 32 and headers not in entry.headers:
            entry.headers.append(headers)
        loc = headers.get("LOCATION")
        if loc and loc not in entry.locations and len(entry.locations) < 8:
            entry.locations.append(loc)


async def search(
    allowed: Collection[str],
    *,
    listen: float = 2.0,
    unicast_to: Collection[str] = (),
    mx: int = 1,
) -> dict[str, SsdpFound]:
    """M-SEARCH by multicast (and unicast to ``unicast_to``); collect answers for ``listen`` s."""
    loop = asyncio.get_running_loop()
    found: dict[str, SsdpFound] = {}
    transports: list[asyncio.DatagramTransport] = []
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - answers come back to this ephemeral port
        sock.setblocking(False)
        t, _ = await loop.create_datagram_endpoint(lambda: _Collector(allowed, found), sock=sock)
        transports.append(t)
    except OSError as exc:
        log.info("SSDP search socket unavailable: %s", exc)
        return found
    with contextlib.suppress(OSError):
        transports.append(await _notify_listener(allowed, found))
    payloads = [MSEARCH.format(mx=mx, st=st).encode() for st in ("ssdp:all", "upnp:rootdevice")]
    sender = transports[0]
    for p in payloads:
        with contextlib.suppress(OSError):
            sender.sendto(p, (GROUP, PORT))
        for host in unicast_to:
            with contextlib.suppress(OSError):
                sender.sendto(p, (host, PORT))
    await asyncio.sleep(listen)
    for t in transports:
        t.close()
    return found


async def _notify_listener(
    allowed: Collection[str], found: dict[str, SsdpFound]
) -> asyncio.DatagramTransport:
    """Also hear devices that announce themselves (NOTIFY) while we listen."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("", PORT))
        mreq = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("0.0.0.0"))  # noqa: S104
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    t, _ = await loop.create_datagram_endpoint(lambda: _Collector(allowed, found), sock=sock)
    return t


async def fetch_description(
    client: httpx.AsyncClient, location: str, sender: str, timeout: float = 3.0
) -> str | None:
    """The description XML at ``location``, or None when refused, too big, slow or broken."""
    if not location_allowed(location, sender):
        log.info("ignoring LOCATION %r from %s: not http(s) on the sender", location, sender)
        return None
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", location) as resp:
                if resp.status_code != 200:
                    return None
                size = int(resp.headers.get("content-length") or 0)
                if size > MAX_DESCRIPTION:
                    return None
                chunks: list[bytes] = []
                total = 0
                async for chunk in resp.aiter_raw():
                    total += len(chunk)
                    if total > MAX_DESCRIPTION:
                        return None
                    chunks.append(chunk)
    except (TimeoutError, httpx.HTTPError, OSError, ValueError):
        return None
    return b"".join(chunks).decode("utf-8", errors="replace")


def new_client() -> httpx.AsyncClient:
    """An HTTP client for device descriptions: no redirects, no proxies from the environment,
    no certificate checks (local devices), identity encoding only (no decompression bombs)."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        verify=False,  # noqa: S501 - device descriptions on the LAN; only XML is read
        headers={"Accept-Encoding": "identity", "User-Agent": "iotrate"},
        timeout=httpx.Timeout(3.0),
    )


async def discover(
    allowed: Collection[str], *, listen: float = 2.0, unicast_to: Collection[str] = ()
) -> list[SsdpObservation]:
    """SSDP observations (headers + description XML) keyed by the answering address."""
    found = await search(allowed, listen=listen, unicast_to=unicast_to)
    observations: list[SsdpObservation] = []
    entries = sorted(found.items())
    async with new_client() as client:
        # Every device's descriptions at once: fetched one device after another, each device
        # that stalls its description would add its whole deadline to the scan.
        fetched = await asyncio.gather(
            *(
                fetch_description(client, loc, address)
                for address, entry in entries
                for loc in entry.locations
            )
        )
        pending = iter(fetched)
        for address, entry in entries:
            by_location = {loc: next(pending) for loc in entry.locations}
            for headers in entry.headers:
                # Each description once per device, on the first answer that pointed at it.
                xml = by_location.pop(headers.get("LOCATION", ""), None)
                observations.append(
                    SsdpObservation(
                        device=address, kind="ssdp", headers=headers, description_xml=xml
                    )
                )
    return observations
