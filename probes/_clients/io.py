"""The probes' narrow I/O boundary: HTTP, XML, TCP and UDP helpers with caps and deadlines.

Every helper here bounds what a device can make us do: bytes read are capped, every wait has a
deadline, HTTP never follows a redirect to another host (nor takes a proxy from the
environment, which would send device traffic off the machine), and XML is parsed by defusedxml
with DTDs refused. OS and library errors become :class:`ProbeFailed`, so a probe module only
deals with "the device answered X" or "could not test".
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element  # type only; parsing uses defusedxml

import httpx
from defusedxml import ElementTree as SafeET

from iotrate import __version__
from iotrate.net import Connection, PortState, tcp_connect
from iotrate.ratelimit import ThrottledTransport, throttle

from ..base import ProbeFailed

USER_AGENT = f"iotrate/{__version__}"
HTTP_BODY_CAP = 256 * 1024  # a device's page or description beyond this is not worth reading
XML_CAP = 256 * 1024


# --------------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class HttpReply:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes = b""
    redirects: list[str] = field(default_factory=list)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str) -> str:
        return str(self.headers.get(name, ""))


def _tls_context() -> ssl.SSLContext:
    """Judging TLS is the TLS probe's job; here it only has to complete with old devices."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:  # pragma: no cover - depends on the OpenSSL build
        pass
    return ctx


def http_client(timeout: float) -> httpx.AsyncClient:
    """A client that never follows redirects by itself and ignores proxy variables; each
    request is a new connection, paced by the scan's per-host rate limit."""
    transport = httpx.AsyncHTTPTransport(
        verify=_tls_context(),
        trust_env=False,
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=0),
    )
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT, "Connection": "close"},
        transport=ThrottledTransport(transport),
    )


def base_url(scheme: str, host: str, port: int) -> str:
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}:{port}"


async def http_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    cap: int = HTTP_BODY_CAP,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    auth: httpx.Auth | None = None,
    deadline: float | None = None,
) -> HttpReply:
    """One request; the body is read up to ``cap`` bytes and the rest dropped.

    The whole exchange (connect, head, body, and a digest challenge's second round) ends
    within ``deadline`` seconds, by default the client's timeout. httpx's own timeouts are per
    operation, so a server dripping a byte a second would otherwise never trip one."""
    total = deadline if deadline is not None else (client.timeout.read or 10.0)
    try:
        async with asyncio.timeout(total):
            req = client.build_request(method, url, headers=headers, content=content)
            resp = await client.send(req, stream=True, auth=auth)
            try:
                body = bytearray()
                async for chunk in resp.aiter_raw():
                    body += chunk
                    if len(body) >= cap:
                        break
                return HttpReply(url, resp.status_code, resp.headers, bytes(body[:cap]))
            finally:
                await resp.aclose()
    except TimeoutError as exc:
        raise ProbeFailed(f"HTTP {method} {url}: no complete answer within {total:g} s") from exc
    except httpx.TimeoutException as exc:
        raise ProbeFailed(f"HTTP {method} {url}: timed out") from exc
    except httpx.HTTPError as exc:
        raise ProbeFailed(f"HTTP {method} {url}: {type(exc).__name__}: {exc}") from exc
    except (OSError, ssl.SSLError) as exc:
        raise ProbeFailed(f"HTTP {method} {url}: {exc}") from exc


def same_host(url: str, allowed: frozenset[str]) -> bool:
    host = urlsplit(url).hostname
    return host is not None and host in allowed


async def http_get_following(
    client: httpx.AsyncClient,
    url: str,
    allowed_hosts: frozenset[str],
    *,
    max_hops: int = 3,
    cap: int = HTTP_BODY_CAP,
    into_tls: bool = True,
) -> HttpReply:
    """GET ``url``, following redirects only while they stay on the device's own addresses.

    A redirect elsewhere is returned as it is (3xx), never followed: the device does not get
    to point the scanner at another machine. With ``into_tls=False`` a redirect from http to
    https is not followed either; it is the last entry of ``redirects``.
    """
    seen: list[str] = []
    current = url
    for _ in range(max_hops + 1):
        reply = await http_request(client, "GET", current, cap=cap)
        location = reply.header("location")
        if reply.status not in (301, 302, 303, 307, 308) or not location:
            return HttpReply(reply.url, reply.status, reply.headers, reply.body, seen)
        target = urljoin(current, location)
        if not same_host(target, allowed_hosts) or target in seen or target == current:
            return HttpReply(reply.url, reply.status, reply.headers, reply.body, seen)
        seen.append(target)
        if not into_tls and target.startswith("https:") and current.startswith("http:"):
            return HttpReply(reply.url, reply.status, reply.headers, reply.body, seen)
        current = target
    return HttpReply(reply.url, reply.status, reply.headers, reply.body, seen)


# ---------------------------------------------------------------------------------------- XML


def parse_xml(data: bytes, cap: int = XML_CAP) -> Element:
    """Parse device XML with defusedxml: no DTDs, no entities, nothing past ``cap`` bytes."""
    if len(data) >= cap:
        raise ProbeFailed(f"XML document larger than {cap} bytes")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except Exception as exc:  # defusedxml raises ParseError or its own DefusedXmlException
        raise ProbeFailed(f"unparsable XML: {type(exc).__name__}: {exc}") from exc
    if not isinstance(root, Element):
        raise ProbeFailed("XML parser returned no element")
    return root


def local_name(tag: Any) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1]


def find_text(elem: Element, name: str) -> str | None:
    """Text of the first descendant whose local name is ``name``, ignoring namespaces."""
    for child in elem.iter():
        if local_name(child.tag) == name:
            return (child.text or "").strip()
    return None


# ---------------------------------------------------------------------------------------- TCP


async def open_tcp(host: str, port: int, timeout: float) -> Connection:
    """Connect or raise ProbeFailed with the port's state, which tells a tarpit from a close."""
    state, conn = await tcp_connect(host, port, timeout)
    if state is not PortState.OPEN or conn is None:
        raise ProbeFailed(f"TCP {port}: {state.value}")
    return conn


class PeerClosed(ProbeFailed):
    """The device hung up (or reset) mid-reply; for some probes that is itself the answer."""


async def read_exactly(conn: Connection, size: int, timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(conn.reader.readexactly(size), timeout)
    except TimeoutError as exc:
        raise ProbeFailed(f"no complete reply within {timeout:g}s") from exc
    except asyncio.IncompleteReadError as exc:
        raise PeerClosed(f"connection closed after {len(exc.partial)} of {size} bytes") from exc
    except ConnectionError as exc:
        raise PeerClosed(f"connection reset: {exc}") from exc
    except OSError as exc:
        raise ProbeFailed(f"read failed: {exc}") from exc


async def read_upto(conn: Connection, limit: int, timeout: float) -> bytes:
    """Up to ``limit`` bytes: stops when they are in, the peer closes or ``timeout`` passes."""
    return await read_until_marker(conn, None, limit, timeout)


async def read_until_marker(
    conn: Connection, marker: bytes | None, cap: int, timeout: float
) -> bytes:
    """Read until ``marker`` has arrived (e.g. the blank line after headers), the peer closes,
    ``cap`` bytes or ``timeout``; never waits longer than needed for a complete head."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    buf = b""
    while (marker is None or marker not in buf) and len(buf) < cap:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(conn.reader.read(cap - len(buf)), left)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        buf += chunk
    return buf


async def write(conn: Connection, data: bytes, timeout: float = 2.0) -> None:
    try:
        conn.writer.write(data)
        await asyncio.wait_for(conn.writer.drain(), timeout)
    except (OSError, TimeoutError) as exc:
        raise ProbeFailed(f"write failed: {exc}") from exc


# ---------------------------------------------------------------------------------------- UDP


async def udp_collect(
    host: str, port: int, payload: bytes, timeout: float, max_packets: int = 16
) -> list[bytes]:
    """Send one datagram and gather every answer from ``host`` for ``timeout`` seconds.

    Several answers are normal (SSDP answers once per device and service type); datagrams from
    any other address are ignored, so a spoofed reply cannot steer the probe.
    """
    await throttle(host)
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    got: list[bytes] = []
    done = asyncio.Event()

    class _Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
            if addr[0] == host and len(got) < max_packets:
                got.append(data[:65536])
                if len(got) >= max_packets:
                    done.set()

        def error_received(self, exc: Exception) -> None:
            done.set()

    try:
        transport, _ = await loop.create_datagram_endpoint(_Proto, family=family)
    except OSError as exc:
        raise ProbeFailed(f"UDP socket: {exc}") from exc
    try:
        transport.sendto(payload, (host, port))
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            pass
    finally:
        transport.close()
    return got


async def udp_ask(host: str, port: int, payload: bytes, timeout: float) -> bytes | None:
    """One datagram, the first answer from ``host`` or None."""
    got = await udp_collect(host, port, payload, timeout, max_packets=1)
    return got[0] if got else None
