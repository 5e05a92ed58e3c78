"""CoAP: does the device answer a GET of ``/.well-known/core`` on UDP 5683 without DTLS
(PASSIVE)?"""

from __future__ import annotations

import re
import secrets

from iotrate.models import Finding, Transport
from iotrate.net import printable

from ._clients.io import (
    udp_ask,
)
from .base import (
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
    make_finding,
    service_port,
)

# ----------------------------------------------------------------------------------- CoAP


def coap_get_wellknown(message_id: int, token: bytes) -> bytes:
    header = bytes([0x40 | len(token), 0x01]) + message_id.to_bytes(2, "big") + token
    # Uri-Path options: ".well-known" (option 11, delta 11) then "core" (delta 0).
    return header + b"\xbb.well-known" + b"\x04core"


def coap_parse(data: bytes) -> tuple[int, int, bytes] | None:
    """(type, code, payload) of a CoAP message, or None if it is not one."""
    if len(data) < 4 or data[0] >> 6 != 1:
        return None
    tkl = data[0] & 0x0F
    if tkl > 8:
        return None
    mtype, code = (data[0] >> 4) & 0x03, data[1]
    i = 4 + tkl
    while i < len(data) and data[i] != 0xFF:
        delta, length = data[i] >> 4, data[i] & 0x0F
        i += 1
        for nibble in (delta, length):
            if nibble == 13:
                i += 1
            elif nibble == 14:
                i += 2
            elif nibble == 15:
                return None
        if length == 13:
            length = data[i - 1] + 13 if i - 1 < len(data) else 0
        i += length
    payload = data[i + 1 :] if i < len(data) else b""
    return mtype, code, payload


class CoapOpen(Probe):
    id = "svc.coap"
    title = "CoAP open without security"
    protocols = frozenset({"coap"})
    ports = frozenset({5683})
    transport = Transport.UDP
    timeout = 10.0
    checks = ("svc.coap.open",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        mid, token = secrets.randbelow(65536), secrets.token_bytes(4)
        step = min(3.0, ctx.timeout / 3)
        answer = await udp_ask(ctx.address, port, coap_get_wellknown(mid, token), step)
        if answer is None:
            raise ProbeFailed(f"CoAP {port}: no answer to GET /.well-known/core in {step:g}s")
        parsed = coap_parse(answer)
        if parsed is None:
            raise NotApplicable(f"UDP {port} answered something that is not CoAP")
        _mtype, code, payload = parsed
        code_text = f"{code >> 5}.{code & 0x1F:02d}"
        resources = re.findall(r"<([^>]{1,100})>", payload.decode("utf-8", "replace"))[:20]
        return [
            make_finding(
                "svc.coap.open",
                f"CoAP on UDP {port} answered GET /.well-known/core with {code_text}"
                + (f", listing {len(resources)} resources" if resources else ""),
                port,
                {"code": code_text, "resources": [printable(r, 100) for r in resources]},
                transport=Transport.UDP,
            )
        ]
