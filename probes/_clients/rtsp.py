"""A minimal RTSP client: DESCRIBE a stream path, with optional basic or digest credentials.

Why hand-written: no maintained async RTSP client library exists, and DESCRIBE is one
HTTP-shaped request whose answer (status line, headers, SDP) is all a probe needs. Digest is
RFC 2617 with MD5, which is what cameras implement.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from iotrate import __version__

from ..base import ProbeFailed
from .io import open_tcp, read_until_marker, read_upto, write

REPLY_CAP = 16 * 1024

# Stream paths of common camera families, likeliest first: the bare root, Hikvision, Dahua,
# then generic ONVIF-era names. A probe stops at the first one that is not 404.
STREAM_PATHS = (
    "/",
    "/Streaming/Channels/101",
    "/cam/realmonitor?channel=1&subtype=0",
    "/live",
    "/stream1",
    "/h264",
    "/11",
    "/live/ch00_0",
    "/onvif1",
    "/videoMain",
)


@dataclass(frozen=True)
class RtspReply:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def parse_reply(data: bytes) -> RtspReply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"RTSP/\d\.\d\s+(\d{3})\s*(.*)", lines[0] if lines else "")
    if not m:
        raise ProbeFailed(f"not an RTSP reply: {lines[0][:40]!r}" if lines else "empty reply")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            # Keep every challenge: a camera may offer Digest and Basic on separate lines.
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return RtspReply(int(m.group(1)), m.group(2), headers, body.decode("utf-8", "replace"))


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('digest', {'realm':..., 'nonce':...}) or ('basic', {...}); prefers digest."""
    schemes = re.split(r"(?i)(?:^|,\s*)(?=(?:basic|digest)\s)", header)
    best: tuple[str, dict[str, str]] = ("", {})
    for part in schemes:
        part = part.strip().strip(",")
        if not part:
            continue
        name, _, rest = part.partition(" ")
        params = {k.lower(): v for k, v in re.findall(r'(\w+)="?([^",]*)"?', rest)}
        if name.lower() == "digest":
            return "digest", params
        if name.lower() == "basic" and not best[0]:
            best = ("basic", params)
    return best


def authorization(
    scheme: str, params: dict[str, str], method: str, uri: str, user: str, password: str
) -> str:
    if scheme == "basic":
        import base64

        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    realm, nonce = params.get("realm", ""), params.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    response = md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'{method}:{uri}')}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}"'
    )


async def describe(
    host: str, port: int, path: str, timeout: float, authorization_header: str | None = None
) -> tuple[RtspReply, str]:
    """One DESCRIBE on its own connection; returns the reply and the URI asked for."""
    netloc = f"[{host}]" if ":" in host else host
    uri = f"rtsp://{netloc}:{port}{path}"
    lines = [
        f"DESCRIBE {uri} RTSP/1.0",
        "CSeq: 2",
        f"User-Agent: iotrate/{__version__}",
        "Accept: application/sdp",
    ]
    if authorization_header:
        lines.append(f"Authorization: {authorization_header}")
    conn = await open_tcp(host, port, timeout)
    try:
        await write(conn, ("\r\n".join(lines) + "\r\n\r\n").encode())
        data = await read_until_marker(conn, b"\r\n\r\n", REPLY_CAP, timeout)
        if not data:
            raise ProbeFailed(f"RTSP {port}: no reply to DESCRIBE within {timeout:g}s")
        reply = parse_reply(data)
        length = int(reply.header("content-length") or 0)
        _, _, body = data.partition(b"\r\n\r\n")
        want = min(length, REPLY_CAP)
        if len(body) < want:
            body += await read_upto(conn, want - len(body), timeout)
            reply = parse_reply(data.partition(b"\r\n\r\n")[0] + b"\r\n\r\n" + body)
        return reply, uri
    finally:
        await conn.close()
