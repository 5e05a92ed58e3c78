"""Find the local subnet to scan when the user names no target.

Reads the interface table with ``ip -j`` (local configuration only; nothing is sent). The
parsing is a pure function over that table so tests feed it a fake one and never touch the
machine's real network.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

from iotrate.errors import RuntimeFailure, UsageError


def _ip_json(*args: str) -> list[dict[str, Any]]:
    try:
        out = subprocess.run(
            ["ip", "-j", *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeFailure(f"cannot read the interface table with 'ip': {exc}") from exc
    data = json.loads(out or "[]")
    return data if isinstance(data, list) else []


def subnet_from_tables(
    routes: list[dict[str, Any]], addrs: list[dict[str, Any]]
) -> tuple[str, ipaddress.IPv4Network]:
    """The default route's interface and the IPv4 subnet configured on it.

    ``routes`` is ``ip -j -4 route show default``; ``addrs`` is ``ip -j -4 addr show``.
    """
    default = [r for r in routes if r.get("dst") == "default" and r.get("dev")]
    if not default:
        raise UsageError("no default route, so no local network to pick: name the targets to scan")
    dev = str(sorted(default, key=lambda r: int(r.get("metric", 0)))[0]["dev"])
    for link in addrs:
        if link.get("ifname") != dev:
            continue
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and info.get("scope", "global") == "global":
                iface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
                return dev, iface.network
    raise UsageError(f"default interface {dev} has no IPv4 address: name the targets to scan")


def local_subnet() -> tuple[str, ipaddress.IPv4Network]:
    """The live machine's default-interface subnet (reads the table, sends nothing)."""
    return subnet_from_tables(
        _ip_json("-4", "route", "show", "default"), _ip_json("-4", "addr", "show")
    )


def local_addresses() -> set[str]:
    """This machine's own addresses in the current namespace: a scan reports devices, not itself.

    Loopback is left out so that scanning 127.0.0.1 (tests, local services) still works.
    """
    try:
        links = _ip_json("addr", "show")
    except RuntimeFailure:
        return set()
    return {
        str(info["local"])
        for link in links
        for info in link.get("addr_info", [])
        if info.get("local") and info.get("scope") != "host"
    }


def broadcasts_from_table(addrs: list[dict[str, Any]]) -> dict[ipaddress.IPv4Address, str]:
    """The broadcast and network address of every IPv4 subnet configured here, each with why
    it is refused. A packet to x.x.x.255 of a /24 the machine is on reaches every host of it,
    which is broadcast whether or not the address is 255.255.255.255.

    ``addrs`` is ``ip -j -4 addr show``; /31 and /32 have no broadcast address (RFC 3021)."""
    out: dict[ipaddress.IPv4Address, str] = {}
    for link in addrs:
        dev = link.get("ifname", "?")
        for info in link.get("addr_info", []):
            if info.get("family") != "inet" or "local" not in info:
                continue
            try:
                net = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network
                told = info.get("broadcast")
                extra = [ipaddress.IPv4Address(told)] if told else []
            except (KeyError, ValueError):
                continue
            if net.prefixlen > 30:
                continue
            for a in (net.broadcast_address, *extra):
                out.setdefault(a, f"the broadcast address of {net} on {dev}")
            out.setdefault(net.network_address, f"the network address of {net} on {dev}")
    return out


def local_broadcasts() -> dict[ipaddress.IPv4Address, str]:
    """:func:`broadcasts_from_table` of this machine (reads the table, sends nothing); none
    when the table cannot be read, since the plain broadcast checks still apply."""
    try:
        return broadcasts_from_table(_ip_json("-4", "addr", "show"))
    except (RuntimeFailure, ValueError):
        return {}
