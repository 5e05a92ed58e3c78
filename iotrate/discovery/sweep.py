"""Host discovery as one concurrent stage: the ARP sweep and the TCP connect sweep run at once.

Why not ARP first and connect afterwards: the ARP sweep's listening windows are most of its
time, and nothing needs to wait for them. Targets behind a gateway (which ARP cannot see) are
connect-swept from the first moment, and each on-link host is port-scanned the instant its ARP
reply arrives, so its probes can start while the sweep still listens for slower hosts. On-link
addresses that stay silent are not connect-swept: ARP proves them absent, which is what makes
a sparse /24 cheap. If the sweep hears nothing at all (no raw socket, or a link that filters
ARP), every target is connect-swept as if unprivileged, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from iotrate.discovery import arp
from iotrate.discovery.portscan import (
    HostScan,
    PortSpec,
    ScanLimits,
    neighbour_macs,
    scan_hosts,
)


async def discover(
    hosts: list[str],
    specs: tuple[PortSpec, ...],
    limits: ScanLimits,
    on_host: Callable[[HostScan], None] | None,
    macs: dict[str, str],
    use_arp: bool,
    scan_fn: Callable[..., Coroutine[Any, Any, list[HostScan]]] = scan_hosts,
) -> tuple[list[HostScan], str]:
    """Every answering target's :class:`HostScan` and the discovery mode for the result.

    ``macs`` is filled with each ARP answer as it arrives (before that host's ``on_host``), so
    the caller's per-host pipeline sees the MAC the sweep learned. ``scan_fn`` is
    :func:`~iotrate.discovery.portscan.scan_hosts` (tests swap it).
    """
    if not (use_arp and arp.privileged()):
        return await scan_fn(hosts, specs, limits, on_host=on_host), "tcp-connect (unprivileged)"
    sem = asyncio.Semaphore(limits.concurrency)
    on_link = arp.on_link_hosts(hosts)
    off_link = [h for h in hosts if h not in on_link]
    tasks: list[asyncio.Task[list[HostScan]]] = []

    def scan(batch: list[str], alive: set[str]) -> None:
        tasks.append(
            asyncio.create_task(
                scan_fn(batch, specs, limits, on_host=on_host, assume_alive=alive, sem=sem)
            )
        )

    def found(ip: str, mac: str) -> None:
        macs[ip] = mac
        scan([ip], {ip})

    try:
        if off_link:
            scan(off_link, set())
        if on_link:
            await arp.sweep([h for h in hosts if h in on_link], on_found=found)
            if not macs:  # heard nothing: prove nothing absent, sweep them by connect
                scan([h for h in hosts if h in on_link], set())
        results = await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [h for batch in results for h in batch], "arp + tcp-connect"


class Neighbours:
    """MACs from the kernel's neighbour table for hosts the ARP sweep did not answer for.

    Why a cache: each pipeline used to read the table (a subprocess) for its own host, a
    thousand reads for a thousand hosts. A read now serves every host that asked before it
    began (the kernel had learned their MACs by then), and hosts off the link, which the table
    cannot hold, are never looked up at all.
    """

    def __init__(self, on_link: set[str]) -> None:
        self._on_link = on_link
        self._table: dict[str, str] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def mac(self, address: str) -> str | None:
        if address not in self._on_link:
            return None
        asked = time.monotonic()
        async with self._lock:
            if self._read_at < asked:
                self._read_at = time.monotonic()
                self._table = await asyncio.to_thread(neighbour_macs)
        return self._table.get(address)
