"""Modbus/TCP: does the device answer a device-identification read without authentication
(PASSIVE: a read, never a write)?"""

from __future__ import annotations

import secrets
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

# --------------------------------------------------------------------------------- Modbus


class ModbusOpen(Probe):
    id = "svc.modbus"
    title = "Modbus open"
    protocols = frozenset({"modbus"})
    ports = frozenset({502})
    timeout = 10.0
    checks = ("svc.modbus.open",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        step = min(4.0, ctx.timeout / 2)
        tid = secrets.randbelow(65536)
        # Read Device Identification (function 0x2B/0x0E, basic objects): a read that every
        # Modbus/TCP stack either answers or refuses with an exception, and that changes nothing.
        pdu = b"\x2b\x0e\x01\x00"
        request = struct.pack(">HHHB", tid, 0, len(pdu) + 1, 1) + pdu
        conn = await open_tcp(ctx.address, port, step)
        try:
            await write(conn, request)
            head = await read_exactly(conn, 7, step)
            r_tid, proto, length, _unit = struct.unpack(">HHHB", head)
            if r_tid != tid or proto != 0 or not 2 <= length <= 260:
                raise NotApplicable(f"port {port} does not answer like Modbus/TCP")
            body = await read_exactly(conn, length - 1, step)
        finally:
            await conn.close()
        function = body[0]
        objects: dict[str, str] = {}
        if function == 0x2B and len(body) > 7:
            names = {0: "vendor", 1: "product_code", 2: "revision"}
            i, count = 7, body[6]
            for _ in range(count):
                if i + 2 > len(body):
                    break
                oid, size = body[i], body[i + 1]
                objects[names.get(oid, f"object_{oid}")] = printable(body[i + 2 : i + 2 + size])
                i += 2 + size
        answered = "device identification" if function == 0x2B else f"exception {function:#x}"
        return [
            make_finding(
                "svc.modbus.open",
                f"Modbus/TCP on port {port} answered a device-identification read ({answered})",
                port,
                {"function": function, **objects},
            )
        ]
