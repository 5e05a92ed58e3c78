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
