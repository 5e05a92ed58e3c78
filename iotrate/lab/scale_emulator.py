"""The scale lab's hosts: one asyncio program serving every emulated host's ports.

Why one program and not real daemons: see ``iotrate.lab.scale``. Each host's sockets are bound
to its own address, so a closed port is closed (the kernel resets it) and an open one answers
from the address the scanner asked. The protocols are spoken as far as a scanner's probes go
and no further:

* HTTP/1.1: one request per connection, optional Basic auth, a status page, a login form or an
  editable settings page without a login;
* telnet: a BusyBox-style ``login:``/``Password:`` dialogue; a right password lands in a fake
  shell that prints a BusyBox banner and a ``#`` prompt and discards every line (nothing typed
  is ever run); a wrong one costs ``FAIL_DELAY`` and three end the session, as BusyBox's login;
* MQTT 3.1.1: CONNECT (anonymous or with the host's one account), SUBSCRIBE with retained
  ``$SYS/broker/version`` and a state topic, PINGREQ, DISCONNECT; any other protocol level gets
  CONNACK 1 as the specification requires;
* RTSP: OPTIONS, and DESCRIBE behind Basic auth;
* TLS: an HTTPS page with Python's ``ssl``, "modern" (TLS 1.2+, lab-CA certificate) or
  "legacy" (TLS 1.0+, every cipher OpenSSL still has, an expired 1024-bit certificate);
* ADB: the CNXN handshake without authentication (``iotrate.lab.adb_emulator``);
* tarpit: accepts, never says a word, holds the connection until the client leaves.

Every read is bounded in size and time, so a scanner that misbehaves cannot pin the program.

Run it with the venv's interpreter:
``python -m iotrate.lab.scale_emulator --plan PLAN.json --ready READY_FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import resource
import signal
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from iotrate.lab import adb_emulator

IDLE_TIMEOUT = 30.0  # a connection that sends nothing for this long is closed
HEAD_LIMIT = 8192  # bytes of request head we read at most
FAIL_DELAY = 1.0  # pause after a wrong telnet password (BusyBox login pauses 3 s)
MAX_PACKET = 65536  # largest MQTT packet accepted

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter

# --- HTTP -----------------------------------------------------------------------------------

_PAGES = {
    "status": "<html><head><title>{title}</title></head><body><h1>{title}</h1>"
    "<p>Status: online</p></body></html>",
    "login-form": "<html><head><title>{title}</title></head><body><h1>{title}</h1>"
    '<form method="post" action="/login"><input type="text" name="username">'
    '<input type="password" name="password"><input type="submit" value="Log in"></form>'
    "</body></html>",
    "settings": "<html><head><title>{title}</title></head><body><h1>{title} settings</h1>"
    '<form method="post" action="/apply"><label>Wi-Fi SSID</label><input name="ssid">'
    '<label>WPA2 key</label><input name="wpa2">'
    '<label>DHCP</label><input type="checkbox" name="dhcp">'
    '<label>DNS</label><input name="dns"><label>NTP server</label><input name="ntp">'
    '<label>Firmware</label><input type="file" name="firmware">'
    '<input type="submit" value="Save"></form></body></html>',
}


async def _read_head(reader: Reader) -> bytes | None:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        return None


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return lines[0], fields


def _authorized(fields: dict[str, str], auth: list[str] | None) -> bool:
    if not auth:
        return True
    scheme, _, blob = fields.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(blob.strip(), validate=True).decode("utf-8")
    except ValueError:
        return False
    return given == f"{auth[0]}:{auth[1]}"


def _response(status: str, headers: dict[str, str], body: bytes, head_only: bool) -> bytes:
    headers = {**headers, "Content-Length": str(len(body)), "Connection": "close"}
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else body)


async def http(settings: dict[str, Any], reader: Reader, writer: Writer) -> None:
    head = await _read_head(reader)
    if head is None:
        return
    request, fields = _headers(head)
    head_only = request.startswith("HEAD ")
    base = {"Content-Type": "text/html"}
    if settings.get("server"):
        base["Server"] = settings["server"]
    if not _authorized(fields, settings.get("auth")):
        realm = settings.get("title", "device")
        base["WWW-Authenticate"] = f'Basic realm="{realm}"'
        writer.write(_response("401 Unauthorized", base, b"<h1>401</h1>", head_only))
    else:
        page = _PAGES[settings.get("page", "status")].format(title=settings.get("title", ""))
        writer.write(_response("200 OK", base, page.encode(), head_only))
    await writer.drain()


# --- telnet -----------------------------------------------------------------------------------

IAC, WILL, SB, SE = 255, 251, 250, 240
ECHO, SGA = 1, 3
BANNER = (
    b"\r\n\r\nBusyBox v1.19.4 (2015-03-27 10:34:32 CST) built-in shell (ash)\r\n"
    b"Enter 'help' for a list of built-in commands.\r\n\r\n"
)


async def _read_line(reader: Reader) -> str | None:
    """One input line with telnet negotiation removed; None when the client leaves."""
    out = bytearray()
    while len(out) < 512:
        try:
            chunk = await asyncio.wait_for(reader.read(1), IDLE_TIMEOUT)
        except (TimeoutError, OSError):
            return None
        if not chunk:
            return None
        b = chunk[0]
        if b == IAC:
            try:
                cmd = (await asyncio.wait_for(reader.readexactly(1), IDLE_TIMEOUT))[0]
                if cmd == SB:
                    await asyncio.wait_for(reader.readuntil(bytes([IAC, SE])), IDLE_TIMEOUT)
                elif cmd != IAC:
                    await asyncio.wait_for(reader.readexactly(1), IDLE_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return None
            continue
        if b in (10, 13):
            if out:
                return out.decode("utf-8", "replace")
            continue
        if b:
            out.append(b)
    return out.decode("utf-8", "replace")


async def telnet(settings: dict[str, Any], reader: Reader, writer: Writer) -> None:
    writer.write(bytes([IAC, WILL, ECHO, IAC, WILL, SGA]))
    host = settings.get("hostname", "dvr")
    for _ in range(3):
        writer.write(f"\r\n{host} login: ".encode())
        await writer.drain()
        user = await _read_line(reader)
        if user is None:
            return
        writer.write(b"Password: ")
        await writer.drain()
        password = await _read_line(reader)
        if password is None:
            return
        if (user, password) == (settings["user"], settings["password"]):
            writer.write(BANNER + b"# ")
            await writer.drain()
            while await _read_line(reader) is not None:  # the fake shell: nothing runs
                writer.write(b"# ")
                await writer.drain()
            return
        await asyncio.sleep(FAIL_DELAY)
        writer.write(b"\r\nLogin incorrect\r\n")
    await writer.drain()


# --- MQTT 3.1.1 -------------------------------------------------------------------------------


async def _packet(reader: Reader) -> tuple[int, bytes] | None:
    try:
        first = (await asyncio.wait_for(reader.readexactly(1), IDLE_TIMEOUT))[0]
        length, shift = 0, 0
        for _ in range(4):
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        else:
            return None
        if length > MAX_PACKET:
            return None
        body = await asyncio.wait_for(reader.readexactly(length), IDLE_TIMEOUT)
    except (asyncio.IncompleteReadError, TimeoutError, OSError):
        return None
    return first, body


def _string(data: bytes, at: int) -> tuple[bytes, int]:
    n = int.from_bytes(data[at : at + 2], "big")
    if at + 2 + n > len(data):
        raise ValueError("string past the end of the packet")
    return data[at + 2 : at + 2 + n], at + 2 + n


def _encode(first: int, body: bytes) -> bytes:
    out, n = bytearray([first]), len(body)
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + body


def _publish(topic: str, payload: bytes) -> bytes:
    t = topic.encode()
    return _encode(0x31, len(t).to_bytes(2, "big") + t + payload)  # QoS 0, retained


def _connect(settings: dict[str, Any], body: bytes) -> int:
    """The CONNACK return code for a CONNECT body: 0 accepted, 1 bad level, 5 not allowed."""
    _name, at = _string(body, 0)
    level, flags = body[at], body[at + 1]
    if level not in (3, 4):
        return 1
    at += 4  # level, flags, keep-alive
    _client, at = _string(body, at)
    if flags & 0x04:  # will topic and message
        _topic, at = _string(body, at)
        _message, at = _string(body, at)
    user = password = None
    if flags & 0x80:
        user, at = _string(body, at)
    if flags & 0x40:
        password, at = _string(body, at)
    if settings.get("anonymous"):
        return 0
    wanted = (settings["user"].encode(), settings["password"].encode())
    return 0 if (user, password) == wanted else 5


async def mqtt(settings: dict[str, Any], reader: Reader, writer: Writer) -> None:
    retained = {
        "$SYS/broker/version": settings.get("version", "mosquitto").encode(),
        "home/plug/state": b"ON",
    }
    packet = await _packet(reader)
    if packet is None or packet[0] >> 4 != 1:
        return
    try:
        code = _connect(settings, packet[1])
    except (ValueError, IndexError):
        return
    writer.write(bytes([0x20, 2, 0, code]))
    await writer.drain()
    if code:
        return
    while (packet := await _packet(reader)) is not None:
        kind, body = packet[0] >> 4, packet[1]
        if kind == 8 and len(body) >= 2:  # SUBSCRIBE
            filters, at = [], 2
            try:
                while at < len(body):
                    f, at = _string(body, at)
                    filters.append(f.decode("utf-8", "replace"))
                    at += 1  # requested QoS
            except ValueError:
                return
            writer.write(_encode(0x90, body[:2] + bytes(len(filters))))
            for topic, payload in retained.items():
                sys_topic = topic.startswith("$")
                if any(
                    (f == "#" and not sys_topic) or (f == "$SYS/#" and sys_topic) for f in filters
                ):
                    writer.write(_publish(topic, payload))
        elif kind == 12:  # PINGREQ
            writer.write(bytes([0xD0, 0]))
        elif kind == 14:  # DISCONNECT
            return
        await writer.drain()


# --- RTSP, ADB, tarpit ------------------------------------------------------------------------


async def rtsp(settings: dict[str, Any], reader: Reader, writer: Writer) -> None:
    for _ in range(32):  # RTSP keeps the connection for several requests
        head = await _read_head(reader)
        if head is None:
            return
        request, fields = _headers(head)
        cseq = fields.get("cseq", "0")
        method, _, rest = request.partition(" ")
        url = rest.partition(" ")[0]
        if method == "OPTIONS":
            reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"
        elif method == "DESCRIBE" and not _authorized(fields, settings.get("auth")):
            reply = (
                f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
                'WWW-Authenticate: Basic realm="IP Camera"\r\n\r\n'
            )
        elif method == "DESCRIBE":
            sdp = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=Stream\r\nm=video 0 RTP/AVP 96\r\n"
            reply = (
                f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: {url}\r\n"
                f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
            )
        else:
            reply = f"RTSP/1.0 405 Method Not Allowed\r\nCSeq: {cseq}\r\n\r\n"
        writer.write(reply.encode())
        await writer.drain()


async def adb(settings: dict[str, Any], reader: Reader, writer: Writer) -> None:
    banner = str(settings["banner"])
    session = adb_emulator.Session(banner.encode(), adb_emulator.parse_banner(banner))
    await asyncio.wait_for(adb_emulator.handle(reader, writer, session), IDLE_TIMEOUT * 4)


async def tarpit(settings: dict[str, Any], reader: Reader, writer: Writer) -> None:
    """Silent until the client gives up; what it sends is read and dropped."""
    while await reader.read(4096):
        pass


HANDLERS: dict[str, Callable[[dict[str, Any], Reader, Writer], Awaitable[None]]] = {
    "http": http,
    "https": http,
    "telnet": telnet,
    "mqtt": mqtt,
    "rtsp": rtsp,
    "adb": adb,
    "tarpit": tarpit,
}


async def _guarded(
    handler: Callable[[dict[str, Any], Reader, Writer], Awaitable[None]],
    settings: dict[str, Any],
    reader: Reader,
    writer: Writer,
) -> None:
    try:
        await handler(settings, reader, writer)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 5)
        except (OSError, TimeoutError, ssl.SSLError):
            pass


def tls_context(cert: str, key: str, legacy: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if legacy:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(plan: dict[str, Any], ready: Path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    contexts: dict[str, ssl.SSLContext] = {}
    if "tls" in plan:
        contexts = {
            name: tls_context(cert, key, name == "legacy")
            for name, (cert, key) in plan["tls"].items()
        }
    servers = []
    for host in plan["hosts"]:
        for key, settings in host["services"].items():
            port = int(key.split("/")[1])
            handler = HANDLERS[settings["service"]]
            cb = functools.partial(_guarded, handler, settings)
            tls = contexts.get(settings["tls"]) if settings.get("tls") else None
            servers.append(
                await asyncio.start_server(
                    cb,
                    host["address"],
                    port,
                    ssl=tls,
                    ssl_handshake_timeout=10 if tls else None,
                    reuse_address=True,
                    backlog=64,
                )
            )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.to_thread(ready.write_text, f"{len(servers)}\n", encoding="ascii")
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--ready", required=True, type=Path)
    args = parser.parse_args()
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    asyncio.run(serve(plan, args.ready))


if __name__ == "__main__":
    main()
