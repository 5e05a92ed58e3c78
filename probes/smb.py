"""SMB: does the device still negotiate SMB version 1 (PASSIVE: a negotiate request only)?"""

from __future__ import annotations

import struct

from iotrate.models import Finding

from ._clients.io import (
    PeerClosed,
    open_tcp,
    read_exactly,
    write,
)
from .base import (
    NotApplicable,
    Probe,
    ProbeContext,
    make_finding,
    service_port,
)

# ------------------------------------------------------------------------------------ SMB


def smb1_negotiate() -> bytes:
    """An SMB1 NEGOTIATE offering only the "NT LM 0.12" dialect, inside a NetBIOS frame.

    A server that still speaks SMB1 picks it (dialect index 0); one without SMB1 answers with
    SMB2 or hangs up — the same test Windows and nmap's smb-protocols use."""
    dialects = b"\x02NT LM 0.12\x00"
    header = (
        b"\xffSMB"
        + b"\x72"  # NEGOTIATE
        + b"\x00\x00\x00\x00"  # status
        + b"\x18"  # flags: canonical paths, case-insensitive
        + b"\x01\x28"  # flags2: long names, NT status (LE 0x2801)
        + b"\x00\x00"
        + b"\x00" * 8
        + b"\x00\x00"
        + b"\x00\x00"  # tree id
        + struct.pack("<H", 0xFEFF)  # process id
        + b"\x00\x00"  # user id
        + b"\x00\x00"  # multiplex id
    )
    body = b"\x00" + struct.pack("<H", len(dialects)) + dialects
    smb = header + body
    return b"\x00" + len(smb).to_bytes(3, "big") + smb


def netbios_session_request() -> bytes:
    """Port 139 wants a NetBIOS session first; '*SMBSERVER' is the wildcard name servers take."""

    def encode(name: str) -> bytes:
        raw = name.ljust(15)[:15].encode() + b"\x20"
        out = b"".join(bytes([0x41 + (c >> 4), 0x41 + (c & 0x0F)]) for c in raw)
        return b"\x20" + out + b"\x00"

    payload = encode("*SMBSERVER") + encode("IOTRATE")
    return b"\x81\x00" + len(payload).to_bytes(2, "big") + payload


class SmbV1(Probe):
    id = "svc.smb"
    title = "SMB version 1"
    protocols = frozenset({"smb", "netbios-ssn"})
    ports = frozenset({139, 445})
    timeout = 10.0
    checks = ("svc.smb.v1",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        step = min(4.0, ctx.timeout / 3)
        conn = await open_tcp(ctx.address, port, step)
        try:
            if port == 139:
                await write(conn, netbios_session_request())
                answer = await read_exactly(conn, 4, step)
                if answer[0] != 0x82:
                    raise NotApplicable(f"port {port} refused a NetBIOS session")
            await write(conn, smb1_negotiate())
            try:
                head = await read_exactly(conn, 4, step)
            except PeerClosed:
                return []  # hung up on SMB1: the usual answer of an SMB2-only server
            size = int.from_bytes(head[1:4], "big")
            body = await read_exactly(conn, min(size, 1024), step)
        finally:
            await conn.close()
        if body.startswith(b"\xfeSMB"):
            return []
        if not body.startswith(b"\xffSMB") or len(body) < 37:
            raise NotApplicable(f"port {port} does not answer like SMB")
        status = struct.unpack("<I", body[5:9])[0]
        word_count = body[32]
        dialect = struct.unpack("<H", body[33:35])[0] if word_count else 0xFFFF
        if status != 0 or dialect == 0xFFFF:
            return []
        return [
            make_finding(
                "svc.smb.v1",
                f"SMB on port {port} accepted the SMB1 dialect 'NT LM 0.12'",
                port,
                {"dialect": "NT LM 0.12"},
            )
        ]
