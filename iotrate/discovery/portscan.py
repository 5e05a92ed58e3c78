"""Unprivileged host discovery and port scan: TCP connect plus a few UDP hellos.

Why connect() and not raw SYN packets: it needs no privileges, works in any namespace, and the
kernel's own TCP stack gives the right answer for every odd device. A host counts as alive when
any discovery port completes a handshake *or* answers with a reset. Only alive hosts get the full
port list, so a mostly empty /24 costs one connect timeout, not one per port.

The UDP hellos are fixed byte strings (SNMPv3 engine discovery, SSDP M-SEARCH, a DNS-SD
services query, a CoAP ``/.well-known/core`` GET). They are written out here rather than built
with a protocol library because each is a single constant datagram that asks the service to
name itself and carries no credential; pulling in pysnmp or a DNS library for four constants
would add weight and start-up time without adding correctness.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from iotrate import ratelimit
from iotrate.models import Service, Transport
from iotrate.net import (
    PortState,
    printable,
    read_some,
    send,
    tcp_connect,
    tls_connect,
    udp_exchange,
)


@dataclass(frozen=True)
class PortSpec:
    port: int
    transport: Transport
    protocol: str
    hello: str
    discovery: bool = False


@cache
def iot_ports() -> tuple[PortSpec, ...]:
    """The curated IoT port list shipped in ``iotrate/data/ports.yaml``."""
    raw = yaml.safe_load(resources.files("iotrate").joinpath("data/ports.yaml").read_text())
    specs = []
    for item in raw:
        specs.append(
            PortSpec(
                port=int(item["port"]),
                transport=Transport(item["transport"]),
                protocol=str(item["protocol"]),
                hello=str(item.get("hello", "none")),
                discovery=bool(item.get("discovery", False)),
            )
        )
    return tuple(specs)


def port_specs(selection: str) -> tuple[PortSpec, ...]:
    """Ports for ``--ports``: ``iot`` (curated), ``all`` (1-65535 TCP + IoT UDP) or a list."""
    curated = iot_ports()
    by_key = {(p.port, p.transport): p for p in curated}
    if selection == "iot":
        return curated
    if selection == "all":
        tcp = [by_key.get((n, Transport.TCP)) or _unknown(n) for n in range(1, 65536)]
        return (*tcp, *(p for p in curated if p.transport is Transport.UDP))
    chosen: list[PortSpec] = []
    for part in selection.split(","):
        part = part.strip()
        transport = Transport.TCP
        if part.startswith(("U:", "u:")):
            transport, part = Transport.UDP, part[2:]
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"invalid port selection {part!r}") from None
        if not (1 <= first <= last <= 65535):
            raise ValueError(f"port out of range in {part!r}")
        for n in range(first, last + 1):
            spec = by_key.get((n, transport))
            if spec is None and transport is Transport.UDP:
                raise ValueError(f"no UDP hello known for port {n}")
            chosen.append(spec or _unknown(n))
    return tuple(chosen)


def announced_specs(ports: Iterable[int], swept: Iterable[PortSpec]) -> tuple[PortSpec, ...]:
    """TCP specs for the ``ports`` a device announced (mDNS SRV, UPnP URLs) that the sweep's
    ``swept`` list left out: a port the device itself names is always scanned."""
    have = {p.port for p in swept if p.transport is Transport.TCP}
    by_port = {p.port: p for p in iot_ports() if p.transport is Transport.TCP}
    return tuple(by_port.get(n) or _unknown(n) for n in sorted(set(ports) - have) if 0 < n < 65536)


def _unknown(port: int) -> PortSpec:
    return PortSpec(port=port, transport=Transport.TCP, protocol="unknown", hello="probe")


UDP_HELLOS: dict[str, bytes] = {
    # SNMPv3 GetRequest with no user: every v3 agent answers with a Report naming its engine.
    "snmpv3-discovery": bytes.fromhex(
        "303a020103300f02024a69020300ffe30401040201030410300e0400020100020100040004000400"
        "301204000400a00c020237f00201000201003000"
    ),
    "ssdp-msearch": (
        b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
        b'MAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n'
    ),
    # DNS-SD meta-query _services._dns-sd._udp.local PTR, sent from an ephemeral port so the
    # responder answers by unicast (RFC 6762 legacy unicast).
    "mdns-services": bytes.fromhex("000000000001000000000000")
    + b"\x09_services\x07_dns-sd\x04_udp\x05local\x00"
    + b"\x00\x0c\x00\x01",
    # CoAP confirmable GET /.well-known/core.
    "coap-wellknown": bytes.fromhex("400101cebb2e77656c6c2d6b6e6f776e04636f7265"),
}

_HTTP_HELLO = "HEAD / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: iotrate\r\nConnection: close\r\n\r\n"
_RTSP_HELLO = "OPTIONS rtsp://{host}/ RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: iotrate\r\n\r\n"


def classify(data: bytes) -> str | None:
    """Name the protocol from the first bytes a service sent, or None if they say nothing."""
    if not data:
        return None
    if data.startswith(b"SSH-"):
        return "ssh"
    if data.startswith(b"HTTP/"):
        return "http"
    if data.startswith(b"RTSP/"):
        return "rtsp"
    if data[:1] == b"\xff" and len(data) > 1 and data[1] in (0xFB, 0xFC, 0xFD, 0xFE):
        return "telnet"
    if data[:4] in (b"220 ", b"220-"):
        return "ftp"
    if data.startswith(b"CNXN"):
        return "adb"
    low = data.lower()
    if b"login:" in low or b"password:" in low:
        return "telnet"
    return None


def banner_text(data: bytes, protocol: str | None) -> str | None:
    """The part of a reply worth keeping as the banner (status line and Server header for HTTP)."""
    if not data:
        return None
    if protocol == "ssh":
        # The identification line only: what follows is the binary KEXINIT packet.
        return printable(data.split(b"\n", 1)[0]) or None
    if protocol in ("http", "rtsp") and data.startswith((b"HTTP/", b"RTSP/")):
        lines = data.split(b"\r\n")
        keep = [lines[0]] + [ln for ln in lines[1:] if ln.lower().startswith(b"server:")]
        return printable(b" | ".join(keep))
    if data[:1] == b"\xff":
        # Strip telnet option negotiation (IAC sequences) and keep any text.
        text = bytearray()
        i = 0
        while i < len(data):
            if data[i] == 0xFF and i + 2 < len(data):
                i += 3
                continue
            text.append(data[i])
            i += 1
        return printable(bytes(text)) or None
    return printable(data) or None


@dataclass
class HostScan:
    address: str
    alive: bool = False
    services: list[Service] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScanLimits:
    connect_timeout: float = 1.0
    banner_timeout: float = 1.5
    udp_timeout: float = 1.0
    concurrency: int = 512
    per_host: int = 32
    # The lab profile's full sweep: the most connections a second one device may get, the
    # pacer (SweepPacer) adapting below it to what the device tolerates; 0: the scan's rate.
    adaptive_rate: float = 0.0
    # Told (host, ports done, ports to do, seconds left by the current pace) during a sweep.
    progress: Callable[[str, int, int, float], None] | None = field(default=None, compare=False)


SWEEP_MIN_PORTS = 1024  # fewer ports than this are not a sweep worth pacing


@dataclass
class SweepPacer:
    """Paces one device's full TCP sweep (additive increase, multiplicative decrease, as TCP
    itself backs off): every ``window`` ports it halves the rate when connects went unanswered
    (drops: a SYN flood defence or a stack out of buffers) or answers slowed to several times
    their first pace, and raises it by half otherwise, between ``floor`` and ``ceiling``.
    Closed ports answering RST promptly are the normal case, not distress."""

    ceiling: float
    rate: float = 0.0
    floor: float = 20.0
    window: int = 256
    connect_timeout: float = 1.0
    baseline: float | None = None
    _took: list[float] = field(default_factory=list)
    _drops: int = 0

    def __post_init__(self) -> None:
        self.rate = self.rate or min(self.ceiling, 500.0)

    def record(self, took: float, answered: bool) -> bool:
        """One port done; True when the rate changed (the caller tells the limiter)."""
        if answered:
            self._took.append(took)
        else:
            self._drops += 1
        if len(self._took) + self._drops < self.window:
            return False
        took_sorted = sorted(self._took) or [self.connect_timeout]
        median = took_sorted[len(took_sorted) // 2]
        if self.baseline is None:
            self.baseline = median
        slow = median > max(0.05, 4 * self.baseline)
        dropped = self._drops > self.window // 50  # more than 2 % unanswered
        old = self.rate
        if slow or dropped:
            self.rate = max(self.floor, self.rate / 2)
        else:
            self.rate = min(self.ceiling, self.rate * 1.5)
        self._took, self._drops = [], 0
        return self.rate != old


async def _grab(host: str, spec: PortSpec, limits: ScanLimits) -> Service | None:
    state, conn = await tcp_connect(host, spec.port, limits.connect_timeout)
    if state is not PortState.OPEN or conn is None:
        return None
    protocol: str | None = None
    data = b""
    tls: bool | None = None
    try:
        if spec.hello in ("none", "probe"):
            data = await read_some(conn, limits.banner_timeout)
        if not data and spec.hello in ("http", "probe"):
            if await send(conn, _HTTP_HELLO.format(host=host).encode()):
                data = await read_some(conn, limits.banner_timeout)
        elif not data and spec.hello == "rtsp":
            if await send(conn, _RTSP_HELLO.format(host=host).encode()):
                data = await read_some(conn, limits.banner_timeout)
    finally:
        await conn.close()
    protocol = classify(data)
    if spec.hello == "tls" or (spec.hello == "probe" and not data):
        tconn, _version = await tls_connect(host, spec.port, limits.banner_timeout)
        # A TLS port whose handshake stalled or was reset is not thereby plain text: "unknown"
        # keeps the TLS probes on it, so the port ends as a failed outcome, not as untested.
        tls = True if tconn is not None else None if spec.hello == "tls" else False
        if tconn is not None:
            try:
                if spec.protocol in ("https", "unknown") and await send(
                    tconn, _HTTP_HELLO.format(host=host).encode()
                ):
                    data = await read_some(tconn, limits.banner_timeout)
                    protocol = "https" if classify(data) == "http" else protocol
            finally:
                await tconn.close()
            if protocol is None and spec.protocol == "unknown":
                protocol = "tls"
    elif protocol is not None or data:
        tls = False
    name = protocol or (spec.protocol if spec.protocol != "unknown" else None)
    if name == "http" and spec.protocol not in ("http", "unknown"):
        name = spec.protocol if spec.protocol in ("upnp", "airplay", "ipp", "daap", "wsd") else name
    return Service(
        port=spec.port,
        transport=Transport.TCP,
        protocol=name,
        banner=banner_text(data, "http" if protocol in ("http", "https") else protocol),
        tls=tls,
        source="tcp-connect",
    )


async def _udp(host: str, spec: PortSpec, limits: ScanLimits) -> Service | None:
    payload = UDP_HELLOS.get(spec.hello)
    if payload is None:
        return None
    answer = await udp_exchange(host, spec.port, payload, limits.udp_timeout)
    if answer is None:
        return None
    banner: str | None
    if spec.protocol == "ssdp":
        banner = banner_text(answer, "http")
    elif spec.protocol == "snmp":
        banner = f"SNMPv3 report ({len(answer)} bytes)"
    elif spec.protocol == "mdns":
        banner = f"DNS-SD answer ({len(answer)} bytes)"
    else:
        banner = printable(answer[:64]) or None
    return Service(
        port=spec.port,
        transport=Transport.UDP,
        protocol=spec.protocol,
        banner=banner,
        tls=False,
        source="udp-hello",
    )


async def _is_alive(
    host: str, ports: Iterable[PortSpec], limits: ScanLimits, sem: asyncio.Semaphore
) -> bool:
    """True as soon as any discovery port answers (handshake or reset)."""

    async def one(spec: PortSpec) -> bool:
        async with sem:
            state, conn = await tcp_connect(host, spec.port, limits.connect_timeout)
        if conn is not None:
            await conn.close()
        return state in (PortState.OPEN, PortState.CLOSED)

    tasks = [asyncio.create_task(one(p)) for p in ports]
    try:
        for fut in asyncio.as_completed(tasks):
            if await fut:
                return True
        return False
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def scan_hosts(
    hosts: list[str],
    specs: tuple[PortSpec, ...],
    limits: ScanLimits = ScanLimits(),
    on_host: Any = None,
    assume_alive: Collection[str] = (),
    sem: asyncio.Semaphore | None = None,
) -> list[HostScan]:
    """Find alive hosts among ``hosts`` and list their open services.

    ``on_host`` (optional callable) is told about each host as soon as it is done, so later
    stages can start on it without waiting for the slowest one. Hosts in ``assume_alive``
    (answered ARP, or announced themselves) skip the liveness test: they are port-scanned even
    when every port is closed or filtered. ``sem`` shares one connection bound between calls
    (hosts found one by one by the ARP sweep each get a call of their own).
    """
    sem = sem or asyncio.Semaphore(limits.concurrency)
    discovery = [p for p in specs if p.discovery and p.transport is Transport.TCP] or [
        p for p in specs if p.transport is Transport.TCP
    ][:8]

    # Hosts whose ports are being scanned at once: half the connection slots, so that slow
    # banners on some hosts never leave slots idle, while a thousand alive hosts do not each
    # hold a task per port (tens of thousands of waiting tasks) before the first slot frees up.
    scanning = asyncio.Semaphore(max(1, limits.concurrency // 2))

    async def one_host(host: str) -> HostScan:
        result = HostScan(address=host)
        if host not in assume_alive and not await _is_alive(host, discovery, limits, sem):
            return result
        result.alive = True
        outcomes: list[Service | BaseException | None] = [None] * len(specs)
        todo = iter(range(len(specs)))
        pacer = _pacer(host, specs, limits)
        done = 0

        async def worker() -> None:
            nonlocal done
            for i in todo:  # one shared iterator: each port is taken by exactly one worker
                spec = specs[i]
                try:
                    async with sem:
                        t0 = time.monotonic()
                        if spec.transport is Transport.UDP:
                            outcomes[i] = await _udp(host, spec, limits)
                        else:
                            outcomes[i] = await _grab(host, spec, limits)
                        took = time.monotonic() - t0
                except Exception as exc:
                    outcomes[i], took = exc, 0.0
                done += 1
                if pacer is not None:
                    _paced(host, pacer, took, limits, done, len(specs))

        try:
            async with scanning:
                await asyncio.gather(*(worker() for _ in range(min(limits.per_host, len(specs)))))
        finally:
            if pacer is not None and (limiter := ratelimit.active()) is not None:
                limiter.set_host_rate(host, None)
        for spec, out in zip(specs, outcomes, strict=True):
            if isinstance(out, BaseException):
                result.errors.append(f"{spec.transport}/{spec.port}: {type(out).__name__}: {out}")
            elif out is not None:
                result.services.append(out)
        result.services.sort(key=lambda s: (s.transport, s.port))
        if on_host is not None:
            on_host(result)
        return result

    return list(await asyncio.gather(*(one_host(h) for h in hosts)))


def _pacer(host: str, specs: tuple[PortSpec, ...], limits: ScanLimits) -> SweepPacer | None:
    """A pacer for a full sweep under the lab profile, with the limiter set to its rate."""
    limiter = ratelimit.active()
    if not limits.adaptive_rate or limiter is None or len(specs) < SWEEP_MIN_PORTS:
        return None
    pacer = SweepPacer(ceiling=limits.adaptive_rate, connect_timeout=limits.connect_timeout)
    limiter.set_host_rate(host, pacer.rate)
    return pacer


def _paced(
    host: str, pacer: SweepPacer, took: float, limits: ScanLimits, done: int, total: int
) -> None:
    """Feed one port's answer time to the pacer; tell the limiter and the progress hook."""
    answered = took < limits.connect_timeout * 0.95
    limiter = ratelimit.active()
    if pacer.record(took, answered) and limiter is not None:
        limiter.set_host_rate(host, pacer.rate)
    if limits.progress is not None and (done % pacer.window == 0 or done == total):
        limits.progress(host, done, total, (total - done) / pacer.rate)


def neighbour_macs() -> dict[str, str]:
    """MACs the kernel learned while we connected (reads the local table; sends nothing)."""
    try:
        out = subprocess.run(
            ["ip", "-j", "neigh", "show"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
        entries = json.loads(out or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    macs: dict[str, str] = {}
    for e in entries:
        mac = e.get("lladdr")
        if mac and e.get("dst") and "FAILED" not in e.get("state", []):
            macs[str(e["dst"])] = str(mac).lower()
    return macs
