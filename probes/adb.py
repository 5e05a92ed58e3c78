"""ADB over the network: does the Android debug port answer the ``CNXN`` handshake without
asking the client to authenticate (PASSIVE: nothing is run on the device)?"""

from __future__ import annotations

import struct

from iotrate.models import Finding
from iotrate.net import printable

from ._clients.io import (
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

# ------------------------------------------------------------------------------------ ADB

A_CNXN, A_AUTH = 0x4E584E43, 0x48545541
ADB_HEADER = struct.Struct("<6I")
ADB_VERSION = 0x01000001
ADB_MAX_PAYLOAD = 256 * 1024


def adb_message(command: int, arg0: int, arg1: int, data: bytes) -> bytes:
    check = sum(data) & 0xFFFFFFFF
    header = ADB_HEADER.pack(command, arg0, arg1, len(data), check, command ^ 0xFFFFFFFF)
    return header + data


def adb_props(banner: str) -> dict[str, str]:
    _, _, rest = banner.partition("::")
    pairs = (item.split("=", 1) for item in rest.split(";") if "=" in item)
    return {k.strip(): printable(v.strip(), 80) for k, v in pairs}


class AdbUnauthenticated(Probe):
    id = "svc.adb"
    title = "Android Debug Bridge without authentication"
    protocols = frozenset({"adb"})
    ports = frozenset({5555})
    timeout = 10.0
    checks = ("svc.adb.unauthenticated",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        step = min(4.0, ctx.timeout / 2)
        conn = await open_tcp(ctx.address, port, step)
        try:
            # The host's half of the handshake: a device that enforces keys answers AUTH with a
            # token to sign; one that answers CNXN has let us in without any key.
            await write(conn, adb_message(A_CNXN, ADB_VERSION, ADB_MAX_PAYLOAD, b"host::\0"))
            head = await read_exactly(conn, ADB_HEADER.size, step)
            command, _arg0, _arg1, length, _check, magic = ADB_HEADER.unpack(head)
            if magic != command ^ 0xFFFFFFFF or length > ADB_MAX_PAYLOAD:
                raise NotApplicable(f"port {port} does not answer the ADB handshake")
            payload = await read_exactly(conn, length, step) if length else b""
        finally:
            await conn.close()
        if command == A_AUTH:
            return []
        if command != A_CNXN:
            raise NotApplicable(f"ADB on port {port} answered command {command:#x}")
        banner = printable(payload.rstrip(b"\0"), 200)
        props = adb_props(banner)
        model = props.get("ro.product.model") or props.get("ro.product.name") or "device"
        return [
            make_finding(
                "svc.adb.unauthenticated",
                f"ADB on port {port} accepted a connection without a key and identified itself "
                f"as {banner!r}",
                port,
                {"banner": banner, "properties": props, "model": model},
            )
        ]
