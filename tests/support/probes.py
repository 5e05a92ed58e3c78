"""Loopback fakes for probe tests: small asyncio servers on 127.0.0.1 that replay scripted
protocol answers and count what reached them (connections, login attempts), in the spirit of
ssh-audit's scripted sockets. Every server binds port 0, so tests never collide."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from iotrate.models import Device, Service, Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Fake"], Awaitable[None]]


@dataclass
class Fake:
    """What a fake server saw: connections, login attempts and every line or request."""

    port: int = 0
    connections: int = 0
    logins: list[tuple[str, str]] = field(default_factory=list)
    seen: list[bytes] = field(default_factory=list)


@contextlib.asynccontextmanager
async def tcp_fake(handler: Handler, host: str = "127.0.0.1") -> AsyncIterator[Fake]:
    fake = Fake()
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fake.connections += 1
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        try:
            await handler(reader, writer, fake)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, host, 0)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, fake: Fake, answer: Callable[[bytes, Fake], list[bytes]]) -> None:
        self.fake, self.answer = fake, answer
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        self.fake.connections += 1
        self.fake.seen.append(data)
        for out in self.answer(data, self.fake):
            assert self.transport is not None
            self.transport.sendto(out, addr)


@contextlib.asynccontextmanager
async def udp_fake(answer: Callable[[bytes, Fake], list[bytes]]) -> AsyncIterator[Fake]:
    fake = Fake()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Udp(fake, answer), local_addr=("127.0.0.1", 0)
    )
    fake.port = transport.get_extra_info("sockname")[1]
    try:
        yield fake
    finally:
        transport.close()


def device(*services: tuple[int, str, str | None], vendor: str | None = None) -> Device:
    """A loopback device with (port, transport, protocol) services."""
    return Device(
        id="127.0.0.1",
        address="127.0.0.1",
        addresses=["127.0.0.1"],
        vendor=vendor,
        services=[Service(port=p, transport=Transport(t), protocol=pr) for p, t, pr in services],
    )


# ------------------------------------------------------------------------------- handlers


async def tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fake: Fake) -> None:
    """Accepts and never says a word (nor closes)."""
    await asyncio.sleep(3600)


def garbage(data: bytes) -> Handler:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, fake: Fake) -> None:
        w.write(data)
        await w.drain()
        await asyncio.sleep(3600)

    return handler


IAC_GREETING = bytes([255, 251, 1, 255, 251, 3, 255, 253, 31])  # WILL ECHO, WILL SGA, DO NAWS


async def _telnet_line(reader: asyncio.StreamReader) -> str:
    """One line typed by the client, with its IAC answers removed."""
    raw = await reader.readuntil(b"\n")
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 255 and i + 2 < len(raw):
            i += 3
            continue
        out.append(raw[i])
        i += 1
    return out.decode(errors="replace").strip("\r\n\x00")


def telnet_server(
    accept: tuple[str, str] | None, *, shell_without_login: bool = False, lockout: int = 0
) -> Handler:
    """BusyBox-like telnet login: three tries per connection; ``lockout`` > 0 says 'locked'
    after that many failures."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, fake: Fake) -> None:
        w.write(IAC_GREETING + b"\r\nFake Device\r\n\r\n")
        if shell_without_login:
            while True:
                w.write(b"\r\n~ # ")
                await w.drain()
                await r.readuntil(b"\n")
        for _ in range(3):
            w.write(b"device login: ")
            await w.drain()
            user = await _telnet_line(r)
            w.write(b"Password: ")
            await w.drain()
            password = await _telnet_line(r)
            fake.logins.append((user, password))
            if (user, password) == accept:
                w.write(b"\r\n\r\nBusyBox v1.19.4 built-in shell (ash)\r\n\r\n# ")
                await w.drain()
                await asyncio.sleep(3600)
            if lockout and len(fake.logins) >= lockout:
                w.write(b"\r\nAccount locked: too many failures\r\n")
                await w.drain()
                return
            w.write(b"\r\nLogin incorrect\r\n")

    return handler


async def read_http_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if int(headers.get("content-length", "0") or 0):
        body = await reader.readexactly(int(headers["content-length"]))
    return method, path, headers, body


def http_response(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    reason = {200: "OK", 302: "Found", 401: "Unauthorized", 404: "Not Found"}.get(status, "X")
    hs = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs.items())
    return head.encode() + b"\r\n" + body


HttpRoute = Callable[[str, str, dict[str, str], bytes, Fake], bytes]


def http_server(route: HttpRoute) -> Handler:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, fake: Fake) -> None:
        while True:
            method, path, headers, body = await read_http_request(r)
            fake.seen.append(f"{method} {path}".encode())
            w.write(route(method, path, headers, body, fake))
            await w.drain()
            if headers.get("connection", "").lower() == "close":
                return

    return handler


def basic_route(accept: tuple[str, str], realm: str = "Device") -> HttpRoute:
    def route(method: str, path: str, headers: dict[str, str], body: bytes, fake: Fake) -> bytes:
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            fake.logins.append((user, password))
            if (user, password) == accept:
                return http_response(200, b"<html>welcome</html>")
        return http_response(401, b"", {"WWW-Authenticate": f'Basic realm="{realm}"'})

    return route


def digest_route(accept: tuple[str, str], realm: str = "Device", nonce: str = "n0nce") -> HttpRoute:
    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    def route(method: str, path: str, headers: dict[str, str], body: bytes, fake: Fake) -> bytes:
        auth = headers.get("authorization", "")
        if auth.startswith("Digest "):
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', auth[7:]))
            user = params.get("username", "")
            fake.logins.append((user, "?"))
            want = md5(f"{md5(f'{user}:{realm}:{accept[1]}')}:{nonce}:{md5(f'{method}:{path}')}")
            if user == accept[0] and params.get("response") == want:
                return http_response(200, b"ok")
        challenge = f'Digest realm="{realm}", nonce="{nonce}"'
        return http_response(401, b"", {"WWW-Authenticate": challenge})

    return route


def ftp_server(accept: tuple[str, str] | None, anonymous: bool = False) -> Handler:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, fake: Fake) -> None:
        w.write(b"220 Fake FTP ready\r\n")
        await w.drain()
        user = ""
        while True:
            line = (await r.readuntil(b"\n")).decode().strip()
            fake.seen.append(line.encode())
            cmd, _, arg = line.partition(" ")
            cmd = cmd.upper()
            if cmd == "USER":
                user = arg
                w.write(b"331 Password required\r\n")
            elif cmd == "PASS":
                fake.logins.append((user, arg))
                ok = (user, arg) == accept or (anonymous and user == "anonymous")
                w.write(b"230 Logged in\r\n" if ok else b"530 Login incorrect\r\n")
            elif cmd == "FEAT":
                w.write(b"211-Features:\r\n AUTH TLS\r\n UTF8\r\n211 End\r\n")
            elif cmd == "QUIT":
                w.write(b"221 Bye\r\n")
                await w.drain()
                return
            else:
                w.write(b"502 No\r\n")
            await w.drain()

    return handler


def _mqtt_remaining(data: bytes, i: int) -> tuple[int, int]:
    mult, value = 1, 0
    while True:
        b = data[i]
        value += (b & 0x7F) * mult
        i += 1
        if not b & 0x80:
            return value, i
        mult *= 128


def mqtt_broker(accept: tuple[str, str] | None, anonymous: bool = False) -> Handler:
    """Answers one CONNECT per connection: CONNACK 0 if allowed, 5 (not authorised), or 1 for
    an unknown protocol level (as MQTT 3.1.1 requires)."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, fake: Fake) -> None:
        first = await r.readexactly(2)
        rest = b""
        data = first
        while data[-1] & 0x80:
            data += await r.readexactly(1)
        length, start = _mqtt_remaining(data, 1)
        rest = await r.readexactly(length)
        packet = data + rest
        i = start
        name_len = int.from_bytes(packet[i : i + 2], "big")
        i += 2 + name_len
        level, flags = packet[i], packet[i + 1]
        i += 4
        if level not in (3, 4, 5):
            w.write(b"\x20\x02\x00\x01")
            await w.drain()
            return
        fake.seen.append(b"CONNECT")

        def field() -> str:
            nonlocal i
            n = int.from_bytes(packet[i : i + 2], "big")
            value = packet[i + 2 : i + 2 + n].decode()
            i += 2 + n
            return value

        field()  # client id
        user = field() if flags & 0x80 else None
        password = field() if flags & 0x40 else None
        fake.logins.append((user or "", password or ""))
        ok = (user is None and anonymous) or (user, password) == accept
        w.write(b"\x20\x02\x00" + (b"\x00" if ok else b"\x05"))
        await w.drain()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await r.read(1024)

    return handler


SDP = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Stream\r\nm=video 0 RTP/AVP 96\r\n"


def rtsp_server(
    paths: dict[str, str], accept: tuple[str, str] | None = None, realm: str = "cam"
) -> Handler:
    """``paths``: path -> 'open' | 'auth'; any other path is 404. Basic auth for 'auth'."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, fake: Fake) -> None:
        while True:
            head = (await r.readuntil(b"\r\n\r\n")).decode()
            line = head.split("\r\n")[0]
            uri = line.split(" ")[1]
            path = "/" + uri.split("/", 3)[3] if uri.count("/") >= 3 else "/"
            fake.seen.append(path.encode())
            kind = paths.get(path)
            m = re.search(r"(?im)^authorization:\s*basic\s+(\S+)", head)
            if m:
                user, _, pw = base64.b64decode(m.group(1)).decode().partition(":")
                fake.logins.append((user, pw))
            if kind is None:
                w.write(b"RTSP/1.0 404 Not Found\r\nCSeq: 2\r\n\r\n")
            elif kind == "open" or (m and (user, pw) == accept):
                w.write(
                    b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\n"
                    + f"Content-Length: {len(SDP)}\r\n\r\n".encode()
                    + SDP
                )
            else:
                w.write(
                    b"RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\n"
                    + f'WWW-Authenticate: Basic realm="{realm}"\r\n\r\n'.encode()
                )
            await w.drain()

    return handler


def snmp_agent(
    read: set[str], write: set[str] | None = None, values: dict[str, str] | None = None
) -> Callable[[bytes, Fake], list[bytes]]:
    """A v1/v2c agent: answers GETs for ``read`` communities (silence otherwise, as agents do)
    and SETs for ``write`` ones (noAccess for read-only)."""
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.proto import api

    store = dict(values or {"1.3.6.1.2.1.1.1.0": "Fake agent", "1.3.6.1.2.1.1.4.0": "admin"})

    def answer(data: bytes, fake: Fake) -> list[bytes]:
        ver = int(api.decodeMessageVersion(data))
        mod = api.PROTOCOL_MODULES[ver]
        req, _ = decoder.decode(data, asn1Spec=mod.Message())
        community = str(mod.apiMessage.get_community(req))
        pdu = mod.apiMessage.get_pdu(req)
        is_set = pdu.isSameTypeWith(mod.SetRequestPDU())
        fake.logins.append(("set" if is_set else "get", community))
        if community not in read and community not in (write or set()):
            return []
        rsp = mod.apiMessage.get_response(req)
        rpdu = mod.apiMessage.get_pdu(rsp)
        if is_set:
            binds = mod.apiPDU.get_varbinds(pdu)
            if community not in (write or set()):
                mod.apiPDU.set_error_status(rpdu, 6 if ver else 2)  # noAccess / noSuchName
                mod.apiPDU.set_error_index(rpdu, 1)
            mod.apiPDU.set_varbinds(rpdu, binds)
        else:
            binds = [
                (oid, mod.OctetString(store.get(str(oid), "x")))
                for oid, _ in mod.apiPDU.get_varbinds(pdu)
            ]
            mod.apiPDU.set_varbinds(rpdu, binds)
        return [encoder.encode(rsp)]

    return answer


def silent(data: bytes, fake: Fake) -> list[bytes]:
    return []
