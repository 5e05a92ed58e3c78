"""HTTP identification fetch: what a device's web server says on ``/`` (headers and title).

Bounded like every device read: no redirects followed (a redirect is recorded, not chased, so a
device cannot send the scanner to another host), no decompression (``identity`` only), a byte
cap on the body and a deadline on the whole exchange.
"""

from __future__ import annotations

import asyncio
import re

import httpx

from iotrate.identify.observations import HttpObservation
from iotrate.net import printable
from iotrate.ratelimit import ThrottledTransport

MAX_BODY = 64 * 1024
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def new_client(timeout: float) -> httpx.AsyncClient:
    """Each request a new connection, paced by the scan's per-host rate limit."""
    transport = httpx.AsyncHTTPTransport(
        verify=False,  # local devices; nothing sent is secret
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        headers={"Accept-Encoding": "identity", "User-Agent": "iotrate"},
        timeout=httpx.Timeout(timeout),
        transport=ThrottledTransport(transport),
    )


def title_of(body: bytes) -> str | None:
    m = _TITLE.search(body[:MAX_BODY])
    return printable(m.group(1), 200) or None if m else None


async def fetch(
    client: httpx.AsyncClient, address: str, port: int, tls: bool, timeout: float = 4.0
) -> HttpObservation | None:
    scheme = "https" if tls else "http"
    host = f"[{address}]" if ":" in address else address
    url = f"{scheme}://{host}:{port}/"
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", url) as resp:
                body = b""
                async for chunk in resp.aiter_raw():
                    body += chunk
                    if len(body) >= MAX_BODY:
                        break
                headers = {
                    printable(k, 64): printable(v, 512) for k, v in list(resp.headers.items())[:64]
                }
                status = resp.status_code
    except (TimeoutError, httpx.HTTPError, OSError, ValueError):
        return None
    headers[":status"] = str(status)
    return HttpObservation(
        device=address,
        kind="http",
        port=port,
        path="/",
        headers=headers,
        title=title_of(body),
        body=printable(body[:4096], 4096),
    )
