"""The lab's wiring: a bridge in its own namespace and one namespace per host, no way out.

Nothing is attached to the root namespace, and no namespace gets a default route, so a scan that
targets a wrong address fails with "network unreachable" instead of leaving the machine. The
only routes are the subnet itself and 224.0.0.0/4, which lets mDNS and SSDP cross the bridge
(multicast snooping is off, so the bridge floods them like a home switch without IGMP).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from iotrate.errors import LabError
from iotrate.lab.table import BRIDGE_NS, NS_PREFIX

ETC_NETNS = Path("/etc/netns")


@dataclass(frozen=True)
class Host:
    """One end host of the lab: a namespace with ``eth0`` plugged into the bridge."""

    name: str
    namespace: str
    address: str
    mac: str

    @property
    def bridge_port(self) -> str:
        return f"v-{self.name}"


def run(argv: list[str], stdin: str | None = None) -> str:
    """Run a setup command; its stderr becomes the error message, which names what broke."""
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv[:4])}: {exc}") from exc
    if done.returncode != 0:
        msg = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"{' '.join(argv[:4])} failed: {msg[-1] if msg else done.returncode}")
    return done.stdout


def lab_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"])
    names = (line.split()[0] for line in out.splitlines() if line.strip())
    return sorted(n for n in names if n.startswith(NS_PREFIX))


def namespace_pids(namespace: str) -> list[int]:
    try:
        out = run(["ip", "netns", "pids", namespace])
    except LabError:
        return []
    return [int(tok) for tok in out.split() if tok.isdigit()]


def build(net: ipaddress.IPv4Network, hosts: list[Host]) -> None:
    """Create every namespace and link with a handful of ``ip -batch`` calls (fast)."""
    namespaces = [BRIDGE_NS, *(h.namespace for h in hosts)]
    top = [f"netns add {ns}" for ns in namespaces]
    run(["ip", "-batch", "-"], "\n".join(top) + "\n")
    for ns in namespaces:
        # No IPv6: the lab is an IPv4 home network and link-local v6 would add listeners and
        # multicast noise that the device table does not describe.
        run(
            [
                "ip", "netns", "exec", ns, "sysctl", "-qw",
                "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
            ]
        )  # fmt: skip
    links = [f"link add br0 netns {BRIDGE_NS} type bridge mcast_snooping 0"]
    links += [
        f"link add {h.bridge_port} netns {BRIDGE_NS} type veth "
        f"peer name eth0 address {h.mac} netns {h.namespace}"
        for h in hosts
    ]
    run(["ip", "-batch", "-"], "\n".join(links) + "\n")
    bridge = ["link set lo up", "link set br0 up"]
    for h in hosts:
        bridge += [f"link set {h.bridge_port} master br0", f"link set {h.bridge_port} up"]
    run(["ip", "-n", BRIDGE_NS, "-batch", "-"], "\n".join(bridge) + "\n")
    for h in hosts:
        lines = [
            "link set lo up",
            "link set eth0 up",
            f"addr add {h.address}/{net.prefixlen} dev eth0",
            "route add 224.0.0.0/4 dev eth0",
        ]
        run(["ip", "-n", h.namespace, "-batch", "-"], "\n".join(lines) + "\n")


def write_etc(namespace: str, files: dict[str, str]) -> None:
    """Files that ``ip netns exec`` bind-mounts over /etc/<name> for processes in ``namespace``."""
    target = ETC_NETNS / namespace
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = target / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o640 if name in ("shadow", "gshadow") else 0o644)


def destroy(namespace: str) -> None:
    """Delete one namespace and its /etc overlay; its processes must already be stopped."""
    subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
    shutil.rmtree(ETC_NETNS / namespace, ignore_errors=True)


def stale_etc_dirs() -> list[Path]:
    if not ETC_NETNS.is_dir():
        return []
    return sorted(p for p in ETC_NETNS.iterdir() if p.name.startswith(NS_PREFIX))


def remove_etc_root_if_empty() -> None:
    """An empty /etc/netns configures nothing (``ip`` reads only its subfolders): remove it."""
    try:
        ETC_NETNS.rmdir()
    except OSError:
        pass
