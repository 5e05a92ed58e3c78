"""The one boundary where discovery opens sockets.

Everything here is bounded: every await has a timeout, every read has a byte cap, and OS errors
are mapped to a small set of outcomes (open, closed, unreachable, timeout) that callers can
reason about. Devices are hostile input; what they send is cleaned by :func:`printable` before it
goes anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum

from iotrate.ratelimit import throttle

#: Most bytes kept from a banner; device strings beyond this are noise or an attack.
BANNER_BYTES = 512
BANNER_CHARS = 256


class PortState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # the host answered with a reset: it is alive, the port is not open
    UNREACHABLE = "unreachable"  # no route / no ARP answer
    TIMEOUT = "timeout"


def printable(data: bytes | str, limit: int = BANNER_CHARS) -> str:
    """Make device bytes safe to store and show: no control or escape characters, capped length.

    Terminal escapes and NULs become ``\\xNN`` so that nothing a device sends can move a
    cursor, recolour a terminal or truncate a C string downstream. HTML escaping is the
    renderer's job; this only guarantees plain, bounded text.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.strip(" \r\n\t")
    out: list[str] = []
    size = 0
    for ch in text:
        code = ord(ch)
        if ch in "\n\t":
            piece = " " if ch == "\t" else "\\n"
        elif ch == "\r":
            continue
        elif code < 0x20 or 0x7F <= code < 0xA0 or ch in "\u2028\u2029\u200e\u200f\u202e":
            piece = f"\\x{code:02x}"
        else:
            piece = ch
        if size + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out).strip()


@dataclass(frozen=True)
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


async def tcp_connect(host: str, port: int, timeout: float) -> tuple[PortState, Connection | None]:
    """Connect once; report the port's state and, when open, the connection."""
    await throttle(host)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return PortState.TIMEOUT, None
    except ConnectionRefusedError:
        return PortState.CLOSED, None
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
            return PortState.UNREACHABLE, None
        if exc.errno == errno.ECONNRESET:
            return PortState.CLOSED, None
        return PortState.UNREACHABLE, None
    return PortState.OPEN, Connection(reader, writer)


async def read_some(conn: Connection, timeout: float, limit: int = BANNER_BYTES) -> bytes:
    """Read what the peer sends within ``timeout``, at most ``limit`` bytes; never raises."""
    buf = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(buf) < limit:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(conn.reader.read(limit - len(buf)), left)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            break
        if not chunk:
            break
        buf += chunk
        # A complete header block or line-oriented greeting is enough; don't wait for more.
        if b"\r\n\r\n" in buf or (buf.endswith(b"\n") and not buf.startswith((b"HTTP/", b"RTSP/"))):
            break
    return buf


async def send(conn: Connection, data: bytes) -> bool:
    try:
        conn.writer.write(data)
        await asyncio.wait_for(conn.writer.drain(), 1.0)
    except (OSError, TimeoutError):
        return False
    return True


def _legacy_tls_context() -> ssl.SSLContext:
    """A client context that completes a handshake with anything, however old.

    Discovery only needs to know whether a port speaks TLS; judging the TLS is the TLS probe's
    job, so here nothing is verified and obsolete versions are allowed.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


async def tls_connect(host: str, port: int, timeout: float) -> tuple[Connection | None, str | None]:
    """Try a TLS handshake; return the connection and negotiated version, or (None, None)."""
    await throttle(host)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=_legacy_tls_context(), server_hostname=None),
            timeout,
        )
    except (TimeoutError, OSError, ssl.SSLError, EOFError):
        return None, None
    sslobj = writer.get_extra_info("ssl_object")
    version = sslobj.version() if isinstance(sslobj, ssl.SSLObject) else None
    return Connection(reader, writer), version


async def udp_exchange(host: str, port: int, payload: bytes, timeout: float) -> bytes | None:
    """Send one datagram and return the first answer from that host, or None."""
    await throttle(host)
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    answer: asyncio.Future[bytes] = loop.create_future()

    class _Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
            if addr[0] == host and not answer.done():
                answer.set_result(data[: BANNER_BYTES * 8])

        def error_received(self, exc: Exception) -> None:
            if not answer.done():
                answer.set_exception(exc)

    try:
        transport, _ = await loop.create_datagram_endpoint(
            _Proto, family=family, remote_addr=None, local_addr=None
        )
    except OSError:
        return None
    try:
        transport.sendto(payload, (host, port))
        return await asyncio.wait_for(answer, timeout)
    except (TimeoutError, OSError):
        return None
    finally:
        transport.close()
