"""Optional nmap service detection (``iotrate scan --nmap``) through python-nmap.

nmap's probe database names products and versions that a banner alone does not reveal. It is
run per device on the ports the connect scan already found open (``-sV`` is slow on closed and
filtered ports), so it deepens what iotrate saw rather than repeating the sweep. ``-O`` is added
when privileged. python-nmap is imported only here (see NOTICE.md on its licence).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Sequence

from iotrate.errors import RuntimeFailure
from iotrate.models import Service, Transport
from iotrate.net import printable

log = logging.getLogger(__name__)


def available() -> bool:
    return shutil.which("nmap") is not None


def _scan(
    address: str, ports: Sequence[tuple[int, Transport]], privileged: bool, timeout: int
) -> dict[tuple[int, str], dict[str, str]]:
    import nmap

    tcp = sorted({p for p, t in ports if t is Transport.TCP})
    udp = sorted({p for p, t in ports if t is Transport.UDP})
    spec = ",".join([*(f"T:{p}" for p in tcp), *(f"U:{p}" for p in udp)])
    args = "-n -Pn -sV --version-light"
    if privileged:
        args += " -O" + (" -sS -sU" if udp else " -sS")
    else:
        args += " -sT"
    try:
        scanner = nmap.PortScanner()
        data = scanner.scan(hosts=address, ports=spec, arguments=args, timeout=timeout)
    except (nmap.PortScannerError, nmap.PortScannerTimeout) as exc:
        raise RuntimeFailure(f"nmap failed on {address}: {exc}") from exc
    host = data.get("scan", {}).get(address, {})
    out: dict[tuple[int, str], dict[str, str]] = {}
    for proto in ("tcp", "udp"):
        for port, info in (host.get(proto) or {}).items():
            if info.get("state") == "open":
                out[(int(port), proto)] = {
                    k: str(info.get(k) or "") for k in ("name", "product", "version", "extrainfo")
                }
    osmatch = host.get("osmatch") or []
    if osmatch:
        out[(0, "os")] = {
            "name": str(osmatch[0].get("name", "")),
            "accuracy": str(osmatch[0].get("accuracy", "")),
        }
    return out


async def enrich(
    address: str, services: list[Service], privileged: bool, timeout: int = 120
) -> tuple[list[Service], str | None]:
    """Services with nmap's product/version filled in, and nmap's OS guess if any."""
    ports = [(s.port, s.transport) for s in services]
    if not ports:
        return services, None
    found = await asyncio.to_thread(_scan, address, ports, privileged, timeout)
    enriched = []
    for s in services:
        info = found.get((s.port, s.transport.value))
        if info:
            product = printable(info["product"], 80) or s.product
            version = printable(info["version"], 40) or s.version
            enriched.append(
                s.model_copy(
                    update={
                        "product": product or None,
                        "version": version or None,
                        "protocol": s.protocol or (printable(info["name"], 40) or None),
                    }
                )
            )
        else:
            enriched.append(s)
    os_guess = found.get((0, "os"))
    guess = printable(f"{os_guess['name']} ({os_guess['accuracy']}%)", 120) if os_guess else None
    return enriched, guess
