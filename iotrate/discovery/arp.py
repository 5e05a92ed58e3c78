"""ARP sweep with scapy: the fastest and most complete way to find hosts on the local link,
and the only one that sees a device with every port closed or filtered. It needs CAP_NET_RAW
(root); without it discovery falls back to the TCP connect sweep and says so.

Only targets on a directly connected subnet are asked: ARP is link-local by definition, so
nothing here can reach past the local link.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Sequence

log = logging.getLogger(__name__)


def privileged() -> bool:
    """Whether raw sockets are allowed (root, or CAP_NET_RAW in the effective set)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 13))  # CAP_NET_RAW
    except OSError:
        pass
    return False


def _on_link(hosts: Sequence[str]) -> dict[str, list[str]]:
    """Group IPv4 targets by the interface whose connected subnet holds them."""
    from scapy.config import conf  # slow import: only when a sweep really runs

    by_iface: dict[str, list[str]] = {}
    for h in hosts:
        addr = ipaddress.ip_address(h)
        if addr.version != 4 or addr.is_loopback:
            continue
        iface, _src, gateway = conf.route.route(h)
        if gateway in ("0.0.0.0", None) and iface and str(iface) != "lo":  # noqa: S104
            by_iface.setdefault(str(iface), []).append(h)
    return by_iface


def on_link_hosts(hosts: Sequence[str]) -> set[str]:
    """Targets on a directly connected subnet: those ARP can prove absent."""
    try:
        return {h for addrs in _on_link(hosts).values() for h in addrs}
    except (OSError, ImportError, ValueError):
        return set()


def _sweep(hosts: Sequence[str], timeout: float) -> dict[str, str]:
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    found: dict[str, str] = {}
    for iface, addrs in _on_link(hosts).items():
        packets = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=addrs)
        answered, _ = srp(packets, iface=iface, timeout=timeout, verbose=False)
        for _sent, reply in answered:
            ip = str(reply[ARP].psrc)
            if ip in addrs:
                found[ip] = str(reply[ARP].hwsrc).lower()
    return found


async def sweep(hosts: Sequence[str], timeout: float = 1.0) -> dict[str, str]:
    """Address -> MAC of every on-link target that answered ARP (empty when not privileged)."""
    if not privileged():
        return {}
    try:
        return await asyncio.to_thread(_sweep, list(hosts), timeout)
    except (OSError, ImportError, ValueError) as exc:
        log.info("ARP sweep unavailable: %s", exc)
        return {}
